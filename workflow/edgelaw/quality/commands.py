"""Commands of the quality stage: the base reference once per model, one scheme's scores, a summary."""

from __future__ import annotations

import json

from edgelaw.core.console import json_arg, say
from edgelaw.core.errors import EdgelawError


def _common(p) -> None:
    p.add_argument("--model", required=True)
    p.add_argument("--settings", required=True, type=json_arg, help="the config's quality section as JSON")
    p.add_argument("--threads", type=int, required=True)
    p.add_argument("--encoder", help="the sentence encoder GGUF (with quality.semantic)")
    p.add_argument("--encoder-json", help="its record: its bytes must still match it")


def _encoder(a, s):
    from edgelaw.quality.jobs import Encoder

    if not s.semantic:
        return None
    if not (a.encoder and a.encoder_json):
        raise EdgelawError("quality.semantic is on: give the sentence encoder with --encoder and --encoder-json")
    return Encoder.checked(a.encoder, a.encoder_json)


def args_quality_reference(p) -> None:
    _common(p)
    p.add_argument("--base", required=True)
    p.add_argument("--base-json", required=True, help="the base's record: its bytes must still match it")
    p.add_argument("--out-npz", required=True)
    p.add_argument("--out-answers", required=True)


def cmd_quality_reference(a) -> None:
    from edgelaw.core.integrity import check_recorded
    from edgelaw.core.llama import LogCapture
    from edgelaw.quality.jobs import QualitySettings, provenance, reference

    LogCapture()  # llama.cpp's chatter to the job's log
    s = QualitySettings.from_config(a.settings)
    sha = check_recorded(a.base, a.base_json, f"model {a.model}: base")
    encoder = _encoder(a, s)
    reference(a.model, a.base, s, a.threads, a.out_npz, a.out_answers,
              provenance(s, a.threads, sha, encoder=encoder), encoder)


def args_quality(p) -> None:
    _common(p)
    p.add_argument("--quant", required=True)
    p.add_argument("--gguf", required=True)
    p.add_argument("--quant-json", required=True)
    p.add_argument("--ref-npz", required=True)
    p.add_argument("--ref-answers", required=True)
    p.add_argument("--out-table", required=True)
    p.add_argument("--out-answers", required=True)


def cmd_quality(a) -> None:
    from edgelaw.core.integrity import check_recorded
    from edgelaw.core.llama import LogCapture
    from edgelaw.quality.jobs import QualitySettings, provenance, score

    LogCapture()
    s = QualitySettings.from_config(a.settings)
    quant_meta = json.loads(open(a.quant_json).read())
    sha = check_recorded(a.gguf, a.quant_json, f"model {a.model}, scheme {a.quant}")
    encoder = _encoder(a, s)
    prov = provenance(s, a.threads, sha, quant_meta.get("params"), encoder)
    score(a.model, a.quant, a.gguf, quant_meta, s, a.threads, a.ref_npz, a.ref_answers, a.out_table, a.out_answers, prov,
          encoder)


def args_quality_summary(p) -> None:
    p.add_argument("folder", help="e.g. results/quality/smollm2-135m")


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
    say(f"base perplexity {base.base_ppl:.3f}; {base.n_tokens} tokens in {base.n_chunks} chunks of {base.n_ctx}; "
        f"the base's own semantic similarity to the references {base.sem_ref_of_base:.3f}")
