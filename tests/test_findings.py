"""Study B's size findings (edgelaw.laws.findings) on small hand-built tables: the paired crossover
comparison, the frontier, the bottleneck table and its trend with size, and the report's words."""

import json

import numpy as np
import pandas as pd
import pytest

from edgelaw.core import tables
from edgelaw.laws import findings
from edgelaw.report import findings as report

N_BOOT, SEED = 2000, 7

# Two models; weight bytes chosen so that the pairs at equal or lower weight memory are
# (small/Q8_0, large/Q4_K_M), (small/Q8_0, large/Q2_K) and (small/Q4_K_M, large/Q2_K), not (small/Q4_K_M, large/Q4_K_M).
SIZES = pd.DataFrame([
    {"model": "small", "quant": "Q8_0", "bpw": 8.5, "n_params": 100_000_000, "weight_bytes": 200_000_000},
    {"model": "small", "quant": "Q4_K_M", "bpw": 4.8, "n_params": 100_000_000, "weight_bytes": 100_000_000},
    {"model": "large", "quant": "Q4_K_M", "bpw": 4.8, "n_params": 300_000_000, "weight_bytes": 180_000_000},
    {"model": "large", "quant": "Q2_K", "bpw": 2.6, "n_params": 300_000_000, "weight_bytes": 90_000_000},
])
N = 100


def correct(*ranges) -> np.ndarray:
    """A 0/1 score per item: 1 on the items in the given ranges."""
    v = np.zeros(N)
    for a, b in ranges:
        v[a:b] = 1
    return v


# small/Q8_0 gets items 0-39 right; large/Q4_K_M those and 30 more (clearly better, paired);
# large/Q2_K only 0-9 (clearly worse); small/Q4_K_M 0-19 and large/Q2_K's 0-9 plus ... (see below).
SCORES = {("small", "Q8_0"): correct((0, 40)), ("small", "Q4_K_M"): correct((0, 12)),
          ("large", "Q4_K_M"): correct((0, 70)), ("large", "Q2_K"): correct((0, 10), (50, 52))}


def items_table(scores=SCORES, task="arc_easy", column="acc", n=N) -> pd.DataFrame:
    rows = []
    for (model, quant), v in scores.items():
        for i in range(n):
            rows.append({"model": model, "quant": quant, "task": task, "item": i, column: float(v[i])})
    return pd.DataFrame(rows)


def tasks_table(task="arc_easy", metric="acc") -> pd.DataFrame:
    heads = [{"model": m, "quant": q, "task": task, "metric": metric, "headline": True} for m, q in SCORES]
    other = [{"model": m, "quant": q, "task": task, "metric": "acc_norm", "headline": False} for m, q in SCORES]
    return pd.DataFrame(heads + other)


def pair(table, small_quant, large_quant, task="arc_easy") -> pd.Series:
    sel = (table["small_quant"] == small_quant) & (table["large_quant"] == large_quant) & (table["task"] == task)
    assert sel.sum() == 1, table[["small_quant", "large_quant", "task"]]
    return table[sel].iloc[0]


def test_crossover_pairs_only_equal_or_lower_weight_bytes_and_settles_each_side():
    cross = findings.crossover(items_table(), tasks_table(), SIZES, N_BOOT, SEED)
    assert list(cross.columns) == tables.CROSSOVER.names
    assert set(zip(cross["small_quant"], cross["large_quant"])) == {("Q8_0", "Q4_K_M"), ("Q8_0", "Q2_K"),
                                                                   ("Q4_K_M", "Q2_K")}
    assert (cross["large_weight_bytes"] <= cross["small_weight_bytes"]).all() and (cross["small_model"] == "small").all()
    better = pair(cross, "Q8_0", "Q4_K_M")  # 70% vs 40%
    assert better["diff"] == pytest.approx(0.30) and better["ci_low"] > 0.2 and better["verdict"] == findings.LARGER
    worse = pair(cross, "Q8_0", "Q2_K")  # 12% vs 40%
    assert worse["diff"] == pytest.approx(-0.28) and worse["ci_high"] < 0 and worse["verdict"] == findings.SMALLER
    tie = pair(cross, "Q4_K_M", "Q2_K")  # 12% vs 12%, two items each way
    assert tie["diff"] == pytest.approx(0.0) and tie["ci_low"] < 0 < tie["ci_high"] and tie["verdict"] == findings.UNCLEAR
    assert (cross["n_items"] == N).all() and (cross["note"] == "").all()
    # One task: no pooled row.
    assert findings.POOLED not in set(cross["task"])


def test_the_paired_interval_is_narrower_than_an_unpaired_one_when_items_correlate():
    cross = findings.crossover(items_table(), tasks_table(), SIZES, N_BOOT, SEED)
    r = pair(cross, "Q8_0", "Q4_K_M")  # large is right wherever small is: strongly correlated items
    assert r["diff_se"] < 0.7 * r["unpaired_se"]
    assert r["ci_high"] - r["ci_low"] < 0.8 * 2 * 1.96 * r["unpaired_se"]
    # Independent items (no correlation): the paired and unpaired errors agree.
    rng = np.random.default_rng(0)
    scores = {k: rng.integers(0, 2, N).astype(float) for k in SCORES}
    r = pair(findings.crossover(items_table(scores), tasks_table(), SIZES, N_BOOT, SEED), "Q8_0", "Q4_K_M")
    assert r["diff_se"] == pytest.approx(r["unpaired_se"], rel=0.2)


def test_pooled_over_tasks_each_task_weighs_the_same_and_resamples_within_tasks():
    # gsm8k's headline is the strict match, stored in the per-item column em_strict; 20 items against arc's 100.
    gsm = {k: correct((0, 20)) for k in SCORES}
    gsm[("large", "Q4_K_M")] = correct((0, 5))
    items = pd.concat([items_table(), items_table(gsm, "gsm8k", "em_strict", 20)], ignore_index=True)
    tasks = pd.concat([tasks_table(), tasks_table("gsm8k", "exact_match,strict-match")], ignore_index=True)
    cross = findings.crossover(items, tasks, SIZES, N_BOOT, SEED)
    arc, gsm8k = pair(cross, "Q8_0", "Q4_K_M"), pair(cross, "Q8_0", "Q4_K_M", "gsm8k")
    pooled = pair(cross, "Q8_0", "Q4_K_M", findings.POOLED)
    assert gsm8k["metric"] == "exact_match,strict-match" and gsm8k["diff"] == pytest.approx(-0.75)
    assert pooled["diff"] == pytest.approx((arc["diff"] + gsm8k["diff"]) / 2)  # not weighted by items
    assert pooled["n_items"] == 120 and pooled["metric"] == findings.POOLED_METRIC
    assert pooled["diff_se"] == pytest.approx(np.hypot(arc["diff_se"], gsm8k["diff_se"]) / 2)
    assert pooled["ci_low"] < pooled["diff"] < pooled["ci_high"]


def test_crossover_is_seeded_and_independent_of_row_order():
    items, tasks = items_table(), tasks_table()
    host, settings = {}, {"n_boot": 500, "seed": 3}
    a, _ = findings.derive_findings(pd.DataFrame(), items, tasks, SIZES, host, settings)
    b, _ = findings.derive_findings(pd.DataFrame(), items.sample(frac=1, random_state=1), tasks,
                                    SIZES.iloc[::-1], host, settings)
    pd.testing.assert_frame_equal(a, b)
    c, _ = findings.derive_findings(pd.DataFrame(), items, tasks, SIZES, host, {"n_boot": 500, "seed": 4})
    assert not np.allclose(a["ci_low"], c["ci_low"])  # another seed, other draws


def test_items_one_side_lacks_are_left_out_and_said():
    items = items_table()
    items = items[~((items["model"] == "large") & (items["quant"] == "Q4_K_M") & (items["item"] >= 90))]
    r = pair(findings.crossover(items, tasks_table(), SIZES, N_BOOT, SEED), "Q8_0", "Q4_K_M")
    assert r["n_items"] == 90 and "10 items scored by one configuration only" in r["note"]


def test_one_model_has_no_pairs():
    one = SIZES[SIZES["model"] == "small"]
    items = items_table({k: v for k, v in SCORES.items() if k[0] == "small"})
    cross = findings.crossover(items, tasks_table(), one, N_BOOT, SEED)
    assert cross.empty and list(cross.columns) == tables.CROSSOVER.names


def test_a_missing_item_column_is_named():
    items = items_table().drop(columns=["acc"]).assign(other=1.0)
    with pytest.raises(Exception, match="no column 'acc' for arc_easy"):
        findings.crossover(items, tasks_table(), SIZES, N_BOOT, SEED)


def trade_table() -> pd.DataFrame:
    acc = {k: v.mean() for k, v in SCORES.items()}
    rows = [{"model": r.model, "quant": r.quant, "bpw": r.bpw, "weight_bytes": r.weight_bytes,
             "task_acc": acc[(r.model, r.quant)], "task_acc_se": 0.04, "x_ref": 64} for r in SIZES.itertuples()]
    return pd.DataFrame(rows)


def test_frontier_is_the_best_accuracy_at_or_below_each_size():
    trade = trade_table()  # small/Q4 100 MB 12%, large/Q2 90 MB 12%, large/Q4 180 MB 70%, small/Q8 200 MB 40%
    flags = dict(zip(trade["model"] + "/" + trade["quant"], findings.frontier(trade)))
    assert flags == {"small/Q8_0": False, "small/Q4_K_M": False, "large/Q4_K_M": True, "large/Q2_K": True}
    steps = findings.frontier_steps(trade)
    assert list(steps["quant"]) == ["Q2_K", "Q4_K_M"] and list(steps["after"]) == ["", "large/Q2_K"]


def run_rows(model, quant, bpw, x, decode_tps, ttft, decode_s, cpu_pre, cpu_dec, reps=3):
    return [{"run_id": f"{model}-{quant}-{x}-{r}", "status": "ok", "workload": "tokens", "model": model, "quant": quant,
             "bpw": bpw, "x": x, "rep": r, "decode_tps": decode_tps * (1 + 0.01 * (r - 1)), "t_start": 10.0,
             "ttft_s": ttft, "t_first_token": 10.0 + ttft, "t_end": 10.0 + ttft + decode_s,
             "cpu_core_s_prefill": cpu_pre, "cpu_core_s_decode": cpu_dec} for r in range(reps)]


def bottleneck_runs() -> pd.DataFrame:
    # bandwidth 10 GB/s: small/Q4 (100 MB) bound 100 tok/s, decodes 30 (30%); large/Q4 (180 MB) bound 55.6,
    # decodes 40 (72%): the larger model is closer to the bound.
    rows = (run_rows("small", "Q4_K_M", 4.8, 64, 30.0, 1.0, 3.0, 1.5, 4.5)
            + run_rows("small", "Q4_K_M", 4.8, 16, 31.0, 0.25, 3.0, 0.4, 4.5)
            + run_rows("large", "Q4_K_M", 4.8, 64, 40.0, 2.0, 2.0, 3.0, 3.0)
            + run_rows("small", "Q8_0", 8.5, 64, 20.0, 1.0, 3.0, 1.5, 4.5))
    rows.append({**rows[0], "run_id": "failed", "status": "failed", "decode_tps": 1000.0})
    return pd.DataFrame(rows)


def test_bottleneck_table_has_the_roofline_fraction_and_the_prefill_split():
    neck = findings.bottleneck(bottleneck_runs(), SIZES, 10.0)
    assert list(neck.columns) == tables.BOTTLENECK.names and len(neck) == 4  # the failed run is left out
    small = neck[(neck["model"] == "small") & (neck["quant"] == "Q4_K_M") & (neck["x"] == 64)].iloc[0]
    assert small["roofline_fraction"] == pytest.approx(0.30) and small["n_runs"] == 3
    assert small["roofline_fraction_se"] == pytest.approx(0.003 / np.sqrt(3), rel=1e-6)
    assert small["prefill_time_share"] == pytest.approx(0.25) and small["prefill_cpu_share"] == pytest.approx(0.25)
    assert small["n_params"] == 100_000_000 and small["weight_bytes"] == 100_000_000
    large = neck[(neck["model"] == "large") & (neck["x"] == 64)].iloc[0]
    assert large["roofline_fraction"] == pytest.approx(40 * 0.18 / 10) and large["prefill_cpu_share"] == pytest.approx(0.5)
    # A CPU AUC below 0 (the idle baseline above a tiny run's own use) gives no share for that run.
    noisy = bottleneck_runs()
    noisy.loc[noisy["run_id"] == "large-Q4_K_M-64-0", "cpu_core_s_prefill"] = -0.01
    cell = findings.bottleneck(noisy, SIZES, 10.0).query("model == 'large' and x == 64").iloc[0]
    assert cell["prefill_cpu_share"] == pytest.approx(0.5) and cell["n_runs"] == 3
    noisy.loc[noisy["model"] == "large", "cpu_core_s_decode"] = -0.01
    assert np.isnan(findings.bottleneck(noisy, SIZES, 10.0).query("model == 'large'").iloc[0]["prefill_cpu_share"])
    # No measured bandwidth: no fraction, the split still stands.
    bare = findings.bottleneck(bottleneck_runs(), SIZES, None)
    assert bare["roofline_fraction"].isna().all() and bare["prefill_cpu_share"].notna().all()


def test_size_trend_compares_the_smallest_and_largest_model_per_scheme():
    neck = findings.bottleneck(bottleneck_runs(), SIZES, 10.0)
    trend = findings.size_trend(neck, 64)
    assert list(trend["quant"]) == ["Q4_K_M"]  # Q8_0 is measured on one model only
    r = trend.iloc[0]
    assert (r["smallest"], r["largest"]) == ("small", "large") and r["diff"] == pytest.approx(0.72 - 0.30)
    assert r["ci_low"] > 0 and r["rho"] == pytest.approx(1.0)
    cpu = findings.size_trend(neck, 64, "prefill_cpu_share").iloc[0]
    assert cpu["diff"] == pytest.approx(0.25) and cpu["ci_low"] > 0  # constant within a cell: se 0
    # The other way round (the smaller model closer to the bound): the trend falls.
    flipped = neck.assign(roofline_fraction=1 - neck["roofline_fraction"])
    assert findings.size_trend(flipped, 64).iloc[0]["ci_high"] < 0


def test_sizes_read_from_the_schemes_records(tmp_path):
    paths = []
    for r in SIZES.itertuples():
        p = tmp_path / f"{r.model}-{r.quant}.json"
        p.write_text(json.dumps({"model": r.model, "scheme": r.quant, "bpw": r.bpw, "n_params": r.n_params,
                                 "weight_bytes": r.weight_bytes, "file_bytes": r.weight_bytes + 5}))
        paths.append(p)
    got = findings.sizes(paths)
    pd.testing.assert_frame_equal(got, SIZES, check_dtype=False)
    assert findings.model_order(got) == ["small", "large"]


def test_report_says_where_the_crossover_lies_and_whether_the_bottleneck_moves(tmp_path):
    cross = findings.crossover(items_table(), tasks_table(), SIZES, N_BOOT, SEED)
    neck = findings.bottleneck(bottleneck_runs(), SIZES, 10.0)
    text = "\n".join(report.lines(cross, neck, trade_table()))
    assert "Pairs with the larger model's weights at or below the smaller model's: 3" in text
    assert "larger model better in 1 (interval above 0), smaller model better in 1" in text
    assert "large/Q4_K_M (180 MB) vs small/Q8_0 (200 MB): 70.0% vs 40.0%, +30.0 points" in text
    # The frontier is large/Q2_K (90 MB, 12%) then large/Q4_K_M: the larger model holds it at every size.
    assert "The frontier never passes from a smaller model to a larger one as size rises: it is held by large " in text
    assert "As study B found" in text and "Q4_K_M: small 30% → large 72%" in text
    # A frontier that does pass to the larger model: make the small model's cheapest scheme the best small one.
    trade = trade_table()
    trade.loc[(trade["model"] == "small") & (trade["quant"] == "Q4_K_M"), ["weight_bytes", "task_acc"]] = [50e6, 0.3]
    text = "\n".join(report.crossover_lines(cross, trade, neck))
    assert "at 180 MB, large/Q4_K_M (70.0%) takes over from small/Q4_K_M" in text and "never passes" not in text
    assert "How sure the crossover at 180 MB is: large/Q4_K_M against the 1 smaller-model configurations" in text
    for name, fig in report.draw(cross, neck, trade).items():
        fig.savefig(tmp_path / f"{name}.png")
        assert (tmp_path / f"{name}.png").stat().st_size > 10_000


def test_report_with_one_model_says_so():
    one = trade_table()[lambda t: t["model"] == "small"]
    neck = findings.bottleneck(bottleneck_runs()[lambda r: r["model"] == "small"], SIZES, 10.0)
    empty = pd.DataFrame(columns=tables.CROSSOVER.names)
    text = "\n".join(report.lines(empty, neck, one))
    assert "scores tasks on 1 model (small): finding 1 compares models of different sizes" in text
    assert "One model only (small): finding 3" in text
