"""The points a bench job did not measure (its worker crashed on them, they failed, or no attempt was
undisturbed), and the one command that measures them again.

A job that lost points still ends well (its other points are kept), so Snakemake sees nothing to do
afterwards: the job's output and the report say which points are missing and give the command, which
reruns that job (every point of it) and what reads it. Read by the bench job and the report.
"""

from __future__ import annotations

import pandas as pd

from edgelaw.core import layout

JOB = ["device", "model", "quant", "workload"]


def missing_points(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per point without an `ok` attempt (its last attempt): the job's keys, `point`, `status`
    and `error`."""
    if runs.empty:
        return pd.DataFrame(columns=[*JOB, "point", "status", "error"])
    df = runs.assign(point=runs["run_id"].str.replace(r"-a\d+$", "", regex=True))  # an attempt's id: point-aN
    ok = df[df["status"] == "ok"].set_index([*JOB, "point"]).index
    lost = df[~df.set_index([*JOB, "point"]).index.isin(ok)]
    return lost.drop_duplicates([*JOB, "point"], keep="last")[[*JOB, "point", "status", "error"]]


def remeasure_command(device: str, model: str, quant: str, workload: str) -> str:
    """Reruns the bench job of these outputs (all its points), then the laws and the report."""
    runs = layout.fill(layout.RUNS, device=device, model=model, quant=quant, workload=workload)
    return f"snakemake --cores all --forcerun {runs}"


def describe(lost: pd.DataFrame) -> str:
    """`x64-r0 (crashed: worker died with signal 6), ...`"""
    return ", ".join(f"{r.point} ({r.status}: {r.error})" if r.error else f"{r.point} ({r.status})"
                     for r in lost.itertuples())
