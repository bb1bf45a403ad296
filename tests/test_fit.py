"""Law fits on synthetic data with known truth: lines, knees, Pareto fronts, rooflines, comparisons."""

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from edgelaw.core.errors import EdgelawError
from edgelaw.core.tables import LAWS
from edgelaw.laws.fit import EDGE_NOTE, Fit, percent_change, fit_hinge, fit_linear, hinge, pareto_front, roofline

X_TOKENS = [32, 64, 128, 256, 512, 1024]
PIXELS = np.geomspace(4e3, 4e6, 13)
BPW = [16, 8.5, 6.6, 5.5, 4.9, 4.5, 3.9, 3.4, 2.6]


def sweep(xs, f, noise: float, reps: int = 3, seed: int = 0) -> pd.DataFrame:
    """A runs-like table: every x measured once per repetition, with Gaussian noise."""
    rng = np.random.default_rng(seed)
    rows = [{"run_id": f"r{rep}-{i}", "rep": rep, "x": float(x), "y": float(f(x) + rng.normal(0, noise))}
            for rep in range(reps) for i, x in enumerate(xs)]
    return pd.DataFrame(rows)


def line(x):
    return 2 + 0.5 * x


# --- linear ----------------------------------------------------------------------------------------


def test_linear_recovers_the_truth_and_its_ci_shrinks_with_the_noise():
    noisy = fit_linear(sweep(X_TOKENS, line, 5.0), "x", "y", n_boot=300, law="cost", model="m", quant="Q4_0", seed=0)
    quiet = fit_linear(sweep(X_TOKENS, line, 0.5), "x", "y", n_boot=300, seed=0)
    assert noisy.kind == "linear" and (noisy.law, noisy.model, noisy.quant) == ("cost", "m", "Q4_0")
    assert noisy.params["slope"] == pytest.approx(0.5, abs=0.02)
    assert noisy.params["intercept"] == pytest.approx(2, abs=5)
    for f in (noisy, quiet):
        for k, truth in (("slope", 0.5), ("intercept", 2.0)):
            assert f.ci_low[k] <= truth <= f.ci_high[k], (k, f.ci_low[k], f.ci_high[k])
        assert f.r2 > 0.99
        assert f.n == 18 and f.note == ""
    width = {k: (noisy.ci_high[k] - noisy.ci_low[k], quiet.ci_high[k] - quiet.ci_low[k]) for k in noisy.params}
    assert all(q < n / 3 for n, q in width.values()), width


def test_linear_is_deterministic_given_the_seed():
    df = sweep(X_TOKENS, line, 5.0)
    a, b = fit_linear(df, "x", "y", n_boot=100, seed=3), fit_linear(df, "x", "y", n_boot=100, seed=3)
    c = fit_linear(df, "x", "y", n_boot=100, seed=4)
    assert a.ci_low == b.ci_low and a.ci_high == b.ci_high
    assert a.ci_low != c.ci_low


def test_linear_bootstrap_resamples_repetitions_not_rows():
    # Each repetition is offset as a whole (a batch effect): only resampling repetitions sees that spread.
    df = sweep(X_TOKENS, line, 0.01)
    df["y"] += df["rep"].map({0: -30.0, 1: 0.0, 2: 30.0})
    by_rep = fit_linear(df, "x", "y", n_boot=300, seed=0)
    by_row = fit_linear(df.assign(rep=0), "x", "y", n_boot=300, seed=0)
    width = by_rep.ci_high["intercept"] - by_rep.ci_low["intercept"]
    assert width > 40  # spans most of the -30..30 batch offsets
    assert width > 1.5 * (by_row.ci_high["intercept"] - by_row.ci_low["intercept"])


def test_linear_drops_nan_rows():
    df = sweep(X_TOKENS, line, 1.0)
    df.loc[2, "y"] = np.nan
    df.loc[7, "x"] = np.nan
    f = fit_linear(df, "x", "y", n_boot=50, seed=0)
    assert f.n == 16 and len(f.rows) == 16
    assert "r0-2" not in f.rows and "r1-1" not in f.rows and "r0-0" in f.rows


def test_linear_needs_three_distinct_x():
    df = sweep([32, 64], line, 1.0)
    df.loc[len(df)] = {"run_id": "z", "rep": 0, "x": 128.0, "y": np.nan}  # a third x without a y does not count
    with pytest.raises(EdgelawError, match=r"'ttft'.*ttft_s vs x.*at least 3 distinct values of x.*got 2"):
        fit_linear(df.rename(columns={"y": "ttft_s"}), "x", "ttft_s", law="ttft", n_boot=200, seed=0)


def test_missing_column_is_named():
    with pytest.raises(EdgelawError, match="no column 'cpu_core_s'"):
        fit_linear(sweep(X_TOKENS, line, 1.0), "x", "cpu_core_s", n_boot=200, seed=0)


def test_linear_with_one_repetition_resamples_rows_and_says_so():
    f = fit_linear(sweep(X_TOKENS, line, 1.0, reps=1), "x", "y", n_boot=200, seed=0)
    assert "one 'rep' group" in f.note and "resamples rows" in f.note
    assert f.ci_low["slope"] < 0.5 < f.ci_high["slope"]
    # No group column at all is the same case; row ids fall back to the index.
    g = fit_linear(sweep(X_TOKENS, line, 1.0, reps=1).drop(columns=["rep", "run_id"]), "x", "y", n_boot=20, seed=0)
    assert "resamples rows" in g.note and g.rows == [str(i) for i in range(6)]


# --- hinge -----------------------------------------------------------------------------------------


def vlm_cost(knee: float):
    return lambda px: hinge(px, knee, level=40.0, slope=3e-5)


def test_hinge_function():
    assert hinge([0, 5, 10, 20], 10, 7, 0.5).tolist() == [2, 4.5, 7, 7]


def test_hinge_finds_the_resolution_knee_and_follows_it():
    f = fit_hinge(sweep(PIXELS, vlm_cost(1e6), 0.3), "x", "y", n_boot=300, law="vlm_knee", seed=0)
    assert f.kind == "hinge" and set(f.params) == {"knee", "level", "slope"}
    assert f.params["knee"] == pytest.approx(1e6, rel=0.05)
    assert f.ci_low["knee"] <= 1e6 <= f.ci_high["knee"]
    assert f.params["level"] == pytest.approx(40, abs=0.5)
    assert f.params["slope"] == pytest.approx(3e-5, rel=0.05)
    assert f.note == "" and f.r2 > 0.99
    g = fit_hinge(sweep(PIXELS, vlm_cost(2.5e5), 0.3), "x", "y", n_boot=300, seed=0)
    assert g.params["knee"] == pytest.approx(2.5e5, rel=0.05)
    assert g.ci_high["knee"] < f.ci_low["knee"]


def test_hinge_without_a_knee_says_so():
    linear = fit_hinge(sweep(PIXELS, lambda px: 1 + 1e-5 * px, 0.01), "x", "y", n_boot=100, seed=0)
    assert linear.params["knee"] > PIXELS[-2]  # a line: the flat part, if any, holds only the last x
    assert EDGE_NOTE in linear.note
    flat = fit_hinge(sweep(PIXELS, lambda px: 40.0 + 0 * px, 0.0), "x", "y", n_boot=100, seed=0)
    assert EDGE_NOTE in flat.note
    assert flat.params["level"] == pytest.approx(40)
    # With noise, a flat series may put a knee anywhere; the note then says it is not a threshold.
    for seed in range(5):
        noisy = fit_hinge(sweep(PIXELS, lambda px: 40.0 + 0 * px, 0.3, seed=seed), "x", "y", n_boot=100, seed=0)
        assert any(s in noisy.note for s in ("knee at the edge", "knee's CI reaches the edge", "slope's CI reaches 0"))


def test_hinge_finds_the_quality_threshold_in_bits_per_weight():
    def top1(bpw):
        return np.where(bpw >= 4.5, 95.0, 95.0 - 12.0 * (4.5 - np.asarray(bpw)))

    rng = np.random.default_rng(1)
    top1_pct = top1(np.array(BPW)) + rng.normal(0, 0.3, len(BPW))
    df = pd.DataFrame({"quant": [f"q{b}" for b in BPW], "bpw": BPW, "top1_pct": top1_pct})
    f = fit_hinge(df, "bpw", "top1_pct", id_col="quant", n_boot=300, law="quality_threshold", model="m", seed=0)
    assert f.params["knee"] == pytest.approx(4.5, abs=0.3)
    assert f.ci_low["knee"] <= 4.5 <= f.ci_high["knee"]
    assert f.params["level"] == pytest.approx(95, abs=0.5)
    assert "resamples rows" in f.note and EDGE_NOTE not in f.note
    assert f.rows == [f"q{b}" for b in BPW]


def test_hinge_needs_four_distinct_x():
    with pytest.raises(EdgelawError, match="hinge fit needs at least 4 distinct values of x"):
        fit_hinge(sweep(PIXELS[:3], vlm_cost(1e5), 0.1), "x", "y", n_boot=200, seed=0)


# --- Pareto, roofline, compare ---------------------------------------------------------------------


def test_pareto_front():
    df = pd.DataFrame({
        "quant": ["F16", "Q8_0", "Q6_K", "Q4_0", "Q4_K", "Q2_K", "bad", "nan", "twin"],
        "cost":  [10.0,  6.0,    5.0,    3.0,    3.0,    1.0,    6.0,   np.nan, 5.0],
        "top1":  [100.0, 99.0,   97.0,   90.0,   92.0,   60.0,   80.0,  100.0,  97.0],
    }, index=list("abcdefghi"))
    front = pareto_front(df, "cost", "top1")
    assert front.index.equals(df.index) and front.dtype == bool
    assert df.quant[front].tolist() == ["F16", "Q8_0", "Q6_K", "Q4_K", "Q2_K", "twin"]
    # Lower is better (e.g. KL divergence): the ordering flips.
    lower = pareto_front(df.assign(kld=-df.top1), "cost", "kld", higher_quality_is_better=False)
    assert lower.tolist() == front.tolist()
    flipped = pareto_front(df, "cost", "top1", higher_quality_is_better=False)
    assert df.quant[flipped].tolist() == ["Q2_K"]


def test_roofline():
    # 100 GB/s over 4 GB per token bounds decoding at 25 tokens/s; 20 tokens/s is 80% of it.
    assert roofline(20.0, 4e9, 100e9) == pytest.approx(0.8)
    s = roofline(pd.Series([10.0, 25.0], index=["a", "b"]), pd.Series([4e9, 2e9], index=["a", "b"]), 100e9)
    assert s.index.tolist() == ["a", "b"] and s.tolist() == pytest.approx([0.4, 0.5])
    assert roofline(np.array([5.0, 50.0]), 1e9, 100e9) == pytest.approx([0.05, 0.5])
    with pytest.raises(EdgelawError, match="bandwidth_bytes_s must be positive"):
        roofline(1.0, 1e9, 0)


def test_percent_change():
    base = [10.0, 11.0, 9.0, 10.0]
    variant = [12.0, 13.0, 11.0, 12.0, np.nan]
    r = percent_change(base, variant, n_boot=500, seed=0)
    assert r["value"] == pytest.approx(20.0)
    assert r["ci_low"] < 20.0 < r["ci_high"] and r["ci_low"] > 0
    assert (r["n_base"], r["n_variant"]) == (4, 4)
    assert percent_change(variant, base, n_boot=200, seed=0)["value"] == pytest.approx(-100 / 6)
    assert percent_change(base, variant, n_boot=200, seed=1) == percent_change(base, variant, n_boot=200, seed=1)
    with pytest.raises(EdgelawError, match="variant has no values"):
        percent_change(base, [], n_boot=200, seed=0)
    with pytest.raises(EdgelawError, match="baseline has no values"):
        percent_change([np.nan], base, n_boot=200, seed=0)


# --- the laws table --------------------------------------------------------------------------------


def test_rows_round_trip_through_the_laws_schema():
    lin = fit_linear(sweep(X_TOKENS, line, 1.0), "x", "y", n_boot=50, law="prefill", model="m", quant="Q8_0", seed=0)
    knee = fit_hinge(sweep(PIXELS, vlm_cost(1e6), 0.3), "x", "y", n_boot=50, law="knee", seed=0)
    rows = lin.to_rows() + knee.to_rows()
    assert [r["param"] for r in rows] == ["slope", "intercept", "knee", "level", "slope"]
    df = pd.DataFrame(rows)
    table = pa.Table.from_pandas(df, schema=LAWS, preserve_index=False)
    assert table.schema.equals(LAWS)
    back = table.to_pandas()
    assert back["value"].tolist() == pytest.approx(df["value"].tolist())
    assert back["model"].tolist()[:2] == ["m", "m"] and back["model"].isna().tolist()[2:] == [True] * 3
    assert json.loads(back["rows"][0]) == lin.rows and back["n"].tolist() == [18, 18, 39, 39, 39]
    assert isinstance(lin, Fit)
