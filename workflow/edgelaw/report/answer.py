"""The answer a user came for, which the report opens with: for the budgets in the config (`budgets`),
the best model x scheme on this device, the runner-up, and why the runner-up lost.

"Best" is the most accurate model x scheme whose peak memory, energy per request and task accuracy are all
within the budgets (their point estimates; the intervals are shown beside them); equal accuracy goes to the
lower energy per request, then to the lower peak memory, then to the name. When nothing fits, the answer
names the binding budget and the closest candidate.

Per model x scheme with token-sweep runs, at the request's prompt length P (`budgets.prompt_tokens`, default
the trade-offs' length) and the runs' generated tokens (bench.n_gen):

- task accuracy: the mean of the tasks' headline metrics (edgelaw.laws.derive.task_accuracy), or one
  task/metric (`budgets.accuracy`), with a 95% normal interval from the items' standard error;
- energy per request: the cost-vs-tokens law refitted with x measured from P, so that its intercept is the
  energy at P and the bootstrap over repetitions gives its 95% interval (fewer than 3 prompt lengths: the
  mean of the runs at P with a normal interval over them);
- peak memory (MB = 10^6 bytes): the largest peak resident memory of the runs at the shortest measured
  prompt length at or above P, and decode tokens/s, the mean over those runs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from edgelaw.core.config import SectionSettings
from edgelaw.core.errors import EdgelawError
from edgelaw.core.layout import ANSWER_FIGURE
from edgelaw.laws import fit
from edgelaw.laws.derive import ok_runs, task_accuracy, task_label

HEADING = "Answer: the best model and scheme for your budgets"
FIGURE = ANSWER_FIGURE
Z = 1.96


@dataclass(frozen=True)
class Budgets(SectionSettings):
    """The config's `budgets` section (defaults in the schema); None: no budget on that quantity."""

    peak_memory_mb: float | None
    energy_j: float | None
    prompt_tokens: int | None
    min_accuracy_pct: float | None
    accuracy: str | None  # "task/metric", or None for the mean of the tasks' headline metrics


BUDGETS = {"memory": "peak memory", "energy": "energy per request", "accuracy": "task accuracy"}


def _accuracy(tasks: pd.DataFrame, which: str | None) -> pd.DataFrame:
    """model, quant, acc_pct, acc_se_pct, n_items: the accuracy the budget and the ranking use."""
    if tasks.empty:
        return pd.DataFrame({"model": pd.Series(dtype=str), "quant": pd.Series(dtype=str), "acc_pct": [],
                             "acc_se_pct": [], "n_items": []})
    if which is None:
        acc = task_accuracy(tasks)
        items = tasks[tasks["headline"]].groupby(["model", "quant"])["n_items"].sum().rename("n_items")
        acc = acc.merge(items.reset_index(), on=["model", "quant"])
        value, se = acc["task_acc"], acc["task_acc_se"]
    else:
        labels = tasks["task"] + "/" + tasks["metric"]
        acc = tasks[labels == which]
        if acc.empty:
            known = sorted(set(task_label(t, m) for t, m in zip(tasks["task"], tasks["metric"])))
            raise EdgelawError(f"budgets.accuracy: {which!r} is not a task/metric of the task tables; use one of "
                               f"{', '.join(known)}, or null for the mean of the tasks' headline metrics")
        value, se = acc["value"], acc["stderr"]
    return pd.DataFrame({"model": acc["model"].to_numpy(), "quant": acc["quant"].to_numpy(),
                         "acc_pct": 100 * value.to_numpy(float), "acc_se_pct": 100 * se.to_numpy(float),
                         "n_items": acc["n_items"].to_numpy()})


def _energy_at(g: pd.DataFrame, p: int, n_boot: int, seed: int) -> tuple[float, float, float, str]:
    """Energy per request at p prompt tokens, its 95% interval and how it was had."""
    try:
        f = fit.fit_linear(g.assign(dx=g["x"] - p), "dx", "energy_j", n_boot=n_boot, seed=seed)
        reps = g["rep"].nunique()
        how = f"cost-vs-tokens fit, {reps} repetition{'s' * (reps > 1)}"
        return f.params["intercept"], f.ci_low["intercept"], f.ci_high["intercept"], how
    except EdgelawError:
        at = g.loc[g["x"] == p, "energy_j"].dropna()
        if at.empty:
            return np.nan, np.nan, np.nan, f"not measured at {p} tokens"
        half = Z * at.std(ddof=1) / np.sqrt(len(at)) if len(at) > 1 else np.nan
        return at.mean(), at.mean() - half, at.mean() + half, f"mean of {len(at)} run{'s' * (len(at) > 1)}"


def candidates(runs: pd.DataFrame, tasks: pd.DataFrame, budgets: Budgets, x_ref: int, n_boot: int,
               seed: int) -> pd.DataFrame:
    """One row per model x scheme with token-sweep runs: its numbers, intervals and which budgets it meets."""
    tokens = ok_runs(runs, "tokens") if len(runs) else runs
    p = budgets.prompt_tokens or x_ref
    rows = []
    for (model, quant), g in (tokens.groupby(["model", "quant"], sort=True) if len(tokens) else []):
        # No kept run at or above p (they failed): no peak memory, so it is listed but not ranked.
        above = g.loc[g["x"] >= p, "x"]
        at = g[g["x"] == above.min()] if len(above) else g.iloc[0:0]
        energy, low, high, how = _energy_at(g, p, n_boot, seed)
        rows.append({"model": model, "quant": quant, "bpw": float(g["bpw"].iloc[0]), "prompt_tokens": p,
                     "n_gen": int(g["n_gen"].iloc[0]), "energy_j": energy, "energy_low": low, "energy_high": high,
                     "energy_method": how, "peak_mb": float(at["peak_rss_bytes"].max()) / 1e6,
                     "decode_tps": float(at["decode_tps"].mean()) if len(at) else np.nan})
    cols = ["model", "quant", "bpw", "prompt_tokens", "n_gen", "energy_j", "energy_low", "energy_high",
            "energy_method", "peak_mb", "decode_tps"]
    table = pd.DataFrame(rows, columns=cols).merge(_accuracy(tasks, budgets.accuracy), on=["model", "quant"],
                                                   how="left")
    table["acc_low"] = (table["acc_pct"] - Z * table["acc_se_pct"]).clip(lower=0)
    table["acc_high"] = (table["acc_pct"] + Z * table["acc_se_pct"]).clip(upper=100)
    return judge(table, budgets)


def judge(table: pd.DataFrame, budgets: Budgets) -> pd.DataFrame:
    """Each candidate's relative miss of each budget (0 when within it), whether it fits all, its rank among
    those that fit (1 best), and the Pareto front of accuracy against energy over every candidate."""
    t = table.copy()
    limits = {"memory": (budgets.peak_memory_mb, "peak_mb"), "energy": (budgets.energy_j, "energy_j")}
    for budget, (limit, col) in limits.items():
        t[f"miss_{budget}"] = 0.0 if limit is None else (t[col] / limit - 1).clip(lower=0)
    lim = budgets.min_accuracy_pct
    t["miss_accuracy"] = 0.0 if not lim else ((lim - t["acc_pct"]) / lim).clip(lower=0)
    t.loc[t["acc_pct"].isna(), "miss_accuracy"] = np.nan  # not scored: cannot be judged on accuracy
    misses = t[[f"miss_{b}" for b in BUDGETS]]
    t["measured"] = t["energy_j"].notna() & t["peak_mb"].notna()
    t["fits"] = (misses.fillna(np.inf) == 0).all(axis=1) & t["acc_pct"].notna() & t["measured"]
    order = t[t["fits"]].sort_values(["acc_pct", "energy_j", "peak_mb", "model", "quant"],
                                     ascending=[False, True, True, True, True])
    t["rank"] = pd.Series(range(1, len(order) + 1), index=order.index, dtype="Int64")
    t["pareto"] = fit.pareto_front(t, "energy_j", "acc_pct")
    return t


@dataclass
class Answer:
    table: pd.DataFrame
    best: pd.Series | None
    runner_up: pd.Series | None
    closest: pd.Series | None  # the nearest candidate outside the budgets (None when every one fits)
    binding: str | None  # the budget the closest misses by most


def choose(table: pd.DataFrame) -> Answer:
    ranked = table[table["rank"].notna()].sort_values("rank")
    best = ranked.iloc[0] if len(ranked) else None
    runner = ranked.iloc[1] if len(ranked) > 1 else None
    out = table[~table["fits"] & table["acc_pct"].notna() & table["measured"]]
    closest = binding = None
    if len(out):
        worst = out[[f"miss_{b}" for b in BUDGETS]].max(axis=1)
        closest = out.loc[worst.idxmin()]
        binding = max(BUDGETS, key=lambda b: closest[f"miss_{b}"])
    return Answer(table, best, runner, closest, binding)


# --- in words ----------------------------------------------------------------------------------------


def name(r: pd.Series) -> str:
    return f"{r['model']}/{r['quant']}"


def joules(v: float) -> str:
    return "n/a" if pd.isna(v) else f"{v:.3g} J"


def megabytes(v: float) -> str:
    return "n/a" if pd.isna(v) else f"{v:,.0f} MB"


def percent(v: float) -> str:
    return "n/a" if pd.isna(v) else f"{v:.1f}%"


def tokens_per_s(v: float) -> str:
    return "n/a" if pd.isna(v) else f"{v:.1f} tok/s"


def _interval(low: float, high: float, fmt) -> str:
    return "no interval" if pd.isna(low) or pd.isna(high) else f"95% {fmt(low)} to {fmt(high)}"


def accuracy_name(tasks: pd.DataFrame, which: str | None) -> str:
    if which:
        return which
    if tasks.empty:
        return "the mean of the tasks' headline metrics"
    head = tasks[tasks["headline"]]
    parts = list(dict.fromkeys(f"{t} {m}" for t, m in zip(head["task"], head["metric"])))
    return f"the mean of the tasks' headline metrics ({', '.join(parts)})"


def budget_text(budgets: Budgets, p: int, n_gen: int | None, acc: str) -> str:
    request = f"{p} prompt tokens" + (f" and {n_gen} generated tokens" if n_gen else "")
    mem = f"peak memory at most {megabytes(budgets.peak_memory_mb)}" if budgets.peak_memory_mb else "no memory budget"
    energy = (f"energy at most {joules(budgets.energy_j)} per request" if budgets.energy_j
              else "no energy budget")
    accuracy = (f"task accuracy at least {percent(budgets.min_accuracy_pct)}" if budgets.min_accuracy_pct
                else "no minimum accuracy")
    return f"Budgets (config `budgets`): {mem}; {energy}; {accuracy}. A request is {request}; accuracy is {acc}."


DEFINITION = ("\"Best\" is the most accurate model x scheme whose peak memory, energy per request and task accuracy "
              "are all within the budgets (point estimates; their 95% intervals are shown beside them); equal "
              "accuracy goes to the lower energy per request, then to the lower peak memory. When nothing fits, "
              "the answer names the budget that binds and the closest candidate.")


def why_lost(best: pd.Series, runner: pd.Series) -> str:
    """Why the runner-up is second, in words."""
    d = runner["acc_pct"] - best["acc_pct"]
    if d < 0:
        se = float(np.hypot(best["acc_se_pct"], runner["acc_se_pct"]))
        low, high = d - Z * se, d + Z * se
        text = (f"it is {-d:.1f} points less accurate ({percent(runner['acc_pct'])} against "
                f"{percent(best['acc_pct'])}; the difference's 95% interval is {low:+.1f} to {high:+.1f} points, "
                "unpaired")
        text += ("): the items cannot tell the two apart on accuracy" if high >= 0
                 else "): a difference beyond the items' noise")
        if runner["energy_j"] < best["energy_j"]:
            text += f"; it would use {joules(best['energy_j'] - runner['energy_j'])} less per request"
        return text + "."
    if runner["energy_j"] > best["energy_j"]:
        return (f"it is as accurate ({percent(runner['acc_pct'])}) but uses "
                f"{joules(runner['energy_j'] - best['energy_j'])} more per request ({joules(runner['energy_j'])} "
                f"against {joules(best['energy_j'])}).")
    if runner["peak_mb"] > best["peak_mb"]:
        return (f"it is as accurate and uses as much energy, but needs {megabytes(runner['peak_mb'] - best['peak_mb'])}"
                f" more peak memory ({megabytes(runner['peak_mb'])} against {megabytes(best['peak_mb'])}).")
    return "it ties on accuracy, energy and peak memory; the order is by name."


def _value(r: pd.Series, budget: str) -> str:
    if budget == "memory":
        return megabytes(r["peak_mb"])
    return joules(r["energy_j"]) if budget == "energy" else percent(r["acc_pct"])


def _limit(budgets: Budgets, budget: str) -> str:
    if budget == "memory":
        return f"at most {megabytes(budgets.peak_memory_mb)}"
    return (f"at most {joules(budgets.energy_j)}" if budget == "energy"
            else f"at least {percent(budgets.min_accuracy_pct)}")


def _miss_text(r: pd.Series, budget: str, budgets: Budgets) -> str:
    return f"{BUDGETS[budget]} {_value(r, budget)}, the budget {_limit(budgets, budget)}"


def ruled_out(table: pd.DataFrame, budgets: Budgets) -> list[str]:
    """Per budget, the candidates it rules out (a candidate may be ruled out by several)."""
    out = []
    for b, label in BUDGETS.items():
        hit = table[table[f"miss_{b}"] > 0]
        if len(hit):
            out.append(f"{label} {_limit(budgets, b)}: {len(hit)} of {len(table)} ("
                       + ", ".join(f"{name(r)} {_value(r, b)}" for _, r in hit.iterrows()) + ")")
    return out


def row_cells(label: str, r: pd.Series) -> str:
    return (f"| {label} | {name(r)} | {r['bpw']:.2f} | {percent(r['acc_pct'])} "
            f"({_interval(r['acc_low'], r['acc_high'], percent)}, {int(r['n_items'])} items) | "
            f"{joules(r['energy_j'])} ({_interval(r['energy_low'], r['energy_high'], joules)}, {r['energy_method']}) | "
            f"{megabytes(r['peak_mb'])} | {tokens_per_s(r['decode_tps'])} |")


TABLE_HEAD = ["|  | model/scheme | bits per weight | task accuracy | energy per request | peak memory | decode |",
              "| --- | --- | --- | --- | --- | --- | --- |"]


def lines(answer: Answer, budgets: Budgets, tasks: pd.DataFrame, x_ref: int) -> list[str]:
    """The answer section, in markdown (headings, a table, bullets and the figure's line)."""
    t = answer.table
    p = budgets.prompt_tokens or x_ref
    n_gen = int(t["n_gen"].iloc[0]) if len(t) else None
    out = [f"## {HEADING}", "", budget_text(budgets, p, n_gen, accuracy_name(tasks, budgets.accuracy)), "",
           DEFINITION, ""]
    if t.empty:
        return out + ["No model x scheme has token-sweep runs, so there is nothing to choose from.", ""]
    if t["acc_pct"].isna().all():
        return out + ["No task accuracy was measured (tasks.sets is empty, or every model has quality off), so "
                      "\"best\" cannot be judged: set tasks.sets (docs/tasks.md).", ""] + _figure_lines(t)
    best, runner = answer.best, answer.runner_up
    if best is not None:
        out += [f"Best on this device: {name(best)}, {percent(best['acc_pct'])} accurate at {joules(best['energy_j'])}"
                f" per request, {megabytes(best['peak_mb'])} peak memory, {tokens_per_s(best['decode_tps'])}.", ""]
        out += TABLE_HEAD + [row_cells("best", best)]
        if runner is not None:
            out += [row_cells("runner-up", runner), "", f"Why the runner-up lost: {why_lost(best, runner)}"]
        else:
            out += ["", "No runner-up: nothing else fits the budgets."]
        if answer.closest is not None and runner is None:
            c = answer.closest
            out += [f"The closest outside them is {name(c)}: {_miss_text(c, answer.binding, budgets)}."]
    elif answer.closest is None:
        out += [f"No model x scheme has kept runs at or above {p} prompt tokens (see \"Not measured\"), so "
                "nothing can be ranked: measure them again.", ""]
    else:
        c, b = answer.closest, answer.binding
        hit = t[t[f"miss_{b}"] > 0]
        out += [f"Nothing fits all the budgets. The binding one is {BUDGETS[b]}: it rules out {len(hit)} of "
                f"{len(t)} candidates. The closest candidate is {name(c)}, which misses it "
                f"({_miss_text(c, b, budgets)}); relax that budget to let it in.", ""]
        out += TABLE_HEAD + [row_cells("closest", c)]
    if len(off := ruled_out(t, budgets)):
        out += ["", "Ruled out by each budget: " + "; ".join(off) + "."]
    unscored = t[t["acc_pct"].isna()]
    if len(unscored):
        out += [f"Not scored on tasks, so not ranked: {', '.join(name(r) for _, r in unscored.iterrows())}."]
    unmeasured = t[~t["measured"]]
    if len(unmeasured):
        out += [f"No kept runs at or above {p} prompt tokens, so not ranked: "
                f"{', '.join(name(r) for _, r in unmeasured.iterrows())}."]
    return out + [""] + _figure_lines(t)


def _figure_lines(t: pd.DataFrame) -> list[str]:
    front = t[t["pareto"]].sort_values("energy_j")
    text = ("Pareto front of task accuracy against energy per request, across every model: "
            + (", ".join(f"{name(r)} ({percent(r['acc_pct'])}, {joules(r['energy_j'])})" for _, r in front.iterrows())
               or "none (no candidate has both)") + ".")
    return [f"![accuracy against energy per request]({FIGURE}.png)", "", text, ""]
