"""Task accuracy through the real workflow on the tiny model: tables, law, trade-offs, report, caching."""

import json

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from edgelaw.core import tables
from edgelaw.quality.taskdata import SOURCES

from conftest import TINY, tiny_config

pytestmark = pytest.mark.slow

TASKS = {"arc_easy": {"items": 4}, "winogrande": {"items": 4}}
SCHEMES = ["F16", "Q8_0", "Q4_K_M", "Q2_K"]  # four BPWs: a hinge needs four
# A second, larger model at one low-BPW scheme: study B's size findings (crossover, bottleneck) need two.
WIDE = {"source": "synthetic", "synthetic": {**TINY, "n_embd": 512, "n_ff": 1024, "seed": 1}, "schemes": ["Q2_K"]}


def tasks_config(**tasks):
    config = tiny_config(tasks={"sets": {**TASKS, **tasks}})
    config["schemes"] = {q: {"ftype": q} for q in SCHEMES}
    config["models"]["wide"] = dict(WIDE)
    config["bench"].update(prompt_tokens=[16], repetitions=1, warmup=0)
    return config


def test_task_jobs_tables_law_report_and_caching(workflow):
    wd = workflow.workdir
    config = tasks_config()
    workflow.write_config(config)
    workflow.run()
    folder = wd / "results/quality/tiny/tasks"
    tasks = tables.read_many([folder / f"{q}.parquet" for q in SCHEMES])
    assert pq.read_schema(folder / "Q8_0.parquet").names == tables.TASKS.names
    assert sorted(zip(tasks["quant"], tasks["task"], tasks["metric"])) == sorted(
        (q, t, m) for q in SCHEMES for t, m in [("arc_easy", "acc"), ("arc_easy", "acc_norm"), ("winogrande", "acc")])
    assert (tasks["n_items"] == 4).all() and (tasks["shots"] == 0).all() and (tasks["split"] == "validation").all()
    assert set(tasks.loc[tasks["headline"], "metric"]) == {"acc"}
    arc = tasks[tasks["task"] == "arc_easy"].iloc[0]
    assert arc["n_docs"] == 570 and arc["licence"] == SOURCES["arc_easy"].licence
    assert "lm-eval scores the test split" in arc["notes"]
    meta = tables.provenance(folder / "Q2_K.parquet")
    assert meta["gguf_sha256"] and [d["task"] for d in meta["data"]] == list(TASKS)
    assert meta["config"]["tasks"]["sets"] == {k: {"items": 4, "shots": None, "jsonl": None} for k in TASKS}

    items = tables.read_many([folder / "items" / f"{q}.parquet" for q in SCHEMES])
    assert pq.read_schema(folder / "items/F16.parquet").names == tables.TASK_ITEMS.names
    by_scheme = items.groupby("quant")
    assert len(by_scheme) == 4 and all(len(g) == 8 for _, g in by_scheme)
    # the same sampled items for every scheme, each with a log-likelihood per choice
    assert len({tuple(zip(g["task"], g["item"])) for _, g in by_scheme}) == 1
    n_choices = items["loglik"].map(lambda s: len(json.loads(s)))
    assert (n_choices[items["task"] == "arc_easy"] >= 3).all() and (n_choices[items["task"] == "winogrande"] == 2).all()
    assert (items["acc"] == (items["pred"] == items["gold"]).astype(float)).all()
    for (quant, task), g in items.groupby(["quant", "task"]):
        row = tasks[(tasks["quant"] == quant) & (tasks["task"] == task) & (tasks["metric"] == "acc")].iloc[0]
        assert row["value"] == pytest.approx(g["acc"].mean())
        assert row["stderr"] == pytest.approx(g["acc"].std(ddof=1) / 2, nan_ok=True)

    laws = pd.read_parquet(wd / "results/auto/laws.parquet")
    knees = laws[(laws["law"] == "task_vs_bpw") & (laws["param"] == "knee")]
    assert set(knees["y"]) == {"arc_easy/acc", "arc_easy/acc_norm", "winogrande/acc"}
    bpw = tasks["bpw"]
    assert knees["value"].between(bpw.min(), bpw.max()).all() and (knees["n"] == 4).all()
    assert all(sorted(json.loads(r)) == sorted(SCHEMES) for r in knees["rows"])

    both = pd.read_parquet(wd / "results/auto/tradeoffs.parquet")
    assert both["pareto_energy"].any()  # over both models: wide/Q2_K may hold the front alone
    trade = both[both["model"] == "tiny"].set_index("quant")
    head = tasks[tasks["headline"]].groupby("quant")
    np.testing.assert_allclose(trade.loc[SCHEMES, "task_acc"], head["value"].mean()[SCHEMES])
    np.testing.assert_allclose(trade.loc[SCHEMES, "task_acc_se"],
                               np.sqrt(head["stderr"].apply(lambda e: (e ** 2).sum()))[SCHEMES] / 2)

    comp = pd.read_parquet(wd / "results/auto/comparisons.parquet")
    for variant in ["Q8_0", "Q4_K_M"]:
        for t, m in [("arc_easy", "acc"), ("arc_easy", "acc_norm"), ("winogrande", "acc")]:
            b, v = (tasks[(tasks["quant"] == q) & (tasks["task"] == t) & (tasks["metric"] == m)].iloc[0]
                    for q in ("F16", variant))
            hit = comp[(comp["variant"] == f"tiny/{variant}") & (comp["metric"] == f"{t}/{m}")]
            if b["value"] == 0:
                assert hit.empty  # no % change from 0
            else:
                assert hit["change_pct"].iloc[0] == pytest.approx(100 * (v["value"] - b["value"]) / b["value"])

    check_size_findings(wd, items)

    report = wd / "results/auto/report"
    summary = (report / "summary.md").read_text()
    assert "## Task accuracy against bits per weight" in summary
    assert "arc_easy/acc (n 4)" in summary and "winogrande: 4 of 1267 documents, 0 shots" in summary
    assert "task accuracy (%)" in summary and "Pareto front (energy vs task accuracy)" in summary
    assert summary.index("## Answer: the best model and scheme") < summary.index("## Host and runs")
    assert (report / "tasks_vs_bpw.png").stat().st_size > 10_000
    assert 'id="tasks_vs_bpw"' in (report / "index.html").read_text()
    assert workflow.dry_run_jobs() == {}

    # The answer's budgets rerun the report only.
    workflow.write_config({**tasks_config(), "budgets": {"peak_memory_mb": 500, "min_accuracy_pct": 30}})
    assert workflow.dry_run_jobs() == {"report": 1, "all": 1}
    # The task config reruns the task jobs and what reads them, nothing else.
    workflow.write_config(tasks_config(arc_easy={"items": 5}))
    assert workflow.dry_run_jobs() == {"tasks": 5, "laws": 1, "report": 1, "all": 1}
    workflow.write_config(tasks_config(piqa={"items": 3, "shots": 1}))
    assert workflow.dry_run_jobs() == {"tasks": 5, "laws": 1, "report": 1, "all": 1}
    # A model with quality off has no task jobs; the laws and the report lose its tables.
    off = tasks_config()
    off["models"]["tiny"]["quality"] = False
    workflow.write_config(off)
    assert workflow.dry_run_jobs() == {"laws": 1, "report": 1, "all": 1}
    # An unknown task or a missing file of documents stops before any job, with the fix named.
    workflow.write_config(tasks_config(arc_hard={}))
    proc = workflow.run("--dry-run", check=False)
    assert proc.returncode != 0 and "unknown task 'arc_hard'; the known tasks are arc_easy" in proc.stdout + proc.stderr
    workflow.write_config(tasks_config(piqa={"jsonl": "mine.jsonl"}))
    proc = workflow.run("--dry-run", check=False)
    assert (wd / "results/quality/tiny/tasks/F16.parquet").exists()  # nothing lost
    assert proc.returncode != 0 and "tasks.sets.piqa.jsonl: mine.jsonl is not a file; fix the path" in proc.stdout + proc.stderr


def check_size_findings(wd, items):
    """Study B's size findings from the real run: tiny (smaller) against wide/Q2_K wherever wide's weights
    take no more bytes, paired over the same items; the roofline and prefill split of every scheme."""
    records = {(m, q): json.loads((wd / f"results/models/{m}/{q}.json").read_text())
               for m, q in [("tiny", q) for q in SCHEMES] + [("wide", "Q2_K")]}
    wide = records[("wide", "Q2_K")]
    assert wide["n_params"] > records[("tiny", "F16")]["n_params"]
    cheaper = {q for q in SCHEMES if records[("tiny", q)]["weight_bytes"] >= wide["weight_bytes"]}
    assert "F16" in cheaper  # (the synthetic vocabulary keeps wide/Q2_K above tiny/Q8_0)
    cross = pd.read_parquet(wd / "results/auto/crossover.parquet")
    assert list(cross.columns) == tables.CROSSOVER.names
    assert set(cross["small_quant"]) == cheaper and set(cross["large_model"] + "/" + cross["large_quant"]) == {"wide/Q2_K"}
    assert sorted(cross["task"].unique()) == ["arc_easy", "pooled", "winogrande"] and len(cross) == 3 * len(cheaper)
    assert ((cross["ci_low"] <= cross["diff"]) & (cross["diff"] <= cross["ci_high"])).all()
    per_task = cross[cross["task"] != "pooled"]
    assert (per_task["n_items"] == 4).all() and (cross.loc[cross["task"] == "pooled", "n_items"] == 8).all()
    wide_items = tables.read_many([wd / "results/quality/wide/tasks/items/Q2_K.parquet"])
    for r in per_task.itertuples():
        small = items[(items["quant"] == r.small_quant) & (items["task"] == r.task)].set_index("item")["acc"]
        large = wide_items[wide_items["task"] == r.task].set_index("item")["acc"]
        assert sorted(small.index) == sorted(large.index)  # the same items, paired
        assert r.small_acc == pytest.approx(small.mean()) and r.diff == pytest.approx((large - small).mean())
    neck = pd.read_parquet(wd / "results/auto/bottleneck.parquet")
    assert list(neck.columns) == tables.BOTTLENECK.names
    assert set(zip(neck["model"], neck["quant"])) == set(records) and (neck["x"] == 16).all()
    assert (neck["roofline_fraction"] > 0).all() and neck["prefill_time_share"].between(0, 1).all()
    cpu = neck["prefill_cpu_share"].dropna()  # (null where a run's CPU above idle came out below 0: noise)
    assert cpu.between(0, 1).all()
    assert (neck["weight_bytes"] == [records[(m, q)]["weight_bytes"] for m, q in zip(neck["model"], neck["quant"])]).all()
    summary = (wd / "results/auto/report/summary.md").read_text()
    assert f"Pairs with the larger model's weights at or below the smaller model's: {len(cheaper)}." in summary
    assert "## Where decoding's bottleneck lies as models shrink (study B, finding 3)" in summary
    assert "roofline fraction from the smallest to the largest model, per scheme both have: Q2_K: tiny" in summary
    for figure in ("accuracy_vs_weight_bytes", "bottleneck_vs_size"):
        assert (wd / f"results/auto/report/{figure}.png").stat().st_size > 10_000
