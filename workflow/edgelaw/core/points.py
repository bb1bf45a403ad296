"""The points a bench job did not measure (its worker crashed on them, they failed, or no attempt was
undisturbed), and the one command that measures them again.

A job that lost points still ends well (its other points are kept), so Snakemake sees nothing to do
afterwards: the job's output, the report and every later run of the workflow (dry runs included) say
which points are missing and give the command, which reruns that job (every point of it) and what reads
it. Plain Python over rows: the workflow reads it at parse time, where pandas is not imported.
"""

from __future__ import annotations

import re

from edgelaw.core import layout

JOB = ("device", "model", "quant", "workload")
_ATTEMPT = re.compile(r"-a\d+$")  # an attempt measured again has its point's run_id + -aN


def missing_points(rows: list[dict]) -> list[dict]:
    """The last attempt of every point without an `ok` one: rows with the job's keys, `point`, `status`
    and `error`, in the table's order."""
    last: dict[tuple, dict] = {}
    ok: set[tuple] = set()
    for row in rows:
        key = (*(row[k] for k in JOB), _ATTEMPT.sub("", row["run_id"]))
        if row["status"] == "ok":
            ok.add(key)
        last[key] = {**{k: row[k] for k in JOB}, "point": key[-1], "status": row["status"], "error": row["error"]}
    return [row for key, row in last.items() if key not in ok]


def remeasure_command(device: str, model: str, quant: str, workload: str) -> str:
    """Reruns the bench job of these outputs (all its points), then the laws and the report."""
    runs = layout.fill(layout.RUNS, device=device, model=model, quant=quant, workload=workload)
    return f"snakemake --cores all --forcerun {runs}"


def describe(lost: list[dict]) -> str:
    """`1 point not measured: x64-r0 (crashed: worker died with signal 6)`"""
    points = ", ".join(f"{r['point']} ({r['status']}: {r['error']})" if r["error"] else f"{r['point']} ({r['status']})"
                       for r in lost)
    return f"{len(lost)} point{'s' * (len(lost) > 1)} not measured: {points}"


def by_job(lost: list[dict]) -> dict[tuple, list[dict]]:
    jobs: dict[tuple, list[dict]] = {}
    for row in lost:
        jobs.setdefault(tuple(row[k] for k in JOB), []).append(row)
    return dict(sorted(jobs.items()))


def missing_in_tables(paths) -> list[str]:
    """One line per existing runs table with missing points, with its command."""
    import pyarrow.parquet as pq

    lines = []
    for path in paths:
        try:
            rows = pq.read_table(path, columns=[*JOB, "run_id", "status", "error"]).to_pylist()
        except (OSError, ValueError, KeyError):
            continue  # unreadable or another schema: the job that reads it says so
        for job, lost in by_job(missing_points(rows)).items():
            lines.append(f"{path}: {describe(lost)}; measure again with: {remeasure_command(*job)}")
    return lines
