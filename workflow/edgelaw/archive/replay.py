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

from edgelaw.core import layout
from edgelaw.laws.derive import derive, weight_bytes
from edgelaw.laws.findings import derive_findings, sizes
from edgelaw.archive.bundle import extract, read_manifest
from edgelaw.core.errors import EdgelawError
from edgelaw.core.console import say
from edgelaw.core.tables import read_many


def check_target(out_dir: Path, overwrite: bool) -> None:
    """A folder with files in it may hold someone's results: unpacking would replace them silently, so it
    takes `overwrite`; a file is never replaced by a folder."""
    if out_dir.exists() and not out_dir.is_dir():
        raise EdgelawError(f"replay: {out_dir} is a file, not a folder; give a new or empty folder as --out-dir")
    if not overwrite and out_dir.is_dir() and (held := sum(1 for p in out_dir.rglob("*") if not p.is_dir())):
        raise EdgelawError(f"replay: {out_dir} is not empty ({held} file{'s' if held != 1 else ''}); unpacking would replace files of the same "
                           "name: give a new or empty folder as --out-dir, or add --overwrite")


def required(device: str) -> list[str]:
    """What a replay reads besides the tables: an archive without them is not one `snakemake archive` made."""
    return [layout.ARCHIVE_CONFIG, layout.fill(layout.HOST, device=device),
            *(layout.fill(t, device=device) for t in layout.DERIVED)]


def replay(archive: Path, out_dir: Path, overwrite: bool = False) -> dict:
    """Unpack `archive` into `out_dir` (which must be empty or new unless `overwrite`) and refit."""
    check_target(out_dir, overwrite)
    listed = read_manifest(archive)
    device = listed.get("device")
    if lacking := [n for n in required(str(device)) if n not in listed.get("files", {})]:
        raise EdgelawError(f"replay of {archive}: it lacks {', '.join(lacking)}, so it is not an archive of "
                           f"`snakemake archive` (device {device}); nothing was unpacked")
    manifest = extract(archive, out_dir)
    names = list(manifest["files"])
    try:
        refitted = dict(zip(layout.DERIVED, _refit(out_dir, names, device)))
        archived = {t: pd.read_parquet(out_dir / layout.fill(t, device=device)) for t in layout.DERIVED}
    except (KeyError, TypeError, ValueError, OSError, yaml.YAMLError) as exc:  # pyarrow's errors are ValueErrors
        raise EdgelawError(f"replay of {archive}: cannot refit from its files ({type(exc).__name__}: {str(exc)[:200]});"
                           " the archive was not made by this pipeline's `snakemake archive`") from None
    for template, fresh in refitted.items():
        name = layout.fill(template, device=device)
        try:
            pd.testing.assert_frame_equal(fresh.reset_index(drop=True), archived[template].reset_index(drop=True),
                                          check_dtype=False, rtol=1e-9)
        except AssertionError as exc:
            raise EdgelawError(f"replay of {archive}: {name} differs from the archived one ({str(exc)[:300]}); "
                               "the archive was made by other code or other data") from None
    say(f"replayed {archive}: {len(names)} files verified; laws ({len(refitted[layout.LAWS])} parameters), trade-offs, "
        "comparisons and the size findings (crossover, bottleneck) refitted from the archived tables match the "
        "archived ones")
    return manifest


def _refit(out_dir: Path, names: list[str], device: str) -> tuple:
    config = yaml.safe_load((out_dir / layout.ARCHIVE_CONFIG).read_text())
    quality_dir = layout.quality_dir(config["quality"]["per_device"], device)

    def members(template: str, **fixed) -> list[Path]:
        template = layout.fill(template, **fixed)
        return [out_dir / n for n in names if layout.match(template, n)]

    runs = read_many(members(layout.RUNS, device=device))
    quality = read_many(members(layout.QUALITY_TABLE, quality=quality_dir))
    answers = read_many(members(layout.ANSWERS, quality=quality_dir))
    tasks = read_many(members(layout.TASKS_TABLE, quality=quality_dir))
    items = read_many(members(layout.TASK_ITEMS, quality=quality_dir))
    records = members(layout.QUANT_JSON)
    host = json.loads((out_dir / layout.fill(layout.HOST, device=device)).read_text())
    fits, trade, comp, _ = derive(runs, quality, answers, weight_bytes(records), host, config["laws"],
                                  config["comparisons"], tasks)
    return (fits, trade, comp, *derive_findings(runs, items, tasks, sizes(records), host, config["laws"]))
