"""The report's section on study B's findings about model size: its words and its two figures.

Finding 1 reads the crossover table (edgelaw.laws.findings.crossover) and the trade-offs' accuracy and
weight bytes per model x scheme; finding 3 reads the bottleneck table (edgelaw.laws.findings.bottleneck).
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402
import pandas as pd  # noqa: E402

from edgelaw.laws import findings  # noqa: E402
from edgelaw.report.figures import _empty  # noqa: E402

SHOWN = 12  # settled pairs listed in words; the table has them all
WEIGHT_WORDS = "weight bytes: the bytes of the GGUF's tensors, not the file's size"


def _mb(b) -> str:
    mb = b / 1e6
    return f"{mb:,.0f} MB" if mb >= 100 else f"{mb:.3g} MB"


def _acc(v: float) -> str:
    return f"{100 * v:.1f}%"


def _pts(v: float) -> str:
    return f"{100 * v:+.1f} points"


def _ci(low: float, high: float) -> str:
    """A 95% interval of a difference in points (no interval with one run a side)."""
    if pd.isna(low) or pd.isna(high):
        return "no interval: one run a side"
    return f"95% CI {100 * low:+.1f} to {100 * high:+.1f}"


def _config(model: str, quant: str, size: float, acc: float) -> str:
    return f"{model}/{quant} ({_mb(size)}, {_acc(acc)})"


def _scored(trade: pd.DataFrame) -> pd.DataFrame:
    if trade.empty or "task_acc" not in trade:
        return trade.iloc[0:0]
    return trade.dropna(subset=["task_acc", "weight_bytes"])


def crossover_lines(cross: pd.DataFrame, trade: pd.DataFrame, neck: pd.DataFrame) -> list[str]:
    """Finding 1 in words: the frontier of accuracy against weight bytes and where it passes to a larger
    model, then the pairs at equal or lower weight bytes and which of them an interval settles."""
    lines = ["", "## A larger model at low BPW against a smaller one at high BPW (study B, finding 1)", ""]
    scored = _scored(trade)
    models = list(dict.fromkeys(scored["model"])) if len(scored) else []
    if len(models) < 2:
        which = f" ({models[0]})" if models else ""
        return lines + [f"This experiment scores tasks on {len(models)} model{'s' * (len(models) != 1)}{which}: "
                        "finding 1 compares models of different sizes and needs two or more with task accuracy "
                        "(`tasks.sets` and the models' `quality`). The figure shows the schemes there are."]
    steps = findings.frontier_steps(scored)
    rank = {m: i for i, m in enumerate(_by_size(scored, cross, neck))}
    path = "; ".join(_config(r.model, r.quant, r.weight_bytes, r.task_acc) for r in steps.itertuples())
    lines += [f"Mean task accuracy against weight memory ({WEIGHT_WORDS}) for every model x scheme. The frontier "
              f"(the best accuracy at or below each size), by rising size: {path}.", ""]
    ups = [r for r in steps.itertuples() if r.after_model and rank[r.model] > rank[r.after_model]]
    downs = [r for r in steps.itertuples() if r.after_model and rank[r.model] < rank[r.after_model]]
    if ups:
        lines.append("Where the frontier passes to a larger model (the crossover on this device): " + "; ".join(
            f"at {_mb(r.weight_bytes)}, {r.model}/{r.quant} ({_acc(r.task_acc)}) takes over from {r.after}"
            for r in ups) + ".")
    else:
        held = ", ".join(dict.fromkeys(steps["model"]))
        lines.append(f"The frontier never passes from a smaller model to a larger one as size rises: it is held "
                     f"by {held} throughout.")
    if downs:
        lines.append("It passes back to a smaller model at: " + "; ".join(
            f"{_mb(r.weight_bytes)} ({r.model}/{r.quant} after {r.after})" for r in downs) + ".")
    lines.append("These are point estimates; how sure each comparison is follows.")
    pooled = _headline_rows(cross)
    if pooled.empty:
        return lines + ["", "No pair of configurations has the larger model's weights at or below the smaller "
                        "model's, so finding 1 has nothing to compare here."]
    counts = pooled["verdict"].value_counts()
    what = "pooled over the tasks" if (cross["task"] == findings.POOLED).any() else "on the one task"
    lines += ["", f"Pairs with the larger model's weights at or below the smaller model's: {len(pooled)}. Accuracy "
              f"difference larger minus smaller, {what}, with a 95% interval paired by item (both score the same "
              "items; a seeded bootstrap over items, within each task when pooled, each task weighing the same): "
              f"larger model better in {int(counts.get(findings.LARGER, 0))} (interval above 0), smaller model "
              f"better in {int(counts.get(findings.SMALLER, 0))} (below 0), not settled in "
              f"{int(counts.get(findings.UNCLEAR, 0))} (the interval holds 0).", ""]
    lines += ["| smaller model | larger model | pairs | larger better | smaller better | not settled | "
              "lowest-BPW larger vs highest-BPW smaller: difference (95% CI) |",
              "| --- | --- | --- | --- | --- | --- | --- |"]
    for (sm, lm), g in pooled.groupby(["small_model", "large_model"], sort=False):
        c = g["verdict"].value_counts()
        r = g.sort_values(["large_bpw", "small_bpw"], ascending=[True, False]).iloc[0]
        lines.append(f"| {sm} | {lm} | {len(g)} | {int(c.get(findings.LARGER, 0))} | {int(c.get(findings.SMALLER, 0))}"
                     f" | {int(c.get(findings.UNCLEAR, 0))} | {lm}/{r.large_quant} ({r.large_bpw:.2f} BPW, "
                     f"{_mb(r.large_weight_bytes)}) vs {sm}/{r.small_quant} ({r.small_bpw:.2f} BPW, "
                     f"{_mb(r.small_weight_bytes)}): {_pts(r['diff'])} ({_ci(r.ci_low, r.ci_high)}) |")
    for r in ups:  # how sure each crossover is: the larger configuration against the smaller ones as big or bigger
        vs = pooled[(pooled["large_model"] == r.model) & (pooled["large_quant"] == r.quant)]
        if len(vs):
            c = vs["verdict"].value_counts()
            lines += ["", f"How sure the crossover at {_mb(r.weight_bytes)} is: {r.model}/{r.quant} against the "
                      f"{len(vs)} smaller-model configurations at or above its weight bytes is better in "
                      f"{int(c.get(findings.LARGER, 0))}, worse in {int(c.get(findings.SMALLER, 0))} and not "
                      f"settled in {int(c.get(findings.UNCLEAR, 0))}."]
    settled = pooled[pooled["verdict"] != findings.UNCLEAR].sort_values("diff", key=abs, ascending=False)
    if len(settled):
        shown = settled.head(SHOWN)
        more = f" ({len(settled) - SHOWN} more in `crossover.parquet`)" if len(settled) > SHOWN else ""
        lines += ["", f"Pairs an interval settles, largest difference first{more}:"] + [
            f"- {r.large_model}/{r.large_quant} ({_mb(r.large_weight_bytes)}) vs {r.small_model}/{r.small_quant} "
            f"({_mb(r.small_weight_bytes)}): {_acc(r.large_acc)} vs {_acc(r.small_acc)}, {_pts(r.diff)} "
            f"({_ci(r.ci_low, r.ci_high)}): {r.verdict}." for r in shown.itertuples()]
    paired, unpaired = pooled["diff_se"].median(), pooled["unpaired_se"].median()
    lines += ["", f"Pairing by item: the median standard error of a difference is {100 * paired:.1f} points paired, "
              f"{100 * unpaired:.1f} unpaired. Every pair and task is in `crossover.parquet`."]
    return lines


def _by_size(scored: pd.DataFrame, cross: pd.DataFrame, neck: pd.DataFrame) -> list[str]:
    """The scored models from smallest to largest parameter count (from the finding tables), or by their
    largest weight bytes where a model's count is in neither."""
    params: dict = {}
    for df, m, p in ((neck, "model", "n_params"), (cross, "small_model", "small_params"),
                     (cross, "large_model", "large_params")):
        if len(df):
            params.update(zip(df[m], df[p]))
    models = list(scored["model"].unique())
    if not all(m in params and pd.notna(params[m]) for m in models):
        params = scored.groupby("model")["weight_bytes"].max().to_dict()
    return sorted(models, key=lambda m: (float(params[m]), m))


def _headline_rows(cross: pd.DataFrame) -> pd.DataFrame:
    """One row per pair: the pooled row, or the task's own where the tasks are one."""
    if cross.empty:
        return cross
    pooled = cross[cross["task"] == findings.POOLED]
    return pooled if len(pooled) else cross


def bottleneck_lines(neck: pd.DataFrame, x_ref: int | None) -> list[str]:
    """Finding 3 in words: the roofline fraction and the prefill's share against model size."""
    lines = ["", "## Where decoding's bottleneck lies as models shrink (study B, finding 3)", ""]
    if neck.empty or x_ref is None:
        return lines + ["No token-sweep runs: nothing to say about decoding's bottleneck."]
    at = neck[neck["x"] == x_ref].sort_values(["n_params", "bpw"], ascending=[True, False])
    models = list(dict.fromkeys(at["model"]))
    if not models:
        return lines + [f"No token-sweep runs at {x_ref} prompt tokens: nothing to say about decoding's bottleneck."]
    lines += ["Study B found that as models shrink, the throughput bottleneck moves from memory traffic to "
              "computation (reviews quote the share of decode time spent on memory traffic: 53% at 0.5B, 68% at "
              "3B). Its analogue here is the roofline fraction: decode tok/s x weight bytes / the host's measured "
              "copy bandwidth, the share of the memory-bandwidth bound decoding reaches; a smaller fraction in "
              "smaller models means their decoding is limited by computation. Beside it, prefill's share of a "
              f"request's time and CPU. At {x_ref} prompt tokens, per model (smallest first; medians over its "
              "schemes, then each scheme's roofline fraction):", ""]
    for model in models:
        g = at[at["model"] == model]
        rf = ", ".join(f"{r.quant} {100 * r.roofline_fraction:.0f}%" for r in g.itertuples()
                       if pd.notna(r.roofline_fraction))
        params = g["n_params"].iloc[0]
        lines.append(f"- {model} ({params / 1e6:,.0f}M parameters, {_mb(g['weight_bytes'].median())}): "
                     f"roofline fraction {_pct(g['roofline_fraction'].median())}; prefill takes "
                     f"{_pct(g['prefill_time_share'].median())} of the request's time and "
                     f"{_pct(g['prefill_cpu_share'].median())} of its CPU. Per scheme: {rf or 'no bandwidth'}.")
    if len(models) < 2:
        return lines + ["", f"One model only ({models[0]}): finding 3 is about how these move with model size and "
                        "needs two or more models; the figure shows this model's schemes."]
    lines += [""]
    for measure, words, claim in (("roofline_fraction", "roofline fraction", " (study B's finding has it rise)"),
                                  ("prefill_cpu_share", "prefill's share of CPU", "")):
        trend = findings.size_trend(neck, x_ref, measure)
        if trend.empty:
            lines.append(f"- No scheme has the {words} of two models at {x_ref} tokens: no trend.")
            continue
        up = trend[trend["ci_low"] > 0]
        down = trend[trend["ci_high"] < 0]
        per = "; ".join(f"{r.quant}: {r.smallest} {_pct(r.small_value)} → {r.largest} {_pct(r.large_value)} "
                        f"({_pts(r.diff)}, {_ci(r.ci_low, r.ci_high)}; "
                        f"rank correlation with parameters {r.rho:+.2f} over {r.models} models)"
                        for r in trend.itertuples())
        lines.append(f"- The {words} from the smallest to the largest model, per scheme both have: {per}. It rises "
                     f"with size in {len(up)} of {len(trend)} schemes and falls in {len(down)} (95% interval clear "
                     f"of 0){claim}.")
    rf = findings.size_trend(neck, x_ref, "roofline_fraction")
    if len(rf):
        rises, falls = int((rf["ci_low"] > 0).sum()), int((rf["ci_high"] < 0).sum())
        if rises == len(rf):
            say = ("As study B found: the larger the model, the closer decoding comes to the memory-bandwidth "
                   "bound, so on this device the bottleneck moves from memory traffic towards computation as "
                   "models shrink.")
        elif falls == len(rf):
            say = ("Unlike study B: here the smaller models come closer to the memory-bandwidth bound, so the "
                   "bottleneck does not move towards computation as models shrink.")
        elif rises > falls:
            say = (f"Partly as study B found: the roofline fraction rises with size in {rises} of {len(rf)} schemes; "
                   "the others do not settle it.")
        else:
            say = ("Not settled on this device: the roofline fraction does not rise with model size clearly "
                   f"({rises} of {len(rf)} schemes rise, {falls} fall).")
        lines += ["", say]
    return lines


def _pct(v) -> str:
    return "n/a" if pd.isna(v) else f"{100 * v:.0f}%"


def _floats(neck: pd.DataFrame) -> pd.DataFrame:
    """The bottleneck table with its counts as plain floats (a missing size is NaN, not pandas' NA)."""
    return neck.astype({"n_params": float, "weight_bytes": float}) if len(neck) else neck


def lines(cross: pd.DataFrame, neck: pd.DataFrame, trade: pd.DataFrame) -> list[str]:
    x_ref = int(trade["x_ref"].iloc[0]) if len(trade) else None
    return crossover_lines(cross, trade, neck) + bottleneck_lines(_floats(neck), x_ref)


# --- figures ---------------------------------------------------------------------------------------


def _mb_axis(ax) -> None:
    """A log axis of MB with plain numbers (100, 200, not 10²)."""
    ax.set_xscale("log")
    plain = FuncFormatter(lambda v, _: f"{v:g}")
    ax.xaxis.set_major_formatter(plain)
    ax.xaxis.set_minor_formatter(plain)
    ax.tick_params(axis="x", which="minor", labelsize=7)


def accuracy_vs_weight_bytes(trade: pd.DataFrame):
    """Every model x scheme's mean task accuracy (95% bars) against its weight bytes, and the frontier."""
    scored = _scored(trade)
    if scored.empty:
        return _empty("Accuracy vs weight bytes", "no task accuracy (tasks.sets is empty)")
    fig, ax = plt.subplots(figsize=(9, 5.5))
    for i, (model, g) in enumerate(scored.groupby("model", sort=False)):
        mb = g["weight_bytes"] / 1e6
        ax.errorbar(mb, g["task_acc"], yerr=1.96 * g["task_acc_se"], fmt="o", color=f"C{i}", capsize=2, label=model)
        for m, a, q in zip(mb, g["task_acc"], g["quant"]):
            ax.annotate(q, (m, a), fontsize=7, xytext=(3, 3), textcoords="offset points")
    front = findings.frontier_steps(scored)
    xs = list(front["weight_bytes"] / 1e6) + [scored["weight_bytes"].max() / 1e6 * 1.1]
    ys = list(front["task_acc"]) + [front["task_acc"].iloc[-1]]
    ax.step(xs, ys, where="post", color="k", lw=1.2, label="frontier: best at or below each size")
    _mb_axis(ax)
    ax.set_xlabel("weight bytes (MB, the GGUF's tensors; log scale)")
    ax.set_ylabel("mean task accuracy (bars: 95% over items)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    ax.set_title("Task accuracy against weight memory, every model x scheme (study B, finding 1)")
    return fig


def bottleneck_vs_size(neck: pd.DataFrame, x_ref: int | None):
    """Left: the roofline fraction at x_ref against weight bytes, per model; right: the prefill's share of a
    request's CPU against weight bytes, one series per prompt length."""
    if neck.empty or x_ref is None:
        return _empty("Bottleneck vs model size", "no token-sweep runs")
    fig, (left, right) = plt.subplots(1, 2, figsize=(14, 5))
    at = neck[neck["x"] == x_ref]
    for i, (model, g) in enumerate(at.groupby("model", sort=False)):
        left.errorbar(g["weight_bytes"] / 1e6, 100 * g["roofline_fraction"], yerr=196 * g["roofline_fraction_se"],
                      fmt="o", color=f"C{i}", capsize=2, label=model)
        for m, v, q in zip(g["weight_bytes"] / 1e6, 100 * g["roofline_fraction"], g["quant"]):
            left.annotate(q, (m, v), fontsize=7, xytext=(3, 3), textcoords="offset points")
    left.set_ylabel("decode roofline fraction (%; bars: 95% over runs)")
    left.set_title(f"Decode speed / memory-bandwidth bound, {x_ref} prompt tokens")
    markers = {m: "osD^v<>p*h"[i % 10] for i, m in enumerate(dict.fromkeys(neck["model"]))}
    lengths = sorted(neck["x"].unique())
    for j, x in enumerate(lengths):
        color = plt.cm.viridis(j / max(1, len(lengths) - 1))
        for model, g in neck[neck["x"] == x].groupby("model", sort=False):
            right.errorbar(g["weight_bytes"] / 1e6, 100 * g["prefill_cpu_share"], fmt=markers[model], color=color,
                           yerr=196 * g["prefill_cpu_share_se"], capsize=2, label=f"{model}, {x} prompt tokens")
    right.set_ylabel("prefill's share of the request's CPU (%)")
    right.set_title("Prefill vs decode split")
    for ax in (left, right):
        _mb_axis(ax)
        ax.set_xlabel("weight bytes (MB; log scale)")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7, ncol=2 if ax is right and len(lengths) * len(markers) > 8 else 1)
    fig.suptitle("Where decoding's bottleneck lies against model size (study B, finding 3)")
    fig.tight_layout()
    return fig


def draw(cross: pd.DataFrame, neck: pd.DataFrame, trade: pd.DataFrame) -> dict:
    """The section's figures by their names in edgelaw.core.layout.FIGURES."""
    x_ref = int(trade["x_ref"].iloc[0]) if len(trade) else None
    return {"accuracy_vs_weight_bytes": accuracy_vs_weight_bytes(trade),
            "bottleneck_vs_size": bottleneck_vs_size(_floats(neck), x_ref)}
