"""The sampler: a thread beside the worker that reads CPU, memory and power at a fixed rate.

It stores raw cumulative counters (CPU seconds of the worker and of the system) with a monotonic
timestamp; rates are derived afterwards (`rates`), so that a late tick loses no CPU time.

The sampler shares the CPU with the run it measures, so a tick must be cheap: on Linux the counters
come straight from /proc through descriptors kept open, with psutil's definitions (elsewhere from
psutil); a tick reads the worker's counter and keeps the bytes, every HOST_EVERY-th tick the host's
too, and parsing waits for frame(). Under a busy worker the wake-up itself is most of a tick's cost
(docs/performance.md, the sampler).
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import threading
import time

import numpy as np
import pandas as pd
import psutil

from edgelaw.measure import power, ticker
from edgelaw.measure.power import PowerSource, Reading

NAN = math.nan
NO_READING = Reading(None, None)


class PsutilCounters:
    """The counters through psutil: any OS psutil supports."""

    def __init__(self):
        self._proc: psutil.Process | None = None

    def attach(self, pid: int | None) -> None:
        self._proc = psutil.Process(pid) if pid else None

    def process_raw(self) -> tuple[float, float]:
        return self.process()

    def parse_process(self, raw: tuple[float, float]) -> tuple[float, float]:
        return raw

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

    def system_raw(self) -> tuple[float, float, float, int]:
        return self.system()

    def parse_system(self, raw: tuple[float, float, float, int]) -> tuple[float, float, float, int]:
        return raw

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
        self._retired: list[int] = []

    def attach(self, pid: int | None) -> int | None:
        """Follow `pid`; returns its descriptor. Safe beside a sampler thread without a lock: the
        descriptor is swapped in one assignment, and the one it replaces stays open until the next
        attach, so a read in flight never lands on a closed or reused descriptor."""
        fd = None
        if pid:
            try:
                fd = os.open(f"/proc/{pid}/stat", os.O_RDONLY)
            except FileNotFoundError:
                raise psutil.NoSuchProcess(pid) from None
        old, self._proc = self._proc, fd
        for stale in self._retired:
            os.close(stale)
        self._retired = [old] if old is not None else []
        return fd

    def process_raw(self) -> bytes | None:
        """The attached process's /proc/<pid>/stat as read, parsed later (parse_process): reading is
        what must happen at the tick, parsing can wait."""
        fd = self._proc
        if fd is None:
            return None
        try:
            return os.pread(fd, 4096, 0) or None
        except OSError:  # the process has exited
            return None

    def parse_process(self, raw: bytes | tuple[int, int] | None) -> tuple[float, float]:
        if raw is None:
            return NAN, NAN
        if isinstance(raw, tuple):  # the native ticker's (CPU ticks, resident pages), -1 for none
            ticks, pages = raw
            return (ticks / self.tick, pages * self.page) if ticks >= 0 else (NAN, NAN)
        fields = raw[raw.rindex(b")") + 2:].split()  # the command name may hold spaces and parentheses
        return (int(fields[11]) + int(fields[12])) / self.tick, int(fields[21]) * self.page

    def process(self) -> tuple[float, float]:
        return self.parse_process(self.process_raw())

    def system_raw(self) -> tuple[bytes, bytes]:
        return os.pread(self._stat, 512, 0), os.pread(self._meminfo, 512, 0)

    def system(self) -> tuple[float, float, float, int]:
        return self.parse_system(self.system_raw())

    def parse_system(self, raw: tuple[bytes, bytes]) -> tuple[float, float, float, int]:
        stat, meminfo = raw
        cpu = stat.split(b"\n", 1)[0].split()[1:]
        return self.host_counters([int(x) for x in cpu], *_meminfo_kb(meminfo))

    def host_counters(self, ticks: list[int], total_kb: int | None, available_kb: int | None):
        """Busy, total and stolen CPU seconds and used memory from /proc/stat's cpu ticks and /proc/meminfo."""
        total = sum(ticks) / self.tick
        steal = ticks[7] / self.tick if len(ticks) > 7 else NAN
        busy = total - (ticks[3] + (ticks[4] if len(ticks) > 4 else 0) + (ticks[7] if len(ticks) > 7 else 0)) / self.tick
        if total_kb is None or available_kb is None:  # a kernel before 3.14: psutil estimates it
            return busy, total, steal, psutil.virtual_memory().used
        return busy, total, steal, (total_kb - available_kb) * 1024

    def close(self) -> None:
        self.attach(None)
        for fd in (*self._retired, self._stat, self._meminfo):
            os.close(fd)
        self._retired = []


def _meminfo_kb(meminfo: bytes) -> tuple[int | None, int | None]:
    total_kb = available_kb = None
    for line in meminfo.split(b"\n")[:3]:
        if line.startswith(b"MemTotal:"):
            total_kb = int(line.split()[1])
        elif line.startswith(b"MemAvailable:"):
            available_kb = int(line.split()[1])
    return total_kb, available_kb


def counters():
    return ProcfsCounters() if sys.platform.startswith("linux") and os.path.exists("/proc/stat") else PsutilCounters()


# The host's counters (/proc/stat, /proc/meminfo, the power source, this process's own CPU) are read at
# every HOST_EVERY-th tick only: they cost twice what the worker's counter does, and what reads them
# (the host's CPU and power above idle, other processes' share over a run of 0.5 s or more) needs
# their cumulative values at a few Hz, not their every tick (docs/performance.md, the sampler).
HOST_EVERY = 5


class Sampler:
    """Samples at `rate_hz`. `rows` holds one tuple per tick, as read: (t, the worker's counter as read,
    host) where host is None on a tick without the host's counters, else (t_wall, the host's counters as
    read, self_cpu, power_w, energy_j). Reading is what must happen at the tick; `frame` parses.

    On Linux with a C compiler the ticks come from a native thread (edgelaw.measure.ticker), whose
    wake-up costs a third of a Python thread's; the Python thread then only drains them (once a second)
    and reads a power source that is not the utilisation model at the host's ticks, its readings
    interpolated onto them. Elsewhere the Python thread does every tick (bench/sampler_overhead.py
    compares them). `ticks_in` says which, and why."""

    def __init__(self, rate_hz: float, power: PowerSource, host_every: int = HOST_EVERY, native: bool = True):
        self.period = 1.0 / rate_hz
        self.rate_hz = rate_hz
        self.power = power
        self.host_every = host_every
        self.rows: list[tuple] = []
        self._parsed: list[tuple] = []
        self._last_host: tuple[float, float] | None = None
        self.counters = counters()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.n_cpus = psutil.cpu_count() or 1
        self._ticker: ticker.Ticker | None = None
        self._fd: int | None = None
        self._power_rows: list[tuple[float, float, float]] = []  # (t_wall, power_w, energy_j), native only
        self._drain_lock = threading.Lock()
        self._lib, why_not = (ticker.load() if native and isinstance(self.counters, ProcfsCounters)
                              else (None, "not asked" if not native else "no /proc"))
        self.ticks_in = "native" if self._lib is not None else f"python ({why_not})"

    def attach(self, pid: int | None) -> None:
        """Follow process `pid` (None: system only)."""
        self._fd = self.counters.attach(pid)
        if self._ticker is not None:
            self._ticker.attach(-1 if self._fd is None else self._fd)

    def start(self) -> None:
        if self._lib is not None:
            c = self.counters
            self._ticker = ticker.Ticker(self._lib, self.period, self.host_every, c._stat, c._meminfo,
                                         -1 if self._fd is None else self._fd)
        self._thread = threading.Thread(target=self._loop, name="edgelaw-sampler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping = True
        if self._thread:
            self._thread.join()
        if self._ticker is not None:
            self._drain()
            self._ticker.stop()
            self._ticker = None
        self.counters.close()

    @property
    def native_cpu_s(self) -> float | None:
        """The native ticker thread's CPU seconds so far (None without one)."""
        return self._ticker.thread_cpu_s if self._ticker is not None else None

    def _drain(self) -> None:
        if self._ticker is None:
            return
        with self._drain_lock:  # two drains at once would take the same records twice
            for r in self._ticker.drain():
                host = None
                if r["host"]:
                    host = (r["t_wall"], (r["cpu"], r["mem_total_kb"], r["mem_available_kb"]), r["self_cpu_s"], NAN, NAN)
                self.rows.append((r["t"], (int(r["cpu_ticks"]), int(r["rss_pages"])), host))

    def _sample(self, with_host: bool) -> None:
        t = time.monotonic()
        proc = self.counters.process_raw()
        self.rows.append((t, proc, self._host() if with_host else None))

    def _host(self) -> tuple:
        t_wall = time.time()
        raw = self.counters.system_raw()
        # this process's own CPU (the sampler and the controller): not another process's
        self_cpu = time.process_time()
        # a utilisation model is a function of the host's CPU: computed when parsed (frame)
        reading = NO_READING if self.power.kind == "model" else self.power.read(t_wall, NAN)
        return t_wall, raw, self_cpu, reading.power_w, reading.energy_j

    def _parse_host(self, host: tuple | None) -> tuple:
        if host is None:
            return NO_HOST
        t_wall, raw, self_cpu, power_w, energy_j = host
        if isinstance(raw[0], np.ndarray):  # the native ticker's, already numbers (-1: not reported)
            ticks, total_kb, available_kb = raw
            busy, total, steal, mem_used = self.counters.host_counters(
                [int(x) for x in ticks if x >= 0], total_kb if total_kb >= 0 else None,
                available_kb if available_kb >= 0 else None)
        else:
            busy, total, steal, mem_used = self.counters.parse_system(raw)
        last, self._last_host = self._last_host, (busy, total)
        if self.power.kind == "model":
            sys_pct = 100.0 * self.n_cpus * (busy - last[0]) / (total - last[1]) if last and total > last[1] else 0.0
            power_w = self.power.read(t_wall, sys_pct).power_w
        return t_wall, busy, total, steal, self_cpu, mem_used, power_w, energy_j

    def _loop(self) -> None:
        # time.sleep, not Event.wait: a wake-up is most of a sample's cost, and sleep's is the cheapest
        # (bench/sampler_overhead.py); stop() waits at most one period for the flag to be seen.
        if self._ticker is not None:
            return self._native_loop()
        next_t = time.monotonic()
        tick = 0
        while not self._stopping:
            self._sample(tick % self.host_every == 0)
            tick += 1
            next_t += self.period
            delay = next_t - time.monotonic()
            if delay < 0:  # fell behind: skip missed ticks instead of bursting
                next_t = time.monotonic()
                delay = 0
            time.sleep(delay)

    def _native_loop(self) -> None:
        """The native thread ticks; this one drains it, and reads a power source the model is not."""
        reads_power = self.power.kind != "model"
        period = self.period * self.host_every if reads_power else DRAIN_SECONDS
        waited = 0.0
        while not self._stopping:
            if reads_power:
                t_wall = time.time()
                reading = self.power.read(t_wall, NAN)
                self._power_rows.append((t_wall, NAN if reading.power_w is None else reading.power_w,
                                         NAN if reading.energy_j is None else reading.energy_j))
            waited += period
            if waited >= DRAIN_SECONDS:
                self._drain()
                waited = 0.0
            time.sleep(period)

    def frame(self, last: int | None = None) -> pd.DataFrame:
        """The samples so far (the `last` ones only, if given) as cumulative counters; the host's are
        NaN on the ticks that did not read them, t_wall is interpolated there."""
        self._drain()
        n = len(self.rows)  # the thread appends meanwhile: parse what is there now, once
        for t, proc, host in self.rows[len(self._parsed):n]:
            self._parsed.append((t, *self.counters.parse_process(proc), *self._parse_host(host)))
        rows = self._parsed[-last:] if last else self._parsed[:n]
        df = pd.DataFrame(rows, columns=PARSED_COLUMNS)[FRAME_COLUMNS]
        known = df["t_wall"].notna()
        if known.any():
            df["t_wall"] = np.interp(df["t"], df["t"][known], df["t_wall"][known])
        if self._power_rows:  # a power source read beside the native ticks: onto the host's ticks
            p = np.array(self._power_rows, dtype=float)
            host = df["sys_total_s"].notna()
            for j, name in ((1, "power_w"), (2, "energy_j")):
                ok = ~np.isnan(p[:, j])
                if ok.any():
                    df.loc[host, name] = np.interp(df.loc[host, "t_wall"], p[ok, 0], p[ok, j])
        return df


# How often the Python thread takes the native ticks (the ring holds minutes of them)
DRAIN_SECONDS = 1.0


FRAME_COLUMNS = ["t", "t_wall", "proc_cpu_s", "rss_bytes", "sys_busy_s", "sys_total_s", "sys_steal_s", "self_cpu_s",
                 "mem_sys_used_bytes", "power_w", "energy_j"]
HOST_COLUMNS = ["t_wall", "sys_busy_s", "sys_total_s", "sys_steal_s", "self_cpu_s", "mem_sys_used_bytes", "power_w",
                "energy_j"]  # in the order Sampler._host returns them
PARSED_COLUMNS = ["t", "proc_cpu_s", "rss_bytes", *HOST_COLUMNS]
NO_HOST = (NAN,) * len(HOST_COLUMNS)


def rates(raw: pd.DataFrame, n_cpus: int) -> pd.DataFrame:
    """Per-sample CPU rates (100 = one core) over the interval that ends at each sample: the worker's
    (every tick); the host's, its stolen time and the other processes' (the host's less the worker's
    and this process's own), over the interval between the host's readings that holds the tick; and
    the host's memory and power, interpolated between its readings.

    The worker's counter restarts when a crashed worker is replaced: a negative step counts as zero.
    """
    df = raw.copy()
    t = df["t"]
    dt = t.diff()
    d_proc = df["proc_cpu_s"].diff().clip(lower=0)
    df["cpu_proc_pct"] = (100.0 * d_proc / dt).fillna(0.0)
    host = df[df["sys_total_s"].notna()]
    h_dt = host["t"].diff()
    d_total = host["sys_total_s"].diff()
    share = (100.0 * n_cpus / d_total).where(d_total > 0)
    sys_pct = (share * host["sys_busy_s"].diff()).clip(lower=0.0)
    # the worker's CPU over the same interval, from its own ticks (restarts counted as above)
    worker = d_proc.fillna(0.0).cumsum().reindex(host.index).diff()
    self_pct = 100.0 * host["self_cpu_s"].diff() / h_dt
    other_pct = (sys_pct - 100.0 * worker / h_dt - self_pct).clip(lower=0.0)
    for name, values in [("cpu_sys_pct", sys_pct), ("steal_pct", share * host["sys_steal_s"].diff()),
                         ("cpu_other_pct", other_pct)]:
        # a tick takes the rate of the host interval it falls in: the next reading's, or the last's
        df[name] = values.reindex(df.index).bfill().ffill()
    df["cpu_sys_pct"] = df["cpu_sys_pct"].fillna(0.0)
    df["cpu_other_pct"] = df["cpu_other_pct"].fillna(0.0)
    df["steal_pct"] = df["steal_pct"].clip(lower=0.0)
    for level in ["mem_sys_used_bytes", "power_w", "energy_j"]:
        known = df[level].notna()
        if known.sum() >= 2:
            df[level] = np.interp(t, t[known], df.loc[known, level])
    df["mem_sys_used_bytes"] = df["mem_sys_used_bytes"].round()  # bytes stay whole
    df["t_mid"] = t - dt.fillna(0.0) / 2  # a rate belongs to the middle of its interval
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
