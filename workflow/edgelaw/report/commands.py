"""The report stage's command: one device's figures, summary.md and index.html."""

from __future__ import annotations

import json

from edgelaw.core.console import say


def args_report(p) -> None:
    p.add_argument("--runs", nargs="*", default=[])
    p.add_argument("--quality", nargs="*", default=[])
    p.add_argument("--laws", required=True)
    p.add_argument("--tradeoffs", required=True)
    p.add_argument("--comparisons", required=True)
    p.add_argument("--host", required=True)
    p.add_argument("--out-dir", required=True)


def cmd_report(a) -> None:
    from pathlib import Path

    import pandas as pd

    from edgelaw.core.tables import read_many
    from edgelaw.report.page import build

    build(Path(a.out_dir), read_many(a.runs), read_many(a.quality), pd.read_parquet(a.laws),
          pd.read_parquet(a.tradeoffs), pd.read_parquet(a.comparisons), json.loads(open(a.host).read()))
    say(f"report: {a.out_dir}/index.html")
