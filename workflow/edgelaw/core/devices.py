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


# The environment variable through which the workflow tells its jobs the checkout whose config/devices/
# holds the profiles (a job names the profile that fits the host it landed on; the path is in no command
# or param, so a moved checkout reruns nothing).
ROOT_ENV = "EDGELAW_WORKFLOW_ROOT"
# And whether the config says force_device: in no param either, so that setting it reruns nothing.
FORCE_ENV = "EDGELAW_FORCE_DEVICE"

# What makes two hosts the same kind of device: every job of a device runs on hosts alike in these (the
# nodes of a partition differ in name, kernel and Python, not in these), and in memory within 5 %.
SAME_KIND = ("system", "machine", "cpu", "board", "cores_logical", "cores_physical")
MEMORY_TOLERANCE = 0.05


def resolve(name: str, workflow_root: str | os.PathLike | None, force: bool = False, host: dict | None = None,
            profile: dict | None = None) -> dict:
    """The profile to measure with on this host (threads resolved); raise if it does not match this host.

    Called by a measurement job on the node it runs on (`profile` is the loaded profile the workflow
    passed it), or with the name of a profile in `workflow_root`'s config/devices/."""
    host = host or fingerprint()
    profile = dict(profile) if profile is not None else load_profile(name, workflow_root)
    problems = mismatches(profile, host)
    if problems and not force:
        root = workflow_root or os.environ.get(ROOT_ENV)
        fit = suggest(host, root) if root else None
        where = f" (node {platform.node()}, SLURM job {os.environ['SLURM_JOB_ID']})" if os.environ.get("SLURM_JOB_ID") else ""
        lines = [f"device profile {name!r} does not match this host{where}: " + "; ".join(problems) + "."]
        if fit:
            lines.append(f"The profile that fits this host is {fit!r}: run with --config device={fit}.")
        if where:
            lines.append(f"On a cluster: check that cluster.partitions maps {name} to a partition of {name} nodes.")
        lines.append(f"To measure under {name!r} anyway (results are labelled {name}), add --config force_device=true.")
        raise EdgelawError("\n  ".join(lines))
    threads = profile["threads"]
    profile["threads"] = host["cores_physical"] if threads == "auto" else threads
    profile["host_matches"] = not problems
    return profile


def same_kind(earlier: dict, host: dict) -> list[str]:
    """How `host` differs from the host of a device's earlier jobs (empty when it is the same kind)."""
    out = [f"{key} is {host.get(key)!r}, earlier {earlier.get(key)!r}" for key in SAME_KIND
           if earlier.get(key) != host.get(key)]
    mem, was = host.get("memory_bytes") or 0, earlier.get("memory_bytes") or 0
    if was and abs(mem - was) > MEMORY_TOLERANCE * was:
        out.append(f"memory is {mem / 2**30:.1f} GiB, earlier {was / 2**30:.1f} GiB")
    return out


def check_device_host(device: str, profile: dict, force: bool, host_record: str | None = None,
                      host: dict | None = None) -> dict:
    """The device check of a measurement job, where it runs: the node matches the device's profile and
    is the kind of host the device's earlier jobs (its host record) ran on. Returns the resolved profile."""
    import json

    host = host or fingerprint()
    resolved = resolve(device, None, force=force, host=host, profile=profile)
    if host_record and os.path.exists(host_record):
        earlier = json.loads(Path(host_record).read_text()).get("host", {})
        problems = same_kind(earlier, host)
        if problems and not force:
            raise EdgelawError(
                f"device {device!r}: this host ({platform.node()}) is not the kind of host its earlier jobs ran on "
                f"(recorded in {host_record}): " + "; ".join(problems) + ".\n"
                f"  One device's results come from one kind of host. Measure this host as a device of its own "
                f"(a profile in config/devices/, or --config device=auto in another working directory), or move "
                f"results/{device}/ away to measure {device!r} again from scratch here.\n"
                f"  To measure here under {device!r} anyway, add --config force_device=true."
            )
    return resolved
