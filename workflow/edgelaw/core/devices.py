"""Device profiles (config/devices/*.yaml) and the fingerprint of this host."""

from __future__ import annotations

import hashlib
import os
import platform
import re
import subprocess
from functools import lru_cache
from pathlib import Path

import yaml

from edgelaw.core.config import describe_error, validator_with_defaults, load_schema
from edgelaw.core.errors import EdgelawError
from edgelaw.schemas import schema_path

DEVICE_SCHEMA = schema_path("device")


def _read(path: str) -> str:
    try:
        return Path(path).read_text(errors="replace").replace("\x00", "").strip()
    except OSError:
        return ""


def _cpu_name() -> str:
    system = platform.system()
    if system == "Darwin":
        try:
            return subprocess.run(["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True, text=True).stdout.strip()
        except OSError:
            return ""
    for line in _read("/proc/cpuinfo").splitlines():
        if line.lower().startswith(("model name", "hardware")):
            return line.split(":", 1)[1].strip()
    return platform.processor()


@lru_cache(maxsize=1)
def fingerprint() -> dict:
    """What this host is: enough to tell which profile fits and to label every result."""
    import psutil

    return {
        "host_id": hashlib.sha256(platform.node().encode()).hexdigest()[:12],
        "system": platform.system(),
        "release": platform.release(),
        "machine": platform.machine(),
        "cpu": _cpu_name(),
        "board": _read("/proc/device-tree/model"),
        "cores_logical": psutil.cpu_count(logical=True),
        "cores_physical": psutil.cpu_count(logical=False) or psutil.cpu_count(logical=True),
        "memory_bytes": psutil.virtual_memory().total,
        "python": platform.python_version(),
    }


def profiles_dir(workflow_root: str | os.PathLike) -> Path:
    return Path(workflow_root) / "config" / "devices"


def available(workflow_root: str | os.PathLike) -> list[str]:
    return sorted(p.stem for p in profiles_dir(workflow_root).glob("*.yaml"))


def load_profile(name: str, workflow_root: str | os.PathLike) -> dict:
    path = profiles_dir(workflow_root) / f"{name}.yaml"
    if not path.is_file():
        raise EdgelawError(
            f"device {name!r}: no profile {path}; use one of {', '.join(available(workflow_root))} "
            "or add config/devices/{name}.yaml"
        )
    profile = yaml.safe_load(path.read_text()) or {}
    errors = [describe_error(e) for e in validator_with_defaults(load_schema(DEVICE_SCHEMA)).iter_errors(profile)]
    if errors:
        raise EdgelawError(f"device profile {path}:\n  " + "\n  ".join(errors))
    profile["name"] = name
    return profile


def mismatches(profile: dict, host: dict) -> list[str]:
    """Why `profile` does not describe `host` (empty when it does)."""
    want = profile.get("platform", {})
    out = []
    if want.get("system") and want["system"] != host["system"]:
        out.append(f"system is {host['system']}, profile expects {want['system']}")
    if want.get("machine") and host["machine"] not in want["machine"]:
        out.append(f"machine is {host['machine']}, profile expects one of {want['machine']}")
    pattern = want.get("cpu_pattern")
    if pattern and not re.search(pattern, f"{host['cpu']} {host['board']}"):
        out.append(f"CPU/board is {host['cpu'] or '?'} {host['board']}".rstrip() + f", profile expects /{pattern}/")
    return out


def suggest(host: dict, workflow_root: str | os.PathLike) -> str:
    """The first specific profile that fits this host, else 'auto'."""
    for name in available(workflow_root):
        if name != "auto" and not mismatches(load_profile(name, workflow_root), host):
            return name
    return "auto"


def resolve(name: str, workflow_root: str | os.PathLike, force: bool = False, host: dict | None = None) -> dict:
    """The profile to run with; raise before any work if it does not match this host."""
    host = host or fingerprint()
    profile = load_profile(name, workflow_root)
    problems = mismatches(profile, host)
    if problems and not force:
        fit = suggest(host, workflow_root)
        raise EdgelawError(
            f"device profile {name!r} does not match this host: " + "; ".join(problems) + ".\n"
            f"  The profile that fits this host is {fit!r}: run with --config device={fit}.\n"
            f"  To measure under {name!r} anyway (results are labelled {name}), add --config force_device=true."
        )
    threads = profile["threads"]
    profile["threads"] = host["cores_physical"] if threads == "auto" else threads
    profile["host_matches"] = not problems
    return profile
