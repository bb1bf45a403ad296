"""The progress lines of a bench job, read off the timeline as the worker's events arrive."""

from __future__ import annotations

from edgelaw.measure.timeline import Timeline


class Progress:
    """Numbers the measured points (warm-ups are not counted) and words what the latest event completed."""

    def __init__(self, points: list[dict]):
        self.measured = [p for p in points if not p["warmup"]]
        self.index = {p["run_id"]: i for i, p in enumerate(self.measured, 1)}

    def line(self, timeline: Timeline, kind: str, run_id: str | None = None) -> str | None:
        """The line for the event just added to `timeline`, or None if it says nothing worth a line."""
        if kind == "load_end":
            return f"model loaded in {timeline.loads[-1].seconds:.2f} s"
        if kind == "point_error":
            return f"{run_id} failed: {timeline.runs[run_id].error}"
        if run_id not in self.index:
            return None
        i, n = self.index[run_id], len(self.measured)
        point, run = self.measured[i - 1], timeline.runs[run_id]
        if kind == "image":
            info = run.image
            return (f"run {i}/{n} ({point['w']}x{point['h']} px -> {info['image_tokens']} image tokens, "
                    f"rep {point['rep']}): encode {info['encode_s']:.2f} s, "
                    f"first token after {run.first_token - run.start:.2f} s")
        if kind == "end" and "w" not in point:  # an image run has its line when its image info arrives
            prefill, decode = run.first_token - run.start, run.end - run.first_token
            return (f"run {i}/{n} ({point['x']} tokens, rep {point['rep']}): "
                    f"prefill {point['x'] / prefill:.0f} tok/s, decode {point['n_gen'] / decode:.1f} tok/s")
        return None
