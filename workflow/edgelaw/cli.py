"""Command line: `python -m edgelaw COMMAND ...`; each Snakemake rule calls one command."""

from __future__ import annotations

import argparse
import json

from .errors import EdgelawError
from .report_log import open_log, say


def _json(text: str) -> dict:
    return json.loads(text)


def cmd_fetch_model(a) -> None:
    from .sources import materialize

    record = materialize(a.model, a.spec, a.out_gguf, a.out_json)
    say(f"model {a.model}: {record['arch']}, {record['n_params']:,} params, {record['bpw']:.2f} BPW -> {a.out_gguf}")


def cmd_fetch_mmproj(a) -> None:
    from .sources import materialize_projector

    r = materialize_projector(a.model, a.spec, a.language, a.out_gguf, a.out_json)
    say(f"model {a.model}: projector {r['projector_type']}, {r['n_params']:,} params, "
        f"{r['patch_size']} px patches merged {r['merge']}x{r['merge']} -> {a.out_gguf}")


def cmd_quantize(a) -> None:
    from .quantize import quantize

    r = quantize(a.model, a.scheme_name, a.scheme, a.base, a.out_gguf, a.out_json, a.threads)
    say(f"model {a.model}, scheme {a.scheme_name}: {r['bpw']:.3f} BPW, {r['weight_bytes']:,} bytes, {r['seconds']:.1f} s")


def cmd_validate_config(a) -> None:
    import yaml

    from .config import validate

    validate(yaml.safe_load(open(a.config)))
    print(f"{a.config}: valid")


def cmd_host(a) -> None:
    from .devices import fingerprint

    print(json.dumps(fingerprint(), indent=2))


def cmd_host_record(a) -> None:
    from .atomic import write_json
    from .bench import host_record

    record = host_record(a.device, a.profile, a.idle_seconds, a.sample_hz, a.threads)
    write_json(a.out, record)
    idle = record["idle_baseline"]
    say(f"device {a.device}: power source {record['power_source']}, idle {idle['cpu_sys_pct']:.1f}% CPU, "
        f"{idle['power_w']:.2f} W; memory copy bandwidth {record['memory_bandwidth']['copy_gb_s']:.1f} GB/s")


def cmd_bench(a) -> None:
    from .bench import Settings, measure
    from .devices import fingerprint
    from .llama import build_info
    from .provenance import record

    settings = Settings.from_config(a.settings)
    quant_meta = json.loads(open(a.quant_json).read())
    prov = record(
        {"bench": a.settings, "scheme": quant_meta.get("params"), "device": a.profile, "threads": a.threads,
         "clamp": a.clamp},
        fingerprint(),
        build_info(),
        gguf_sha256=quant_meta.get("sha256"),
    )
    measure(device=a.device, profile=a.profile, model=a.model, quant=a.quant, gguf=a.gguf, quant_meta=quant_meta,
            workload=a.workload, settings=settings, threads=a.threads, out_trace=a.out_trace, out_runs=a.out_runs,
            provenance=prov, mmproj=a.mmproj, clamp=a.clamp)


def _quality_provenance(a, settings, gguf_sha256: str | None, scheme=None) -> dict:
    from dataclasses import asdict

    from .devices import fingerprint
    from .evalset import checksums
    from .llama import build_info
    from .provenance import record
    from .quality_stage import input_files
    from .semantic import describe

    eval_text, prompts = input_files(settings)
    return record(
        {"quality": asdict(settings), "scheme": scheme, "threads": a.threads},
        fingerprint(),
        build_info(),
        gguf_sha256=gguf_sha256,
        inputs=checksums(eval_text, prompts),
        embedder=describe(settings.embedder) if settings.semantic else None,
    )


def cmd_quality_reference(a) -> None:
    from .hashing import sha256_file
    from .llama import LogCapture
    from .quality_stage import QualitySettings, reference

    LogCapture()  # llama.cpp's chatter to the job's log

    s = QualitySettings.from_config(a.settings)
    prov = _quality_provenance(a, s, sha256_file(a.base))
    reference(a.model, a.base, s, a.threads, a.out_npz, a.out_answers, prov)


def cmd_quality(a) -> None:
    from .llama import LogCapture
    from .quality_stage import QualitySettings, score

    LogCapture()

    s = QualitySettings.from_config(a.settings)
    quant_meta = json.loads(open(a.quant_json).read())
    prov = _quality_provenance(a, s, quant_meta.get("sha256"), quant_meta.get("params"))
    score(a.model, a.quant, a.gguf, quant_meta, s, a.threads, a.ref_npz, a.ref_answers, a.out_table, a.out_answers, prov)


def cmd_quality_summary(a) -> None:
    import glob

    import pandas as pd

    files = sorted(glob.glob(f"{a.folder}/*.parquet"))
    if not files:
        raise EdgelawError(f"no quality tables in {a.folder}; run the workflow first")
    df = pd.concat([pd.read_parquet(f) for f in files]).sort_values("bpw", ascending=False)
    print("| scheme | BPW | perplexity | mean KLD | KLD p99 | top-1 % | semantic vs reference | semantic vs base |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in df.itertuples():
        sem = (f"{r.sem_ref:.3f} | {r.sem_base:.3f}" if pd.notna(r.sem_ref) else "- | -")
        print(f"| {r.quant} | {r.bpw:.3f} | {r.ppl:.3f} ± {r.ppl_se:.3f} | {r.kld_mean:.4f} | {r.kld_p99:.3f} | "
              f"{r.top1_pct:.1f} | {sem} |")
    base = df.iloc[0]
    print(f"\nbase perplexity {base.base_ppl:.3f}; {base.n_tokens} tokens in {base.n_chunks} chunks of {base.n_ctx}; "
          f"the base's own semantic similarity to the references {base.sem_ref_of_base:.3f}")


def cmd_laws(a) -> None:
    from . import laws, tables
    from .devices import fingerprint
    from .fit import LAWS
    from .llama import build_info
    from .provenance import record

    fits, trade, comp, x_ref = laws.derive(
        tables.read_many(a.runs), tables.read_many(a.quality), tables.read_many(a.answers),
        laws.weight_bytes(a.quant_json), json.loads(open(a.host).read()), a.settings, a.comparisons,
    )
    prov = record({"laws": a.settings, "comparisons": a.comparisons}, fingerprint(), build_info(),
                  inputs=sorted(a.runs + a.quality), x_ref=x_ref)
    tables.write(fits, LAWS, a.out_laws, prov)
    tables.write_frame(trade, a.out_tradeoffs, prov)
    tables.write_frame(comp, a.out_comparisons, prov)
    failed = fits[fits["note"].str.startswith("not fitted")]
    say(f"laws: {fits['law'].nunique()} laws, {len(fits)} parameters at {x_ref} tokens; {len(failed)} not fitted; "
        f"{len(comp)} comparison rows")
    for note in failed["note"].unique():
        say(f"  {note}")


def cmd_replay(a) -> None:
    from pathlib import Path

    from .replay import replay

    replay(Path(a.archive), Path(a.out_dir))


def cmd_report(a) -> None:
    from pathlib import Path

    import pandas as pd

    from .report import build
    from .tables import read_many

    build(Path(a.out_dir), read_many(a.runs), read_many(a.quality), pd.read_parquet(a.laws),
          pd.read_parquet(a.tradeoffs), pd.read_parquet(a.comparisons), json.loads(open(a.host).read()))
    say(f"report: {a.out_dir}/index.html")


def cmd_archive(a) -> None:
    import subprocess
    import sys
    import tempfile
    from datetime import datetime, timezone
    from pathlib import Path

    import yaml

    from . import __version__
    from .archive import build
    from .provenance import git_commit

    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "config.yaml"
        config.write_text(yaml.safe_dump(a.config, sort_keys=True))
        lock = Path(tmp) / "requirements.lock"
        freeze = subprocess.run([sys.executable, "-m", "pip", "freeze", "--exclude-editable"], capture_output=True,
                                text=True, check=True)
        lock.write_text(freeze.stdout)
        files = {"config/config.yaml": config, "environment/requirements.lock": lock}
        files.update({path: path for path in a.files})
        manifest = build(a.out, files, {
            "device": a.device, "edgelaw_version": __version__, "git_commit": git_commit(),
            "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        })
    size = Path(a.out).stat().st_size
    say(f"archive {a.out}: {len(manifest['files'])} files, {size / 1e6:.1f} MB; check it with "
        f"python -m edgelaw verify {a.out}")


def cmd_verify(a) -> None:
    from .archive import verify

    for path in a.archives:
        manifest = verify(path)
        print(f"{path}: OK, {len(manifest['files'])} files match the manifest (device {manifest.get('device')}, "
              f"created {manifest.get('created')}, commit {manifest.get('git_commit')})")


def cmd_compare(a) -> None:
    from pathlib import Path

    from .compare import compare

    compare([Path(p) for p in a.archives], Path(a.out_dir))
    say(f"cross-device report: {a.out_dir}/index.html")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="edgelaw", description=__doc__)
    p.add_argument("--log", help="write details (llama.cpp's log) to this file; progress and errors still print")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("fetch-model", help="fetch a model from its source and write the base GGUF")
    s.add_argument("--model", required=True)
    s.add_argument("--spec", required=True, type=_json, help="the model's config entry as JSON")
    s.add_argument("--out-gguf", required=True)
    s.add_argument("--out-json", required=True)
    s.set_defaults(func=cmd_fetch_model)

    s = sub.add_parser("quantize", help="quantize a base GGUF with one scheme")
    s.add_argument("--model", required=True)
    s.add_argument("--scheme-name", required=True)
    s.add_argument("--scheme", required=True, type=_json)
    s.add_argument("--base", required=True)
    s.add_argument("--out-gguf", required=True)
    s.add_argument("--out-json", required=True)
    s.add_argument("--threads", type=int, default=2)
    s.set_defaults(func=cmd_quantize)

    s = sub.add_parser("fetch-mmproj", help="fetch a VLM's vision projector and check it pairs with its language model")
    s.add_argument("--model", required=True)
    s.add_argument("--spec", required=True, type=_json, help="models.<model>.mmproj as JSON")
    s.add_argument("--language", required=True, help="the model's base GGUF, to check the pairing")
    s.add_argument("--out-gguf", required=True)
    s.add_argument("--out-json", required=True)
    s.set_defaults(func=cmd_fetch_mmproj)

    s = sub.add_parser("validate-config", help="validate a config file against the schema")
    s.add_argument("config")
    s.set_defaults(func=cmd_validate_config)

    s = sub.add_parser("host-record", help="fingerprint, power source and idle baseline -> host.json")
    s.add_argument("--device", required=True)
    s.add_argument("--profile", required=True, type=_json)
    s.add_argument("--idle-seconds", type=float, default=3.0)
    s.add_argument("--sample-hz", type=float, default=50.0)
    s.add_argument("--threads", type=int, default=1, help="threads of the bandwidth copy (the inference threads)")
    s.add_argument("--out", required=True)
    s.set_defaults(func=cmd_host_record)

    s = sub.add_parser("bench", help="measure one model x scheme x workload on this device")
    s.add_argument("--device", required=True)
    s.add_argument("--profile", required=True, type=_json)
    s.add_argument("--model", required=True)
    s.add_argument("--quant", required=True)
    s.add_argument("--gguf", required=True)
    s.add_argument("--quant-json", required=True)
    s.add_argument("--workload", default="tokens")
    s.add_argument("--settings", required=True, type=_json, help="the config's bench section as JSON")
    s.add_argument("--threads", type=int, required=True)
    s.add_argument("--out-trace", required=True)
    s.add_argument("--out-runs", required=True)
    s.add_argument("--mmproj", default=None, help="the model's vision projector (resolution workload)")
    s.add_argument("--clamp", type=_json, default={}, help='{"image_max_tokens": N, "image_min_tokens": N} as JSON')
    s.set_defaults(func=cmd_bench)

    s = sub.add_parser("quality-reference", help="score the base model once: its top-K per token and its answers")
    s.add_argument("--model", required=True)
    s.add_argument("--base", required=True)
    s.add_argument("--settings", required=True, type=_json, help="the config's quality section as JSON")
    s.add_argument("--threads", type=int, default=2)
    s.add_argument("--out-npz", required=True)
    s.add_argument("--out-answers", required=True)
    s.set_defaults(func=cmd_quality_reference)

    s = sub.add_parser("quality", help="perplexity, KL divergence, top-1 and semantic accuracy of one scheme")
    s.add_argument("--model", required=True)
    s.add_argument("--quant", required=True)
    s.add_argument("--gguf", required=True)
    s.add_argument("--quant-json", required=True)
    s.add_argument("--settings", required=True, type=_json, help="the config's quality section as JSON")
    s.add_argument("--threads", type=int, default=2)
    s.add_argument("--ref-npz", required=True)
    s.add_argument("--ref-answers", required=True)
    s.add_argument("--out-table", required=True)
    s.add_argument("--out-answers", required=True)
    s.set_defaults(func=cmd_quality)

    s = sub.add_parser("laws", help="fit the laws, trade-offs and comparisons of one device")
    s.add_argument("--runs", nargs="*", default=[])
    s.add_argument("--quality", nargs="*", default=[])
    s.add_argument("--answers", nargs="*", default=[])
    s.add_argument("--quant-json", nargs="*", default=[])
    s.add_argument("--host", required=True)
    s.add_argument("--settings", required=True, type=_json, help="the config's laws section as JSON")
    s.add_argument("--comparisons", required=True, type=_json, help="the config's comparisons as JSON")
    s.add_argument("--out-laws", required=True)
    s.add_argument("--out-tradeoffs", required=True)
    s.add_argument("--out-comparisons", required=True)
    s.set_defaults(func=cmd_laws)

    s = sub.add_parser("report", help="figures, summary.md and index.html of one device")
    s.add_argument("--runs", nargs="*", default=[])
    s.add_argument("--quality", nargs="*", default=[])
    s.add_argument("--laws", required=True)
    s.add_argument("--tradeoffs", required=True)
    s.add_argument("--comparisons", required=True)
    s.add_argument("--host", required=True)
    s.add_argument("--out-dir", required=True)
    s.set_defaults(func=cmd_report)

    s = sub.add_parser("archive", help="pack one device's results into a verifiable .tar.gz")
    s.add_argument("--device", required=True)
    s.add_argument("--config", required=True, type=_json, help="the validated config as JSON")
    s.add_argument("--files", nargs="+", required=True, help="result files, relative to the working directory")
    s.add_argument("--out", required=True)
    s.set_defaults(func=cmd_archive)

    s = sub.add_parser("verify", help="check archives against their manifests")
    s.add_argument("archives", nargs="+")
    s.set_defaults(func=cmd_verify)

    s = sub.add_parser("replay", help="verify and unpack an archive, refit its laws and check they match")
    s.add_argument("archive")
    s.add_argument("--out-dir", required=True)
    s.set_defaults(func=cmd_replay)

    s = sub.add_parser("compare", help="merge archives of several devices into one report")
    s.add_argument("archives", nargs="+")
    s.add_argument("--out-dir", default="results/compare")
    s.set_defaults(func=cmd_compare)

    s = sub.add_parser("quality-summary", help="print a folder's quality tables as one markdown table")
    s.add_argument("folder", help="e.g. results/quality/smollm2-135m")
    s.set_defaults(func=cmd_quality_summary)

    s = sub.add_parser("host", help="print this host's fingerprint")
    s.set_defaults(func=cmd_host)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    open_log(args.log)
    try:
        args.func(args)
    except EdgelawError as exc:
        say(f"edgelaw: error: {exc}")
        return 2
    return 0
