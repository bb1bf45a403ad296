"""The arithmetic of a bench job: from the sampled trace and the worker's timeline to the runs table.

Pure functions (no processes, no files), so that every number of the runs table can be checked on a
constructed trace whose integrals are known exactly (tests/test_accounting.py).

Conventions: a rate sample (CPU %) belongs to the middle of the interval it was measured over (t_mid),
a level sample (memory, power, an energy counter) to its time t; areas are trapezoids between
samples, interpolated at the window's ends (edgelaw.measure.integrate).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from edgelaw.measure.disturbance import HOST_LOOK, window_cpu
from edgelaw.measure.integrate import counter_delta, integral
from edgelaw.measure.timeline import Run, Timeline


def idle_baseline(df: pd.DataFrame, t0: float, t1: float, counter: bool) -> dict:
    """System CPU, memory and power over the idle window [t0, t1], before any worker runs.

    With an energy counter the idle power is the counter's increase over the window; otherwise the mean
    of the power samples in it. The first sample's CPU rate is left out: it covers time before the window.
    """
    w = df[(df["t"] >= t0) & (df["t"] <= t1)]
    if counter:
        energy = counter_delta(df["t"], df["energy_j"], t0, t1)
        idle_power = energy / (t1 - t0) if t1 > t0 else float("nan")
    else:
        idle_power = float(w["power_w"].mean()) if w["power_w"].notna().any() else float("nan")
    return {
        "seconds": t1 - t0,
        "cpu_sys_pct": float(w["cpu_sys_pct"].iloc[1:].mean()) if len(w) > 1 else float("nan"),
        "mem_sys_used_bytes": int(w["mem_sys_used_bytes"].mean()) if len(w) else 0,
        "power_w": idle_power,
        "n_samples": len(w),
    }


def label_phases(df: pd.DataFrame, timeline: Timeline) -> pd.DataFrame:
    """Give every sample its run_id and phase: load [load_start, load_end or fatal], prefill
    [start, first_token), decode [first_token, end]; every other sample is idle."""
    df = df.copy()
    df["phase"] = "idle"
    df["run_id"] = ""
    t = df["t"]
    for w in timeline.loads:
        df.loc[(t >= w.start) & (t <= w.end), ["phase", "run_id"]] = ["load", "load"]
    for run_id, run in timeline.runs.items():
        if run.start is not None and run.first_token is not None:
            df.loc[(t >= run.start) & (t < run.first_token), ["phase", "run_id"]] = ["prefill", run_id]
        if run.first_token is not None and run.end is not None:
            df.loc[(t >= run.first_token) & (t <= run.end), ["phase", "run_id"]] = ["decode", run_id]
    return df


def idle_worker_pct(df: pd.DataFrame) -> float:
    """The worker's own CPU % while attached but between runs (loading aside): its overhead at rest,
    which every run's worker CPU is counted above. 0 without such samples."""
    idle = df.loc[(df["phase"] == "idle") & df["proc_cpu_s"].notna(), "cpu_proc_pct"]
    return float(idle.median()) if len(idle) else 0.0


def energy_between(t, energy_j, power_w, counter: bool, t0: float, t1: float) -> float:
    """Joules over [t0, t1]: the counter's increase, or the integral of the power samples (nan without any)."""
    if counter:
        return counter_delta(t, energy_j, t0, t1)
    power_w = np.asarray(power_w, float)
    return integral(t, power_w, t0, t1) if (~np.isnan(power_w)).any() else float("nan")


@dataclass(frozen=True)
class Curves:
    """The trace as arrays, idle levels subtracted: the curves every run's areas are taken under."""

    t: np.ndarray
    t_mid: np.ndarray
    worker_cores: np.ndarray  # the worker's CPU above its idle level, in cores (at t_mid)
    system_cores: np.ndarray  # the system's CPU above the idle baseline, in cores (at t_mid)
    rss: np.ndarray  # the worker's resident bytes, 0 while no worker is attached
    mem_sys: np.ndarray  # the system's used memory above the idle baseline, bytes
    energy_j: np.ndarray
    power_w: np.ndarray
    counter: bool
    idle_worker_pct: float

    @classmethod
    def from_trace(cls, df: pd.DataFrame, idle: dict, counter: bool) -> "Curves":
        """From a labelled trace (label_phases) and the idle baseline (idle_baseline)."""
        idle_pct = idle_worker_pct(df)
        return cls(
            t=df["t"].to_numpy(), t_mid=df["t_mid"].to_numpy(),
            worker_cores=(df["cpu_proc_pct"] - idle_pct).to_numpy() / 100.0,
            system_cores=(df["cpu_sys_pct"] - idle["cpu_sys_pct"]).to_numpy() / 100.0,
            rss=df["rss_bytes"].fillna(0).to_numpy(float),
            mem_sys=(df["mem_sys_used_bytes"] - idle["mem_sys_used_bytes"]).to_numpy(float),
            energy_j=df["energy_j"].to_numpy(float), power_w=df["power_w"].to_numpy(float),
            counter=counter, idle_worker_pct=idle_pct,
        )

    def energy(self, t0: float, t1: float) -> float:
        return energy_between(self.t, self.energy_j, self.power_w, self.counter, t0, t1)


def cpu_core_s_counter(run: Run, idle_worker_pct: float) -> float:
    """The run's worker CPU from the OS counter the worker read at start and end, above its idle level:
    the check on the sampled cpu_core_s."""
    return (run.cpu_end - run.cpu_start) - idle_worker_pct / 100.0 * (run.end - run.start)


def run_measures(c: Curves, run: Run, n_prompt_tokens: int, n_gen: int, idle_power_w: float, origin: float) -> dict:
    """The numbers of one completed run: times, speeds, areas above idle, energy, peak memory."""
    t0, t1, t2 = run.start, run.first_token, run.end
    win = (c.t >= t0) & (c.t <= t2)
    dur = t2 - t0
    en = c.energy(t0, t2)
    return dict(
        t_start=t0 - origin, t_first_token=t1 - origin, t_end=t2 - origin,
        ttft_s=t1 - t0, prefill_tps=n_prompt_tokens / (t1 - t0), decode_tps=n_gen / (t2 - t1),
        cpu_core_s=integral(c.t_mid, c.worker_cores, t0, t2),
        cpu_core_s_prefill=integral(c.t_mid, c.worker_cores, t0, t1),
        cpu_core_s_decode=integral(c.t_mid, c.worker_cores, t1, t2),
        cpu_core_s_counter=cpu_core_s_counter(run, c.idle_worker_pct),
        cpu_sys_core_s=integral(c.t_mid, c.system_cores, t0, t2),
        mem_gb_s=integral(c.t, c.rss, t0, t2) / 1e9,
        mem_sys_gb_s=integral(c.t, c.mem_sys, t0, t2) / 1e9,
        # no sample inside a very short run: the memory at its end, interpolated
        peak_rss_bytes=int(c.rss[win].max()) if win.any() else int(np.interp(t2, c.t, c.rss)),
        energy_j=en, energy_dyn_j=en - idle_power_w * dur,
        energy_prefill_j=c.energy(t0, t1), energy_decode_j=c.energy(t1, t2),
        sample_hz=(win.sum() / dur) if dur > 0 else np.nan, n_samples=int(win.sum()),
    )


def host_measures(df: pd.DataFrame, run: Run, look: dict | None) -> dict:
    """What else the host did during a timed run: other processes' and stolen CPU over the run, and
    `look`, what the disturbance check saw and judged by (RunJudge: the shares of a core over the run and
    over its busiest window, the busiest other process), taken as it was, not worked out again."""
    other, steal = window_cpu(df, run.start, run.end)
    look = look or {}
    return dict(other_core_s=other, steal_core_s=steal, **{k: look.get(k) for k in HOST_LOOK})


def run_status(point: dict, run: Run | None, timeline: Timeline) -> tuple[str, str | None]:
    """ok; disturbed (complete, but other processes took too much of the host: measured again); or why
    the point has no numbers: crashed (its worker died), error (the point failed), not_run."""
    rid = point["run_id"]
    run = run or Run()
    complete = run.timed and run.error is None and ("w" not in point or run.image is not None)
    if complete:
        return ("disturbed", timeline.disturbed[rid]) if rid in timeline.disturbed else ("ok", None)
    status = "crashed" if rid in timeline.crashed else "error" if run.error is not None else "not_run"
    return status, timeline.crashed.get(rid) or run.error or timeline.fatal or "not reached"


def image_row(point: dict, info: dict | None, geometry: dict) -> dict:
    """A resolution run's image: nominal size, size after the model's preprocessing, tokens, clamp."""
    side = geometry["token_side"]
    row = {"image_series": point["series"], "nominal_w": point["w"], "nominal_h": point["h"],
           "image_max_tokens": geometry["clamp_tokens"],
           "clamp_pixels": geometry["clamp_tokens"] * side * side if geometry["clamp_tokens"] else None}
    if info:
        row.update(effective_w=info["grid_x"] * side, effective_h=info["grid_y"] * side,
                   effective_pixels=info["grid_x"] * info["grid_y"] * side * side, image_tokens=info["image_tokens"],
                   n_prompt_tokens=info["n_prompt_tokens"], encode_s=info["encode_s"])
    return row


def run_rows(df: pd.DataFrame, timeline: Timeline, points: list[dict], idle: dict, counter: bool, origin: float,
             common: dict, geometry: dict | None = None) -> list[dict]:
    """One row per measured point and attempt (warm-ups are not recorded): `common`, the point, its
    status and, if it completed, its numbers. `df` is the labelled trace; times are reported from `origin`."""
    curves = Curves.from_trace(df, idle, counter)
    load_s = timeline.load_seconds
    rows = []
    for p in points:
        if p["warmup"]:
            continue
        run = timeline.runs.get(p["run_id"])
        row = {**common, "run_id": p["run_id"], "attempt": p["attempt"], "x": p["x"], "n_gen": p["n_gen"], "rep": p["rep"],
               "load_s": load_s[0] if load_s else np.nan, "idle_cpu_sys_pct": idle["cpu_sys_pct"],
               "idle_mem_sys_used_bytes": idle["mem_sys_used_bytes"], "idle_power_w": idle["power_w"]}
        if "w" in p:
            row.update(image_row(p, run.image if run else None, geometry))
        else:
            row["n_prompt_tokens"] = p["x"]
        status, error = run_status(p, run, timeline)
        row.update(status=status, error=error)
        if status in ("ok", "disturbed"):
            row.update(run_measures(curves, run, row["n_prompt_tokens"], p["n_gen"], idle["power_w"], origin))
            row.update(host_measures(df, run, timeline.host.get(p["run_id"])))
        rows.append(row)
    return rows
