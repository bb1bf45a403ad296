"""How much a quiet host's cost-per-token slope moves from one bench job to the next (an A/A test), and
whether a rest between runs changes it: six quiet F16 token-sweep jobs of one repetition each, with
0.1 s and 2 s between runs in the order ABBAAB. Prints each job's slope and each group's fitted law.

    .venv/bin/python bench/host_drift.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "workflow"))
sys.path.insert(0, str(ROOT / "bench"))
LOG = ROOT / "bench" / ".cache" / "host_drift.log"
RESTS = [0.1, 2.0, 2.0, 0.1, 0.1, 2.0]


def main() -> None:
    from disturbance import job, make, token_law

    make(["results/models/smollm2-135m/F16.gguf"])
    parts: dict[float, list] = {rest: [] for rest in RESTS}
    LOG.parent.mkdir(exist_ok=True)
    with open(LOG, "a") as log:
        for k, rest in enumerate(RESTS):
            runs = job("smollm2-135m", "F16", "tokens", log, repetitions=1, settle_seconds=rest)
            parts[rest].append(runs.assign(rep=len(parts[rest])))
            ok = runs[runs["status"] == "ok"]
            print(f"job {k + 1}: rest {rest:g} s, slope {np.polyfit(ok['x'], ok['cpu_core_s'], 1)[0]:.3e} core-s/token, "
                  f"median decode {ok['decode_tps'].median():.1f} tok/s", flush=True)
    for rest, p in parts.items():
        law = token_law(pd.concat(p, ignore_index=True))
        print(f"rest {rest:g} s, 3 jobs: slope {law['slope']:.3e} [{law['ci'][0]:.3e}, {law['ci'][1]:.3e}], R² {law['r2']:.4f}")


if __name__ == "__main__":
    main()
