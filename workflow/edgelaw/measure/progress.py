"""The progress lines of a bench job, read off the timeline as the worker's events arrive."""

from __future__ import annotations

from edgelaw.measure.timeline import Timeline


class Progress:
    """Numbers the measured points (warm-ups are not counted) and words what the latest event completed."""

    def __init__(self, points: list[dict]):
        self.measured = [p for p in points if not p["warmup"]]
        self.index = {p["point_id"]: i for i, p in enumerate(self.measured, 1)}

    def number(self, point: dict) -> str:
        """`run 7/15`, and which attempt where the point is measured again."""
        again = f", attempt {point['attempt'] + 1}" if point.get("attempt") else ""
        return f"run {self.index[point['point_id']]}/{len(self.measured)}{again}"

    def disturbed(self, point: dict, why: str, retrying: bool) -> str:
        then = ("waiting for a quiet host, then measuring again" if retrying else
                "no tries left (bench.disturbance.retries): kept as disturbed, left out of the fits")
        return f"{self.number(point)} disturbed: {why}; {then}"

    def line(self, timeline: Timeline, kind: str, point: dict | None = None) -> str | None:
        """The line for the event just added to `timeline` (about `point`, the one running), or None if
        it says nothing worth a line."""
        if kind == "load_end":
            return f"model loaded in {timeline.loads[-1].seconds:.2f} s"
        run_id = point["run_id"] if point else None
        if kind == "point_error":
            return f"{run_id} failed: {timeline.runs[run_id].error}"
        if point is None or point["warmup"]:
            return None
        run = timeline.runs[run_id]
        if kind == "image":
            info = run.image
            return (f"{self.number(point)} ({point['w']}x{point['h']} px -> {info['image_tokens']} image tokens, "
                    f"rep {point['rep']}): encode {info['encode_s']:.2f} s, "
                    f"first token after {run.first_token - run.start:.2f} s")
        if kind == "end" and "w" not in point:  # an image run has its line when its image info arrives
            prefill, decode = run.first_token - run.start, run.end - run.first_token
            return (f"{self.number(point)} ({point['x']} tokens, rep {point['rep']}): "
                    f"prefill {point['x'] / prefill:.0f} tok/s, decode {point['n_gen'] / decode:.1f} tok/s")
        return None
