"""Other processes on the host: found in the counters, named, the run re-measured and kept out of the fits."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

from conftest import tiny_config
from edgelaw.core.config import defaults
from edgelaw.measure.disturbance import DisturbanceSettings, ProcessCensus, idle_verdict, window_cpu
from edgelaw.measure.progress import Progress
from edgelaw.measure.sampler import FRAME_COLUMNS, rates
from edgelaw.measure.schedule import again

SETTINGS = DisturbanceSettings.from_config(defaults("bench")["disturbance"])


def frame(busy_rate: float, worker_rate: float | None, self_rate: float = 0.0, steal_rate: float = 0.0,
          seconds: float = 2.0, hz: float = 50.0, cpus: int = 2, power=None) -> pd.DataFrame:
    """Raw sampler counters of a host whose CPUs are busy at constant rates (cores)."""
    t = np.arange(0, seconds + 1e-9, 1 / hz)
    worker = np.full_like(t, np.nan) if worker_rate is None else worker_rate * t
    df = pd.DataFrame({"t": t, "t_wall": t, "proc_cpu_s": worker, "rss_bytes": 1e8, "sys_busy_s": busy_rate * t,
                       "sys_total_s": cpus * t, "sys_steal_s": steal_rate * t, "self_cpu_s": self_rate * t,
                       "mem_sys_used_bytes": 1e9, "power_w": power if power is not None else np.nan,
                       "energy_j": np.nan})
    assert list(df.columns) == FRAME_COLUMNS
    return df


def test_other_processes_cpu_is_the_hosts_less_the_workers_and_our_own():
    df = frame(busy_rate=1.9, worker_rate=1.2, self_rate=0.05, steal_rate=0.1)
    other, steal = window_cpu(df, 0.5, 1.5)
    assert other == pytest.approx((1.9 - 1.2 - 0.05) * 1.0)
    assert steal == pytest.approx(0.1)
    # without a worker (an idle baseline) everything but our own CPU is another process's
    other, _ = window_cpu(frame(busy_rate=0.45, worker_rate=None, self_rate=0.05), 0.0, 2.0)
    assert other == pytest.approx(0.8)


def test_an_idle_baseline_is_refused_for_a_high_level_a_burst_or_unsteady_power():
    quiet = rates(frame(busy_rate=0.05, worker_rate=None), 2)
    assert idle_verdict(quiet, 0.2, 1.8, SETTINGS, "model") is None
    steady = rates(frame(busy_rate=0.25, worker_rate=None), 2)  # a steady background: what a baseline is for
    assert idle_verdict(steady, 0.2, 1.8, SETTINGS, "model") is None
    busy = rates(frame(busy_rate=0.9, worker_rate=None), 2)
    assert "other processes used 0.90 of a core" in idle_verdict(busy, 0.2, 1.8, SETTINGS, "model")
    burst = frame(busy_rate=0.0, worker_rate=None)
    burst.loc[40:45, "sys_busy_s"] = np.linspace(0, 0.18, 6)  # 1.8 cores for 0.1 s: a low mean, a burst
    burst.loc[46:, "sys_busy_s"] = 0.18
    verdict = idle_verdict(rates(burst, 2), 0.0, 2.0, SETTINGS, "model")
    assert verdict and "varied by" in verdict and "idle_max_spread_cores" in verdict
    wobbly = rates(frame(busy_rate=0.0, worker_rate=None, power=10 + 5 * np.sin(np.arange(101))), 2)
    assert "power varied" in idle_verdict(wobbly, 0.0, 2.0, SETTINGS, "rapl")
    assert idle_verdict(wobbly, 0.0, 2.0, SETTINGS, "model") is None  # a model's power is the CPU's


def test_the_busiest_process_is_found_by_pid_and_start_time():
    census = ProcessCensus(exclude={99})
    before = (0.0, {1: ("pip", 10.0, 5.0), 2: ("kworker/0:1-events", 1.0, 3.0), 99: ("worker", 9.0, 0.0)})
    after = (2.0, {1: ("pip", 10.0, 6.6), 2: ("kworker/0:1-mm", 1.0, 3.1), 99: ("worker", 9.0, 4.0),
                   3: ("new", 50.0, 0.4)})
    c = census.busiest(before, after)
    assert (c.pid, c.name, c.cores) == (1, "pip", pytest.approx(0.8))  # a renamed kworker is not a new process
    reused = (2.0, {1: ("other", 11.0, 2.0)})  # the pid came back as another process: all its CPU is new
    assert census.busiest(before, reused).cores == pytest.approx(1.0)
    assert census.busiest(before, before).words().startswith("no single process")


def test_the_blame_goes_to_a_process_only_if_it_took_most_of_it():
    from edgelaw.measure.disturbance import Culprit, blame

    assert blame(Culprit(4242, "pip", 0.8), 0.88) == "pid 4242 (pip)"
    assert blame(Culprit(70, "kdamond.0", 0.01), 0.5) == (
        "processes that have exited, or many small ones; the busiest still running: pid 70 (kdamond.0) at 0.01")
    assert blame(Culprit(None, None, 0.0), 0.5) == "processes that have exited, or many small ones"


def test_a_short_run_is_judged_over_a_longer_window_but_not_before_the_model_loaded():
    from edgelaw.measure.disturbance import other_share

    df = frame(busy_rate=1.0, worker_rate=0.9)  # 0.1 core of other processes throughout
    df.loc[df["t"] < 1.0, "sys_busy_s"] = 1.9 * df["t"]  # and 0.9 more before t = 1 s
    df.loc[df["t"] >= 1.0, "sys_busy_s"] = 1.9 + 1.0 * (df["t"] - 1.0)
    df.loc[df["t"] < 1.0, "proc_cpu_s"] = 0.9 * df["t"]
    assert other_share(df, 1.45, 1.5, 0.5, floor=0.0) == pytest.approx(0.1)  # [1.0, 1.5]
    assert other_share(df, 1.45, 1.5, 0.8, floor=0.0) == pytest.approx((0.3 * 1.0 + 0.5 * 0.1) / 0.8)
    assert other_share(df, 1.45, 1.5, 0.8, floor=1.2) == pytest.approx(0.1)  # not before the load ended


def test_a_short_spell_in_a_long_run_is_caught_by_its_busiest_window():
    from edgelaw.measure.disturbance import other_share, peak_share

    df = frame(busy_rate=1.0, worker_rate=1.0, seconds=10.0)  # nothing else but a full core for 0.6 s at 4 s
    spell = (df["t"] - 4.0).clip(0.0, 0.6)
    df["sys_busy_s"] = df["sys_busy_s"] + spell
    mean = other_share(df, 0.0, 10.0, 0.5, floor=0.0)
    assert mean == pytest.approx(0.06, abs=1e-6)  # below any sensible mean threshold
    assert peak_share(df, 0.0, 10.0, 1.0, floor=0.0) == pytest.approx(0.6, abs=0.02)
    assert peak_share(df, 0.0, 10.0, 2.0, floor=0.0) == pytest.approx(0.3, abs=0.01)
    assert peak_share(df, 0.0, 3.0, 1.0, floor=0.0) == pytest.approx(0.0, abs=1e-9)  # the spell came later
    assert peak_share(df, 3.8, 4.4, 1.0, floor=0.0) == pytest.approx(other_share(df, 3.8, 4.4, 1.0, 0.0))


def test_a_point_measured_again_keeps_its_place_and_says_so():
    point = {"run_id": "x64-r1", "point_id": "x64-r1", "attempt": 0, "x": 64, "rep": 1, "warmup": False}
    second = again(point)
    assert (second["run_id"], second["point_id"], second["attempt"]) == ("x64-r1-a1", "x64-r1", 1)
    assert again(second)["run_id"] == "x64-r1-a2"
    progress = Progress([dict(point, run_id="x16-r1", point_id="x16-r1", x=16), point])
    assert progress.disturbed(point, "0.88 core used by pid 4242 (pip)", True) == (
        "run 2/2 disturbed: 0.88 core used by pid 4242 (pip); waiting for a quiet host, then measuring again")
    assert "attempt 2" in progress.number(second)
    assert "no tries left" in progress.disturbed(second, "x", False)


def hog_config() -> dict:
    """One scheme, six runs of about half a second (a hog of a second overlaps two or three of them)."""
    config = tiny_config(bench={"prompt_tokens": [16, 32, 64], "n_gen": 1536, "repetitions": 2, "idle_seconds": 0.5,
                                "settle_seconds": 0.05, "disturbance": {"quiet_seconds": 0.5}})
    config["schemes"] = {"F16": {"ftype": "F16"}}
    return config


def runs_of(workflow) -> pd.DataFrame:
    return pd.read_parquet(workflow.workdir / "results/auto/runs/tiny/F16/tokens.parquet")


@pytest.mark.slow
def test_a_cpu_hog_beside_a_bench_job_is_flagged_measured_again_and_left_out_of_the_fits(workflow):
    workflow.write_config(hog_config())
    job = workflow.start()
    log = workflow.workdir / "results/logs/auto/bench/tiny/F16/tokens.log"
    hog = None
    try:
        deadline = time.monotonic() + 300
        while not (log.is_file() and "run 2/6" in log.read_text()):
            assert job.poll() is None and time.monotonic() < deadline, job.stdout.read() if job.poll() else "timeout"
            time.sleep(0.02)
        hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        # like a package install: busy until after the controller has looked at the run it overlapped
        while "disturbed:" not in log.read_text():
            assert job.poll() is None and time.monotonic() < deadline, "the hog was never noticed"
            time.sleep(0.05)
    finally:
        if hog:
            hog.kill()
            hog.wait()
    out, _ = job.communicate(timeout=600)
    assert job.returncode == 0, out[-3000:]
    runs = runs_of(workflow)
    disturbed = runs[runs["status"] == "disturbed"]
    assert len(disturbed) >= 1, runs[["run_id", "status", "other_cores", "busiest_name"]].to_string()
    limits = defaults("bench")["disturbance"]
    assert ((disturbed["other_cores"] > limits["max_other_cores"])
            | (disturbed["other_cores_peak"] > limits["max_peak_other_cores"])).all()
    assert disturbed["busiest_pid"].eq(hog.pid).any() and "python" in set(disturbed["busiest_name"])
    text = log.read_text()
    assert f"used by pid {hog.pid} (python" in text and "waiting for a quiet host, then measuring again" in text
    for d in disturbed.itertuples():  # every disturbed point has a later, undisturbed attempt
        again = runs[(runs["x"] == d.x) & (runs["rep"] == d.rep) & (runs["attempt"] > d.attempt)]
        assert (again["status"] == "ok").any(), runs.to_string()
    assert len(runs[runs["status"] == "ok"]) == 6  # every point of the sweep, kept once
    laws = pd.read_parquet(workflow.workdir / "results/auto/laws.parquet")
    used = {rid for rows in laws["rows"] for rid in json.loads(rows)}
    assert used and not used & set(disturbed["run_id"])
    summary = (workflow.workdir / "results/auto/report/summary.md").read_text()
    assert f"{len(disturbed)} disturbed by other processes on the host and measured again" in summary


@pytest.mark.slow
def test_a_bench_job_on_a_quiet_host_flags_nothing(workflow):
    workflow.write_config(hog_config())
    workflow.run()
    runs = runs_of(workflow)
    assert (runs["status"] == "ok").all() and (runs["attempt"] == 0).all(), runs[["run_id", "other_cores"]].to_string()
    assert runs["other_cores"].notna().all() and (runs["other_cores"] >= 0).all()
    assert "disturbed" not in (workflow.workdir / "results/logs/auto/bench/tiny/F16/tokens.log").read_text()
