"""Atomic output: write to a hidden temp name in the same folder, rename when complete.

An interrupted job therefore never leaves a file under its final name. A write that fails for want of
room (a full disk, a quota, a file size limit) becomes one message naming the file, its folder, the free
space left there and the fix, instead of the writer's own traceback (pyarrow's, gzip's, numpy's).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import resource
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

from edgelaw.core.errors import EdgelawError

# pyarrow raises a plain OSError whose errno is only in its text
_NO_ROOM = {errno.ENOSPC: "No space left", errno.EDQUOT: "Disk quota exceeded", errno.EFBIG: "File too large"}


def no_room(exc: BaseException) -> int | None:
    """The errno of a write that failed for want of room (ENOSPC, EDQUOT, EFBIG), else None."""
    if not isinstance(exc, OSError):
        return None
    if exc.errno in _NO_ROOM:
        return exc.errno
    return next((code for code, text in _NO_ROOM.items() if text in str(exc)), None)


def human_bytes(n: float) -> str:
    for unit in ("bytes", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def free_bytes(folder: str | os.PathLike) -> int:
    """Free space on the disk holding `folder` (or its nearest existing parent)."""
    folder = Path(folder).absolute()
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return shutil.disk_usage(folder).free


def no_room_error(path: str | os.PathLike, code: int = errno.ENOSPC) -> EdgelawError:
    """The message for a file that could not be written for want of room."""
    folder = Path(path).parent
    free = human_bytes(free_bytes(folder))
    if code == errno.EFBIG:
        limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
        return EdgelawError(
            f"cannot write {path}: it would exceed this process's file size limit (ulimit -f: "
            f"{human_bytes(limit)}; the disk of {folder} has {free} free); raise the limit and run again"
        )
    why = "the disk quota is used up" if code == errno.EDQUOT else "no space left"
    return EdgelawError(
        f"cannot write {path}: {why} on the disk of {folder} ({free} free); free space there (or run in a "
        "working directory on a disk with more room) and run again: nothing was written under its final name"
    )


@contextlib.contextmanager
def atomic_path(final: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp path beside `final`; on success rename it to `final`, on failure remove it."""
    final = Path(final)
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        if code := no_room(exc):
            raise no_room_error(final, code) from None
        raise
    tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}")
    try:
        yield tmp
        os.replace(tmp, final)
    except OSError as exc:
        if code := no_room(exc):
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()  # first, so that the free space named is what is left
            raise no_room_error(final, code) from None
        raise
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


@contextlib.contextmanager
def staging_dir(final: str | os.PathLike) -> Iterator[Path]:
    """A temp folder beside `final` for what making it needs (a download, a file to convert), removed
    afterwards; a write there that fails for want of room is named as a failure to write `final`."""
    final = Path(final)
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=final.parent, prefix=f".{final.stem}-") as tmp:
            yield Path(tmp)
    except OSError as exc:
        if code := no_room(exc):
            raise no_room_error(final, code) from None
        raise


def write_json(path: str | os.PathLike, data: dict) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
