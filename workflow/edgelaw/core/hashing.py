"""Checksums of files and of config fragments."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from edgelaw.core.errors import EdgelawError


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def sha256_json(obj) -> str:
    """Stable hash of a JSON-able object (key order does not matter)."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def check_sha256(path: Path, expected: str | None, what: str, fix: str | None = None) -> str:
    """The file's sha256, which must be `expected` where one is given; `fix` is what the user should do
    if not (default: advice for a download)."""
    actual = sha256_file(path)
    if expected and actual != expected.lower():
        fix = fix or "the file changed upstream or is corrupt: check the pinned revision and the sha256 in the config"
        raise EdgelawError(f"{what}: sha256 mismatch for {path.name}: expected {expected}, got {actual}; {fix}")
    return actual
