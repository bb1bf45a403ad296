"""The sampler: a thread beside the worker that reads CPU, memory and power at a fixed rate.

It stores raw cumulative counters (CPU seconds of the worker and of the system) with a monotonic
timestamp; rates are derived afterwards (`rates`), so that a late tick loses no CPU time.

The sampler shares the CPU with the run it measures, so a sample must be cheap: on Linux the
counters come straight from /proc through descriptors kept open (a few preads: 24 us per sample on
an idle machine), with psutil's definitions; elsewhere from psutil (open, parse and close each file:
92 us). docs/performance.md has the figures under load.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import threading
import time

import pandas as pd
import psutil

from edgelaw.measure import power
from edgelaw.measure.power import PowerSource

NAN = math.nan


class PsutilCounters:
    """The counters through psutil: any OS psutil supports."""

    def __init__(self):
        self._proc: psutil.Process | None = None

    def attach(self, pid: int | None) -> None:
        self._proc = psutil.Process(pid) if pid else None

    def process(self) -> tuple[float, float]:
        """The attached process's CPU seconds (user + system, all threads) and resident bytes."""
        proc = self._proc
        if proc is None:
            return NAN, NAN
        try:
            with proc.oneshot():
                ct = proc.cpu_times()
                return ct.user + ct.system, proc.memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            return NAN, NAN

    def system(self) -> tuple[float, float, float, int]:
        """Busy, total and stolen CPU seconds of the whole system (summed over its CPUs), and used memory
        (total - available). Busy leaves out idle, iowait and steal (time a hypervisor gave another guest:
        not this host's work); steal is nan where the OS does not report it."""
        c = psutil.cpu_times()
        total = sum(c)
        steal = getattr(c, "steal", NAN)
        idle = c.idle + getattr(c, "iowait", 0.0) + (0.0 if math.isnan(steal) else steal)
        return total - idle, total, steal, psutil.virtual_memory().used

    def close(self) -> None:
        self._proc = None


class ProcfsCounters:
    """The same counters as PsutilCounters, read from Linux's /proc through descriptors kept open.

    Definitions follow psutil: a process's CPU is utime + stime of /proc/<pid>/stat; the system's
    total is the sum of every field of /proc/stat's cpu line, its steal the eighth field, and its busy
    time the total less idle, iowait and steal; used memory is MemTotal - MemAvailable.
    """

    def __init__(self):
        self.tick = os.sysconf("SC_CLK_TCK")
        self.page = os.sysconf("SC_PAGE_SIZE")
        self._stat = os.open("/proc/stat", os.O_RDONLY)
        self._meminfo = os.open("/proc/meminfo", os.O_RDONLY)
        self._proc: int | None = None

    def attach(self, pid: int | None) -> None:
        if self._proc is not None:
            os.close(self._proc)
            self._proc = None
        if pid:
            try:
                self._proc = os.open(f"/proc/{pid}/stat", os.O_RDONLY)
            except FileNotFoundError:
                raise psutil.NoSuchProcess(pid) from None

    def process(self) -> tuple[float, float]:
        fd = self._proc
        if fd is None:
            return NAN, NAN
        try:
            raw = os.pread(fd, 4096, 0)
        except OSError:  # the process has exited
            return NAN, NAN
        if not raw:
            return NAN, NAN
        fields = raw[raw.rindex(b")") + 2:].split()  # the command name may hold spaces and parentheses
        return (int(fields[11]) + int(fields[12])) / self.tick, int(fields[21]) * self.page

    def system(self) -> tuple[float, float, float, int]:
        cpu = os.pread(self._stat, 512, 0).split(b"\n", 1)[0].split()[1:]
        ticks = [int(x) for x in cpu]
        total = sum(ticks) / self.tick
        steal = ticks[7] / self.tick if len(ticks) > 7 else NAN
        busy = total - (ticks[3] + (ticks[4] if len(ticks) > 4 else 0) + (ticks[7] if len(ticks) > 7 else 0)) / self.tick
        total_kb = available_kb = None
        for line in os.pread(self._meminfo, 512, 0).split(b"\n")[:3]:
            if line.startswith(b"MemTotal:"):
                total_kb = int(line.split()[1])
            elif line.startswith(b"MemAvailable:"):
                available_kb = int(line.split()[1])
        if total_kb is None or available_kb is None:  # a kernel before 3.14: psutil estimates it
            return busy, total, steal, psutil.virtual_memory().used
        return busy, total, steal, (total_kb - available_kb) * 1024

    def close(self) -> None:
        self.attach(None)
        for fd in (self._stat, self._meminfo):
            os.close(fd)


def counters():
    return ProcfsCounters() if sys.platform.startswith("linux") and os.path.exists("/proc/stat") else PsutilCounters()


class Sampler:
    def __init__(self, rate_hz: float, power: PowerSource):
        self.period = 1.0 / rate_hz
        self.rate_hz = rate_hz
        self.power = power
        self.rows: list[tuple] = []
        self.counters = counters()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.n_cpus = psutil.cpu_count() or 1

    def attach(self, pid: int | None) -> None:
        """Follow process `pid` (None: system only)."""
        with self._lock:
            self.counters.attach(pid)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="edgelaw-sampler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join()
        self.counters.close()

    def _sample(self) -> None:
        t = time.monotonic()
        t_wall = time.time()
        with self._lock:
            proc_cpu, rss = self.counters.process()
        busy, total, steal, mem_used = self.counters.system()
        last_sys = self.rows[-1][4:6] if self.rows else None
        sys_pct = 0.0
        if last_sys and total > last_sys[1]:
            sys_pct = 100.0 * self.n_cpus * (busy - last_sys[0]) / (total - last_sys[1])
        reading = self.power.read(t_wall, sys_pct)
        # this process's own CPU (the sampler and the controller): not another process's
        self_cpu = time.process_time()
        self.rows.append((t, t_wall, proc_cpu, rss, busy, total, steal, self_cpu, mem_used, reading.power_w,
                          reading.energy_j))

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

    def frame(self, last: int | None = None) -> pd.DataFrame:
        """The samples so far (the `last` ones only, if given) as raw counters."""
        rows = self.rows[-last:] if last else self.rows
        return pd.DataFrame(list(rows), columns=FRAME_COLUMNS)


FRAME_COLUMNS = ["t", "t_wall", "proc_cpu_s", "rss_bytes", "sys_busy_s", "sys_total_s", "sys_steal_s", "self_cpu_s",
                 "mem_sys_used_bytes", "power_w", "energy_j"]


def rates(raw: pd.DataFrame, n_cpus: int) -> pd.DataFrame:
    """Per-sample CPU rates (100 = one core) over the interval that ends at each sample: the worker's,
    the host's, the host's stolen time, and the other processes' (the host's less the worker's and
    this process's own).

    The worker's counter restarts when a crashed worker is replaced: a negative step counts as zero.
    """
    df = raw.copy()
    dt = df["t"].diff()
    d_proc = df["proc_cpu_s"].diff().clip(lower=0)
    df["cpu_proc_pct"] = (100.0 * d_proc / dt).fillna(0.0)
    d_total = df["sys_total_s"].diff()
    share = (100.0 * n_cpus / d_total).where(d_total > 0)
    df["cpu_sys_pct"] = (share * df["sys_busy_s"].diff()).fillna(0.0).clip(lower=0.0)
    df["steal_pct"] = (share * df["sys_steal_s"].diff()).clip(lower=0.0)
    self_pct = (100.0 * df["self_cpu_s"].diff() / dt).fillna(0.0)
    df["cpu_other_pct"] = (df["cpu_sys_pct"] - df["cpu_proc_pct"] - self_pct).clip(lower=0.0)
    df["t_mid"] = df["t"] - dt.fillna(0.0) / 2  # a rate belongs to the middle of its interval
    return df


@contextlib.contextmanager
def sampling(profile: dict, rate_hz: float):
    """The profile's power source and a running sampler; both stopped on exit, whatever happens."""
    source = power.detect(profile, psutil.cpu_count() or 1)
    source.start()
    sampler = Sampler(rate_hz, source)
    sampler.start()
    try:
        yield sampler, source
    finally:
        sampler.stop()
        source.close()
