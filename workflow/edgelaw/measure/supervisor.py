"""Worker processes for one bench job: started, listened to, and replaced when one dies.

Each worker loads the model once and runs the points it is given, sending events over a pipe. Here
they go into the timeline as they arrive (and out as progress lines); a worker that dies is blamed
for the point it was on, and a new one resumes after that point, so that one bad point costs one
point and not the job.
"""

from __future__ import annotations

import multiprocessing as mp

from edgelaw.core.console import say
from edgelaw.measure import worker
from edgelaw.measure.progress import Progress
from edgelaw.measure.sampler import Sampler
from edgelaw.measure.settings import Settings
from edgelaw.measure.timeline import Timeline


class WorkerSupervisor:
    """Runs a schedule through one or more workers while the sampler follows the live one."""

    def __init__(self, gguf: str, threads: int, settings: Settings, label: str, n_ctx: int, vision: dict | None = None):
        self.gguf, self.threads, self.s, self.label, self.vision = gguf, threads, settings, label, vision
        self.n_ctx = n_ctx
        self.timeline = Timeline()

    def run(self, sampler: Sampler, points: list[dict]) -> Timeline:
        corpus = "" if self.vision else self.s.corpus_path().read_text()
        progress = Progress(points)
        remaining = list(points)
        ctx = mp.get_context("spawn")
        while remaining:
            parent, child = ctx.Pipe(duplex=False)
            args = (child, self.gguf, self.threads, self.n_ctx, self.s.n_batch, self.s.n_ubatch, self.s.repack, corpus,
                    remaining, self.s.settle_seconds, self.vision)
            proc = ctx.Process(target=worker.main, args=args, daemon=True)
            proc.start()
            child.close()
            sampler.attach(proc.pid)
            self._listen(parent, proc, progress)
            proc.join(timeout=30)
            if proc.is_alive():
                proc.kill()
                proc.join()
            sampler.attach(None)
            if self.timeline.finished or self.timeline.fatal:
                break
            remaining = self._after_crash(proc.exitcode, remaining)
        return self.timeline

    def _after_crash(self, code: int | None, remaining: list[dict]) -> list[dict]:
        """Blame the point the dead worker was on (or the next one) and return the points after it."""
        tl = self.timeline
        victim = tl.current or next((p["run_id"] for p in remaining if p["run_id"] not in tl.done), None)
        why = f"worker died with signal {-code}" if code and code < 0 else f"worker exited with code {code}"
        if code == -9:
            why += " (killed: out of memory?)"
        tl.crash(victim, why)
        say(f"{self.label}: {victim}: {why}; restarting the worker for the remaining points")
        return [p for p in remaining if p["run_id"] not in tl.done and p["run_id"] != victim]

    def _listen(self, conn, proc, progress: Progress) -> None:
        """Take the worker's events until it finishes, fails to start, or goes silent by dying."""
        while True:
            if not conn.poll(0.2):
                if proc.is_alive():
                    continue
                if not conn.poll(0):  # dead, and nothing it sent is left unread
                    return
            try:
                kind, p = conn.recv()
            except EOFError:
                return
            self.timeline.add(kind, p)
            line = progress.line(self.timeline, kind, p.get("run_id"))
            if line:
                say(f"{self.label}: {line}")
            if kind in ("fatal", "finished"):
                return
