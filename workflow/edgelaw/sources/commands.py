"""Commands of the fetch stage: a model's base GGUF, a VLM's projector, the quality stage's sentence encoder."""

from __future__ import annotations

from edgelaw.core.console import json_arg, say


def args_fetch_model(p) -> None:
    p.add_argument("--model", required=True)
    p.add_argument("--spec", required=True, type=json_arg, help="the model's config entry as JSON")
    p.add_argument("--out-gguf", required=True)
    p.add_argument("--out-json", required=True)


def cmd_fetch_model(a) -> None:
    from edgelaw.sources.fetch import materialize

    record = materialize(a.model, a.spec, a.out_gguf, a.out_json)
    say(f"model {a.model}: {record['arch']}, {record['n_params']:,} params, {record['bpw']:.2f} BPW -> {a.out_gguf}")


def args_fetch_mmproj(p) -> None:
    p.add_argument("--model", required=True)
    p.add_argument("--spec", required=True, type=json_arg, help="models.<model>.mmproj as JSON")
    p.add_argument("--language", required=True, help="the model's base GGUF, to check the pairing")
    p.add_argument("--out-gguf", required=True)
    p.add_argument("--out-json", required=True)


def cmd_fetch_mmproj(a) -> None:
    from edgelaw.sources.fetch import materialize_projector

    r = materialize_projector(a.model, a.spec, a.language, a.out_gguf, a.out_json)
    say(f"model {a.model}: projector {r['projector_type']}, {r['n_params']:,} params, "
        f"{r['patch_size']} px patches merged {r['merge']}x{r['merge']} -> {a.out_gguf}")


def args_fetch_encoder(p) -> None:
    p.add_argument("--spec", required=True, type=json_arg, help="quality.embedder as JSON")
    p.add_argument("--out-gguf", required=True)
    p.add_argument("--out-json", required=True)


def cmd_fetch_encoder(a) -> None:
    from edgelaw.sources.encoder import materialize

    materialize(a.spec, a.out_gguf, a.out_json)
