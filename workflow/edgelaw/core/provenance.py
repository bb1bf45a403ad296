"""Where a result came from: pipeline version, git commit, config hash, llama.cpp build, host."""

from __future__ import annotations

import subprocess
from functools import lru_cache
from pathlib import Path

from edgelaw import __version__
from edgelaw.core.hashing import sha256_json


@lru_cache(maxsize=1)
def git_commit() -> str | None:
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    dirty = subprocess.run(["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True)
    return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def record(config_slice: dict, **extra) -> dict:
    """The provenance every result file carries: this code, the config slice that made it, the
    llama.cpp build and the host; `extra` adds what the stage knows (a GGUF's sha256, its inputs)."""
    from edgelaw.core.devices import fingerprint
    from edgelaw.core.llama import build_info

    return {
        "pipeline_version": __version__,
        "git_commit": git_commit(),
        "config_hash": sha256_json(config_slice),
        "config": config_slice,
        "llama_cpp": build_info(),
        "host": fingerprint(),
        **extra,
    }
