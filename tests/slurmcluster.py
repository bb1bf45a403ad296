"""A single-node SLURM cluster on this machine, for the cluster test: munged, slurmctld and slurmd,
configured in a temp folder (Debian's slurm-wlm and munge), with partitions that all map to this node.

No slurmdbd: job accounting goes to a job-completion log (JobCompType=jobcomp/filetxt), which
`sacct --completion` reads; the executor plugin asks `squeue` for job states (MinJobAge keeps finished
jobs visible to it) and is told to use no account, so it never needs `sacctmgr`. Every daemon is started
in the foreground by this module and stopped by its pid.

The configuration is not in /etc/slurm (this module writes nothing outside its folder): SLURM's commands
find it through SLURM_CONF. The plugin's job step drops every SLURM_* variable but a few before it calls
`srun` inside the job (snakemake-executor-plugin-slurm issue #164), so the cluster's `bin/` folder, first
on PATH, holds an `srun` that sets SLURM_CONF again and runs the real one. A real cluster keeps its
configuration where `srun` finds it without the variable.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

DAEMONS = ("munged", "slurmctld", "slurmd")


def missing_tools() -> list[str]:
    tools = ["munged", "mungekey", "slurmctld", "slurmd", "sbatch", "squeue", "sacct", "scancel", "sinfo"]
    return [t for t in tools if not shutil.which(t) and not os.path.exists(f"/usr/sbin/{t}")]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _binary(name: str) -> str:
    return shutil.which(name) or f"/usr/sbin/{name}"


def _node_line(name: str) -> str:
    """This machine as slurmd sees it (CPUs, sockets, memory), for slurm.conf."""
    out = subprocess.run([_binary("slurmd"), "-C"], capture_output=True, text=True, timeout=30, check=True).stdout
    line = next(ln for ln in out.splitlines() if ln.startswith("NodeName="))
    fields = dict(f.split("=", 1) for f in line.split())
    fields["NodeName"] = name
    fields["NodeAddr"] = "127.0.0.1"
    fields["RealMemory"] = str(int(int(fields["RealMemory"]) * 0.9))  # slurmd must not find less than declared
    return " ".join(f"{k}={v}" for k, v in fields.items()) + " State=UNKNOWN"


class Cluster:
    """Start with `start()`; `stop()` ends every daemon it started (by pid), whatever happened before."""

    def __init__(self, folder: Path, partitions: list[str], default: str):
        self.folder = folder
        self.partitions = partitions
        self.default = default
        self.node = socket.gethostname().split(".")[0]
        self.procs: dict[str, subprocess.Popen] = {}
        self.conf = folder / "slurm.conf"
        self.jobcomp = folder / "jobcomp.log"
        self.munge_socket = folder / "munge" / "munge.socket"

    @property
    def env(self) -> dict:
        """The environment in which SLURM's commands (and the executor plugin) reach this cluster."""
        path = os.pathsep.join([str(self.folder / "bin"), os.environ.get("PATH", "")])
        return {**os.environ, "SLURM_CONF": str(self.conf), "PATH": path}

    def _write_config(self) -> None:
        f = self.folder
        for sub in ("state", "spool", "log", "munge", "bin"):
            (f / sub).mkdir(parents=True, exist_ok=True)
        srun = f / "bin" / "srun"
        srun.write_text(f'#!/bin/sh\nexport SLURM_CONF="{self.conf}"\nexec {shutil.which("srun")} "$@"\n')
        srun.chmod(0o755)
        lines = [
            "ClusterName=edgelawtest",
            f"SlurmctldHost={self.node}(127.0.0.1)",
            f"SlurmctldPort={_free_port()}",
            f"SlurmdPort={_free_port()}",
            "SlurmUser=root",
            "SlurmdUser=root",
            "AuthType=auth/munge",
            "CredType=cred/munge",
            f"AuthInfo=socket={self.munge_socket}",
            f"StateSaveLocation={f / 'state'}",
            f"SlurmdSpoolDir={f / 'spool'}",
            f"SlurmctldPidFile={f / 'slurmctld.pid'}",
            f"SlurmdPidFile={f / 'slurmd.pid'}",
            f"SlurmctldLogFile={f / 'log/slurmctld.log'}",
            f"SlurmdLogFile={f / 'log/slurmd.log'}",
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "JobAcctGatherType=jobacct_gather/none",
            "AccountingStorageType=accounting_storage/none",
            "JobCompType=jobcomp/filetxt",
            f"JobCompLoc={self.jobcomp}",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_Core_Memory",
            "ReturnToService=2",
            "MinJobAge=3600",
            "SchedulerType=sched/backfill",
            "MpiDefault=none",
            "SlurmctldTimeout=30",
            "SlurmdTimeout=30",
            "KillWait=5",
            _node_line(self.node),
        ]
        for name in self.partitions:
            default = "YES" if name == self.default else "NO"
            lines.append(f"PartitionName={name} Nodes={self.node} Default={default} MaxTime=INFINITE State=UP")
        self.conf.write_text("\n".join(lines) + "\n")

    def _spawn(self, name: str, args: list[str]) -> None:
        log = open(self.folder / "log" / f"{name}.out", "w")
        self.procs[name] = subprocess.Popen([_binary(name), *args], stdout=log, stderr=subprocess.STDOUT,
                                            env=self.env, start_new_session=True)

    def _wait(self, what: str, ready, timeout: float = 60) -> None:
        t0 = time.monotonic()
        while not ready():
            dead = [n for n, p in self.procs.items() if p.poll() is not None]
            if dead or time.monotonic() - t0 > timeout:
                raise RuntimeError(f"test cluster: {what} not ready ({'exited: ' + ', '.join(dead) if dead else 'timed out'})"
                                   f"\n{self.logs()}")
            time.sleep(0.5)

    def start(self) -> "Cluster":
        self._write_config()
        key = self.folder / "munge" / "munge.key"
        subprocess.run([_binary("mungekey"), "--create", f"--keyfile={key}"], check=True, timeout=30,
                       capture_output=True)
        os.chmod(key, 0o600)
        munge = self.folder / "munge"
        self._spawn("munged", ["--foreground", "--force", f"--key-file={key}", f"--socket={self.munge_socket}",
                               f"--pid-file={munge / 'munged.pid'}", f"--log-file={munge / 'munged.log'}",
                               f"--seed-file={munge / 'munged.seed'}"])
        self._wait("munged", self.munge_socket.exists, 30)
        self._spawn("slurmctld", ["-D", "-i", "-f", str(self.conf)])
        self._wait("slurmctld", lambda: self.run("scontrol", "ping", check=False).returncode == 0)
        self._spawn("slurmd", ["-D", "-N", self.node, "-f", str(self.conf)])
        self._wait("the node", lambda: "idle" in self.run("sinfo", "-h", "-o", "%T", check=False).stdout)
        return self

    def run(self, *cmd: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess:
        return subprocess.run(list(cmd), capture_output=True, text=True, env=self.env, timeout=timeout, check=check)

    def logs(self) -> str:
        out = []
        for path in sorted((self.folder / "log").glob("*")) + [self.folder / "munge" / "munged.log"]:
            if path.exists():
                out.append(f"--- {path.name}\n" + path.read_text(errors="replace")[-3000:])
        return "\n".join(out)

    def stop(self) -> None:
        """Cancel the jobs still queued or running (a test that failed midway), then end every daemon this
        cluster started, by pid: SIGTERM, then SIGKILL after 15 s, slurmd first."""
        ctld = self.procs.get("slurmctld")
        if ctld is not None and ctld.poll() is None:
            try:
                self.run("scancel", "--user", str(os.getuid()), check=False)
                t0 = time.monotonic()
                while time.monotonic() - t0 < 30 and self.run(
                        "squeue", "--noheader", "--states=PENDING,RUNNING,COMPLETING", check=False).stdout.strip():
                    time.sleep(0.5)
            except (OSError, subprocess.SubprocessError):
                pass  # the daemons are stopped below all the same
        for name in reversed(DAEMONS):
            proc = self.procs.get(name)
            if proc is None or proc.poll() is not None:
                continue
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
