"""The sampler: a thread beside the worker that reads CPU, memory and power at a fixed rate.

It stores raw cumulative counters (CPU seconds of the worker and of the system) with a monotonic
timestamp; rates are derived afterwards (`to_frame`), so that a late tick loses no CPU time.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pandas as pd
import psutil

from .power import PowerSource


def _sys_busy_total() -> tuple[float, float]:
    c = psutil.cpu_times()
    idle = c.idle + getattr(c, "iowait", 0.0)
    total = sum(c)
    return total - idle, total


class Sampler:
    def __init__(self, rate_hz: float, power: PowerSource):
        self.period = 1.0 / rate_hz
        self.rate_hz = rate_hz
        self.power = power
        self.rows: list[tuple] = []
        self._proc: psutil.Process | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.n_cpus = psutil.cpu_count() or 1

    def attach(self, pid: int | None) -> None:
        """Follow process `pid` (None: system only)."""
        with self._lock:
            self._proc = psutil.Process(pid) if pid else None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="edgelaw-sampler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join()

    def _sample(self) -> None:
        t = time.monotonic()
        t_wall = time.time()
        proc_cpu = rss = np.nan
        with self._lock:
            proc = self._proc
        if proc is not None:
            try:
                with proc.oneshot():
                    ct = proc.cpu_times()
                    proc_cpu = ct.user + ct.system
                    rss = proc.memory_info().rss
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                pass
        busy, total = _sys_busy_total()
        mem_used = psutil.virtual_memory().used
        last_sys = self.rows[-1][4:6] if self.rows else None
        sys_pct = 0.0
        if last_sys and total > last_sys[1]:
            sys_pct = 100.0 * self.n_cpus * (busy - last_sys[0]) / (total - last_sys[1])
        reading = self.power.read(t_wall, sys_pct)
        self.rows.append((t, t_wall, proc_cpu, rss, busy, total, mem_used, reading.power_w, reading.energy_j))

    def _loop(self) -> None:
        next_t = time.monotonic()
        while not self._stop.is_set():
            self._sample()
            next_t += self.period
            delay = next_t - time.monotonic()
            if delay < 0:  # fell behind: skip missed ticks instead of bursting
                next_t = time.monotonic()
                delay = 0
            self._stop.wait(delay)

    def frame(self) -> pd.DataFrame:
        cols = ["t", "t_wall", "proc_cpu_s", "rss_bytes", "sys_busy_s", "sys_total_s", "mem_sys_used_bytes", "power_w", "energy_j"]
        return pd.DataFrame(self.rows, columns=cols)


def rates(raw: pd.DataFrame, n_cpus: int) -> pd.DataFrame:
    """Per-sample CPU rates (100 = one core) over the interval that ends at each sample.

    The worker's counter restarts when a crashed worker is replaced: a negative step counts as zero.
    """
    df = raw.copy()
    dt = df["t"].diff()
    d_proc = df["proc_cpu_s"].diff().clip(lower=0)
    df["cpu_proc_pct"] = (100.0 * d_proc / dt).fillna(0.0)
    d_total = df["sys_total_s"].diff()
    df["cpu_sys_pct"] = (100.0 * n_cpus * df["sys_busy_s"].diff() / d_total).where(d_total > 0).fillna(0.0).clip(lower=0.0)
    df["t_mid"] = df["t"] - dt.fillna(0.0) / 2  # a rate belongs to the middle of its interval
    return df
