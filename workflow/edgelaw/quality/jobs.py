"""The quality stage: a base reference once per model, then every scheme scored against it.

`reference` runs the base GGUF over the evaluation chunks (keeping its top-K log-probabilities, see
quality.py) and answers the prompt set; `score` runs one scheme over the same chunks and prompts and
writes one row of the quality table plus its answers. Outputs are written atomically.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from edgelaw.core import tables
from edgelaw.core.atomic import atomic_path
from edgelaw.core.errors import EdgelawError
from edgelaw.quality.evalset import Prompt, input_paths, read_eval_text, read_prompts
from edgelaw.quality.logprobs import BaseReference, Scorer, evaluate, perplexity
from edgelaw.core.console import every_so_often, say
from edgelaw.core.config import SectionSettings


@dataclass(frozen=True)
class QualitySettings(SectionSettings):
    """What a quality job reads of the validated config's `quality` section (defaults: the schema)."""

    n_ctx: int
    n_chunks: int | None
    top_k: int
    eval_text: str | None
    semantic: bool
    prompts: str | None
    max_answer_tokens: int
    trim: float
    embedder: dict


@dataclass(frozen=True)
class Encoder:
    """The sentence encoder GGUF the fetch_encoder job made, and its record (edgelaw.sources.encoder)."""

    gguf: str
    record: dict

    @classmethod
    def checked(cls, gguf: str, record_path: str) -> "Encoder":
        """The encoder, whose bytes must still be the ones its record holds."""
        import json

        from edgelaw.core.integrity import check_recorded

        check_recorded(gguf, record_path, "quality.embedder")
        return cls(gguf, json.loads(open(record_path).read()))

    def provenance(self) -> dict:
        keys = ("embedder", "source", "converter", "pooling", "max_seq_length", "sha256")
        return {k: self.record.get(k) for k in keys}


def _token_chunks(scorer: Scorer, s: QualitySettings, what: str) -> list[list[int]]:
    path = input_files(s)[0]
    return scorer.chunks(read_eval_text(path), s.n_chunks, f"{what}, quality.eval_text {path}")


def _prompts(s: QualitySettings) -> list[Prompt]:
    path = input_files(s)[1]
    return read_prompts(path) if path else []


def _score(gguf: str, s: QualitySettings, threads: int, what: str, reference: BaseReference | None):
    scorer = Scorer(gguf, s.n_ctx, threads, what)
    token_chunks = _token_chunks(scorer, s, what)
    k = min(s.top_k, scorer.n_vocab)
    t0 = time.monotonic()
    try:
        result = evaluate(scorer, token_chunks, k, reference, progress=every_so_often(lambda done, n: f"{what}: scored chunk {done}/{n}", len(token_chunks)))
    finally:
        scorer.close()
    return result, len(token_chunks), k, time.monotonic() - t0


def _answer(gguf: str, prompts: list[Prompt], s: QualitySettings, threads: int, what: str):
    from edgelaw.quality.answers import Answerer

    if not prompts:
        return [], 0.0
    t0 = time.monotonic()
    answerer = Answerer(gguf, threads, s.max_answer_tokens, what)
    answers = answerer.answer_all([p.prompt for p in prompts])
    return answers, time.monotonic() - t0


def reference(model: str, base_gguf: str, s: QualitySettings, threads: int, out_npz: str, out_answers: str,
              provenance: dict, encoder: Encoder | None) -> None:
    what = f"model {model} (base)"
    (ref, _, _), n_chunks, k, seconds = _score(base_gguf, s, threads, what, None)
    with atomic_path(out_npz) as tmp, open(tmp, "wb") as f:
        ref.save(f, meta={"n_ctx": s.n_ctx, "n_chunks_asked": s.n_chunks, "top_k_asked": s.top_k,
                          "top_k": k, "n_chunks": n_chunks})
    prompts = _prompts(s)
    answers, answer_s = _answer(base_gguf, prompts, s, threads, what)
    rows = _answer_rows(model, "base", prompts, answers, s, [a.text for a in answers], encoder)
    tables.write(rows, tables.ANSWERS, out_answers, provenance)
    ppl, err = perplexity(ref.nll)
    say(f"{what}: perplexity {ppl:.3f} ± {err:.3f} over {len(ref.nll)} tokens ({seconds:.0f} s); "
        f"{len(answers)} answers ({answer_s:.0f} s)")


def _answer_rows(model, quant, prompts, answers, s: QualitySettings, base_texts: list[str],
                 encoder: Encoder | None) -> pd.DataFrame:
    from edgelaw.quality.semantic import Embedder, cosine_rows, trimmed

    cols = {c: [] for c in tables.ANSWERS.names}
    if prompts:
        if encoder is None:
            raise EdgelawError("quality.semantic is on but the job was given no sentence encoder (--encoder)")
        # One thread: a text is a few dozen tokens, too little work to share (two threads were 5x slower
        # than one on a busy 2-core host, spinning at ggml's barriers).
        embedder = Embedder(encoder.gguf, 1, encoder.record["max_seq_length"])
        try:
            texts = [a.text for a in answers]
            e_ans = embedder.encode(texts)
            sim_ref = cosine_rows(e_ans, embedder.encode([p.reference for p in prompts]))
            sim_base = cosine_rows(e_ans, embedder.encode(base_texts))
        finally:
            embedder.close()
        _, kept_ref = trimmed(sim_ref, s.trim)
        _, kept_base = trimmed(sim_base, s.trim)
        cols.update(
            model=[model] * len(prompts), quant=[quant] * len(prompts), prompt_id=[p.id for p in prompts],
            answer=texts, n_tokens=[a.n_tokens for a in answers], prompt_tokens=[a.prompt_tokens for a in answers],
            sim_ref=sim_ref, sim_base=sim_base, kept_ref=kept_ref, kept_base=kept_base,
        )
    return pd.DataFrame(cols)


def score(model: str, quant: str, gguf: str, quant_meta: dict, s: QualitySettings, threads: int, ref_npz: str,
          ref_answers: str, out_table: str, out_answers: str, provenance: dict, encoder: Encoder | None) -> dict:
    what = f"model {model}, scheme {quant}"
    ref, meta = BaseReference.load(ref_npz)
    made_with = {k: meta.get(k) for k in ("n_ctx", "n_chunks_asked", "top_k_asked")}
    asked = {"n_ctx": s.n_ctx, "n_chunks_asked": s.n_chunks, "top_k_asked": s.top_k}
    if made_with != asked:
        raise EdgelawError(f"{ref_npz} was made with {made_with}, this job asks {asked}; rerun the quality_reference job")
    (own, kld, same), n_chunks, _, score_s = _score(gguf, s, threads, what, ref)

    prompts = _prompts(s)
    base = pd.read_parquet(ref_answers)
    base_by_id = dict(zip(base["prompt_id"], base["answer"]))
    if prompts and [p.id for p in prompts if p.id not in base_by_id]:
        raise EdgelawError(f"{ref_answers} does not answer every prompt of the set; rerun the quality_reference job")
    answers, answer_s = _answer(gguf, prompts, s, threads, what)
    rows = _answer_rows(model, quant, prompts, answers, s, [base_by_id[p.id] for p in prompts], encoder)
    tables.write(rows, tables.ANSWERS, out_answers, provenance)

    row = _quality_row(model, quant, quant_meta, s, ref, own, kld, same, n_chunks, int(meta["top_k"]), rows, base)
    row.update(score_seconds=score_s, answer_seconds=answer_s)
    tables.write(pd.DataFrame([row]), tables.QUALITY, out_table, provenance)
    sem = f", semantic {row['sem_ref']:.3f} (vs base {row['sem_base']:.3f})" if prompts else ""
    say(f"{what}: {row['bpw']:.2f} BPW, perplexity {row['ppl']:.3f} ± {row['ppl_se']:.3f} (base {row['base_ppl']:.3f}), "
        f"KLD {row['kld_mean']:.4f}, top-1 {row['top1_pct']:.1f}%{sem}")
    return row


def _kept_mean(answers: pd.DataFrame, column: str, kept: str) -> float:
    """The trimmed mean, from the mask of prompts that survived the trimming (set in _answer_rows)."""
    return float(answers.loc[answers[kept], column].mean())


def _quality_row(model, quant, quant_meta, s, ref, own, kld, same, n_chunks, k, answers: pd.DataFrame,
                 base_answers: pd.DataFrame) -> dict:
    ppl, ppl_se = perplexity(own.nll)
    n = len(kld)
    top1 = float(same.mean())
    row = {
        "model": model, "quant": quant, "bpw": quant_meta.get("bpw"), "n_ctx": s.n_ctx, "n_chunks": n_chunks,
        "n_tokens": n, "ppl": ppl, "ppl_se": ppl_se, "base_ppl": perplexity(ref.nll)[0],
        "kld_mean": float(kld.mean()), "kld_mean_se": float(kld.std(ddof=1) / np.sqrt(n)) if n > 1 else 0.0,
        "kld_median": float(np.median(kld)), "kld_p99": float(np.percentile(kld, 99)), "kld_max": float(kld.max()),
        "top1_pct": 100 * top1, "top1_pct_se": 100 * float(np.sqrt(top1 * (1 - top1) / n)), "top_k": k,
        "n_prompts": len(answers), "trim": s.trim,
        "sem_ref": None, "sem_ref_untrimmed": None, "sem_base": None, "sem_base_untrimmed": None,
        "sem_ref_of_base": None, "answer_tokens_mean": None,
    }
    if len(answers):
        row.update(
            sem_ref=_kept_mean(answers, "sim_ref", "kept_ref"), sem_ref_untrimmed=float(answers["sim_ref"].mean()),
            sem_base=_kept_mean(answers, "sim_base", "kept_base"),
            sem_base_untrimmed=float(answers["sim_base"].mean()),
            sem_ref_of_base=_kept_mean(base_answers, "sim_ref", "kept_ref"),
            answer_tokens_mean=float(answers["n_tokens"].mean()),
        )
    return row


def input_files(s: QualitySettings) -> tuple[Path, Path | None]:
    return input_paths(s.eval_text, s.prompts, s.semantic)


def provenance(s: QualitySettings, threads: int, gguf_sha256: str | None, scheme: dict | None = None,
               encoder: Encoder | None = None) -> dict:
    """A quality table's provenance: the settings, the scored GGUF, the input files and the encoder (where
    it came from, the sha256 of its weights and of its GGUF)."""
    from dataclasses import asdict

    from edgelaw.core.provenance import record
    from edgelaw.quality.evalset import checksums

    eval_text, prompts = input_files(s)
    return record({"quality": asdict(s), "scheme": scheme, "threads": threads}, gguf_sha256=gguf_sha256,
                  inputs=checksums(eval_text, prompts), embedder=encoder.provenance() if encoder else None)
