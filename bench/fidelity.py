"""Harness fidelity: the pipeline's worker against llama.cpp's own llama-bench, same GGUF, same threads.

pp512 and tg128 as llama-bench defines them: tokens/s of a 512-token prompt processed in one batch
from an empty cache, and of 128 tokens decoded one at a time from an empty cache. The worker runs
through `edgelaw.measure.controller.measure`, exactly as a bench job does (sampler at the configured rate, idle
baseline, warm-up, events over the pipe); its pp512 is a 512-token prompt's prefill_tps, its tg128
the decode_tps of 128 tokens after a one-token prompt. The two alternate one repetition at a time
(llama-bench -r 1, a one-repetition bench job), so that drift (thermal, a neighbour) hits both alike.

On a shared host a neighbour slows either side at random. Each repetition is checked as a bench job
checks its runs (edgelaw.measure.disturbance): other processes' CPU over llama-bench's run (a sampler
follows its process) or over the worker's run, above the host's idle background; a repetition above
bench.disturbance.max_other_cores is dropped (the worker's is measured again, as in a bench job), and
a round counts only when both sides' repetitions are undisturbed. The ratio is the median over rounds
of worker / llama-bench, with a 95% bootstrap interval.

    .venv/bin/python bench/fidelity.py                     # SmolLM2-135M Q4_K_M and Q8_0, 2 threads, 20 rounds
    .venv/bin/python bench/fidelity.py --gguf my.gguf --threads 4 --rounds 30

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
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = [ROOT / "results/models/smollm2-135m/Q4_K_M.gguf", ROOT / "results/models/smollm2-135m/Q8_0.gguf"]
TESTS = ("pp512", "tg128")
LOG = Path(__file__).resolve().parent / ".cache" / "fidelity.log"  # the worker's progress lines
ROUNDS = LOG.with_name("fidelity-rounds.jsonl")  # every repetition's tokens/s, as measured


def default_ggufs() -> list[Path]:
    missing = [p for p in DEFAULT if not p.is_file()]
    if missing:
        targets = [str(p.relative_to(ROOT)) for p in missing]
        print(f"making {', '.join(targets)} with snakemake", file=sys.stderr)
        snakemake = Path(sys.executable).with_name("snakemake")
        subprocess.run([str(snakemake), "--cores", "2", *targets], cwd=ROOT, check=True)
    return DEFAULT


def llama_bench(binary: Path, gguf: Path, threads: int, test: str, sampler, background: float) -> tuple[float, float]:
    """tokens/s of one repetition of `test` (pp512 or tg128) from llama-bench's JSON, and the share of a
    core other processes took above the host's background while it ran (its own CPU excluded)."""
    from edgelaw.measure.disturbance import window_cpu

    env = {**os.environ, "LD_LIBRARY_PATH": str(binary.parent)}
    shape = ["-p", "512", "-n", "0"] if test == "pp512" else ["-p", "0", "-n", "128"]
    proc = subprocess.Popen([str(binary), "-m", str(gguf), "-t", str(threads), *shape, "-r", "1", "-o", "json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    sampler.attach(proc.pid)
    t0 = time.monotonic() + 2 * sampler.period  # from the first sample that follows it
    out, err = proc.communicate()
    t1 = time.monotonic()
    sampler.attach(None)
    if proc.returncode != 0:
        sys.exit(f"llama-bench failed on {gguf}:\n{err[-2000:]}")
    while sampler.rows[-1][0] <= t1:
        time.sleep(sampler.period)
    frame = sampler.frame(last=int((t1 - t0 + 1) / sampler.period) + 8)
    other = window_cpu(frame, t0, t1)[0] / max(t1 - t0, 1e-9)
    return float(json.loads(out)[0]["avg_ts"]), other - background


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


def worker(gguf: Path, threads: int, test: str, sample_hz: float) -> tuple[float, int]:
    """tokens/s of one undisturbed repetition of `test`, measured by the pipeline's own bench code as a
    default job runs (a disturbed repetition is measured again there), and how many were disturbed."""
    # idle baseline shortened: it only sets the baseline the AUCs subtract, not the speeds compared here
    common = dict(repetitions=1, sample_hz=sample_hz, idle_seconds=0.5)
    # pp512: the prompt's prefill (one token decoded after it, unused); tg128: 128 tokens after a 1-token prompt
    shape = dict(prompt_tokens=[512], n_gen=1) if test == "pp512" else dict(prompt_tokens=[1], n_gen=128)
    runs, _ = measure_tokens(gguf, pipeline_settings(**common, **shape), threads, LOG)
    ok = runs[runs["status"] == "ok"]
    speed = ok["prefill_tps" if test == "pp512" else "decode_tps"]
    return (float(speed.iloc[0]) if len(speed) else float("nan")), int((runs["status"] == "disturbed").sum())


def interval(values: list[float], n_boot: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95% percentile bootstrap interval of the median."""
    import numpy as np

    rng = np.random.default_rng(seed)
    v = np.asarray(values)
    medians = np.median(rng.choice(v, size=(n_boot, len(v)), replace=True), axis=1)
    return float(np.percentile(medians, 2.5)), float(np.percentile(medians, 97.5))


def summary(values: list[float]) -> str:
    """Median and interquartile range: a neighbour's burst on a shared machine moves the mean, not these."""
    q1, _, q3 = statistics.quantiles(values, n=4) if len(values) > 1 else (values[0],) * 3
    return f"{statistics.median(values):7.1f} [{q1:6.1f}-{q3:6.1f}]"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--gguf", action="append", type=Path, help="GGUF to measure (repeat; default SmolLM2 Q4_K_M and Q8_0)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=20, help="rounds: one repetition of each side per test and GGUF")
    ap.add_argument("--sample-hz", type=float, help="the worker's sampler rate (default: the pipeline's)")
    a = ap.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from build_llama_bench import build, installed_version

    from edgelaw.core.devices import resolve
    from edgelaw.core.errors import EdgelawError
    from edgelaw.measure.disturbance import DisturbanceSettings, ProcessCensus, quiet_idle_window
    from edgelaw.measure.sampler import sampling

    settings = pipeline_settings()
    a.sample_hz = a.sample_hz or settings.sample_hz
    limit = DisturbanceSettings.from_config(settings.disturbance)
    binary = build(installed_version())
    ggufs = a.gguf or default_ggufs()
    data = {(g, who, t): [] for g in ggufs for who in ("llama-bench", "worker") for t in TESTS}
    paired = {(g, t): [] for g in ggufs for t in TESTS}  # per round: worker / llama-bench, both undisturbed
    dropped = {"llama-bench": 0, "worker": 0}
    LOG.parent.mkdir(exist_ok=True)
    said: list[str] = []
    ROUNDS.write_text("")
    with sampling(resolve("auto", ROOT), a.sample_hz) as (sampler, source):
        *_, background = quiet_idle_window(sampler, source.kind, 2.0, limit, ProcessCensus(), "fidelity")
        for r in range(a.rounds):
            for g in ggufs:
                for t in TESTS:
                    # alternate who goes first, so that neither always runs on a warmer CPU
                    order = ("llama-bench", "worker") if r % 2 == 0 else ("worker", "llama-bench")
                    got = {}
                    for who in order:
                        if who == "llama-bench":
                            tps, excess = llama_bench(binary, g, a.threads, t, sampler, background)
                            if excess > limit.max_other_cores:
                                dropped[who] += 1
                                tps = float("nan")
                        else:
                            try:
                                tps, disturbed = worker(g, a.threads, t, a.sample_hz)
                            except EdgelawError as e:  # the host never went quiet for its baseline
                                print(f"round {r + 1}: worker not measured ({e}); waiting a minute", file=sys.stderr)
                                time.sleep(60)
                                tps, disturbed = float("nan"), 1
                            dropped[who] += disturbed
                        got[who] = tps
                    kept = all(v == v for v in got.values())
                    if kept:
                        for who, v in got.items():
                            data[(g, who, t)].append(v)
                        paired[(g, t)].append(got["worker"] / got["llama-bench"])
                    with ROUNDS.open("a") as out:  # kept as it goes: a run cut short still has its rounds
                        out.write(json.dumps({"round": r + 1, "gguf": g.name, "test": t, **got, "kept": kept}) + "\n")
                    said.append(f"{t} {got['worker'] / got['llama-bench']:.3f}" if kept else f"{t} dropped")
                print(f"round {r + 1}/{a.rounds} {g.name}: " + ", ".join(said), file=sys.stderr)
                said.clear()
    print(f"\nthreads {a.threads}, {a.rounds} rounds of one repetition each, interleaved; worker sampler at "
          f"{a.sample_hz:g} Hz; disturbed repetitions dropped: llama-bench {dropped['llama-bench']}, worker "
          f"{dropped['worker']} (measured again)\ntokens/s, median [interquartile range] over the kept repetitions; "
          "ratio: median over rounds of worker / llama-bench [95% bootstrap interval], n rounds kept")
    print(f"{'model':<20} {'test':<6} {'llama-bench':>23} {'worker':>23} {'ratio':>24} {'n':>3}")
    for g in ggufs:
        for t in TESTS:
            ref, ours = data[(g, "llama-bench", t)], data[(g, "worker", t)]
            rounds = paired[(g, t)]
            if not rounds:
                print(f"{g.parent.name + '/' + g.stem:<20} {t:<6} no undisturbed round")
                continue
            lo, hi = interval(rounds)
            ratio = f"{statistics.median(rounds):.3f} [{lo:.3f}-{hi:.3f}]"
            print(f"{g.parent.name + '/' + g.stem:<20} {t:<6} {summary(ref):>23} {summary(ours):>23} {ratio:>24} "
                  f"{len(rounds):3d}")


if __name__ == "__main__":
    main()
