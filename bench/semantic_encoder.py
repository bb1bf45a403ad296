"""Semantic scores of a finished run, scored again with the llama.cpp sentence encoder: before and after.

    python bench/semantic_encoder.py RESULTS_QUALITY_DIR [ENCODER_GGUF ENCODER_JSON]

RESULTS_QUALITY_DIR is a run's results/quality (its tables, answers and reference answers; e.g. one made
by sentence-transformers, before edgelaw ran the encoder on llama.cpp). The answers are embedded again
with the converted GGUF (default: converted here from the default quality.embedder, into a temp dir),
as the quality jobs embed them, and each scheme's trimmed means are computed again. Prints, per scheme,
sem_ref and sem_base as the tables hold them and as the GGUF gives them, and the largest change; and,
with tests/fixtures/encoder_reference.npz, the per-text cosine to sentence-transformers.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from edgelaw.core.config import defaults
from edgelaw.quality.evalset import read_prompts, prompts_path
from edgelaw.quality.jobs import Encoder
from edgelaw.quality.semantic import Embedder, cosine_rows, trimmed
from edgelaw.sources.encoder import materialize

FIXTURE = Path(__file__).resolve().parents[1] / "tests/fixtures/encoder_reference.npz"


def main() -> None:
    quality_dir = Path(sys.argv[1])
    tmp = tempfile.TemporaryDirectory()
    if len(sys.argv) > 3:
        encoder = Encoder.checked(sys.argv[2], sys.argv[3])
    else:
        out = Path(tmp.name)
        materialize(defaults("quality")["embedder"], out / "encoder.gguf", out / "encoder.json")
        encoder = Encoder.checked(str(out / "encoder.gguf"), str(out / "encoder.json"))
    embedder = Embedder(encoder.gguf, 1, encoder.record["max_seq_length"])

    if FIXTURE.exists():
        ref = np.load(FIXTURE)
        cos = cosine_rows(embedder.encode(list(ref["texts"])), ref["embeddings"].astype(np.float64))
        kinds = ref["kinds"]
        print("| texts | n | min cosine | median | max |")
        print("| --- | ---: | ---: | ---: | ---: |")
        for kind in ("prompt", "reference", "answer", None):
            c = cos if kind is None else cos[kinds == kind]
            print(f"| {kind or 'all'} | {len(c)} | {c.min():.6f} | {np.median(c):.6f} | {c.max():.6f} |")
        print()

    print("| model | scheme | sem_ref before | after | change | sem_base before | after | change |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    worst = 0.0
    for table in sorted(quality_dir.glob("*/*.parquet")):
        row = pd.read_parquet(table).iloc[0]
        model_dir = table.parent
        answers = pd.read_parquet(model_dir / "answers" / table.name)
        base = pd.read_parquet(model_dir / "reference" / "answers.parquet")
        config = row.to_dict()
        trim = float(config["trim"])
        prompts = {p.id: p for p in read_prompts(prompts_path(None))}
        base_by_id = dict(zip(base["prompt_id"], base["answer"]))
        ids = list(answers["prompt_id"])
        e_ans = embedder.encode(list(answers["answer"]))
        sim_ref = cosine_rows(e_ans, embedder.encode([prompts[i].reference for i in ids]))
        sim_base = cosine_rows(e_ans, embedder.encode([base_by_id[i] for i in ids]))
        after_ref, after_base = trimmed(sim_ref, trim)[0], trimmed(sim_base, trim)[0]
        d_ref, d_base = after_ref - row["sem_ref"], after_base - row["sem_base"]
        worst = max(worst, abs(d_ref), abs(d_base))
        print(f"| {row['model']} | {row['quant']} | {row['sem_ref']:.4f} | {after_ref:.4f} | {d_ref:+.5f} | "
              f"{row['sem_base']:.4f} | {after_base:.4f} | {d_base:+.5f} |")
    print(f"\nlargest change of a semantic score: {worst:.5f}")
    embedder.close()


if __name__ == "__main__":
    main()
