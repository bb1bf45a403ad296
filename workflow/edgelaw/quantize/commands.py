"""The quantization stage's command: one scheme of the PTQ ladder."""

from __future__ import annotations

from edgelaw.core.console import json_arg, say


def args_quantize(p) -> None:
    p.add_argument("--model", required=True)
    p.add_argument("--scheme-name", required=True)
    p.add_argument("--scheme", required=True, type=json_arg, help="the scheme's config entry as JSON")
    p.add_argument("--base", required=True)
    p.add_argument("--base-json", required=True, help="the base's record: its bytes must still match it")
    p.add_argument("--out-gguf", required=True)
    p.add_argument("--out-json", required=True)
    p.add_argument("--threads", type=int, required=True)


def cmd_quantize(a) -> None:
    from edgelaw.quantize.ptq import quantize

    r = quantize(a.model, a.scheme_name, a.scheme, a.base, a.out_gguf, a.out_json, a.threads, a.base_json)
    say(f"model {a.model}, scheme {a.scheme_name}: {r['bpw']:.3f} BPW, {r['weight_bytes']:,} bytes, {r['seconds']:.1f} s")
