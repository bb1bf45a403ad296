"""Sampler overhead and accuracy at 20, 50, 100 and 200 Hz.

At each rate, one bench job's worth of work runs through the pipeline's own `edgelaw.measure.controller.measure`
(SmolLM2-135M Q4_K_M, 2 threads, about 30 s: idle baseline, a warm-up, then repetitions of a token
sweep) with the sampler at that rate. Printed per rate:

- the sampler's CPU time over its life (its threads' own clocks: the Python thread's, plus the native
  ticker thread's where it runs), as % of one core; `--python` makes the Python thread do every tick
  (the sampler without a C compiler), to compare;
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


def run_at(rate: float, gguf: Path, reps: int, threads: int, native: bool = True) -> dict:
    from edgelaw.measure import sampler

    class TimedSampler(sampler.Sampler):
        """The pipeline's sampler, timing its own threads."""

        last = None

        def __init__(self, rate_hz, power, **kw):
            super().__init__(rate_hz, power, native=native, **kw)

        def _loop(self) -> None:
            TimedSampler.last = self
            t0, c0 = time.monotonic(), time.thread_time()
            super()._loop()
            self.cpu_s, self.wall_s = time.thread_time() - c0, time.monotonic() - t0

        def stop(self) -> None:
            self._stopping = True
            self._thread.join()
            self.cpu_s += self.native_cpu_s or 0.0  # the native thread's whole life: started with the Python one
            super().stop()

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
        "ticks": s.ticks_in.split(" ")[0],
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
    ap.add_argument("--python", action="store_true", help="also each rate with the Python thread doing every tick")
    a = ap.parse_args()
    gguf = a.gguf or default_ggufs()[0]
    rows = []
    for rate in a.rates:
        for native in (True, False) if a.python else (True,):
            rows.append(run_at(rate, gguf, a.reps, a.threads, native))
            print(f"{rate:g} Hz ({rows[-1]['ticks']}) done", file=sys.stderr)
    print(f"\n{gguf.parent.name}/{gguf.stem}, {a.threads} threads; sampler CPU is its threads' own clocks")
    print(f"{'ticks':>7} {'asked Hz':>8} {'achieved':>9} {'run s':>6} {'sampler CPU s':>13} {'% of 1 core':>11} {'us/sample':>9} "
          f"{'runs':>4} {'AUC err median':>14} {'AUC err max':>11} {'sum AUC/OS':>10}")
    for r in rows:
        print(f"{r['ticks']:>7} {r['asked']:8g} {r['achieved']:9.1f} {r['wall_s']:6.1f} {r['cpu_s']:13.3f} {r['pct_core']:11.2f} "
              f"{r['us_per_sample']:9.0f} {r['runs']:4d} {100 * r['err_median']:13.2f}% {100 * r['err_max']:10.2f}% "
              f"{r['sum_ratio']:10.4f}")


if __name__ == "__main__":
    main()
