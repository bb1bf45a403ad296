"""The report's figures (matplotlib, no display): each is drawn from the tables and the fitted laws.

Every function takes the tables and returns a Figure; `save` writes it as PNG and SVG atomically.
A figure whose data does not exist in this experiment (e.g. no VLM workload) says so on its canvas,
so that the report's set of files is fixed.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from edgelaw.core.atomic import atomic_path  # noqa: E402
from edgelaw.core.layout import FIGURE_FORMATS  # noqa: E402
from edgelaw.laws.fit import hinge  # noqa: E402
from edgelaw.laws.derive import knee_law  # noqa: E402

LABELS = {
    "cpu_core_s": "CPU (core-seconds above idle)", "mem_gb_s": "memory (GB-seconds)", "energy_j": "energy (J)",
    "peak_rss_bytes": "peak resident memory (MB)", "ppl": "perplexity", "top1_pct": "top-1 agreement (%)",
    "kld_mean": "mean KL divergence (nats)", "sem_base": "semantic similarity to base", "decode_tps": "decode tokens/s",
    "task_acc": "mean task accuracy",
}


def save(fig, stem: str) -> None:
    for ext in FIGURE_FORMATS:
        with atomic_path(f"{stem}.{ext}") as tmp:
            fig.savefig(tmp, format=ext, dpi=110, bbox_inches="tight")
    plt.close(fig)


def _empty(title: str, message: str):
    fig, ax = plt.subplots(figsize=(6, 2.5))
    ax.axis("off")
    ax.set_title(title)
    ax.text(0.5, 0.5, message, ha="center", va="center", wrap=True)
    return fig


def _law(laws: pd.DataFrame, law: str, y: str, model=None, quant=None) -> dict[str, float]:
    sel = (laws["law"] == law) & (laws["y"] == y)
    if model is not None:
        sel &= laws["model"] == model
    if quant is not None:
        sel &= laws["quant"] == quant
    rows = laws[sel & laws["value"].notna()]
    return dict(zip(rows["param"], rows["value"]))


def cost_vs_tokens(runs: pd.DataFrame, laws: pd.DataFrame):
    tokens = runs[(runs["status"] == "ok") & (runs["workload"] == "tokens")]
    if tokens.empty:
        return _empty("Cost vs prompt tokens", "no token-sweep runs")
    metrics = ["cpu_core_s", "mem_gb_s", "energy_j"]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for (model, quant), g in tokens.groupby(["model", "quant"]):
        label = f"{quant}" if tokens["model"].nunique() == 1 else f"{model}/{quant}"
        for ax, m in zip(axes, metrics):
            mean = g.groupby("x")[m].mean()
            line = ax.plot(mean.index, mean.values, "o", ms=4, label=label)[0]
            p = _law(laws, "cost_vs_tokens", m, model, quant)
            if p:
                xs = np.linspace(0, mean.index.max(), 50)
                ax.plot(xs, p["intercept"] + p["slope"] * xs, "-", color=line.get_color(), lw=1)
    for ax, m in zip(axes, metrics):
        ax.set_xlabel("prompt tokens")
        ax.set_ylabel(LABELS[m])
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7, ncol=2)
    fig.suptitle("Cost grows linearly with prompt tokens (points: mean of repetitions; lines: fits)")
    return fig


def cost_vs_bpw(trade: pd.DataFrame, laws: pd.DataFrame):
    if trade.empty:
        return _empty("Cost vs bits per weight", "no runs")
    metrics = ["peak_rss_bytes", "cpu_core_s", "energy_j"]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    x_ref = int(trade["x_ref"].iloc[0])
    for model, g in trade.groupby("model"):
        for ax, m in zip(axes, metrics):
            scale = 1e6 if m == "peak_rss_bytes" else 1.0
            line = ax.plot(g["bpw"], g[m] / scale, "o", label=model)[0]
            for _, r in g.iterrows():
                ax.annotate(r["quant"], (r["bpw"], r[m] / scale), fontsize=7, xytext=(3, 3), textcoords="offset points")
            p = _law(laws, f"cost_vs_bpw_at_{x_ref}_tokens", m, model)
            if p:
                xs = np.linspace(g["bpw"].min(), g["bpw"].max(), 20)
                ax.plot(xs, (p["intercept"] + p["slope"] * xs) / scale, "-", lw=1, color=line.get_color())
    for ax, m in zip(axes, metrics):
        ax.set_xlabel("bits per weight")
        ax.set_ylabel(LABELS[m])
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"Cost vs bits per weight at {x_ref} prompt tokens (lines: linear fits)")
    return fig


def _hinge_fit(ax, laws: pd.DataFrame, law: str, y: str, model: str, bpw: pd.Series, color) -> None:
    """A threshold law's fitted hinge over the data's BPW range, its knee, and the knee's 95% interval."""
    p = _law(laws, law, y, model)
    if not p:
        return
    xs = np.linspace(bpw.min(), bpw.max(), 200)
    ax.plot(xs, hinge(xs, p["knee"], p["level"], p["slope"]), "-", lw=1, color=color)
    ax.axvline(p["knee"], ls=":", color=color)
    ci = laws[(laws["law"] == law) & (laws["y"] == y) & (laws["model"] == model) & (laws["param"] == "knee")]
    if len(ci) and np.isfinite(ci["ci_low"].iloc[0]):
        ax.axvspan(ci["ci_low"].iloc[0], ci["ci_high"].iloc[0], alpha=0.1, color=color)


def quality_vs_bpw(quality: pd.DataFrame, laws: pd.DataFrame):
    if quality.empty:
        return _empty("Quality vs bits per weight", "no quality tables (quality.enabled: false)")
    metrics = ["ppl", "top1_pct", "kld_mean", "sem_base"]
    fig, axes = plt.subplots(1, 4, figsize=(18, 4.2))
    for model, g in quality.sort_values("bpw").groupby("model"):
        for ax, m in zip(axes, metrics):
            err = g["ppl_se"] if m == "ppl" else (g["top1_pct_se"] if m == "top1_pct" else None)
            line = ax.errorbar(g["bpw"], g[m], yerr=err, fmt="o", ms=4, capsize=2, label=model)[0]
            _hinge_fit(ax, laws, "quality_vs_bpw", m, model, g["bpw"], line.get_color())
    for ax, m in zip(axes, metrics):
        ax.set_xlabel("bits per weight")
        ax.set_ylabel(LABELS[m])
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle("Quality vs bits per weight: hinge fits (dotted: threshold, band: its 95% interval)")
    return fig


def _front_panel(ax, data: pd.DataFrame, cost: str, quality: str, flag: str, err=None) -> None:
    colors = np.where(data[flag], "C3", "C0")
    ax.errorbar(data[cost], data[quality], yerr=err, fmt="none", ecolor="0.6", capsize=2)
    ax.scatter(data[cost], data[quality], c=colors, zorder=3)
    for _, r in data.iterrows():
        ax.annotate(f"{r['quant']}" if data["model"].nunique() == 1 else f"{r['model']}/{r['quant']}",
                    (r[cost], r[quality]), fontsize=7, xytext=(3, 3), textcoords="offset points")
    front = data[data[flag]].sort_values(cost)
    ax.step(front[cost], front[quality], where="post", color="C3", lw=1, label="Pareto front")
    ax.grid(alpha=0.3)
    ax.legend()


def pareto(trade: pd.DataFrame):
    ppl = trade.dropna(subset=["ppl", "cpu_core_s"]) if len(trade) else trade
    acc = trade.dropna(subset=["task_acc", "energy_j"]) if "task_acc" in trade and len(trade) else trade.iloc[0:0]
    if ppl.empty and acc.empty:
        return _empty("Pareto fronts", "needs the quality stage or tasks")
    fig, (left, right) = plt.subplots(1, 2, figsize=(14, 5))
    x_ref = int(trade["x_ref"].iloc[0])
    if len(ppl):
        _front_panel(left, ppl, "cpu_core_s", "ppl", "pareto_cpu")
        left.set_xlabel(f"CPU core-seconds per run ({x_ref} prompt tokens)")
        left.set_ylabel("perplexity (lower is better)")
    else:
        left.axis("off")
        left.text(0.5, 0.5, "no perplexity (quality stage off)", ha="center", va="center")
    left.set_title("CPU vs perplexity")
    if len(acc):
        _front_panel(right, acc, "energy_j", "task_acc", "pareto_energy", err=1.96 * acc["task_acc_se"])
        right.set_xlabel(f"energy per run, J ({x_ref} prompt tokens)")
        right.set_ylabel("mean task accuracy (higher is better; bars: 95%)")
    else:
        right.axis("off")
        right.text(0.5, 0.5, "no task accuracy (tasks.sets empty)", ha="center", va="center")
    right.set_title("Energy vs task accuracy")
    fig.suptitle("Cost vs quality across models and schemes")
    return fig


def tasks_vs_bpw(tasks: pd.DataFrame, laws: pd.DataFrame):
    """One panel per task x metric: accuracy with 95% bars against BPW, and the fitted hinge."""
    if tasks.empty:
        return _empty("Task accuracy vs bits per weight", "no task tables (tasks.sets is empty)")
    panels = list(dict.fromkeys(zip(tasks["task"], tasks["metric"])))
    ncol = min(4, len(panels))
    nrow = -(-len(panels) // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.5 * ncol, 3.6 * nrow), squeeze=False)
    for ax, (task, metric) in zip(axes.flat, panels):
        g = tasks[(tasks["task"] == task) & (tasks["metric"] == metric)]
        for model, gm in g.sort_values("bpw").groupby("model"):
            line = ax.errorbar(gm["bpw"], gm["value"], yerr=1.96 * gm["stderr"], fmt="o", ms=4, capsize=2,
                               label=model)[0]
            _hinge_fit(ax, laws, "task_vs_bpw", f"{task}/{metric}", model, gm["bpw"], line.get_color())
        ax.set_title(f"{task} {metric} (n {int(g['n_items'].iloc[0])}, {g['split'].iloc[0]})", fontsize=9)
        ax.set_xlabel("bits per weight")
        ax.set_ylabel("accuracy")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    axes[0, 0].legend(fontsize=8)
    fig.suptitle("Task accuracy vs bits per weight (bars: 95% over items; dotted: hinge threshold, band: its 95%)")
    fig.tight_layout()
    return fig


def roofline(trade: pd.DataFrame, bandwidth_gb_s: float | None):
    if trade.empty or not bandwidth_gb_s:
        return _empty("Decode roofline", "no runs, or no measured memory bandwidth in host.json")
    fig, ax = plt.subplots(figsize=(7, 5))
    mb = trade["weight_bytes"] / 1e6
    xs = np.linspace(mb.min() * 0.8, mb.max() * 1.2, 100)
    ax.plot(xs, bandwidth_gb_s * 1e3 / xs, "k--", lw=1, label=f"bound: {bandwidth_gb_s:.1f} GB/s / model bytes")
    ax.scatter(mb, trade["decode_tps"], color="C0")
    for (_, r), m in zip(trade.iterrows(), mb):
        ax.annotate(f"{r['quant']} {100 * r['roofline_fraction']:.0f}%", (m, r["decode_tps"]), fontsize=7,
                    xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel("weights read per token (MB)")
    ax.set_ylabel("decode tokens/s")
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title("Decode speed as a fraction of the memory-bandwidth bound")
    return fig


def comparisons(comp: pd.DataFrame):
    if comp.empty:
        return _empty("Comparisons", "no comparisons in the config")
    pairs = list(dict.fromkeys(zip(comp["baseline"], comp["variant"])))
    fig, axes = plt.subplots(len(pairs), 1, figsize=(8, 0.45 * len(comp) + 1.5 * len(pairs)), squeeze=False)
    for ax, (b, v) in zip(axes[:, 0], pairs):
        g = comp[(comp["baseline"] == b) & (comp["variant"] == v)]
        y = np.arange(len(g))
        err = np.vstack([g["change_pct"] - g["ci_low"], g["ci_high"] - g["change_pct"]])
        ax.barh(y, g["change_pct"], xerr=err, color=np.where(g["change_pct"] < 0, "C2", "C1"), capsize=3)
        ax.set_yticks(y, g["metric"])
        ax.axvline(0, color="k", lw=0.8)
        ax.set_xlabel("change (%), 95% interval")
        ax.set_title(f"{v} vs {b}")
        ax.grid(alpha=0.3, axis="x")
    fig.tight_layout()
    return fig


def knee(runs: pd.DataFrame, laws: pd.DataFrame):
    """Per model x scheme: cost against nominal pixels with each series' fitted hinge and the clamp
    (left), and against the pixels left after the model's preprocessing (right)."""
    images = runs[(runs["status"] == "ok") & (runs["workload"] == "resolution")] if len(runs) else runs
    if images.empty or "image_series" not in images:
        return _empty("Resolution knee", "no resolution sweep (VLM workload) in this experiment")
    groups = list(images.groupby(["model", "quant"], sort=True))
    fig, axes = plt.subplots(len(groups), 2, figsize=(11, 3.2 * len(groups)), squeeze=False)
    for (ax_n, ax_e), ((model, quant), g) in zip(axes, groups):
        for i, (series, gs) in enumerate(g.groupby("image_series", sort=True)):
            color, marker = f"C{i}", "os"[i % 2]
            mean = gs.groupby("x")["cpu_core_s"].mean()
            ax_n.plot(mean.index, mean.values, marker, color=color, label=f"{series} (mean of reps)")
            p = _law(laws, knee_law(series), "cpu_core_s", model, quant)
            if p:
                xs = np.geomspace(mean.index.min(), mean.index.max(), 300)
                ax_n.plot(xs, hinge(xs, p["knee"], p["level"], p["slope"]), "-", color=color, lw=1)
                ax_n.axvline(p["knee"], ls=":", color=color, label=f"{series} fitted knee {p['knee']:,.0f} px")
            eff = gs.groupby("effective_pixels")["cpu_core_s"].mean()
            ax_e.plot(eff.index, eff.values, marker, color=color, label=series)
        clamp = g["clamp_pixels"].dropna()
        if len(clamp):
            c = float(clamp.iloc[0])
            tokens = int(g["image_max_tokens"].dropna().iloc[0])
            for ax in (ax_n, ax_e):
                ax.axvline(c, ls="--", color="k", lw=1, label=f"clamp: {tokens} tokens = {c:,.0f} px")
        ax_n.set_xscale("log")
        ax_n.set_title(f"{model}/{quant}: cost vs nominal pixels")
        ax_n.set_xlabel("nominal pixels (width x height given to the model)")
        ax_e.set_title(f"{model}/{quant}: cost vs effective pixels")
        ax_e.set_xlabel("effective pixels (after the model's resize)")
        for ax in (ax_n, ax_e):
            ax.set_ylabel(LABELS["cpu_core_s"])
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
    fig.suptitle("Resolution knee: the cost is flat above the clamp and falls below it")
    fig.tight_layout()
    return fig


def answer(table: pd.DataFrame, budgets, best=None, runner_up=None):
    """Task accuracy against energy per request for every model x scheme (the answer's candidates, from
    edgelaw.report.answer), with both 95% intervals, the Pareto front across models, the budgets as lines
    and the best and runner-up marked; a candidate over the memory budget is drawn hollow."""
    data = table.dropna(subset=["acc_pct", "energy_j"]) if len(table) else table
    if data.empty:
        return _empty("Accuracy vs energy per request", "needs token-sweep runs and task accuracy (tasks.sets)")
    fig, ax = plt.subplots(figsize=(9, 5.5))
    for i, (model, g) in enumerate(data.groupby("model", sort=True)):
        color = f"C{i % 10}"
        xerr = np.vstack([g["energy_j"] - g["energy_low"], g["energy_high"] - g["energy_j"]])
        yerr = np.vstack([g["acc_pct"] - g["acc_low"], g["acc_high"] - g["acc_pct"]])
        xerr, yerr = (np.clip(np.nan_to_num(e), 0, None) for e in (xerr, yerr))  # a percentile CI may miss its point
        ax.errorbar(g["energy_j"], g["acc_pct"], xerr=xerr, yerr=yerr, fmt="none",
                    ecolor=color, alpha=0.35, capsize=2)
        over = g["miss_memory"] > 0
        ax.scatter(g.loc[~over, "energy_j"], g.loc[~over, "acc_pct"], color=color, zorder=3, label=model)
        ax.scatter(g.loc[over, "energy_j"], g.loc[over, "acc_pct"], facecolors="none", edgecolors=color, zorder=3)
        for _, r in g.iterrows():
            ax.annotate(r["quant"], (r["energy_j"], r["acc_pct"]), fontsize=7, xytext=(3, 3), textcoords="offset points")
    front = data[data["pareto"]].sort_values("energy_j")
    ax.step(front["energy_j"], front["acc_pct"], where="post", color="k", lw=1, label="Pareto front")
    if budgets.energy_j:
        ax.axvline(budgets.energy_j, color="C3", ls="--", lw=1, label=f"energy budget {budgets.energy_j:g} J")
    if budgets.min_accuracy_pct:
        ax.axhline(budgets.min_accuracy_pct, color="C3", ls=":", lw=1,
                   label=f"accuracy budget {budgets.min_accuracy_pct:g}%")
    for r, text in ((best, "best"), (runner_up, "runner-up")):
        if r is not None:
            ax.scatter([r["energy_j"]], [r["acc_pct"]], s=260, marker="*" if text == "best" else "o",
                       facecolors="none", edgecolors="k", lw=1.5, zorder=4)
            ax.annotate(text, (r["energy_j"], r["acc_pct"]), fontsize=9, weight="bold", xytext=(6, -14),
                        textcoords="offset points")
    p, n_gen = int(data["prompt_tokens"].iloc[0]), int(data["n_gen"].iloc[0])
    ax.set_xlabel(f"energy per request, J ({p} prompt + {n_gen} generated tokens; bars: 95%)")
    ax.set_ylabel("task accuracy, % (bars: 95%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    hollow = f"; hollow: over the memory budget ({budgets.peak_memory_mb:g} MB)" if budgets.peak_memory_mb else ""
    ax.set_title(f"Accuracy against energy per request, every model x scheme{hollow}", fontsize=10)
    return fig
