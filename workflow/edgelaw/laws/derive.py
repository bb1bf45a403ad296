"""The studies' findings from one device's tables: which law is fitted to which columns.

- cost vs prompt tokens, per model x scheme (study A, law 1): CPU core-seconds, memory GB-seconds and
  energy, whole run and prefill / decode apart;
- cost vs bits per weight, per model (study B, finding 2): peak memory, CPU core-seconds and energy at
  one prompt length (`laws.at_tokens`, default the longest measured);
- quality vs bits per weight, per model (study B's threshold): a hinge, flat above the threshold;
- task accuracy vs bits per weight, per model and task x metric (study B's threshold as it measured it,
  in lm-evaluation-harness accuracy): the same hinge;
- cost vs resolution (study A, law 2): a hinge against nominal pixels, flat above the clamp, for the
  VLM workload's runs: `resolution_knee` for the main aspect series, `resolution_knee_square` for the
  square one.

Besides the fits: a trade-off table (one row per model x scheme: cost at `at_tokens`, quality, mean task
accuracy, the decode roofline and the Pareto fronts) and the comparisons the config names. Fit functions are in fit.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from edgelaw.core import tables
from edgelaw.laws import fit
from edgelaw.core.errors import EdgelawError
from edgelaw.core.console import say

TOKEN_COSTS = ["cpu_core_s", "cpu_core_s_prefill", "cpu_core_s_decode", "mem_gb_s", "energy_j",
               "energy_prefill_j", "energy_decode_j"]
BPW_COSTS = ["peak_rss_bytes", "cpu_core_s", "energy_j"]
QUALITY_MEASURES = ["top1_pct", "ppl", "kld_mean", "sem_base"]
KNEE_COSTS = ["cpu_core_s", "energy_j"]
COMPARED_COSTS = ["cpu_core_s", "mem_gb_s", "energy_j", "peak_rss_bytes", "decode_tps"]


def _failed(law: str, x: str, y: str, model, quant, kind: str, exc: Exception) -> dict:
    return {"law": law, "x": x, "y": y, "model": model, "quant": quant, "kind": kind, "param": "", "value": np.nan,
            "ci_low": np.nan, "ci_high": np.nan, "r2": np.nan, "n": 0, "rows": "[]", "note": f"not fitted: {exc}"}


def _fit(kind: str, df: pd.DataFrame, x: str, y: str, law: str, model=None, quant=None, **kw) -> list[dict]:
    fn = fit.fit_linear if kind == "linear" else fit.fit_hinge
    try:
        return fn(df, x, y, law=law, model=model, quant=quant, **kw).to_rows()
    except EdgelawError as exc:
        return [_failed(law, x, y, model, quant, kind, exc)]


def knee_law(series: str) -> str:
    return "resolution_knee_square" if series == "1:1" else "resolution_knee"


def ok_runs(runs: pd.DataFrame, workload: str) -> pd.DataFrame:
    return runs[(runs["status"] == "ok") & (runs["workload"] == workload)]


def at_tokens(runs: pd.DataFrame, wanted: int | None) -> int:
    tokens = ok_runs(runs, "tokens")
    if tokens.empty:
        if len(ok_runs(runs, "resolution")):
            return 0  # a VLM-only experiment: no token-sweep tables, the knee still fits
        raise EdgelawError("no successful runs to fit; check the bench jobs' logs")
    if wanted is None:
        return int(tokens["x"].max())
    if wanted not in set(tokens["x"]):
        raise EdgelawError(f"laws.at_tokens {wanted} was not measured; use one of {sorted(set(tokens['x']))}")
    return wanted


def task_label(task: str, metric: str) -> str:
    """The `y` of a task's law and the `metric` of its comparisons: task/metric (lm-eval's metric name)."""
    return f"{task}/{metric}"


def task_accuracy(tasks: pd.DataFrame) -> pd.DataFrame:
    """One row per model x scheme: the mean of the tasks' headline metrics (each task weighs the same)
    and its standard error (the tasks' items are independent)."""
    cols = ["model", "quant", "task_acc", "task_acc_se"]
    if tasks.empty:
        return pd.DataFrame(columns=cols)
    head = tasks[tasks["headline"]]
    agg = head.groupby(["model", "quant"]).agg(task_acc=("value", "mean"), k=("value", "size"),
                                               ss=("stderr", lambda e: float((e ** 2).sum())))
    agg["task_acc_se"] = np.sqrt(agg["ss"]) / agg["k"]
    return agg.reset_index()[cols]


def fit_all(runs: pd.DataFrame, quality: pd.DataFrame, x_ref: int, n_boot: int, seed: int,
            tasks: pd.DataFrame | None = None) -> pd.DataFrame:
    kw = {"n_boot": n_boot, "seed": seed}
    rows: list[dict] = []
    tokens = ok_runs(runs, "tokens")
    for (model, quant), g in tokens.groupby(["model", "quant"], sort=True):
        for y in TOKEN_COSTS:
            rows += _fit("linear", g, "x", y, "cost_vs_tokens", model, quant, **kw)
    at_ref = tokens[tokens["x"] == x_ref]
    for model, g in at_ref.groupby("model", sort=True):
        for y in BPW_COSTS:
            rows += _fit("linear", g, "bpw", y, f"cost_vs_bpw_at_{x_ref}_tokens", model, **kw)
    for model, g in (quality.groupby("model", sort=True) if len(quality) else []):
        for y in [m for m in QUALITY_MEASURES if g[m].notna().any()]:
            rows += _fit("hinge", g, "bpw", y, "quality_vs_bpw", model, id_col="quant", **kw)
    tasks = tasks if tasks is not None else pd.DataFrame()
    for (model, task, metric), g in (tasks.groupby(["model", "task", "metric"], sort=True) if len(tasks) else []):
        y = task_label(task, metric)
        rows += _fit("hinge", g.rename(columns={"value": y}), "bpw", y, "task_vs_bpw", model, id_col="quant", **kw)
    images = ok_runs(runs, "resolution") if "image_series" in runs else runs.iloc[0:0]
    # Against nominal pixels (x): the knee is where the model's preprocessing starts to scale images
    # down. One fit per series: the two aspect ratios round to the token grid differently at the clamp.
    for (model, quant, series), g in images.groupby(["model", "quant", "image_series"], sort=True):
        for y in KNEE_COSTS:
            rows += _fit("hinge", g, "x", y, knee_law(series), model, quant, **kw)
    return pd.DataFrame(rows, columns=tables.LAWS.names)


def tradeoffs(runs: pd.DataFrame, quality: pd.DataFrame, weights: dict[tuple[str, str], int], x_ref: int,
              bandwidth_gb_s: float | None, tasks: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per model x scheme: mean cost at x_ref tokens, quality, task accuracy, roofline fraction,
    Pareto fronts."""
    tokens = ok_runs(runs, "tokens")
    cost = (tokens[tokens["x"] == x_ref].groupby(["model", "quant"])
            .agg(bpw=("bpw", "first"), cpu_core_s=("cpu_core_s", "mean"), mem_gb_s=("mem_gb_s", "mean"),
                 energy_j=("energy_j", "mean"), peak_rss_bytes=("peak_rss_bytes", "max"),
                 prefill_tps=("prefill_tps", "mean"), decode_tps=("decode_tps", "mean"), n_runs=("run_id", "count"))
            .reset_index())
    cost["x_ref"] = x_ref
    cost["weight_bytes"] = [weights.get((m, q), np.nan) for m, q in zip(cost["model"], cost["quant"])]
    if bandwidth_gb_s:
        cost["roofline_tps"] = bandwidth_gb_s * 1e9 / cost["weight_bytes"]
        cost["roofline_fraction"] = fit.roofline(cost["decode_tps"], cost["weight_bytes"], bandwidth_gb_s * 1e9)
    else:
        cost["roofline_tps"] = cost["roofline_fraction"] = np.nan
    keep = ["model", "quant", "ppl", "ppl_se", "kld_mean", "top1_pct", "sem_ref", "sem_base"]
    table = cost.merge(quality[keep] if len(quality) else pd.DataFrame(columns=keep), on=["model", "quant"], how="left")
    acc = task_accuracy(tasks if tasks is not None else pd.DataFrame())
    table = table.merge(acc, on=["model", "quant"], how="left")
    table[["task_acc", "task_acc_se"]] = table[["task_acc", "task_acc_se"]].apply(pd.to_numeric)
    table["pareto_cpu"] = fit.pareto_front(table, "cpu_core_s", "ppl", higher_quality_is_better=False)
    table["pareto_memory"] = fit.pareto_front(table, "peak_rss_bytes", "ppl", higher_quality_is_better=False)
    table["pareto_energy"] = fit.pareto_front(table, "energy_j", "task_acc")
    return table.sort_values(["model", "bpw"], ascending=[True, False]).reset_index(drop=True)


def arm_pairs(pair: dict, models: list[str]) -> list[tuple[tuple[str, str], tuple[str, str]]]:
    """The (baseline, variant) arms of a config pair: 'model/quant' names one, a bare 'quant' every model."""
    def arms(arm: str) -> list[tuple[str, str]]:
        return [tuple(arm.split("/", 1))] if "/" in arm else [(m, arm) for m in models]

    base, variant = arms(pair["baseline"]), arms(pair["variant"])
    if len(base) == 1 or len(variant) == 1:
        return [(b, v) for b in base for v in variant]
    return [(b, v) for b, v in zip(base, variant) if b[0] == v[0]]


def comparisons(runs: pd.DataFrame, quality: pd.DataFrame, answers: pd.DataFrame, pairs: list[dict], x_ref: int,
                n_boot: int, seed: int, tasks: pd.DataFrame | None = None) -> pd.DataFrame:
    """% change from baseline to variant of each cost (bootstrap over runs at x_ref), each quality measure
    and each task's metrics."""
    tokens = ok_runs(runs, "tokens")
    tokens = tokens[tokens["x"] == x_ref]
    models = sorted(tokens["model"].unique())
    rows = []
    for pair in pairs:
        for (bm, bq), (vm, vq) in arm_pairs(pair, models):
            b = tokens[(tokens["model"] == bm) & (tokens["quant"] == bq)]
            v = tokens[(tokens["model"] == vm) & (tokens["quant"] == vq)]
            label = {"baseline": f"{bm}/{bq}", "variant": f"{vm}/{vq}"}
            if b.empty or v.empty:
                # A scheme that a model lacks, or whose runs all failed: nothing to compare, the rest goes on.
                say(f"comparisons: skipped {label['variant']} vs {label['baseline']}: no successful runs at "
                    f"{x_ref} tokens for {label['baseline'] if b.empty else label['variant']}")
                continue
            for metric in COMPARED_COSTS:
                if b[metric].isna().all() or v[metric].isna().all():
                    continue
                c = fit.percent_change(b[metric], v[metric], n_boot=n_boot, seed=seed)
                rows.append({**label, "metric": metric, "baseline_value": float(b[metric].mean()),
                             "variant_value": float(v[metric].mean()), "change_pct": c["value"], "ci_low": c["ci_low"],
                             "ci_high": c["ci_high"], "n_base": c["n_base"], "n_variant": c["n_variant"],
                             "method": f"bootstrap over runs at {x_ref} tokens"})
            rows += _quality_changes(quality, answers, (bm, bq), (vm, vq), label, n_boot, seed)
            rows += _task_changes(tasks if tasks is not None else pd.DataFrame(), (bm, bq), (vm, vq), label)
    return pd.DataFrame(rows, columns=tables.COMPARISONS.names)


def _normal_change(label: dict, metric: str, b: float, b_se: float, v: float, v_se: float, n_b: int, n_v: int,
                   method: str) -> dict:
    """% change with a normal interval from the two standard errors, treated as independent (conservative
    where the two sides are scored on the same tokens or items, which correlate)."""
    change = 100 * (v - b) / b
    rel_se = 100 * np.hypot(v_se, v / b * b_se) / b
    return {**label, "metric": metric, "baseline_value": float(b), "variant_value": float(v),
            "change_pct": float(change), "ci_low": float(change - 1.96 * rel_se),
            "ci_high": float(change + 1.96 * rel_se), "n_base": int(n_b), "n_variant": int(n_v), "method": method}


def _task_changes(tasks: pd.DataFrame, base, variant, label) -> list[dict]:
    """Each task x metric both arms have: % change of the accuracy (a baseline at 0 has none: skipped)."""
    if tasks.empty:
        return []
    b = tasks[(tasks["model"] == base[0]) & (tasks["quant"] == base[1])].set_index(["task", "metric"])
    v = tasks[(tasks["model"] == variant[0]) & (tasks["quant"] == variant[1])].set_index(["task", "metric"])
    out = []
    for key in [k for k in b.index if k in v.index]:
        rb, rv = b.loc[key], v.loc[key]
        if rb["value"] == 0:
            say(f"comparisons: {task_label(*key)} of {label['variant']} vs {label['baseline']} skipped: the "
                "baseline's accuracy is 0, so a % change is undefined")
            continue
        out.append(_normal_change(label, task_label(*key), rb["value"], rb["stderr"], rv["value"], rv["stderr"],
                                  rb["n_items"], rv["n_items"], "normal approximation from standard errors (items)"))
    return out


def _quality_changes(quality, answers, base, variant, label, n_boot, seed) -> list[dict]:
    if quality.empty:
        return []

    def row(model_quant):
        hit = quality[(quality["model"] == model_quant[0]) & (quality["quant"] == model_quant[1])]
        return hit.iloc[0] if len(hit) else None

    b, v = row(base), row(variant)
    if b is None or v is None:
        return []
    out = []
    for metric, se in (("ppl", "ppl_se"), ("top1_pct", "top1_pct_se")):
        out.append(_normal_change(label, metric, b[metric], b[se], v[metric], v[se], b["n_tokens"], v["n_tokens"],
                                  "normal approximation from standard errors"))
    if len(answers):
        sb = answers[(answers["model"] == base[0]) & (answers["quant"] == base[1])]["sim_ref"]
        sv = answers[(answers["model"] == variant[0]) & (answers["quant"] == variant[1])]["sim_ref"]
        if len(sb) and len(sv):
            c = fit.percent_change(sb, sv, n_boot=n_boot, seed=seed)
            out.append({**label, "metric": "sem_ref", "baseline_value": float(sb.mean()),
                        "variant_value": float(sv.mean()), "change_pct": c["value"], "ci_low": c["ci_low"],
                        "ci_high": c["ci_high"], "n_base": c["n_base"], "n_variant": c["n_variant"],
                        "method": "bootstrap over prompts (untrimmed means)"})
    return out


def weight_bytes(quant_jsons) -> dict[tuple[str, str], int]:
    """(model, scheme) -> bytes of weights, from the schemes' .json records (the roofline's bytes per token)."""
    metas = [json.loads(Path(p).read_text()) for p in quant_jsons]
    return {(m["model"], m["scheme"]): m["weight_bytes"] for m in metas}


def derive(runs: pd.DataFrame, quality: pd.DataFrame, answers: pd.DataFrame, weights: dict, host: dict,
           settings: dict, pairs: list[dict], tasks: pd.DataFrame | None = None
           ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, int]:
    """Everything the laws job writes, from its input tables: fits, trade-offs, comparisons (and x_ref)."""
    # A canonical row order: the fits (their row lists, their row bootstraps) must not depend on the order
    # in which the tables were read, so that a replay reproduces them exactly.
    runs = runs.sort_values(["model", "quant", "workload", "run_id"], ignore_index=True) if len(runs) else runs
    quality = quality.sort_values(["model", "quant"], ignore_index=True) if len(quality) else quality
    answers = answers.sort_values(["model", "quant", "prompt_id"], ignore_index=True) if len(answers) else answers
    tasks = tasks if tasks is not None else pd.DataFrame()
    tasks = tasks.sort_values(["model", "quant", "task", "metric"], ignore_index=True) if len(tasks) else tasks
    x_ref = at_tokens(runs, settings.get("at_tokens"))
    n_boot, seed = settings["n_boot"], settings["seed"]
    fits = fit_all(runs, quality, x_ref, n_boot, seed, tasks)
    bandwidth = host.get("memory_bandwidth", {}).get("copy_gb_s")
    trade = tradeoffs(runs, quality, weights, x_ref, bandwidth, tasks)
    comp = comparisons(runs, quality, answers, pairs, x_ref, n_boot, seed, tasks)
    return fits, trade, comp, x_ref
