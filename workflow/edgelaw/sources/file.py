"""The `file` source: a GGUF already on disk, the user's own.

The pipeline never links to it or writes it: the base is a copy (edgelaw.sources.fetch), so rewriting the
file in place cannot change a measured model. The file is an input of the fetch job (its time reruns the
fetch) and must exist before any job runs; advice about it never says to delete it, since nothing
would fetch it back.
"""

from __future__ import annotations

from pathlib import Path

from edgelaw.core.errors import EdgelawError
from edgelaw.core.hashing import check_sha256


def path_of(spec: dict) -> Path:
    return Path(spec["path"]).expanduser()


def damaged_fix(name: str) -> str:
    """The fix for a damaged or wrong file: the user's own, so replace it or point the config elsewhere."""
    return (f"this is your own file, which nothing fetches again: replace it with a good copy, or point "
            f"models.{name}.path at one")


def missing_error(name: str, path: Path) -> EdgelawError:
    return EdgelawError(f"model {name}: file {path} does not exist; fix models.{name}.path in the config")


def user_files(config: dict, name: str, projector: bool = False) -> list[str]:
    """The user's own GGUF behind model `name` (or its projector), as an input of its fetch job; raises if
    it is not there, so that a wrong path stops the run before any job."""
    spec = config["models"][name]["mmproj"] if projector else config["models"][name]
    if spec["source"] != "file":
        return []
    path = path_of(spec)
    if not path.is_file():
        raise missing_error(f"{name}.mmproj" if projector else name, path)
    return [str(path)]


def fetch(name: str, spec: dict, workdir: Path) -> tuple[Path, dict]:
    path = path_of(spec)
    if not path.is_file():
        raise missing_error(name, path)
    fix = (f"your file differs from the sha256 pinned in models.{name}.sha256: point models.{name}.path at the "
           "file you pinned, or pin this one's sha256")
    sha = check_sha256(path, spec.get("sha256"), f"model {name}", fix)
    return path, {"kind": "file", "path": str(path.resolve()), "sha256": sha}
