"""What one bench job runs: its points, in order, and the context they need.

A point is a dict: run_id, point_id, attempt, x (prompt tokens, or pixels for an image), n_gen, rep,
warmup, and for the resolution workload the image's series, w and h. A point measured again (its run
was disturbed) keeps its point_id and gets a new run_id: `again`.
"""

from __future__ import annotations

import random

from edgelaw.measure import images
from edgelaw.measure.settings import Settings


def schedule(s: Settings, workload: str = "tokens") -> list[dict]:
    """Warm-up runs (largest point, not recorded), then repetitions of the sweep, one sweep at a time."""
    if workload == "resolution":
        return image_schedule(s)
    points = [_point(f"warmup{w}", x=max(s.prompt_tokens), n_gen=s.n_gen, rep=-1, warmup=True) for w in range(s.warmup)]
    for rep in range(s.repetitions):
        for x in _order(s, rep, s.prompt_tokens):
            points.append(_point(f"x{x}-r{rep}", x=x, n_gen=s.n_gen, rep=rep, warmup=False))
    return points


def _order(s: Settings, rep: int, sweep: list) -> list:
    """One repetition's points: in the sweep's order, or (`bench.shuffle`) in an order drawn from the
    repetition's number. A host whose speed drifts over a job (a VM's neighbours, a laptop warming up)
    would otherwise slow the sweep's last points most in every repetition and tilt the fitted slope; in
    a random order the drift only widens the scatter, which the fit's interval shows."""
    order = list(sweep)
    if s.shuffle:
        random.Random(rep).shuffle(order)
    return order


def _point(run_id: str, **fields) -> dict:
    return {"run_id": run_id, "point_id": run_id, "attempt": 0, **fields}


def again(point: dict) -> dict:
    """The same point, to be measured once more: its next attempt, under a run_id of its own."""
    attempt = point["attempt"] + 1
    return {**point, "attempt": attempt, "run_id": f"{point['point_id']}-a{attempt}"}


def image_schedule(s: Settings) -> list[dict]:
    """The resolution sweep: one image at every size of the sweep; x is its nominal pixel count."""
    r = s.resolution
    sweep = images.sizes(r["long_sides"], r["aspect"], r["square"])
    series, w, h = max(sweep, key=lambda t: t[1] * t[2])
    points = [_point(f"warmup{i}", x=w * h, w=w, h=h, series=series, n_gen=r["n_gen"], rep=-1, warmup=True)
              for i in range(s.warmup)]
    for rep in range(s.repetitions):
        for series, w, h in _order(s, rep, sweep):
            points.append(_point(f"{w}x{h}-r{rep}", x=w * h, w=w, h=h, series=series, n_gen=r["n_gen"], rep=rep,
                                 warmup=False))
    return points


def context_size(settings: Settings, points: list[dict], geometry: dict | None) -> int:
    """The worker's context: the longest prompt, or the most tokens an image of the sweep can become
    (the clamp; without one, e.g. a family that resizes to a fixed size, the largest image bounds it)."""
    if geometry is None:
        return settings.n_ctx()
    largest = max(p["x"] for p in points) // geometry["token_side"] ** 2 + 1
    return settings.n_ctx(geometry["clamp_tokens"] or largest)
