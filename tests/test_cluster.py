"""The workflow on a real SLURM cluster (tests/slurmcluster.py: one node, three partitions on it) through
profiles/slurm and snakemake-executor-plugin-slurm: a fleet of two devices, each measured on its own
partition, the other jobs on the compute partition, up to the cross-device comparison (the per-device
reports, which a fleet's `all` adds, are left out to keep the test short: every job here costs two
Snakemake start-ups on the node); a bench job killed by `scancel` while it measures, then a clean rerun.

The two devices are x86 and auto, both fitting this host (a real fleet's nodes differ; the job's device
check is what a test of a mismatch needs, and test_workflow has it).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from conftest import ROOT, tiny_config
from slurmcluster import Cluster, missing_tools

pytestmark = pytest.mark.slow

PARTITIONS = {"x86": "x86nodes", "auto": "autonodes"}
COMPUTE = "compute"
RUN_TIMEOUT = 600  # s, one Snakemake run; the test fails (and stops everything) rather than hang


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    if missing := missing_tools():
        pytest.fail(f"the cluster test needs Debian's slurm-wlm and munge ({', '.join(missing)} missing): "
                    "make test installs them (the Makefile's slurm target)")
    # A short folder: munged's socket path must fit in a Unix socket address.
    cluster = Cluster(tmp_path_factory.mktemp("slurm"), [COMPUTE, *PARTITIONS.values()], COMPUTE)
    try:
        yield cluster.start()
    finally:
        cluster.stop()


def fleet_config() -> dict:
    config = tiny_config(devices=list(PARTITIONS), cluster={"partitions": PARTITIONS, "compute_partition": COMPUTE})
    config["schemes"] = {"Q8_0": {"ftype": "Q8_0"}}
    config["bench"]["workloads"] = ["tokens"]
    return config


def snakemake(cluster: Cluster, workdir: Path, *extra: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"), "--directory", str(workdir),
           "--configfile", str(workdir / "config.yaml"), "--replace-workflow-config",
           "--executor", "slurm", "--workflow-profile", str(ROOT / "profiles/slurm"), "--jobs", "4",
           "--latency-wait", "5", "--slurm-no-account", "--slurm-status-command", "squeue",
           "--slurm-init-seconds-before-status-checks", "1", *extra]
    env = {**cluster.env, "EDGELAW_MEASURE_LOCK": str(workdir / "measure.lock")}
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                            start_new_session=True)


def finish(proc: subprocess.Popen, timeout: float = RUN_TIMEOUT) -> str:
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
        raise AssertionError(f"snakemake did not finish in {timeout} s:\n{out[-4000:]}")
    return out


def jobs(cluster: Cluster) -> dict[str, dict]:
    """Every job the cluster ran, by id: its rule (the plugin's comment), partition and state (squeue, which
    keeps finished jobs for MinJobAge)."""
    out = cluster.run("squeue", "--states=all", "--noheader", "--format=%i|%k|%P|%T").stdout
    table = {}
    for line in out.splitlines():
        jobid, comment, partition, state = line.split("|")
        rule = re.match(r"rule_(.+?)(_wildcards_(.*))?$", comment)
        table[jobid] = {"rule": rule.group(1), "wildcards": rule.group(3) or "", "partition": partition,
                        "state": state}
    return table


def accounted(cluster: Cluster) -> dict[str, tuple[str, str]]:
    """sacct's view of the jobs (from the job-completion log): id -> (partition, state)."""
    out = cluster.run("sacct", "--completion", "--noheader", "--parsable2",
                      "--format=JobID,Partition,State").stdout
    return {jobid: (partition, state.split()[0]) for jobid, partition, state in
            (line.split("|")[:3] for line in out.splitlines() if line.strip())}


def wait_for_running_bench(cluster: Cluster, workdir: Path, proc: subprocess.Popen, timeout: float = 300) -> str:
    """The SLURM id of a bench job that is measuring (its edgelaw log has begun)."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if proc.poll() is not None:
            raise AssertionError(f"snakemake ended before a bench job ran:\n{proc.stdout.read()[-4000:]}")
        for jobid, job in jobs(cluster).items():
            device = job["wildcards"].split("_")[0]
            log = workdir / f"results/logs/{device}/bench/tiny/Q8_0/tokens.log"
            if job["rule"] == "bench" and job["state"] == "RUNNING" and log.exists() and log.stat().st_size:
                return jobid
        time.sleep(0.3)
    raise AssertionError(f"no bench job was running within {timeout} s: {jobs(cluster)}")


def test_a_fleet_on_slurm_with_a_bench_job_cancelled_and_rerun(cluster, tmp_path):
    (tmp_path / "config.yaml").write_text(json.dumps(fleet_config()))
    proc = snakemake(cluster, tmp_path, "cross_device")
    try:
        killed = wait_for_running_bench(cluster, tmp_path, proc)
        cluster.run("scancel", killed)
        out = finish(proc)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.communicate(timeout=60)
    assert proc.returncode != 0, out[-3000:]
    device = jobs(cluster)[killed]["wildcards"].split("_")[0]
    runs = tmp_path / f"results/{device}/runs/tiny/Q8_0/tokens.parquet"
    assert not runs.exists() and not list((tmp_path / "results" / device).rglob("*.tmp-*"))  # nothing half-written

    out = finish(snakemake(cluster, tmp_path, "cross_device"))
    assert "steps (100%) done" in out, out[-4000:]

    # Every job went through SLURM, on its partition: measurements on their device's, the rest on compute.
    table = jobs(cluster)
    accounting = accounted(cluster)
    print("\nsacct --completion (JobID|Partition|State), with the rule squeue gives each job:")
    print("\n".join(f"{jobid}|{'|'.join(accounting.get(jobid, ('?', '?')))}|{job['rule']} {job['wildcards']}"
                    for jobid, job in sorted(table.items(), key=lambda kv: int(kv[0]))))
    assert set(table) == set(accounting)
    for jobid, job in table.items():
        device = job["wildcards"].split("_")[0]
        want = PARTITIONS[device] if job["rule"] in ("bench", "host_record") else COMPUTE
        assert job["partition"] == want == accounting[jobid][0], (jobid, job)
    states = {jobid: accounting[jobid][1] for jobid in table}
    assert states[killed] == "CANCELLED" and table[killed]["state"] == "CANCELLED"
    rules = sorted(job["rule"] for jobid, job in table.items() if states[jobid] == "COMPLETED")
    assert rules == sorted(["fetch_model", "quantize", "host_record", "host_record", "bench", "bench", "laws",
                            "laws", "cross_device"]), rules

    # The outputs are the local run's: the same table schemas, the same host record.
    from edgelaw.core import tables

    for dev in PARTITIONS:
        base = tmp_path / "results" / dev
        for path, schema in [(base / "traces/tiny/Q8_0/tokens.parquet", tables.SAMPLES),
                             (base / "runs/tiny/Q8_0/tokens.parquet", tables.RUNS), (base / "laws.parquet", tables.LAWS),
                             (base / "tradeoffs.parquet", tables.TRADEOFFS)]:
            assert pq.read_schema(path).remove_metadata().equals(schema), path
        host = json.loads((base / "host.json").read_text())
        assert host["device"] == dev and host["profile"]["host_matches"] and host["profile"]["threads"] >= 1
    merged = pq.read_table(tmp_path / "results/cross_device/tradeoffs.parquet")
    assert merged.schema.remove_metadata().equals(tables.CROSS_DEVICE_TRADEOFFS)
    assert set(merged.column("device").to_pylist()) == set(PARTITIONS)
