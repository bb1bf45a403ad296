"""The report's opening answer on hand-built tables: budgets that bind, ties, nothing that fits, intervals."""

import numpy as np
import pandas as pd
import pytest

from edgelaw.core.config import defaults, validate
from edgelaw.core.errors import EdgelawError
from edgelaw.report import answer as ans

from conftest import tiny_config

# model/scheme -> (bpw, energy J at x tokens = e0 + e1 * x, peak MB, decode tok/s, arc_easy acc, winogrande acc)
SPEC = {
    ("big", "Q8_0"): (8.5, 40.0, 0.10, 900, 20.0, 0.80, 0.70),
    ("big", "Q4_K_M"): (4.9, 30.0, 0.08, 520, 30.0, 0.75, 0.65),
    ("small", "F16"): (16.0, 20.0, 0.05, 400, 25.0, 0.60, 0.60),
    ("small", "Q4_K_M"): (4.9, 12.0, 0.03, 150, 50.0, 0.60, 0.60),
}
ITEMS = 100


def runs_table() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for (model, quant), (bpw, e0, e1, mb, tps, *_) in SPEC.items():
        for rep in range(3):
            for x in (64, 128, 256, 512):
                rows.append({"run_id": f"{model}-{quant}-{x}-{rep}", "model": model, "quant": quant, "bpw": bpw,
                             "workload": "tokens", "status": "ok", "x": x, "rep": rep, "n_gen": 32,
                             "energy_j": e0 + e1 * x + rng.normal(0, 0.5),
                             "peak_rss_bytes": int((mb + x / 64) * 1e6), "decode_tps": tps + rng.normal(0, 0.1)})
    return pd.DataFrame(rows)


def tasks_table() -> pd.DataFrame:
    rows = []
    for (model, quant), (bpw, *_, arc, wino) in SPEC.items():
        for task, metric, headline, v in [("arc_easy", "acc", True, arc), ("arc_easy", "acc_norm", False, arc - 0.05),
                                          ("winogrande", "acc", True, wino)]:
            rows.append({"model": model, "quant": quant, "bpw": bpw, "task": task, "metric": metric,
                         "headline": headline, "value": v, "stderr": np.sqrt(v * (1 - v) / (ITEMS - 1)),
                         "n_items": ITEMS})
    return pd.DataFrame(rows)


def budgets(**given) -> ans.Budgets:
    return ans.Budgets.from_config(defaults("budgets", given))


def answer(**given):
    b = budgets(**given)
    return ans.choose(ans.candidates(runs_table(), tasks_table(), b, 512, 100, 0)), b


def test_without_budgets_the_most_accurate_wins_with_intervals():
    a, b = answer(prompt_tokens=256)
    t = a.table.set_index(["model", "quant"])
    assert ans.name(a.best) == "big/Q8_0" and ans.name(a.runner_up) == "big/Q4_K_M"
    # energy at 256 tokens from the fit, inside its bootstrap interval, near the truth 40 + 0.1 * 256
    assert a.best["energy_low"] < a.best["energy_j"] < a.best["energy_high"]
    assert a.best["energy_j"] == pytest.approx(65.6, abs=1) and a.best["energy_method"] == "cost-vs-tokens fit, 3 repetitions"
    # the mean of the headline metrics (acc_norm is not one), its interval from the items' stderr
    assert t.loc[("big", "Q8_0"), "acc_pct"] == pytest.approx(75.0) and t.loc[("big", "Q8_0"), "n_items"] == 200
    se = 100 * np.hypot(np.sqrt(0.8 * 0.2 / 99), np.sqrt(0.7 * 0.3 / 99)) / 2
    assert t.loc[("big", "Q8_0"), "acc_low"] == pytest.approx(75 - 1.96 * se)
    # peak memory and decode speed at the shortest measured length at or above the request's
    assert t.loc[("big", "Q8_0"), "peak_mb"] == pytest.approx(904) and t.loc[("small", "F16"), "decode_tps"] == pytest.approx(25, abs=0.2)
    text = "\n".join(ans.lines(a, b, tasks_table(), 512))
    assert "Best on this device: big/Q8_0, 75.0% accurate" in text and "A request is 256 prompt tokens and 32 generated tokens" in text
    assert "| best | big/Q8_0 | 8.50 | 75.0% (95% 69." in text and "| runner-up | big/Q4_K_M |" in text
    assert "it is 5.0 points less accurate (70.0% against 75.0%" in text and "unpaired): the items cannot tell" in text
    assert "Nothing fits" not in text and "![accuracy against energy per request](answer.png)" in text
    assert "Pareto front of task accuracy against energy per request, across every model: small/Q4_K_M" in text


def test_a_memory_budget_binds_and_rules_out_the_largest():
    a, b = answer(peak_memory_mb=600)
    assert ans.name(a.best) == "big/Q4_K_M"  # big/Q8_0 (908 MB at 512 tokens) is over the budget
    assert ans.name(a.runner_up) in {"small/F16", "small/Q4_K_M"}
    text = "\n".join(ans.lines(a, b, tasks_table(), 512))
    assert "Ruled out by each budget: peak memory at most 600 MB: 1 of 4 (big/Q8_0 908 MB)." in text


def test_a_tie_in_accuracy_goes_to_the_lower_energy():
    a, b = answer(peak_memory_mb=450)  # leaves small/F16 and small/Q4_K_M, both 60%
    assert ans.name(a.best) == "small/Q4_K_M" and ans.name(a.runner_up) == "small/F16"
    assert a.best["acc_pct"] == a.runner_up["acc_pct"]
    assert ans.why_lost(a.best, a.runner_up).startswith("it is as accurate (60.0%) but uses")
    # equal energy too: the lower peak memory wins
    t = a.table.copy()
    small = t["model"] == "small"
    t.loc[small & (t["quant"] == "F16"), "energy_j"] = t.loc[small & (t["quant"] == "Q4_K_M"), "energy_j"].iloc[0]
    again = ans.choose(ans.judge(t, budgets(peak_memory_mb=450)))
    assert ans.name(again.best) == "small/Q4_K_M" and "more peak memory" in ans.why_lost(again.best, again.runner_up)


def test_when_nothing_fits_the_binding_budget_and_the_closest_are_named():
    a, b = answer(energy_j=30, min_accuracy_pct=65)
    assert a.best is None and a.runner_up is None
    # the accurate ones cost 46-92 J; the cheap ones are 60% accurate: small/Q4_K_M misses accuracy by 5/65,
    # big/Q4_K_M energy by 71/30 - 1
    assert ans.name(a.closest) == "small/Q4_K_M" and a.binding == "accuracy"
    text = "\n".join(ans.lines(a, b, tasks_table(), 512))
    assert "Nothing fits all the budgets. The binding one is task accuracy: it rules out 2 of 4 candidates." in text
    assert "The closest candidate is small/Q4_K_M, which misses it (task accuracy 60.0%, the budget at least 65.0%)" in text
    assert "| closest | small/Q4_K_M |" in text and "energy per request at most 30 J: 3 of 4" in text


def test_one_fit_has_no_runner_up_and_names_the_closest_outside():
    a, b = answer(peak_memory_mb=200)
    assert ans.name(a.best) == "small/Q4_K_M" and a.runner_up is None
    text = "\n".join(ans.lines(a, b, tasks_table(), 512))
    assert "No runner-up: nothing else fits the budgets." in text
    assert "The closest outside them is small/F16: peak memory 408 MB, the budget at most 200 MB." in text


def test_one_task_metric_as_the_accuracy_and_bad_budgets():
    a, _ = answer(accuracy="arc_easy/acc_norm")
    assert a.best["acc_pct"] == pytest.approx(75.0) and a.best["n_items"] == ITEMS
    with pytest.raises(EdgelawError, match="budgets.accuracy: 'piqa/acc' is not a task/metric of the task tables"):
        answer(accuracy="piqa/acc")
    # failed runs at the request's length: listed, not ranked
    runs = runs_table()
    lost = (runs["model"] == "big") & (runs["x"] == 512)
    a = ans.choose(ans.candidates(runs[~lost], tasks_table(), budgets(), 512, 100, 0))
    assert ans.name(a.best) == "small/Q4_K_M" and not a.table.set_index("quant").loc["Q8_0", "measured"]
    assert "No kept runs at or above 512 prompt tokens, so not ranked: big/Q4_K_M, big/Q8_0." in "\n".join(
        ans.lines(a, budgets(), tasks_table(), 512))
    none = ans.choose(ans.candidates(runs[runs["x"] < 512], tasks_table(), budgets(), 512, 100, 0))
    assert none.best is None and none.closest is None
    assert "nothing can be ranked" in "\n".join(ans.lines(none, budgets(), tasks_table(), 512))
    no_tasks = ans.choose(ans.candidates(runs_table(), pd.DataFrame(), budgets(), 512, 100, 0))
    assert no_tasks.best is None and no_tasks.table["energy_j"].notna().all()
    assert "\"best\" cannot be judged: set tasks.sets" in "\n".join(ans.lines(no_tasks, budgets(), pd.DataFrame(), 512))


def test_one_prompt_length_falls_back_to_the_runs_mean():
    runs = runs_table()
    a = ans.choose(ans.candidates(runs[runs["x"] == 512], tasks_table(), budgets(), 512, 100, 0))
    assert a.best["energy_method"] == "mean of 3 runs" and a.best["energy_low"] < a.best["energy_high"]


def test_the_config_checks_the_budgets():
    ok = validate(tiny_config(budgets={"peak_memory_mb": 300, "prompt_tokens": 16}))
    assert ok["budgets"] == {"peak_memory_mb": 300, "energy_j": None, "prompt_tokens": 16, "min_accuracy_pct": None,
                             "accuracy": None}
    with pytest.raises(EdgelawError, match=r"budgets.prompt_tokens: 2000 is outside the measured prompt lengths "
                                           r"\(bench.prompt_tokens 16 to 64\)"):
        validate(tiny_config(budgets={"prompt_tokens": 2000}))
    with pytest.raises(EdgelawError, match="budgets.min_accuracy_pct: needs task accuracy, and tasks.sets is empty"):
        validate(tiny_config(budgets={"min_accuracy_pct": 50}))
    with pytest.raises(EdgelawError, match="budgets.accuracy: 'piqa/acc' names task 'piqa'"):
        validate(tiny_config(budgets={"accuracy": "piqa/acc"}, tasks={"sets": {"arc_easy": {}}}))
    with pytest.raises(EdgelawError, match="budgets.peak_memory_mb"):
        validate(tiny_config(budgets={"peak_memory_mb": -1}))
