"""The `file` source: a GGUF already on disk."""

from __future__ import annotations

from pathlib import Path

from edgelaw.core.errors import EdgelawError
from edgelaw.core.hashing import check_sha256


def fetch(name: str, spec: dict, workdir: Path) -> tuple[Path, dict]:
    path = Path(spec["path"]).expanduser()
    if not path.is_file():
        raise EdgelawError(f"model {name}: file {path} does not exist; fix models.{name}.path in the config")
    sha = check_sha256(path, spec.get("sha256"), f"model {name}")
    return path, {"kind": "file", "path": str(path.resolve()), "sha256": sha}
