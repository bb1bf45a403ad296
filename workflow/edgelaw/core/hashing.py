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


def check_sha256(path: Path, expected: str | None, what: str) -> str:
    actual = sha256_file(path)
    if expected and actual != expected.lower():
        raise EdgelawError(
            f"{what}: sha256 mismatch for {path.name}: expected {expected}, got {actual}; "
            "the file changed upstream or is corrupt: check the pinned revision and the sha256 in the config"
        )
    return actual
