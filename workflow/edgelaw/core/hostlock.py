"""One measurement at a time on a host: an exclusive lock every bench and host job holds while it
measures, whatever Snakemake invocation, working directory or checkout it comes from.

Snakemake keeps a measurement alone only among its own jobs; a second invocation (other outputs, another
checkout) would run beside it and both would be disturbed. The lock is an flock on one file for the whole
host (EDGELAW_MEASURE_LOCK overrides the path, for tests); the kernel releases it if the holder dies. The
holder writes who it is into the file, so that a job waiting for it says whom it waits for.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
import time
from typing import Iterator

from edgelaw.core.console import say
from edgelaw.core.errors import EdgelawError

LOCK_ENV = "EDGELAW_MEASURE_LOCK"


def lock_path() -> str:
    """/tmp itself, not TMPDIR: Snakemake points a job's TMPDIR at its tmpdir resource, which may differ
    between invocations, and one host needs one lock."""
    folder = "/tmp" if os.path.isdir("/tmp") else tempfile.gettempdir()
    return os.environ.get(LOCK_ENV) or os.path.join(folder, "edgelaw-measure.lock")


def _open(path: str) -> tuple[int, bool]:
    """The lock file, read-write where allowed (another user's lock file can still be locked read-only)."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except PermissionError:
        return os.open(path, os.O_RDONLY), False
    with contextlib.suppress(PermissionError):
        os.fchmod(fd, 0o666)  # every user's measurements share it (the umask took write away)
    return fd, True


def _wait(fd: int, path: str, job: str) -> None:
    """Take the lock, saying whom we wait for, again whenever another process takes it first."""
    said, t0 = None, time.monotonic()
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            holder = os.pread(fd, 4096, 0).decode("utf-8", "replace").strip()  # empty while a holder writes it
            if not holder and said is None and time.monotonic() - t0 > 2:
                holder = "a process that did not write its name (no write access to the file)"
            if holder and holder != said:
                say(f"{job}: waiting for the measurement lock {path}: held by {holder}; one measurement runs at "
                    "a time on a host")
                said = holder
            time.sleep(0.2)
    if said:
        say(f"{job}: measurement lock taken after {time.monotonic() - t0:.1f} s")


@contextlib.contextmanager
def measurement_lock(job: str) -> Iterator[None]:
    """Hold the host's measurement lock for `job` (e.g. `bench tiny Q8_0 tokens`), waiting for it."""
    path = lock_path()
    try:
        fd, writable = _open(path)
    except OSError as exc:
        raise EdgelawError(f"{job}: cannot open the measurement lock {path} ({exc.strerror}); set {LOCK_ENV} to a "
                           "file in a folder every measurement on this host can write") from None
    held = False
    try:
        _wait(fd, path, job)
        held = True
        if writable:
            since = time.strftime("%Y-%m-%dT%H:%M:%S%z")
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()} ({job}, in {os.getcwd()}, since {since})\n".encode(), 0)
        yield
    finally:
        if held and writable:  # (a job stopped while waiting leaves the holder's name alone)
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
        os.close(fd)  # releases the lock
