"""Areas under sampled curves, above a baseline, over a time window."""

from __future__ import annotations

import numpy as np


def integral(t, y, t0: float, t1: float) -> float:
    """Integral over [t0, t1] of the piecewise-linear curve through (t, y) (trapezoid rule)."""
    t, y = np.asarray(t, float), np.asarray(y, float)
    ok = ~np.isnan(y)
    t, y = t[ok], y[ok]
    if t1 <= t0 or len(t) == 0:
        return 0.0
    inside = (t > t0) & (t < t1)
    ts = np.concatenate([[t0], t[inside], [t1]])
    ys = np.concatenate([[np.interp(t0, t, y)], y[inside], [np.interp(t1, t, y)]])
    return float(np.trapezoid(ys, ts))


def counter_delta(t, c, t0: float, t1: float) -> float:
    """Increase of a cumulative counter over [t0, t1], interpolated between samples."""
    t, c = np.asarray(t, float), np.asarray(c, float)
    ok = ~np.isnan(c)
    if ok.sum() < 2:
        return float("nan")
    return float(np.interp(t1, t[ok], c[ok]) - np.interp(t0, t[ok], c[ok]))
