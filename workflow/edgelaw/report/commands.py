"""The report stage's command: one device's figures, summary.md and index.html."""

from __future__ import annotations

import json

from edgelaw.core.console import say


def args_report(p) -> None:
    p.add_argument("--runs", nargs="*", default=[])
    p.add_argument("--quality", nargs="*", default=[])
    p.add_argument("--tasks", nargs="*", default=[], help="task tables (one per model x scheme)")
    p.add_argument("--laws", required=True)
    p.add_argument("--tradeoffs", required=True)
    p.add_argument("--comparisons", required=True)
    p.add_argument("--crossover", required=True)
    p.add_argument("--bottleneck", required=True)
    p.add_argument("--host", required=True)
    p.add_argument("--budgets", default="{}", help="the config's budgets section, JSON (defaults: the schema's)")
    p.add_argument("--settings", default="{}", help="the config's laws section, JSON (n_boot, seed)")
    p.add_argument("--out-dir", required=True)


def cmd_report(a) -> None:
    from pathlib import Path

    import pandas as pd

    from edgelaw.core.config import defaults
    from edgelaw.core.tables import read_many
    from edgelaw.report.answer import Budgets
    from edgelaw.report.page import build

    budgets = Budgets.from_config(defaults("budgets", json.loads(a.budgets)))
    settings = defaults("laws", json.loads(a.settings))
    build(Path(a.out_dir), read_many(a.runs), read_many(a.quality), pd.read_parquet(a.laws),
          pd.read_parquet(a.tradeoffs), pd.read_parquet(a.comparisons), json.loads(open(a.host).read()),
          read_many(a.tasks), pd.read_parquet(a.crossover), pd.read_parquet(a.bottleneck), budgets,
          settings["n_boot"], settings["seed"])
    say(f"report: {a.out_dir}/index.html")


def args_tasks_summary(p) -> None:
    p.add_argument("folder", help="e.g. results/quality/smollm2-135m/tasks")


def cmd_tasks_summary(a) -> None:
    """Accuracy against BPW, one column per task and metric, as the report shows it."""
    import glob

    from edgelaw.core.errors import EdgelawError
    from edgelaw.core.tables import read_many
    from edgelaw.report.page import task_accuracy_table

    files = sorted(glob.glob(f"{a.folder}/*.parquet"))
    if not files:
        raise EdgelawError(f"no task tables in {a.folder}; run the workflow first")
    print(task_accuracy_table(read_many(files)))
