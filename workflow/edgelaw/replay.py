"""Replay an archive: unpack it (verified), refit the laws from its tables with its own config, and
check that the fits, trade-offs and comparisons come out as archived.

A match shows that the archived findings follow from the archived measurements by this code; a
mismatch names the table and the first differing rows.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import yaml

from . import laws
from .archive import extract
from .errors import EdgelawError
from .report_log import say
from .tables import read_many


def replay(archive: Path, out_dir: Path) -> dict:
    manifest = extract(archive, out_dir)
    names = list(manifest["files"])
    device = manifest["device"]
    config = yaml.safe_load((out_dir / "config/config.yaml").read_text())
    tables = [n for n in names if n.endswith(".parquet")]
    runs = read_many(out_dir / n for n in tables if n.startswith(f"results/{device}/runs/"))
    quality = read_many(out_dir / n for n in tables if "/quality/" in n and "/answers/" not in n and "/reference/" not in n)
    answers = read_many(out_dir / n for n in tables if "/answers/" in n)
    weights = laws.weight_bytes(out_dir / n for n in names if n.startswith("results/models/") and n.endswith(".json"))
    host = json.loads((out_dir / f"results/{device}/host.json").read_text())
    fits, trade, comp, _ = laws.derive(runs, quality, answers, weights, host, config["laws"], config["comparisons"])
    checks = {"laws": fits, "tradeoffs": trade, "comparisons": comp}
    for name, fresh in checks.items():
        archived = pd.read_parquet(out_dir / f"results/{device}/{name}.parquet")
        try:
            pd.testing.assert_frame_equal(fresh.reset_index(drop=True), archived.reset_index(drop=True),
                                          check_dtype=False, rtol=1e-9)
        except AssertionError as exc:
            raise EdgelawError(f"replay of {archive}: {name} differs from the archived one ({str(exc)[:300]}); "
                               "the archive was made by other code or other data") from None
    say(f"replayed {archive}: {len(names)} files verified; laws ({len(fits)} parameters), trade-offs and "
        "comparisons refitted from the archived tables match the archived ones")
    return manifest
