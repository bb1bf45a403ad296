"""Worker processes for one bench job: started, given points one at a time, replaced when one dies.

Each worker loads the model once and runs the point it is sent, reporting events over a pipe. Here
they go into the timeline as they arrive (and out as progress lines). After each measured point the
controller's `judge` looks at the host over the run; a disturbed point is measured again (the judge
waits for a quiet host first). A worker that dies is blamed for the point it was on and a new one
takes the points after it, so that one bad point costs one point and not the job.
"""

from __future__ import annotations

import multiprocessing as mp
import time
from collections import deque
from typing import Callable

from edgelaw.core.console import say
from edgelaw.measure import worker
from edgelaw.measure.progress import Progress
from edgelaw.measure.sampler import Sampler
from edgelaw.measure.settings import Settings
from edgelaw.measure.timeline import Timeline

# judge(point, worker_pid) -> the point to measure next in its place (measured again), or None
Judge = Callable[[dict, int], "dict | None"]


class WorkerSupervisor:
    """Runs a schedule through one or more workers while the sampler follows the live one."""

    def __init__(self, gguf: str, threads: int, settings: Settings, label: str, n_ctx: int, vision: dict | None = None):
        self.gguf, self.threads, self.s, self.label, self.vision = gguf, threads, settings, label, vision
        self.n_ctx = n_ctx
        self.timeline = Timeline()

    def run(self, sampler: Sampler, points: list[dict], judge: Judge | None = None,
            progress: Progress | None = None) -> Timeline:
        corpus = "" if self.vision else self.s.corpus_text()
        longest = max(p["x"] for p in points)
        self.progress = progress or Progress(points)
        self.points = list(points)  # the schedule, each point followed by its attempts measured again
        queue = deque(points)
        ctx = mp.get_context("spawn")
        while queue:
            conn, child = ctx.Pipe(duplex=True)
            args = (child, self.gguf, self.threads, self.n_ctx, self.s.n_batch, self.s.n_ubatch, self.s.repack, corpus,
                    longest, self.vision)
            proc = ctx.Process(target=worker.main, args=args, daemon=True)
            proc.start()
            child.close()
            sampler.attach(proc.pid)
            alive = self._listen(conn, proc, until=("load_end", "fatal"))
            while alive and queue and not self.timeline.fatal:
                point = queue[0]
                time.sleep(self.s.settle_seconds)  # the host settles between runs; the judge's samples land
                conn.send(("run", point))
                alive = self._listen(conn, proc, until=("done",), point=point)
                if not alive:
                    break
                queue.popleft()
                if judge and not point["warmup"] and not self.timeline.runs[point["run_id"]].error:
                    retry = judge(point, proc.pid)
                    if retry:
                        queue.appendleft(retry)
                        self.points.insert(self.points.index(point) + 1, retry)
            if alive and not self.timeline.fatal:
                conn.send(("stop", {}))
                self._listen(conn, proc, until=("finished",))
            self._reap(proc)
            sampler.attach(None)
            if self.timeline.fatal:
                break
            if not alive:
                victim = queue.popleft() if queue else None
                self._blame(victim, proc.exitcode)
        return self.timeline

    @staticmethod
    def _reap(proc) -> None:
        proc.join(timeout=30)
        if proc.is_alive():
            proc.kill()
            proc.join()

    def _blame(self, point: dict | None, code: int | None) -> None:
        """The dead worker was on `point` (or loading the model, before any point)."""
        why = f"worker died with signal {-code}" if code and code < 0 else f"worker exited with code {code}"
        if code == -9:
            why += " (killed: out of memory?)"
        run_id = point["run_id"] if point else None
        self.timeline.crash(run_id, why)
        say(f"{self.label}: {run_id or 'the model load'}: {why}; restarting the worker for the remaining points")

    def _listen(self, conn, proc, until: tuple[str, ...], point: dict | None = None) -> bool:
        """Take the worker's events until one of `until` (or a fatal error) arrives: True; False if the
        worker died first."""
        while True:
            if not conn.poll(0.2):
                if proc.is_alive():
                    continue
                if not conn.poll(0):  # dead, and nothing it sent is left unread
                    return False
            try:
                kind, p = conn.recv()
            except EOFError:
                return False
            self.timeline.add(kind, p)
            line = self.progress.line(self.timeline, kind, point)
            if line:
                say(f"{self.label}: {line}")
            if kind in until or kind == "fatal":
                return True
