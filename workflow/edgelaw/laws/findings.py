"""Study B's findings about model size, across the models of one device (issue 19).

- Finding 1 (the crossover): at equal or lower weight memory, does a larger model at low bits per weight
  beat a smaller one at high bits per weight in task accuracy? `crossover` compares every pair of models
  (smaller S, larger L, by parameter count) and every pair of their schemes where L's weights take no
  more bytes than S's, per task and pooled over the tasks, with 95% intervals paired by item: both
  configurations score the same items, so the difference is taken item by item and the items are
  resampled together (a paired bootstrap, seeded). The accuracy of a configuration against its weight
  bytes, with the frontier (the best accuracy at or below each size: `frontier`), is the report's figure.
- Finding 3 (the bottleneck): decode's roofline fraction (decode tok/s x bytes read per token / the
  host's measured copy bandwidth, `fit.roofline`) and the share of a request's time and CPU spent in
  prefill, per model x scheme x prompt length (`bottleneck`), and how they move with model size
  (`size_trend`).

Weight memory, here and in the report, is `weight_bytes`: the bytes of the GGUF's tensors as the
scheme's `.json` records them (`edgelaw.core.ggufio.summarize`), not the file's size, which adds the
metadata and the tokenizer. It is also the bytes the roofline counts as read per decoded token (the KV
cache is left out).

Pure library: numpy and pandas; the tables' schemas are CROSSOVER and BOTTLENECK in edgelaw.core.tables.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from edgelaw.core import tables
from edgelaw.core.errors import EdgelawError
from edgelaw.laws import fit

SIZE = "weight_bytes"
POOLED = "pooled"
POOLED_METRIC = "headline"
LARGER, SMALLER, UNCLEAR = "larger better", "smaller better", "no clear difference"


def sizes(quant_jsons) -> pd.DataFrame:
    """One row per model x scheme from the schemes' `.json` records: bpw, n_params, weight_bytes."""
    rows = []
    for p in quant_jsons:
        m = json.loads(Path(p).read_text())
        rows.append({"model": m["model"], "quant": m["scheme"], "bpw": float(m["bpw"]), "n_params": int(m["n_params"]),
                     SIZE: int(m["weight_bytes"])})
    return pd.DataFrame(rows, columns=["model", "quant", "bpw", "n_params", SIZE])


def model_order(size_table: pd.DataFrame) -> list[str]:
    """The models from smallest to largest parameter count (ties by name)."""
    params = size_table.groupby("model")["n_params"].max()
    return sorted(params.index, key=lambda m: (params[m], m))


# --- finding 1 -------------------------------------------------------------------------------------


def headline_scores(items: pd.DataFrame, tasks: pd.DataFrame) -> pd.DataFrame:
    """One row per model x scheme x task x item: the 0/1 score of the task's headline metric (the task
    table's `headline` row; its per-item column is `tables.item_column`)."""
    cols = ["model", "quant", "task", "metric", "item", "score"]
    if items.empty or tasks.empty:
        return pd.DataFrame(columns=cols)
    heads = tasks.loc[tasks["headline"], ["task", "metric"]].drop_duplicates()
    frames = []
    for task, metric in heads.itertuples(index=False):
        column = tables.item_column(metric)
        g = items[items["task"] == task]
        if column not in g:
            raise EdgelawError(f"finding 1: the per-item tables have no column {column!r} for {task}'s headline "
                               f"metric {metric!r}; rerun the task jobs with this version")
        frames.append(g[["model", "quant", "task", "item"]].assign(metric=metric, score=g[column].astype(float)))
    return pd.concat(frames, ignore_index=True)[cols] if frames else pd.DataFrame(columns=cols)


def paired_draws(diffs: list[np.ndarray], n_boot: int, seed: int) -> np.ndarray:
    """(n_boot, tasks) bootstrap means of each task's item-wise differences, the items of each task
    resampled on their own (a stratified, paired bootstrap: one draw picks the same items for both arms)."""
    rng = np.random.default_rng(seed)
    out = np.empty((n_boot, len(diffs)))
    for j, d in enumerate(diffs):
        out[:, j] = d[rng.integers(0, len(d), (n_boot, len(d)))].mean(axis=1)
    return out


def verdict(low: float, high: float) -> str:
    if low > 0:
        return LARGER
    if high < 0:
        return SMALLER
    return UNCLEAR


def _se(x: np.ndarray) -> float:
    return float(x.std(ddof=1) / np.sqrt(len(x))) if len(x) > 1 else float("nan")


def compare_pair(small: pd.DataFrame, large: pd.DataFrame, n_boot: int, seed: int) -> list[dict]:
    """Large minus small, per task and pooled: `small`/`large` are headline_scores rows of one configuration.

    Items are matched by (task, item); only items both scored count (`note` says when some were not).
    Pooled: the mean over the tasks both have of each task's difference (each task weighs the same, as
    the trade-offs' `task_acc`), its interval from the same draws (items resampled within each task).
    """
    both = small.merge(large, on=["task", "metric", "item"], suffixes=("_s", "_l"))
    if both.empty:
        return []
    per_task = list(both.groupby(["task", "metric"], sort=True))
    diffs = [(g["score_l"] - g["score_s"]).to_numpy(float) for _, g in per_task]
    draws = paired_draws(diffs, n_boot, seed)
    rows = []
    for j, ((task, metric), g) in enumerate(per_task):
        s, ln, d = g["score_s"].to_numpy(float), g["score_l"].to_numpy(float), diffs[j]
        lost = max(int((small["task"] == task).sum()), int((large["task"] == task).sum())) - len(g)
        low, high = np.percentile(draws[:, j], fit.CI)
        rows.append({"task": task, "metric": metric, "n_items": len(g), "small_acc": float(s.mean()),
                     "large_acc": float(ln.mean()), "diff": float(d.mean()), "diff_se": _se(d),
                     "unpaired_se": float(np.hypot(_se(s), _se(ln))), "ci_low": float(low), "ci_high": float(high),
                     "verdict": verdict(low, high),
                     "note": f"{lost} items scored by one configuration only, left out" if lost else ""})
    if len(rows) > 1:
        k = len(rows)
        low, high = np.percentile(draws.mean(axis=1), fit.CI)
        rows.append({"task": POOLED, "metric": POOLED_METRIC, "n_items": sum(r["n_items"] for r in rows),
                     "small_acc": float(np.mean([r["small_acc"] for r in rows])),
                     "large_acc": float(np.mean([r["large_acc"] for r in rows])),
                     "diff": float(np.mean([r["diff"] for r in rows])),
                     "diff_se": float(np.sqrt(sum(r["diff_se"] ** 2 for r in rows)) / k),
                     "unpaired_se": float(np.sqrt(sum(r["unpaired_se"] ** 2 for r in rows)) / k),
                     "ci_low": float(low), "ci_high": float(high), "verdict": verdict(low, high),
                     "note": f"mean over {k} tasks, each weighing the same; items resampled within each task"})
    return rows


def crossover(items: pd.DataFrame, tasks: pd.DataFrame, size_table: pd.DataFrame, n_boot: int,
              seed: int) -> pd.DataFrame:
    """Every (smaller model S, larger model L) x (S's scheme, L's scheme) with L's weight bytes <= S's:
    task accuracy of L minus S, per task and pooled, with paired 95% intervals. Empty with one model."""
    scores = headline_scores(items, tasks)
    scored = size_table.merge(scores[["model", "quant"]].drop_duplicates(), on=["model", "quant"])
    order = [m for m in model_order(size_table) if m in set(scored["model"])]
    by_config = {key: g for key, g in scores.groupby(["model", "quant"], sort=False)}
    rows = []
    for i, small_model in enumerate(order):
        for large_model in order[i + 1:]:
            small = scored[scored["model"] == small_model].sort_values(SIZE, ascending=False)
            large = scored[scored["model"] == large_model].sort_values(SIZE)
            for s in small.itertuples(index=False):
                for ln in large[large[SIZE] <= s.weight_bytes].itertuples(index=False):
                    head = {"small_model": s.model, "small_quant": s.quant, "small_bpw": s.bpw,
                            "small_params": s.n_params, "small_weight_bytes": s.weight_bytes,
                            "large_model": ln.model, "large_quant": ln.quant, "large_bpw": ln.bpw,
                            "large_params": ln.n_params, "large_weight_bytes": ln.weight_bytes}
                    rows += [{**head, **r} for r in compare_pair(by_config[(s.model, s.quant)],
                                                                 by_config[(ln.model, ln.quant)], n_boot, seed)]
    return pd.DataFrame(rows, columns=tables.CROSSOVER.names)


def frontier(df: pd.DataFrame, size: str = SIZE, acc: str = "task_acc") -> pd.Series:
    """True for the configurations with the best accuracy at or below their size: no other is as small
    or smaller and as accurate or more, one of the two strictly (the Pareto front of size vs accuracy)."""
    return fit.pareto_front(df, size, acc)


def frontier_steps(df: pd.DataFrame, size: str = SIZE, acc: str = "task_acc") -> pd.DataFrame:
    """The frontier's configurations by rising size, each with the model whose configuration it replaces
    (`after`, empty for the first): a row whose model is larger than `after`'s is a crossover."""
    front = df[frontier(df, size, acc)].sort_values(size).reset_index(drop=True)
    front["after"] = [""] + [f"{m}/{q}" for m, q in zip(front["model"][:-1], front["quant"][:-1])]
    front["after_model"] = [""] + list(front["model"][:-1])
    return front


# --- finding 3 -------------------------------------------------------------------------------------


def bottleneck(runs: pd.DataFrame, size_table: pd.DataFrame, bandwidth_gb_s: float | None) -> pd.DataFrame:
    """One row per model x scheme x prompt length of the token sweep's `ok` runs: decode tok/s, the roofline
    fraction, and the prefill's share of the request's time (`ttft_s / (t_end - t_start)`) and CPU
    (`cpu_core_s_prefill / (cpu_core_s_prefill + cpu_core_s_decode)`, null for a run where either is
    below 0), each a mean over the runs with its standard error."""
    cols = tables.BOTTLENECK.names
    tokens = runs[(runs["status"] == "ok") & (runs["workload"] == "tokens")] if len(runs) else runs
    if tokens.empty:
        return pd.DataFrame(columns=cols)
    t = tokens.merge(size_table[["model", "quant", "n_params", SIZE]], on=["model", "quant"], how="left")
    # A scheme without a .json record has no size: its fraction stays null, the others are computed.
    t["roofline_fraction"] = (fit.roofline(t["decode_tps"], t[SIZE].astype(float), bandwidth_gb_s * 1e9)
                              if bandwidth_gb_s else np.nan)
    wall = t["t_end"] - t["t_start"]
    t["prefill_time_share"] = t["ttft_s"] / wall.where(wall > 0)
    # The CPU AUCs are above the idle baseline: on a short run of a tiny model one can come out below 0
    # (noise), and a share of such a split means nothing, so it is left null.
    pre, dec = t["cpu_core_s_prefill"], t["cpu_core_s_decode"]
    t["prefill_cpu_share"] = (pre / (pre + dec)).where((pre >= 0) & (dec >= 0) & (pre + dec > 0))
    rows = []
    for (model, quant, x), g in t.groupby(["model", "quant", "x"], sort=True):
        row = {"model": model, "quant": quant, "bpw": float(g["bpw"].iloc[0]), "n_params": g["n_params"].iloc[0],
               SIZE: g[SIZE].iloc[0], "x": int(x), "n_runs": len(g), "decode_tps": float(g["decode_tps"].mean())}
        for col in ("roofline_fraction", "prefill_time_share", "prefill_cpu_share"):
            v = g[col].to_numpy(float)
            v = v[np.isfinite(v)]
            row[col] = float(v.mean()) if len(v) else np.nan
            row[f"{col}_se"] = _se(v) if len(v) else np.nan
        rows.append(row)
    out = pd.DataFrame(rows, columns=cols)
    return out.astype({"n_params": "Int64", SIZE: "Int64"})


def spearman(x, y) -> float:
    """Rank correlation (average ranks for ties); NaN with fewer than two distinct values on either side."""
    x, y = pd.Series(x, dtype=float), pd.Series(y, dtype=float)
    if x.nunique() < 2 or y.nunique() < 2:
        return float("nan")
    return float(np.corrcoef(x.rank(), y.rank())[0, 1])


def size_trend(table: pd.DataFrame, x_ref: int, measure: str = "roofline_fraction") -> pd.DataFrame:
    """Per scheme that two or more models have at `x_ref` prompt tokens: `measure` of its smallest and its
    largest model (by parameters), their difference (largest minus smallest) with a normal 95% interval
    from the two standard errors (the runs of two models are independent), and the rank correlation of
    `measure` with parameter count over the scheme's models."""
    cols = ["quant", "models", "smallest", "largest", "small_value", "large_value", "diff", "ci_low", "ci_high",
            "rho"]
    at = table[(table["x"] == x_ref) & table[measure].notna()] if len(table) else table
    rows = []
    for quant, g in (at.groupby("quant", sort=False) if len(at) else []):
        g = g.sort_values(["n_params", "model"])
        if g["model"].nunique() < 2:
            continue
        s, ln = g.iloc[0], g.iloc[-1]
        diff = float(ln[measure] - s[measure])
        half = 1.96 * float(np.hypot(s[f"{measure}_se"], ln[f"{measure}_se"]))
        rows.append({"quant": quant, "models": len(g), "smallest": s["model"], "largest": ln["model"],
                     "small_value": float(s[measure]), "large_value": float(ln[measure]), "diff": diff,
                     "ci_low": diff - half, "ci_high": diff + half, "rho": spearman(g["n_params"], g[measure])})
    return pd.DataFrame(rows, columns=cols)


def derive_findings(runs: pd.DataFrame, items: pd.DataFrame, tasks: pd.DataFrame, size_table: pd.DataFrame,
                    host: dict, settings: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The laws job's finding tables: crossover (finding 1) and bottleneck (finding 3), in a canonical
    row order whatever the order the inputs were read in (a replay reproduces them exactly)."""
    key = ["model", "quant", "task", "item"]
    items = items.sort_values(key, ignore_index=True) if len(items) else items
    runs = runs.sort_values(["model", "quant", "workload", "run_id"], ignore_index=True) if len(runs) else runs
    size_table = size_table.sort_values(["model", "quant"], ignore_index=True)
    bandwidth = host.get("memory_bandwidth", {}).get("copy_gb_s")
    return (crossover(items, tasks, size_table, settings["n_boot"], settings["seed"]),
            bottleneck(runs, size_table, bandwidth))
