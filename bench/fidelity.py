"""Harness fidelity: the pipeline's worker against llama.cpp's own llama-bench, same GGUF, same threads.

pp512 and tg128 as llama-bench defines them: tokens/s of a 512-token prompt processed in one batch
from an empty cache, and of 128 tokens decoded one at a time from an empty cache. The worker runs
through `edgelaw.measure.controller.measure`, exactly as a bench job does (sampler at the configured rate, idle
baseline, warm-up, events over the pipe); its pp512 is a 512-token prompt's prefill_tps, its tg128
the decode_tps of 128 tokens after a one-token prompt. The two alternate, round after round, so that
drift (thermal, a neighbour) hits both alike.

    .venv/bin/python bench/fidelity.py                     # SmolLM2-135M Q4_K_M and Q8_0, 2 threads
    .venv/bin/python bench/fidelity.py --gguf my.gguf --threads 4 --rounds 8

Without --gguf it asks Snakemake for the default config's SmolLM2 GGUFs (made once, then cached).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = [ROOT / "results/models/smollm2-135m/Q4_K_M.gguf", ROOT / "results/models/smollm2-135m/Q8_0.gguf"]
TESTS = ("pp512", "tg128")
LOG = Path(__file__).resolve().parent / ".cache" / "fidelity.log"  # the worker's progress lines


def default_ggufs() -> list[Path]:
    missing = [p for p in DEFAULT if not p.is_file()]
    if missing:
        targets = [str(p.relative_to(ROOT)) for p in missing]
        print(f"making {', '.join(targets)} with snakemake", file=sys.stderr)
        snakemake = Path(sys.executable).with_name("snakemake")
        subprocess.run([str(snakemake), "--cores", "2", *targets], cwd=ROOT, check=True)
    return DEFAULT


def llama_bench(binary: Path, gguf: Path, threads: int, reps: int) -> dict[str, list[float]]:
    """tokens/s of each repetition of pp512 and tg128, from llama-bench's JSON."""
    env = {**os.environ, "LD_LIBRARY_PATH": str(binary.parent)}
    out = subprocess.run([str(binary), "-m", str(gguf), "-t", str(threads), "-p", "512", "-n", "128",
                          "-r", str(reps), "-o", "json"], capture_output=True, text=True, env=env)
    if out.returncode != 0:
        sys.exit(f"llama-bench failed on {gguf}:\n{out.stderr[-2000:]}")
    result = {}
    for test in json.loads(out.stdout):
        name = f"pp{test['n_prompt']}" if test["n_gen"] == 0 else f"tg{test['n_gen']}"
        result[name] = [float(x) for x in test["samples_ts"]]
    return result


def pipeline_settings(**overrides):
    """Settings of a default bench job (the schema's bench defaults), with `overrides`."""
    from edgelaw.core.config import defaults
    from edgelaw.measure.settings import Settings

    return Settings.from_config(defaults("bench", overrides), "tokens")


def measure_tokens(gguf: Path, settings, threads: int, log: Path):
    """One token-sweep bench job through `edgelaw.measure.controller.measure`: the runs table and the trace (its
    progress lines go to `log`)."""
    import pandas as pd

    from edgelaw.measure.controller import measure
    from edgelaw.core.devices import resolve

    meta_file = gguf.with_suffix(".json")
    bpw = json.loads(meta_file.read_text()).get("bpw", float("nan")) if meta_file.is_file() else float("nan")
    with tempfile.TemporaryDirectory() as tmp, open(log, "a") as out, contextlib.redirect_stderr(out):
        runs = measure(device="bench", profile=resolve("auto", ROOT), model=gguf.parent.name, quant=gguf.stem,
                       gguf=str(gguf), quant_meta={"bpw": bpw}, workload="tokens", settings=settings,
                       threads=threads, out_trace=f"{tmp}/trace.parquet", out_runs=f"{tmp}/runs.parquet", provenance={})
        trace = pd.read_parquet(f"{tmp}/trace.parquet")
    return runs, trace


def worker(gguf: Path, threads: int, reps: int, sample_hz: float) -> dict[str, list[float]]:
    """tokens/s of each repetition, measured by the pipeline's own bench code as a default job runs."""
    # idle baseline shortened: it only sets the baseline the AUCs subtract, not the speeds compared here
    common = dict(repetitions=reps, sample_hz=sample_hz, idle_seconds=0.5)
    # pp512: the prompt's prefill (one token decoded after it, unused); tg128: 128 tokens after a 1-token prompt
    sweeps = {"pp512": pipeline_settings(**common, prompt_tokens=[512], n_gen=1),
              "tg128": pipeline_settings(**common, prompt_tokens=[1], n_gen=128)}
    result = {}
    for name, settings in sweeps.items():
        runs, _ = measure_tokens(gguf, settings, threads, LOG)
        ok = runs[runs["status"] == "ok"]
        result[name] = list(ok["prefill_tps" if name.startswith("pp") else "decode_tps"])
    return result


def summary(values: list[float]) -> str:
    """Median and interquartile range: a neighbour's burst on a shared machine moves the mean, not these."""
    q1, _, q3 = statistics.quantiles(values, n=4) if len(values) > 1 else (values[0],) * 3
    return f"{statistics.median(values):7.1f} [{q1:6.1f}-{q3:6.1f}]"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--gguf", action="append", type=Path, help="GGUF to measure (repeat; default SmolLM2 Q4_K_M and Q8_0)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=5, help="alternating rounds (each: llama-bench, then the worker)")
    ap.add_argument("--reps", type=int, default=3, help="repetitions per test within a round")
    ap.add_argument("--sample-hz", type=float, help="the worker's sampler rate (default: the pipeline's)")
    a = ap.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from build_llama_bench import build, installed_version

    a.sample_hz = a.sample_hz or pipeline_settings().sample_hz
    binary = build(installed_version())
    ggufs = a.gguf or default_ggufs()
    data = {(g, who, t): [] for g in ggufs for who in ("llama-bench", "worker") for t in TESTS}
    paired = {(g, t): [] for g in ggufs for t in TESTS}  # per round: worker median / llama-bench median
    for r in range(a.rounds):
        for g in ggufs:
            # alternate who goes first, so that neither always runs on a warmer CPU
            order = ("llama-bench", "worker") if r % 2 == 0 else ("worker", "llama-bench")
            got = {}
            for who in order:
                got[who] = llama_bench(binary, g, a.threads, a.reps) if who == "llama-bench" else worker(g, a.threads, a.reps, a.sample_hz)
                for t in TESTS:
                    data[(g, who, t)] += got[who][t]
            for t in TESTS:
                paired[(g, t)].append(statistics.median(got["worker"][t]) / statistics.median(got["llama-bench"][t]))
            print(f"round {r + 1}/{a.rounds} {g.name}: " + ", ".join(f"{t} {paired[(g, t)][-1]:.3f}" for t in TESTS),
                  file=sys.stderr)
    print(f"\nthreads {a.threads}, {a.rounds} rounds x {a.reps} reps, worker sampler at {a.sample_hz:g} Hz; "
          f"tokens/s, median [interquartile range] over all repetitions;\n"
          f"ratio: median over rounds of (worker / llama-bench) within the round, [lowest-highest round];\n"
          f"best: the fastest repetition of each, compared (a neighbour only ever slows a run down)")
    print(f"{'model':<20} {'test':<6} {'llama-bench':>23} {'worker':>23} {'ratio':>20} {'best':>6}")
    for g in ggufs:
        for t in TESTS:
            ref, ours = data[(g, "llama-bench", t)], data[(g, "worker", t)]
            rounds = paired[(g, t)]
            ratio = f"{statistics.median(rounds):.3f} [{min(rounds):.2f}-{max(rounds):.2f}]"
            print(f"{g.parent.name + '/' + g.stem:<20} {t:<6} {summary(ref):>23} {summary(ours):>23} {ratio:>20} "
                  f"{max(ours) / max(ref):6.3f}")


if __name__ == "__main__":
    main()
