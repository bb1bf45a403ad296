"""Pipeline overhead: Snakemake with nothing to do, and the default pipeline from scratch, stage by stage.

Three measurements, each in its own working directory under bench/.cache/ (the repo's Snakefile, run
with --directory, as the tests do):

- scratch: the default config (config/config.yaml) from an empty directory, timed whole and per rule
  from Snakemake's own log (one line per job start and finish);
- noop-default: `snakemake --cores 2` again on the finished default run, several times;
- noop-1000: the same on a config of 1,000 measured points (10 synthetic models x 10 schemes x 10
  prompt lengths, one repetition: 100 bench jobs, 100 quantize jobs), brought up to date first.

    .venv/bin/python bench/pipeline_overhead.py              # all three (about 20 minutes the first time)
    .venv/bin/python bench/pipeline_overhead.py --skip-scratch   # no-op timings only (reuses the runs)
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
CACHE = Path(__file__).resolve().parent / ".cache"
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))

SCHEMES = ["F16", "Q8_0", "Q6_K", "Q5_K_M", "Q4_K_M", "Q4_0", "Q3_K_M", "Q2_K", "IQ4_XS", "Q5_0"]


def thousand_points() -> dict:
    """10 models x 10 schemes x 10 prompt lengths x 1 repetition = 1,000 points."""
    models = {
        f"tiny-{i}": {"source": "synthetic", "quality": False,
                      "synthetic": {"arch": "llama", "n_layer": 2, "n_embd": 256, "n_head": 4, "n_head_kv": 2,
                                    "n_ff": 512, "context_length": 2048, "seed": i}}
        for i in range(10)
    }
    return {
        "models": models,
        "schemes": {s: {"ftype": s} for s in SCHEMES},
        "quality": {"enabled": False},
        "bench": {"prompt_tokens": [16 * k for k in range(1, 11)], "n_gen": 8, "repetitions": 1, "warmup": 0,
                  "idle_seconds": 0.5, "settle_seconds": 0},
    }


def snakemake(workdir: Path, configfile: Path, *args: str) -> tuple[float, str]:
    cmd = [SNAKEMAKE, "--snakefile", str(ROOT / "Snakefile"), "--directory", str(workdir),
           "--configfile", str(configfile), "--cores", "2", *args]
    t0 = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if out.returncode != 0:
        sys.exit(f"snakemake failed in {workdir}:\n{out.stderr[-4000:]}")
    return wall, out.stdout + out.stderr


def noop(workdir: Path, configfile: Path, times: int) -> list[float]:
    """Wall seconds of `snakemake --cores 2` with nothing to do (brought up to date first)."""
    wall, text = snakemake(workdir, configfile)
    if "Nothing to be done" not in text:
        print(f"  ({workdir.name} was not up to date: brought it up to date in {wall:.0f} s)", file=sys.stderr)
    walls = []
    for _ in range(times):
        wall, text = snakemake(workdir, configfile)
        if "Nothing to be done" not in text:
            sys.exit(f"snakemake in {workdir} still had work to do:\n{text[-2000:]}")
        walls.append(wall)
    return walls


def job_count(workdir: Path, configfile: Path) -> int:
    """Jobs in the whole DAG (a dry run with --forceall)."""
    _, text = snakemake(workdir, configfile, "--dry-run", "--forceall")
    return int(re.search(r"^total\s+(\d+)$", text, re.M).group(1))


STAMP = re.compile(r"^\[(\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4})\]$")


def stage_times(log: Path) -> tuple[dict[str, list[float]], float]:
    """Per rule, the wall seconds of each job (from its start and finish lines), and the log's span."""
    start, rule, per_rule = {}, {}, collections.defaultdict(list)
    now = first = None
    pending = None
    for line in log.read_text().splitlines():
        if m := STAMP.match(line):
            now = dt.datetime.strptime(m.group(1), "%a %b %d %H:%M:%S %Y")
            first = first or now
        elif m := re.match(r"^(?:local)?rule (\w+):$", line):
            pending = m.group(1)
        elif (m := re.match(r"^\s+jobid: (\d+)$", line)) and pending:
            start[m.group(1)], rule[m.group(1)], pending = now, pending, None
        elif m := re.match(r"^Finished jobid: (\d+)", line):
            per_rule[rule[m.group(1)]].append((now - start[m.group(1)]).total_seconds())
    return per_rule, (now - first).total_seconds() if now and first else float("nan")


def scratch() -> tuple[float, dict[str, list[float]], float]:
    workdir = CACHE / "pipeline-default"
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    print("default pipeline from scratch (about 10 minutes on 2 cores)", file=sys.stderr)
    wall, _ = snakemake(workdir, ROOT / "config" / "config.yaml")
    log = max((workdir / ".snakemake" / "log").glob("*.snakemake.log"))
    per_rule, span = stage_times(log)
    return wall, per_rule, span


def fmt(walls: list[float]) -> str:
    return f"median {statistics.median(walls):5.2f} s (min {min(walls):.2f}, max {max(walls):.2f}, n={len(walls)})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--skip-scratch", action="store_true", help="reuse the last default run instead of a fresh one")
    ap.add_argument("--times", type=int, default=5, help="no-op runs per config")
    a = ap.parse_args()
    CACHE.mkdir(parents=True, exist_ok=True)
    default_dir = CACHE / "pipeline-default"
    if not a.skip_scratch or not default_dir.is_dir():
        wall, per_rule, span = scratch()
        total = sum(sum(v) for v in per_rule.values())
        print(f"\ndefault pipeline from scratch: {wall:.0f} s wall ({wall / 60:.1f} min), "
              f"{sum(len(v) for v in per_rule.values())} jobs; per rule, job wall times from Snakemake's log:")
        print(f"{'rule':<18} {'jobs':>4} {'sum s':>7} {'mean s':>7} {'share':>6}")
        for name, secs in sorted(per_rule.items(), key=lambda kv: -sum(kv[1])):
            print(f"{name:<18} {len(secs):4d} {sum(secs):7.0f} {statistics.mean(secs):7.1f} {sum(secs) / total:6.1%}")
        print(f"{'(jobs in parallel overlap; the log spans ' + format(span, '.0f') + ' s)':<40}")
    big_dir = CACHE / "pipeline-1000"
    big_dir.mkdir(parents=True, exist_ok=True)
    big_cfg = big_dir / "config.yaml"
    big_cfg.write_text(yaml.safe_dump(thousand_points()))
    default_walls = noop(default_dir, ROOT / "config" / "config.yaml", a.times)
    big_walls = noop(big_dir, big_cfg, a.times)
    print("\nsnakemake --cores 2 with nothing to do (wall, including Python start-up):")
    default_jobs, big_jobs = job_count(default_dir, ROOT / "config" / "config.yaml"), job_count(big_dir, big_cfg)
    print(f"  default config ({default_jobs} jobs):          {fmt(default_walls)}   target <= 3 s")
    print(f"  1,000-point config ({big_jobs} jobs):     {fmt(big_walls)}   target <= 10 s")


if __name__ == "__main__":
    main()
