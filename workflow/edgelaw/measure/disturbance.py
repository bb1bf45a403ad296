"""Other processes on the host during a measurement: found in the samples, named, and waited out.

A laptop or a Pi is never quiet. What other processes took is already in the samples: the host's busy
CPU less the worker's and this process's own (the sampler and the controller), all from cumulative
counters, so a window's CPU is exact however the samples fall. The idle baseline must be quiet (other
processes below `idle_max_other_cores`, without bursts), or it is taken again; what other processes still
used over it is the host's background (a kernel thread, a daemon). A run whose other processes took
more than `max_other_cores` above that background, or more than `max_peak_other_cores` over its busiest
`peak_window_seconds`, is `disturbed`: it stays in the runs table, is left
out of every fit, and the point is measured again once the host is quiet (`retries` times at most). Which process it was comes from psutil: the CPU each process used between two snapshots.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
import psutil

from edgelaw.measure.integrate import counter_delta
from edgelaw.core.config import SectionSettings


@dataclass(frozen=True)
class DisturbanceSettings(SectionSettings):
    """bench.disturbance of the validated config (defaults and their calibration: the schema)."""

    max_other_cores: float
    max_peak_other_cores: float
    peak_window_seconds: float
    min_window_seconds: float
    idle_max_other_cores: float
    idle_max_spread_cores: float
    idle_max_power_spread_w: float
    retries: int
    idle_retries: int
    quiet_seconds: float
    max_wait_seconds: float


def window_cpu(df: pd.DataFrame, t0: float, t1: float) -> tuple[float, float]:
    """(other processes' CPU, stolen CPU) in core-seconds over [t0, t1], from the raw counters of
    `df` (Sampler.frame). The worker's CPU counts only where a worker was attached. Every counter is
    taken at the ticks that read the host's (the worker's is read at each of them too), so the
    interpolation between those ticks is the same for all and cancels in the difference."""
    df = df[df["sys_total_s"].notna()]
    t = df["t"].to_numpy(float)
    busy = counter_delta(t, df["sys_busy_s"], t0, t1)
    own = counter_delta(t, df["self_cpu_s"], t0, t1)
    worker = counter_delta(t, df["proc_cpu_s"], t0, t1) if df["proc_cpu_s"].notna().sum() >= 2 else 0.0
    steal = counter_delta(t, df["sys_steal_s"], t0, t1)
    return max(0.0, busy - own - (0.0 if np.isnan(worker) else worker)), steal


def other_share(df: pd.DataFrame, start: float, end: float, min_window: float, floor: float) -> float:
    """Other processes' CPU over a run, in cores: over [start, end], or over the last `min_window`
    seconds before `end` for a shorter run (the OS counts CPU in 10 ms ticks: over a shorter window
    one tick would read as a fifth of a core), but not before `floor`, the worker's model load ending
    (before its sampler followed it, a starting worker's CPU would count as another process's)."""
    t0 = min(start, max(end - min_window, floor))
    other, _ = window_cpu(df, t0, end)
    return other / (end - t0)


def peak_share(df: pd.DataFrame, start: float, end: float, window: float, floor: float) -> float:
    """Other processes' CPU over the busiest `window` seconds of the run, in cores (windows start every
    tenth of a window; a run no longer than `window` is judged whole, as `other_share` judges it). A
    spell of another process that a long run averages away still starves one of llama.cpp's threads while
    it lasts, and the others spin at the next barrier: the run's cost is off by more than the spell."""
    if end - start <= window:
        return other_share(df, start, end, window, floor)
    starts = np.append(np.arange(start, end - window, window / 10), end - window)
    return max(window_cpu(df, t0, t0 + window)[0] for t0 in starts) / window


@dataclass(frozen=True)
class Culprit:
    """The other process that used the most CPU between two snapshots."""

    pid: int | None
    name: str | None
    cores: float

    def words(self) -> str:
        return (f"pid {self.pid} ({self.name})" if self.pid else
                "no single process (many small ones, one that has exited, or the hypervisor)")


class ProcessCensus:
    """CPU seconds of every process, snapshotted between runs (about 10 ms for 200 processes)."""

    def __init__(self, exclude: set[int] | None = None):
        self.exclude = {psutil.Process().pid} | (exclude or set())

    def snapshot(self) -> tuple[float, dict[int, tuple[str, float, float]]]:
        """(time, {pid: (name, start time, CPU seconds)})."""
        seen = {}
        for p in psutil.process_iter(["pid", "name", "cpu_times", "create_time"]):
            ct = p.info["cpu_times"]
            if ct is not None:
                seen[p.info["pid"]] = (p.info["name"], p.info["create_time"], ct.user + ct.system)
        return time.monotonic(), seen

    def busiest(self, before, after, also_exclude: set[int] = frozenset()) -> Culprit:
        (t0, a), (t1, b) = before, after
        skip = self.exclude | set(also_exclude)
        best, used = None, 0.0
        for pid, (name, started, cpu) in b.items():
            if pid in skip:
                continue
            # a pid seen before is the same process if it started at the same time (names change: kworkers)
            d = cpu - (a[pid][2] if pid in a and a[pid][1] == started else 0.0)
            if d > used:
                best, used = (pid, name), d
        span = max(t1 - t0, 1e-9)
        return Culprit(best[0], best[1], used / span) if best else Culprit(None, None, 0.0)


def blame(culprit: Culprit, excess: float) -> str:
    """Who took `excess` cores: the busiest process, if it accounts for most of it."""
    if culprit.pid and culprit.cores >= excess / 2:
        return culprit.words()
    still = f"; the busiest still running: {culprit.words()} at {culprit.cores:.2f}" if culprit.pid else ""
    return f"processes that have exited, or many small ones{still}"


def idle_verdict(df: pd.DataFrame, t0: float, t1: float, s: DisturbanceSettings, power_source_kind: str) -> str | None:
    """Why the idle window [t0, t1] is not a quiet baseline (None when it is): other processes' mean CPU
    above idle_max_other_cores, their CPU's spread between samples above idle_max_spread_cores, or a
    measured power's spread above idle_max_power_spread_w. A steady background below the level is the
    host's own (kernel work no process accounts for: 0.1-0.25 of a core on this VM) and is what the
    baseline is for. `df` holds the raw counters and rates (sampler.rates)."""
    other, _ = window_cpu(df, t0, t1)
    mean = other / max(t1 - t0, 1e-9)
    inside = df[(df["t"] > t0) & (df["t"] <= t1)]
    spread = float(inside["cpu_other_pct"].std()) / 100.0 if len(inside) > 2 else 0.0
    if mean > s.idle_max_other_cores:
        return (f"other processes used {mean:.2f} of a core "
                f"(bench.disturbance.idle_max_other_cores {s.idle_max_other_cores})")
    if spread > s.idle_max_spread_cores:
        return (f"other processes' CPU varied by {spread:.2f} of a core between samples "
                f"(bench.disturbance.idle_max_spread_cores {s.idle_max_spread_cores})")
    if power_source_kind != "model" and inside["power_w"].notna().sum() > 2:
        watts = float(inside["power_w"].std())
        if watts > s.idle_max_power_spread_w:
            return f"power varied by {watts:.2f} W (bench.disturbance.idle_max_power_spread_w {s.idle_max_power_spread_w})"
    return None


def wait_for_quiet(sampler, s: DisturbanceSettings, limit: float) -> tuple[bool, float]:
    """Wait until other processes have used at most `limit` cores over quiet_seconds, or until
    max_wait_seconds have passed; return (quiet, seconds waited)."""
    start = time.monotonic()
    while True:
        t0 = time.monotonic()
        time.sleep(s.quiet_seconds + 2 * sampler.period)  # samples on both sides of the window
        t1 = time.monotonic() - sampler.period
        recent = sampler.frame(last=int((s.quiet_seconds + 4 * sampler.period) / sampler.period) + 4)
        other, _ = window_cpu(recent, max(t0, t1 - s.quiet_seconds), t1)
        if other / s.quiet_seconds <= limit:
            return True, time.monotonic() - start
        if time.monotonic() - start >= s.max_wait_seconds:
            return False, time.monotonic() - start


def quiet_idle_window(sampler, source_kind: str, seconds: float, s: DisturbanceSettings, census: ProcessCensus,
                      label: str) -> tuple[float, float, float]:
    """An idle window of `seconds` that passes `idle_verdict`: taken again, after waiting for a quiet host,
    up to idle_retries times; a host that never goes quiet stops the job, naming the busiest process.
    Returns the window and the other processes' CPU over it, in cores: the host's background, which a
    run's other processes are judged above."""
    from edgelaw.core.console import say
    from edgelaw.core.errors import EdgelawError
    from edgelaw.measure.sampler import rates

    for attempt in range(s.idle_retries + 1):
        before = census.snapshot()
        t0 = time.monotonic()
        time.sleep(seconds)
        t1 = time.monotonic()
        _wait_for_sample_after(sampler, t1)
        df = rates(sampler.frame(), sampler.n_cpus)
        why = idle_verdict(df, t0, t1, s, source_kind)
        if why is None:
            return t0, t1, window_cpu(df, t0, t1)[0] / (t1 - t0)
        culprit = census.busiest(before, census.snapshot())
        if attempt == s.idle_retries:
            raise EdgelawError(
                f"{label}: the host never went quiet for the idle baseline ({s.idle_retries + 1} tries): {why}; the "
                f"busiest process was {culprit.words()} at {culprit.cores:.2f} of a core. Stop it, or raise the "
                "threshold in bench.disturbance if this host is never quieter")
        say(f"{label}: idle baseline disturbed: {why}; busiest {culprit.words()} at {culprit.cores:.2f} of a core; "
            "waiting for a quiet host, then taking it again")
        wait_for_quiet(sampler, s, s.idle_max_other_cores)
    raise AssertionError("unreachable")


def _wait_for_sample_after(sampler, t: float) -> None:
    """Until the sampler has a sample past `t`, so that a window ending at `t` is bounded by samples."""
    while not sampler.rows or sampler.rows[-1][0] <= t:
        time.sleep(sampler.period / 2)


# What RunJudge records of each run (Timeline.host), under the runs table's column names
HOST_LOOK = ("other_cores", "other_cores_peak", "busiest_pid", "busiest_name", "busiest_cores")


class RunJudge:
    """After each measured point: was the host as quiet over the run as over the idle baseline (other
    processes at most max_other_cores above its `background`)? If not, record why and who, and return
    the point again (after waiting for a quiet host) while tries are left."""

    def __init__(self, sampler, s: DisturbanceSettings, census: ProcessCensus, timeline, progress, label: str,
                 background: float):
        self.sampler, self.s, self.census, self.timeline, self.progress, self.label = (
            sampler, s, census, timeline, progress, label)
        self.background = background
        self.before = census.snapshot()

    def __call__(self, point: dict, worker_pid: int) -> dict | None:
        from edgelaw.core.console import say
        from edgelaw.measure.schedule import again

        run = self.timeline.runs[point["run_id"]]
        _wait_for_sample_after(self.sampler, run.end)
        span = max(run.end - run.start, self.s.min_window_seconds)
        recent = self.sampler.frame(last=int((span + 1.0) / self.sampler.period) + 8)
        floor = self.timeline.loads[-1].end
        share = other_share(recent, run.start, run.end, self.s.min_window_seconds, floor)
        peak_raw = peak_share(recent, run.start, run.end, self.s.peak_window_seconds, floor)
        excess, peak = share - self.background, peak_raw - self.background
        after = self.census.snapshot()
        culprit = self.census.busiest(self.before, after, {worker_pid})
        self.before = after
        why = None
        if excess > self.s.max_other_cores:
            why = f"{excess:.2f} core used by {blame(culprit, excess)}"
        elif peak > self.s.max_peak_other_cores:
            why = (f"{peak:.2f} core used over its busiest {self.s.peak_window_seconds:g} s by "
                   f"{blame(culprit, excess)}")
        look = dict(zip(HOST_LOOK, (share, peak_raw, culprit.pid, culprit.name, culprit.cores)))
        self.timeline.judge(point["run_id"], look, why)
        if why is None:
            return None
        retrying = point["attempt"] < self.s.retries
        say(f"{self.label}: {self.progress.disturbed(point, why, retrying)}")
        if not retrying:
            return None
        quiet, waited = wait_for_quiet(self.sampler, self.s, self.background + self.s.max_other_cores)
        if not quiet:
            say(f"{self.label}: the host was still busy after {waited:.0f} s (bench.disturbance.max_wait_seconds); "
                "measuring again anyway")
        self.before = self.census.snapshot()
        return again(point)
