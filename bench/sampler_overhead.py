"""Sampler overhead and accuracy at 20, 50, 100 and 200 Hz.

At each rate, one bench job's worth of work runs through the pipeline's own `edgelaw.measure.controller.measure`
(SmolLM2-135M Q4_K_M, 2 threads, about 30 s: idle baseline, a warm-up, then repetitions of a token
sweep) with the sampler at that rate. Printed per rate:

- the sampler thread's CPU time over its life (the thread's own clock), as % of one core;
- the rate it achieved against the rate asked;
- AUC agreement: for every run, the CPU core-seconds integrated from the samples (cpu_core_s)
  against the OS counter the worker reads at the run's start and end (cpu_core_s_counter).

    .venv/bin/python bench/sampler_overhead.py [--rates 20 50 100 200] [--reps 8]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from fidelity import default_ggufs, measure_tokens, pipeline_settings  # noqa: E402

LOG = HERE / ".cache" / "sampler_overhead.log"


def run_at(rate: float, gguf: Path, reps: int, threads: int) -> dict:
    from edgelaw.measure import sampler

    class TimedSampler(sampler.Sampler):
        """The pipeline's sampler, timing its own thread."""

        last = None

        def _loop(self) -> None:
            TimedSampler.last = self
            t0, c0 = time.monotonic(), time.thread_time()
            super()._loop()
            self.cpu_s, self.wall_s = time.thread_time() - c0, time.monotonic() - t0

    settings = pipeline_settings(repetitions=reps, sample_hz=rate, prompt_tokens=[32, 128, 512])
    original, sampler.Sampler = sampler.Sampler, TimedSampler  # what sampler.sampling starts
    try:
        runs, trace = measure_tokens(gguf, settings, threads, LOG)
    finally:
        sampler.Sampler = original
    s = TimedSampler.last
    ok = runs[runs["status"] == "ok"]
    err = (ok["cpu_core_s"] - ok["cpu_core_s_counter"]).abs() / ok["cpu_core_s_counter"]
    n = len(trace)
    return {
        "asked": rate,
        "achieved": (n - 1) / (trace["t_s"].iloc[-1] - trace["t_s"].iloc[0]),
        "wall_s": s.wall_s,
        "cpu_s": s.cpu_s,
        "pct_core": 100 * s.cpu_s / s.wall_s,
        "us_per_sample": 1e6 * s.cpu_s / n,
        "runs": len(ok),
        "err_median": float(err.median()),
        "err_max": float(err.max()),
        "sum_ratio": float(ok["cpu_core_s"].sum() / ok["cpu_core_s_counter"].sum()),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rates", type=float, nargs="+", default=[20, 50, 100, 200])
    ap.add_argument("--reps", type=int, default=8, help="sweeps of 32/128/512-token prompts (8: about 30 s)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--gguf", type=Path, help="default: the default config's SmolLM2-135M Q4_K_M")
    a = ap.parse_args()
    gguf = a.gguf or default_ggufs()[0]
    rows = []
    for rate in a.rates:
        rows.append(run_at(rate, gguf, a.reps, a.threads))
        print(f"{rate:g} Hz done", file=sys.stderr)
    print(f"\n{gguf.parent.name}/{gguf.stem}, {a.threads} threads; sampler CPU is the sampler thread's own clock")
    print(f"{'asked Hz':>8} {'achieved':>9} {'run s':>6} {'sampler CPU s':>13} {'% of 1 core':>11} {'us/sample':>9} "
          f"{'runs':>4} {'AUC err median':>14} {'AUC err max':>11} {'sum AUC/OS':>10}")
    for r in rows:
        print(f"{r['asked']:8g} {r['achieved']:9.1f} {r['wall_s']:6.1f} {r['cpu_s']:13.3f} {r['pct_core']:11.2f} "
              f"{r['us_per_sample']:9.0f} {r['runs']:4d} {100 * r['err_median']:13.2f}% {100 * r['err_max']:10.2f}% "
              f"{r['sum_ratio']:10.4f}")


if __name__ == "__main__":
    main()
