"""The worker's events, parsed once as they arrive, into what happened when.

The worker sends (kind, payload) tuples; every payload carries the monotonic time `t` and the worker's
CPU seconds `cpu_s`. The progress lines, the phase labels of the samples and the runs table all read
this timeline, so the events are interpreted in one place. The raw events are kept as well: they go
into the tables' provenance as sent.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class LoadWindow:
    """A worker loading the model, from load_start to load_end (loaded) or to its fatal error."""

    start: float
    end: float
    loaded: bool

    @property
    def seconds(self) -> float:
        return self.end - self.start


@dataclass
class Run:
    """One point as the worker reported it; a boundary it never reached stays None."""

    start: float | None = None
    first_token: float | None = None
    end: float | None = None
    cpu_start: float | None = None  # the worker's CPU seconds at start and end: the counter check
    cpu_end: float | None = None
    image: dict | None = None  # the resolution workload's image geometry, tokens and encode time
    error: str | None = None

    @property
    def timed(self) -> bool:
        """All three boundaries seen: the run went through prefill and decode."""
        return self.start is not None and self.first_token is not None and self.end is not None


@dataclass
class Timeline:
    """What one job's workers did, built up event by event (`add`) and by the supervisor (`crash`)."""

    events: list[tuple[str, dict]] = field(default_factory=list)
    loads: list[LoadWindow] = field(default_factory=list)
    runs: dict[str, Run] = field(default_factory=dict)
    done: set[str] = field(default_factory=set)
    crashed: dict[str | None, str] = field(default_factory=dict)  # run_id -> why its worker died
    fatal: str | None = None  # a worker could not start: no point can run
    finished: bool = False
    current: str | None = None  # the point the live worker is on, if any
    disturbed: dict[str, str] = field(default_factory=dict)  # run_id -> what disturbed it (the controller's verdict)
    host: dict[str, dict] = field(default_factory=dict)  # run_id -> the disturbance check's look (RunJudge)
    _load_start: float | None = None

    def add(self, kind: str, p: dict) -> None:
        self.events.append((kind, p))
        t, run_id = p.get("t"), p.get("run_id")
        if kind == "load_start":
            self._load_start = t
        elif kind in ("load_end", "fatal"):
            if self._load_start is not None:
                self.loads.append(LoadWindow(self._load_start, t, loaded=kind == "load_end"))
                self._load_start = None
            if kind == "fatal":
                self.fatal = p["error"]
        elif kind == "start":
            self.current = run_id
            self.runs[run_id] = Run(start=t, cpu_start=p.get("cpu_s"))
        elif kind == "first_token":
            self._run(run_id).first_token = t
        elif kind == "end":
            run = self._run(run_id)
            run.end, run.cpu_end = t, p.get("cpu_s")
        elif kind == "image":
            self._run(run_id).image = p
        elif kind == "point_error":
            self._run(run_id).error = p["error"]
        elif kind == "done":
            self.done.add(run_id)
            self.current = None
        elif kind == "finished":
            self.finished = True

    def judge(self, run_id: str, look: dict, disturbed: str | None) -> None:
        """The controller's look at the host during `run_id` (the runs table's other_cores,
        other_cores_peak and busiest_* columns), and why the run was disturbed (None: it was not)."""
        self.host[run_id] = look
        if disturbed:
            self.disturbed[run_id] = disturbed

    def crash(self, run_id: str | None, why: str) -> None:
        """The worker died on `run_id`; the next worker starts on no point."""
        self.crashed[run_id] = why
        self.current = None

    def _run(self, run_id: str) -> Run:
        return self.runs.setdefault(run_id, Run())

    @property
    def load_seconds(self) -> list[float]:
        """How long each successful model load took, in order."""
        return [w.seconds for w in self.loads if w.loaded]
