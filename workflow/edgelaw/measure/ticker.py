"""The sampler's native per-tick reader (ticker.c): built once with the system's C compiler, loaded with
ctypes. Where there is no compiler (or not Linux) `load()` says why and the sampler ticks in Python."""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np

SOURCE = Path(__file__).with_name("ticker.c")
CAPACITY = 16384  # records between two drains: 5 min at 50 Hz; the sampler drains every second
# ticker.c's `record`, field for field (checked against its sizeof when loaded)
RECORD = np.dtype([("t", "f8"), ("cpu_ticks", "i8"), ("rss_pages", "i8"), ("host", "i8"), ("t_wall", "f8"),
                   ("self_cpu_s", "f8"), ("cpu", "i8", (10,)), ("mem_total_kb", "i8"), ("mem_available_kb", "i8")])


def cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "edgelaw"


def compiler() -> str | None:
    return os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")


def build() -> Path:
    """The shared library for this source and compiler, compiled once into the user's cache (temp name,
    then rename: two jobs building at once both end with a whole file)."""
    cc = compiler()
    if cc is None:
        raise OSError("no C compiler (cc, gcc or clang) on PATH; set CC to one")
    source = SOURCE.read_bytes()
    key = hashlib.sha256(source + cc.encode() + sysconfig.get_platform().encode()).hexdigest()[:16]
    lib = cache_dir() / f"ticker-{key}.so"
    if lib.is_file():
        return lib
    lib.parent.mkdir(parents=True, exist_ok=True)
    tmp = lib.with_name(f".{lib.name}.{os.getpid()}.tmp")
    cmd = [cc, "-O2", "-std=c11", "-shared", "-fPIC", "-pthread", "-o", str(tmp), str(SOURCE)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise OSError(f"{' '.join(cmd)} failed: {done.stderr.strip()[-500:]}")
    os.replace(tmp, lib)
    return lib


_LIB: ctypes.CDLL | None = None
_WHY_NOT: str | None = None


def load() -> tuple[ctypes.CDLL | None, str | None]:
    """(the library, None), or (None, why the sampler ticks in Python instead)."""
    global _LIB, _WHY_NOT
    if _LIB is None and _WHY_NOT is None:
        if not sys.platform.startswith("linux"):
            _WHY_NOT = "the native ticker reads Linux's /proc"
        else:
            try:
                lib = ctypes.CDLL(str(build()))
            except OSError as e:
                _WHY_NOT = str(e)
            else:
                lib.ticker_start.restype = ctypes.c_void_p
                lib.ticker_start.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_long, ctypes.c_int, ctypes.c_int, ctypes.c_int]
                lib.ticker_attach.restype = ctypes.c_int
                lib.ticker_attach.argtypes = [ctypes.c_void_p, ctypes.c_int]
                lib.ticker_drain.restype = ctypes.c_long
                lib.ticker_drain.argtypes = [ctypes.c_void_p, np.ctypeslib.ndpointer(RECORD, flags="C_CONTIGUOUS"),
                                             ctypes.c_long]
                lib.ticker_record_size.restype = ctypes.c_long
                lib.ticker_dropped.restype = ctypes.c_long
                lib.ticker_dropped.argtypes = [ctypes.c_void_p]
                lib.ticker_thread_cpu_s.restype = ctypes.c_double
                lib.ticker_thread_cpu_s.argtypes = [ctypes.c_void_p]
                lib.ticker_stop.restype = None
                lib.ticker_stop.argtypes = [ctypes.c_void_p]
                if lib.ticker_record_size() != RECORD.itemsize:
                    raise RuntimeError(f"ticker.c's record is {lib.ticker_record_size()} bytes, ticker.RECORD "
                                       f"{RECORD.itemsize}: make them agree")
                _LIB = lib
    return _LIB, _WHY_NOT


class Ticker:
    """A running native thread that reads one process's /proc/<pid>/stat every `period` seconds, and the
    host's counters (from the descriptors given, kept open by the caller) every `host_every`-th tick;
    `fd` is the process's to read from the first tick (-1: none yet)."""

    def __init__(self, lib: ctypes.CDLL, period: float, host_every: int, stat_fd: int, meminfo_fd: int, fd: int):
        self._lib = lib
        self._handle = lib.ticker_start(int(period * 1e9), host_every, CAPACITY, stat_fd, meminfo_fd, fd)
        if not self._handle:
            raise MemoryError("the native ticker could not start its thread")
        self._out = np.empty(CAPACITY, RECORD)

    def attach(self, fd: int) -> int:
        """Read `fd` (-1: nothing) from the next tick on; returns the descriptor it replaces."""
        return self._lib.ticker_attach(self._handle, fd)

    def drain(self) -> np.ndarray:
        """The ticks since the last drain (RECORD), oldest first. One caller at a time."""
        n = self._lib.ticker_drain(self._handle, self._out, CAPACITY)
        return self._out[:n].copy()

    @property
    def dropped(self) -> int:
        """Ticks lost because nothing drained the ring in time."""
        return self._lib.ticker_dropped(self._handle)

    @property
    def thread_cpu_s(self) -> float:
        return self._lib.ticker_thread_cpu_s(self._handle)

    def stop(self) -> None:
        if self._handle:
            self._lib.ticker_stop(self._handle)
            self._handle = None
