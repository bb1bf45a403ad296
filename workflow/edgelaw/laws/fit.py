"""The empirical laws behind the measurements: straight lines, knees, Pareto fronts, rooflines, comparisons.

A law is fitted to a runs (or quality) table and reported with a 95% percentile bootstrap interval. The
bootstrap resamples whole repetitions of the sweep (the values of `group`, "rep" in the runs table), not
single rows: the runs of one repetition share a batch, an idle baseline and the host's state, so rows
within it are not independent and resampling them would make the interval too narrow. Where there is
only one repetition (e.g. quality, one row per scheme) rows are resampled instead and the fit says so.

Two shapes: `fit_linear` (cost grows linearly with prompt tokens, pixels, ...) and `fit_hinge`, flat above
a knee and linear below it, for a VLM's cost against resolution (flat above the model's clamp) and for
quality against bits per weight (flat above a threshold). The knee is found by exhaustive search over the
data's x values and midpoints, then refined, because its least-squares objective is not smooth across
data points and a local optimiser alone lands in the wrong segment.

Pure library: numpy, scipy and pandas; no plotting, no files. The rows `Fit.to_rows` returns are laws.parquet's
(edgelaw.core.tables.LAWS).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd
from scipy.optimize import minimize_scalar

from edgelaw.core.errors import EdgelawError

CI = (2.5, 97.5)
EDGE_NOTE = "knee at the edge of the data: no threshold inside the measured range"


@dataclass
class Fit:
    """One fitted law: its parameters with 95% bootstrap intervals, and which rows it used."""

    law: str
    x: str
    y: str
    model: str | None
    quant: str | None
    kind: str  # "linear" | "hinge"
    params: dict[str, float]
    ci_low: dict[str, float]
    ci_high: dict[str, float]
    r2: float
    n: int
    rows: list[str] = field(default_factory=list)
    note: str = ""

    def predict(self, x) -> np.ndarray:
        p, x = self.params, np.asarray(x, float)
        if self.kind == "linear":
            return p["intercept"] + p["slope"] * x
        return hinge(x, p["knee"], p["level"], p["slope"])

    def to_rows(self) -> list[dict]:
        """One flat dict per parameter, the rows of laws.parquet (edgelaw.core.tables.LAWS)."""
        rows = json.dumps(self.rows)
        return [
            {"law": self.law, "x": self.x, "y": self.y, "model": self.model, "quant": self.quant, "kind": self.kind,
             "param": k, "value": float(v), "ci_low": float(self.ci_low[k]), "ci_high": float(self.ci_high[k]),
             "r2": float(self.r2), "n": int(self.n), "rows": rows, "note": self.note}
            for k, v in self.params.items()
        ]


def hinge(x, knee: float, level: float, slope: float):
    """Constant `level` at and above `knee`, linear below it; slope > 0 means y falls as x falls below."""
    return level - slope * np.maximum(0.0, knee - np.asarray(x, float))


# --- data preparation ------------------------------------------------------------------------------


@dataclass
class _Data:
    x: np.ndarray
    y: np.ndarray
    ids: list[str]
    groups: list[np.ndarray]  # row indices of each repetition; one entry when resampling rows
    note: str


def _prepare(df: pd.DataFrame, x: str, y: str, group: str, id_col: str, law: str, min_x: int, what: str) -> _Data:
    for col in (x, y):
        if col not in df.columns:
            raise EdgelawError(f"law {law!r}: the table has no column {col!r}; fit one it has: {sorted(df.columns)}")
    xs = pd.to_numeric(df[x], errors="coerce").to_numpy(float)
    ys = pd.to_numeric(df[y], errors="coerce").to_numpy(float)
    ok = np.isfinite(xs) & np.isfinite(ys)
    distinct = len(np.unique(xs[ok]))
    if distinct < min_x:
        raise EdgelawError(
            f"law {law!r} ({y} vs {x}): a {what} fit needs at least {min_x} distinct values of {x} with a value of "
            f"{y}, got {distinct} (of {len(df)} rows); measure more points of the sweep"
        )
    ids = df[id_col] if id_col in df.columns else pd.Series(df.index, index=df.index)
    ids = [str(v) for v in ids[ok]]
    note = ""
    if group in df.columns:
        codes = pd.factorize(df[group][ok], use_na_sentinel=False)[0]
        groups = [np.flatnonzero(codes == k) for k in range(codes.max(initial=-1) + 1)]
    else:
        groups = []
    if len(groups) < 2:
        # One repetition holds no information on repetition-to-repetition spread: fall back to cases.
        note = f"one {group!r} group: the CI resamples rows, not repetitions"
        groups = [np.arange(int(ok.sum()))]
    return _Data(xs[ok], ys[ok], ids, groups, note)


def _bootstrap(data: _Data, fit: Callable[[np.ndarray, np.ndarray], dict[str, float] | None], min_x: int,
               n_boot: int, seed: int) -> tuple[dict[str, float], dict[str, float], str]:
    """Percentile intervals of `fit` over resamples of whole groups (or rows, where there is one group)."""
    rng = np.random.default_rng(seed)
    draws, skipped = [], 0
    for _ in range(n_boot):
        if len(data.groups) > 1:
            picks = rng.integers(0, len(data.groups), len(data.groups))
            idx = np.concatenate([data.groups[i] for i in picks])
        else:
            idx = rng.integers(0, len(data.x), len(data.x))
        xb, yb = data.x[idx], data.y[idx]
        # A resample that lost too many x values cannot identify the law; it is skipped, not failed.
        p = fit(xb, yb) if len(np.unique(xb)) >= min_x else None
        if p is None:
            skipped += 1
        else:
            draws.append(p)
    note = f"{skipped} of {n_boot} bootstrap resamples had too few distinct x and were skipped" if skipped else ""
    if not draws:
        return {}, {}, note or "no bootstrap resamples: no CI"
    table = pd.DataFrame(draws)
    low = {k: float(np.percentile(table[k], CI[0])) for k in table}
    high = {k: float(np.percentile(table[k], CI[1])) for k in table}
    return low, high, note


def _r2(y: np.ndarray, pred: np.ndarray) -> float:
    sst = float(((y - y.mean()) ** 2).sum())
    return float("nan") if sst == 0 else 1.0 - float(((y - pred) ** 2).sum()) / sst


def _labels(x: str, y: str, labels: dict) -> tuple[str, str | None, str | None]:
    unknown = set(labels) - {"law", "model", "quant"}
    if unknown:
        raise TypeError(f"unknown labels {sorted(unknown)}; a fit takes law, model and quant")
    return labels.get("law") or f"{y} vs {x}", labels.get("model"), labels.get("quant")


def _join(*notes: str) -> str:
    return "; ".join(n for n in notes if n)


def _make(kind: str, x: str, y: str, labels: dict, data: _Data, params: dict[str, float], refit: Callable,
          min_x: int, n_boot: int, seed: int, *notes: str) -> Fit:
    law, model, quant = _labels(x, y, labels)
    low, high, boot_note = _bootstrap(data, refit, min_x, n_boot, seed)
    nan = float("nan")
    result = Fit(law, x, y, model, quant, kind, params, {k: low.get(k, nan) for k in params},
                 {k: high.get(k, nan) for k in params}, nan, len(data.x), data.ids)
    result.r2 = _r2(data.y, result.predict(data.x))
    result.note = _join(data.note, boot_note, *notes)
    return result


# --- linear ----------------------------------------------------------------------------------------


def _ols(x: np.ndarray, y: np.ndarray) -> dict[str, float] | None:
    dx = x - x.mean()
    sxx = float((dx * dx).sum())
    if sxx == 0:
        return None
    slope = float((dx * (y - y.mean())).sum()) / sxx
    return {"slope": slope, "intercept": float(y.mean() - slope * x.mean())}


def fit_linear(df: pd.DataFrame, x: str, y: str, group: str = "rep", id_col: str = "run_id", *, n_boot: int,
               seed: int, **labels) -> Fit:
    """Ordinary least squares y = intercept + slope * x, with a bootstrap over repetitions.

    `labels`: law (default "y vs x"), model, quant. Rows with NaN in x or y are dropped.
    """
    law = _labels(x, y, labels)[0]
    data = _prepare(df, x, y, group, id_col, law, 3, "linear")
    return _make("linear", x, y, labels, data, _ols(data.x, data.y), _ols, 2, n_boot, seed)


# --- hinge -----------------------------------------------------------------------------------------


def _hinge_sse(x: np.ndarray, y: np.ndarray, knees: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each candidate knee: the least-squares level and slope, and the sum of squared residuals.

    Closed form of the two-parameter regression y = level + c * max(0, knee - x), c = -slope, for many
    knees at once. A knee at or below every x makes the hinge column zero: the fit is flat there.
    """
    h = np.maximum(0.0, knees[:, None] - x[None, :])
    hm = h.mean(axis=1, keepdims=True)
    dh, dy = h - hm, y - y.mean()
    shh = (dh * dh).sum(axis=1)
    shy = (dh * dy).sum(axis=1)
    c = np.divide(shy, shh, out=np.zeros_like(shy), where=shh > 0)
    level = y.mean() - c * hm[:, 0]
    sse = np.maximum(0.0, float((dy * dy).sum()) - c * shy)
    return level, -c, sse


def _hinge_fit(x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    ux = np.unique(x)
    grid = np.sort(np.concatenate([ux, (ux[:-1] + ux[1:]) / 2]))
    level, slope, sse = _hinge_sse(x, y, grid)
    # Ties (e.g. perfectly flat data) go to the lowest knee: the simplest reading, "no fall measured".
    i = int(np.argmin(sse))
    best = (float(sse[i]), float(grid[i]), float(level[i]), float(slope[i]))
    lo, hi = grid[max(i - 1, 0)], grid[min(i + 1, len(grid) - 1)]
    if hi > lo:
        res = minimize_scalar(lambda k: float(_hinge_sse(x, y, np.array([k]))[2][0]), bounds=(lo, hi),
                              method="bounded", options={"xatol": 1e-9 * max(abs(hi), abs(lo), 1.0)})
        lv, sl, ss = _hinge_sse(x, y, np.array([res.x]))
        if ss[0] < best[0] * (1 - 1e-12):
            best = (float(ss[0]), float(res.x), float(lv[0]), float(sl[0]))
    return {"knee": best[1], "level": best[2], "slope": best[3]}


def _at_edge(x: np.ndarray, knee: float) -> bool:
    """A knee places a threshold only with two distinct x on each segment (an x at the knee is on both):
    one point below fits any knee by its slope, and one point above is no evidence of flatness."""
    ux = np.unique(x)
    return int((ux <= knee).sum()) < 2 or int((ux >= knee).sum()) < 2


def fit_hinge(df: pd.DataFrame, x: str, y: str, group: str = "rep", id_col: str = "run_id", *, n_boot: int,
              seed: int, **labels) -> Fit:
    """Least-squares hinge y = level - slope * max(0, knee - x), knee within [min x, max x].

    Used for a VLM's cost against pixels (flat above its clamp) and quality against BPW (flat above a
    threshold). `labels`: law, model, quant. The note says when the knee is not inside the data or the
    fall below it is not distinguishable from none.
    """
    law = _labels(x, y, labels)[0]
    data = _prepare(df, x, y, group, id_col, law, 4, "hinge")
    params = _hinge_fit(data.x, data.y)
    notes = []
    if _at_edge(data.x, params["knee"]):
        notes.append(EDGE_NOTE)
    fit = _make("hinge", x, y, labels, data, params, _hinge_fit, 3, n_boot, seed, *notes)
    if not notes:
        # A knee inside the data can still be noise: its CI then runs out to an edge, or the fall is nil.
        low, high = fit.ci_low["knee"], fit.ci_high["knee"]
        if not (np.isfinite(low) and np.isfinite(high)) or _at_edge(data.x, low) or _at_edge(data.x, high):
            notes.append("the knee's CI reaches the edge of the data: the threshold may lie outside the measured range")
        if fit.ci_low["slope"] <= 0 <= fit.ci_high["slope"]:
            notes.append("the slope's CI contains 0: y does not clearly change below the knee")
        fit.note = _join(fit.note, *notes)
    return fit


# --- fronts, rooflines, comparisons ----------------------------------------------------------------


def pareto_front(df: pd.DataFrame, cost: str, quality: str, higher_quality_is_better: bool = True) -> pd.Series:
    """True for rows that no other row dominates (cost <= and quality at least as good, one strictly).

    Rows with NaN cost or quality are never on the front, and do not dominate others.
    """
    c = pd.to_numeric(df[cost], errors="coerce").to_numpy(float)
    q = pd.to_numeric(df[quality], errors="coerce").to_numpy(float)
    if not higher_quality_is_better:
        q = -q
    ok = np.isfinite(c) & np.isfinite(q)
    c, q = np.where(ok, c, np.inf), np.where(ok, q, -np.inf)
    # dominated[i] when some row j is no worse on both and strictly better on one.
    no_worse = (c[None, :] <= c[:, None]) & (q[None, :] >= q[:, None])
    better = (c[None, :] < c[:, None]) | (q[None, :] > q[:, None])
    dominated = (no_worse & better & ok[None, :]).any(axis=1)
    return pd.Series(ok & ~dominated, index=df.index, name="pareto")


def roofline(decode_tps, bytes_per_token, bandwidth_bytes_s):
    """Fraction of the memory-bandwidth bound reached by decoding.

    Decoding reads every weight (and the KV cache) once per token, so it cannot exceed bandwidth /
    bytes_per_token tokens/s. Works on scalars, numpy arrays and pandas Series (index kept).
    """
    def values(v):
        return v if isinstance(v, (pd.Series, pd.DataFrame)) else np.asarray(v, float)

    tps, bpt, bw = values(decode_tps), values(bytes_per_token), values(bandwidth_bytes_s)
    for name, v in (("bytes_per_token", bpt), ("bandwidth_bytes_s", bw)):
        if np.any(np.asarray(v, float) <= 0):
            raise EdgelawError(f"roofline: {name} must be positive; check the model's size or the device's bandwidth")
    out = tps * bpt / bw
    return float(out) if np.ndim(out) == 0 else out


def percent_change(base_values, variant_values, *, n_boot: int, seed: int) -> dict:
    """% change of the variant's mean against the baseline's, with a 95% bootstrap CI (each side resampled
    on its own, as the two are measured independently). NaNs are dropped."""
    b = np.asarray(base_values, float)
    v = np.asarray(variant_values, float)
    b, v = b[np.isfinite(b)], v[np.isfinite(v)]
    if len(b) == 0 or len(v) == 0:
        side = "baseline" if len(b) == 0 else "variant"
        raise EdgelawError(f"percent change: the {side} has no values; measure it before comparing")
    if b.mean() == 0:
        raise EdgelawError("percent change: the baseline's mean is 0, so a % change is undefined; compare differences")
    rng = np.random.default_rng(seed)
    bm = b[rng.integers(0, len(b), (n_boot, len(b)))].mean(axis=1)
    vm = v[rng.integers(0, len(v), (n_boot, len(v)))].mean(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        pct = 100 * (vm - bm) / bm
    pct = pct[np.isfinite(pct)]
    low, high = np.percentile(pct, CI) if len(pct) else (float("nan"), float("nan"))
    return {"value": float(100 * (v.mean() - b.mean()) / b.mean()), "ci_low": float(low), "ci_high": float(high),
            "n_base": int(len(b)), "n_variant": int(len(v))}
