"""The controller of one bench job: idle baseline, worker, sampler, then the trace and runs tables.

One job = one device x model x scheme x workload (the token sweep, or a VLM's resolution sweep: one
image at many sizes, through the model's projector). The model is loaded once per worker; a point that
fails is recorded with its status and the others still run; a crashed worker is replaced and the
schedule resumes after the point it crashed on.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import psutil

from . import images, power, tables, worker
from .errors import EdgelawError
from .hashing import sha256_file
from .integrate import counter_delta, integral
from .report_log import say
from .sampler import Sampler, rates


@dataclass
class Settings:
    repetitions: int
    warmup: int
    sample_hz: float
    idle_seconds: float
    settle_seconds: float
    n_batch: int
    n_ubatch: int
    repack: bool = True
    corpus: str | None = None
    prompt_tokens: list[int] | None = None  # the token sweep's (its jobs get them)
    n_gen: int | None = None
    resolution: dict | None = None  # the resolution sweep's

    @classmethod
    def from_config(cls, bench: dict) -> "Settings":
        return cls(**{k: bench[k] for k in cls.__dataclass_fields__ if k in bench})

    def corpus_path(self) -> Path:
        if self.corpus:
            path = Path(self.corpus)
            if not path.is_file():
                raise EdgelawError(f"bench.corpus: {path} does not exist; point it at a text file or remove it")
            return path
        return Path(str(resources.files("edgelaw.data").joinpath("corpus.txt")))

    def n_ctx(self, image_tokens: int | None = None) -> int:
        if image_tokens is None:
            return max(self.prompt_tokens) + self.n_gen + 8
        # the image's tokens, the chat frame and question around them, and the answer
        return image_tokens + IMAGE_TEXT_TOKENS + self.resolution["n_gen"]


# Room in the context for the text around an image (chat frame, question): far more than needed.
IMAGE_TEXT_TOKENS = 256


def schedule(s: Settings, workload: str = "tokens") -> list[dict]:
    """Warm-up runs (largest point, not recorded), then repetitions of the sweep, one sweep at a time."""
    if workload == "resolution":
        return _image_schedule(s)
    points = [{"run_id": f"warmup{w}", "x": max(s.prompt_tokens), "n_gen": s.n_gen, "rep": -1, "warmup": True} for w in range(s.warmup)]
    for rep in range(s.repetitions):
        for x in s.prompt_tokens:
            points.append({"run_id": f"x{x}-r{rep}", "x": x, "n_gen": s.n_gen, "rep": rep, "warmup": False})
    return points


def _image_schedule(s: Settings) -> list[dict]:
    r = s.resolution
    sweep = images.sizes(r["long_sides"], r["aspect"], r["square"])
    series, w, h = max(sweep, key=lambda t: t[1] * t[2])
    points = [{"run_id": f"warmup{i}", "x": w * h, "w": w, "h": h, "series": series, "n_gen": r["n_gen"], "rep": -1,
               "warmup": True} for i in range(s.warmup)]
    for rep in range(s.repetitions):
        for series, w, h in sweep:
            points.append({"run_id": f"{w}x{h}-r{rep}", "x": w * h, "w": w, "h": h, "series": series,
                           "n_gen": r["n_gen"], "rep": rep, "warmup": False})
    return points


def idle_window(seconds: float) -> tuple[float, float]:
    """Stay idle for `seconds` while the sampler records; return the window (monotonic)."""
    t0 = time.monotonic()
    time.sleep(seconds)
    return t0, time.monotonic()


@contextlib.contextmanager
def sampling(profile: dict, rate_hz: float):
    """The profile's power source and a running sampler; both stopped on exit, whatever happens."""
    source = power.detect(profile, psutil.cpu_count() or 1)
    source.start()
    sampler = Sampler(rate_hz, source)
    sampler.start()
    try:
        yield sampler, source
    finally:
        sampler.stop()
        source.close()


def idle_baseline(df: pd.DataFrame, t0: float, t1: float, counter: bool) -> dict:
    w = df[(df["t"] >= t0) & (df["t"] <= t1)]
    if counter:
        energy = counter_delta(df["t"], df["energy_j"], t0, t1)
        idle_power = energy / (t1 - t0) if t1 > t0 else float("nan")
    else:
        idle_power = float(w["power_w"].mean()) if w["power_w"].notna().any() else float("nan")
    return {
        "seconds": t1 - t0,
        "cpu_sys_pct": float(w["cpu_sys_pct"].iloc[1:].mean()) if len(w) > 1 else float("nan"),
        "mem_sys_used_bytes": int(w["mem_sys_used_bytes"].mean()) if len(w) else 0,
        "power_w": idle_power,
        "n_samples": len(w),
    }


class Batch:
    """Runs the schedule through one or more workers while the sampler records."""

    def __init__(self, gguf: str, threads: int, settings: Settings, label: str, n_ctx: int, vision: dict | None = None):
        self.gguf, self.threads, self.s, self.label, self.vision = gguf, threads, settings, label, vision
        self.n_ctx = n_ctx
        self.events: list[tuple[str, dict]] = []
        self.crashed: dict[str, str] = {}
        self.fatal: str | None = None

    def run(self, sampler: Sampler, points: list[dict]) -> None:
        corpus = "" if self.vision else self.s.corpus_path().read_text()
        measured = [p for p in points if not p["warmup"]]
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
            finished, current, done = self._listen(parent, proc, measured)
            proc.join(timeout=30)
            if proc.is_alive():
                proc.kill()
                proc.join()
            sampler.attach(None)
            if finished or self.fatal:
                return
            # The worker died: blame the point it was on (or the next one) and resume after it.
            victim = current or next((p["run_id"] for p in remaining if p["run_id"] not in done), None)
            code = proc.exitcode
            why = f"worker died with signal {-code}" if code and code < 0 else f"worker exited with code {code}"
            if code == -9:
                why += " (killed: out of memory?)"
            self.crashed[victim] = why
            say(f"{self.label}: {victim}: {why}; restarting the worker for the remaining points")
            remaining = [p for p in remaining if p["run_id"] not in done and p["run_id"] != victim]

    def _listen(self, conn, proc, measured: list[dict]):
        current, done = None, set()
        index = {p["run_id"]: i for i, p in enumerate(measured, 1)}
        starts: dict[str, dict] = {}
        firsts: dict[str, dict] = {}
        while True:
            if not conn.poll(0.2):
                if proc.is_alive():
                    continue
                if not conn.poll(0):
                    return False, current, done
            try:
                kind, p = conn.recv()
            except EOFError:
                return False, current, done
            self.events.append((kind, p))
            run_id = p.get("run_id")
            if kind == "load_end":
                say(f"{self.label}: model loaded in {p['t'] - self.events[-2][1]['t']:.2f} s")
            elif kind == "start":
                current = run_id
                starts[run_id] = p
            elif kind == "first_token":
                firsts[run_id] = p
            elif kind == "image" and run_id in index:
                pt = measured[index[run_id] - 1]
                ttft = firsts[run_id]["t"] - starts[run_id]["t"]
                say(
                    f"{self.label}: run {index[run_id]}/{len(measured)} ({pt['w']}x{pt['h']} px -> {p['image_tokens']} "
                    f"image tokens, rep {pt['rep']}): encode {p['encode_s']:.2f} s, first token after {ttft:.2f} s"
                )
            elif kind == "end" and run_id in index and "w" not in measured[index[run_id] - 1]:
                pt = measured[index[run_id] - 1]
                prefill = firsts[run_id]["t"] - starts[run_id]["t"]
                decode = p["t"] - firsts[run_id]["t"]
                say(
                    f"{self.label}: run {index[run_id]}/{len(measured)} ({pt['x']} tokens, rep {pt['rep']}): "
                    f"prefill {pt['x'] / prefill:.0f} tok/s, decode {pt['n_gen'] / decode:.1f} tok/s"
                )
            elif kind == "point_error":
                say(f"{self.label}: {run_id} failed: {p['error']}")
            elif kind == "done":
                done.add(run_id)
                current = None
            elif kind == "fatal":
                self.fatal = p["error"]
                return False, current, done
            elif kind == "finished":
                return True, current, done


def label_samples(df: pd.DataFrame, events: list[tuple[str, dict]]) -> pd.DataFrame:
    """Give every sample its run_id and phase (idle, load, prefill, decode) from the worker's events."""
    df = df.copy()
    df["phase"] = "idle"
    df["run_id"] = ""
    load_start = None
    starts, firsts = {}, {}
    for kind, p in events:
        if kind == "load_start":
            load_start = p["t"]
        elif kind in ("load_end", "fatal") and load_start is not None:
            df.loc[(df["t"] >= load_start) & (df["t"] <= p["t"]), ["phase", "run_id"]] = ["load", "load"]
            load_start = None
        elif kind == "start":
            starts[p["run_id"]] = p["t"]
        elif kind == "first_token":
            firsts[p["run_id"]] = p["t"]
            df.loc[(df["t"] >= starts[p["run_id"]]) & (df["t"] < p["t"]), ["phase", "run_id"]] = ["prefill", p["run_id"]]
        elif kind == "end" and p["run_id"] in firsts:
            df.loc[(df["t"] >= firsts[p["run_id"]]) & (df["t"] <= p["t"]), ["phase", "run_id"]] = ["decode", p["run_id"]]
    return df


def image_row(point: dict, info: dict | None, geometry: dict) -> dict:
    """A resolution run's image: nominal size, size after the model's preprocessing, tokens, clamp."""
    side = geometry["token_side"]
    row = {"image_series": point["series"], "nominal_w": point["w"], "nominal_h": point["h"],
           "image_max_tokens": geometry["clamp_tokens"],
           "clamp_pixels": geometry["clamp_tokens"] * side * side if geometry["clamp_tokens"] else None}
    if info:
        row.update(effective_w=info["grid_x"] * side, effective_h=info["grid_y"] * side,
                   effective_pixels=info["grid_x"] * info["grid_y"] * side * side, image_tokens=info["image_tokens"],
                   n_prompt_tokens=info["n_prompt_tokens"], encode_s=info["encode_s"])
    return row


def run_rows(df: pd.DataFrame, batch: Batch, points: list[dict], idle: dict, counter: bool, origin: float,
             common: dict, geometry: dict | None = None) -> list[dict]:
    """One row per measured point: timings, AUCs above the idle baseline, energy, status."""
    ev: dict[str, dict[str, dict]] = {}
    errors: dict[str, str] = {}
    image_info: dict[str, dict] = {}
    load_s = []
    last_load = None
    for kind, p in batch.events:
        if kind == "load_start":
            last_load = p["t"]
        elif kind == "load_end":
            load_s.append(p["t"] - last_load)
        elif kind in ("start", "first_token", "end"):
            ev.setdefault(p["run_id"], {})[kind] = p
        elif kind == "point_error":
            errors[p["run_id"]] = p["error"]
        elif kind == "image":
            image_info[p["run_id"]] = p
    attached = df["proc_cpu_s"].notna()
    idle_proc = df.loc[(df["phase"] == "idle") & attached, "cpu_proc_pct"]
    idle_proc_pct = float(idle_proc.median()) if len(idle_proc) else 0.0
    t, tm = df["t"].to_numpy(), df["t_mid"].to_numpy()
    proc = (df["cpu_proc_pct"] - idle_proc_pct).to_numpy() / 100.0
    sysc = (df["cpu_sys_pct"] - idle["cpu_sys_pct"]).to_numpy() / 100.0
    rss = df["rss_bytes"].fillna(0).to_numpy(float)
    mem_sys = (df["mem_sys_used_bytes"] - idle["mem_sys_used_bytes"]).to_numpy(float)

    def energy(t0, t1):
        if counter:
            return counter_delta(t, df["energy_j"], t0, t1)
        return integral(t, df["power_w"], t0, t1) if df["power_w"].notna().any() else float("nan")

    rows = []
    for p in points:
        if p["warmup"]:
            continue
        rid = p["run_id"]
        e = ev.get(rid, {})
        row = {**common, "run_id": rid, "x": p["x"], "n_gen": p["n_gen"], "rep": p["rep"],
               "load_s": load_s[0] if load_s else np.nan, "idle_cpu_sys_pct": idle["cpu_sys_pct"],
               "idle_mem_sys_used_bytes": idle["mem_sys_used_bytes"], "idle_power_w": idle["power_w"]}
        if "w" in p:
            row.update(image_row(p, image_info.get(rid), geometry))
        else:
            row["n_prompt_tokens"] = p["x"]
        complete = {"start", "first_token", "end"} <= set(e) and rid not in errors and ("w" not in p or rid in image_info)
        if not complete:
            status = "crashed" if rid in batch.crashed else "error" if rid in errors else "not_run"
            row.update(status=status, error=batch.crashed.get(rid) or errors.get(rid) or batch.fatal or "not reached")
            rows.append(row)
            continue
        t0, t1, t2 = e["start"]["t"], e["first_token"]["t"], e["end"]["t"]
        win = (t >= t0) & (t <= t2)
        dur = t2 - t0
        en = energy(t0, t2)
        row.update(
            status="ok", error=None,
            t_start=t0 - origin, t_first_token=t1 - origin, t_end=t2 - origin,
            ttft_s=t1 - t0, prefill_tps=row["n_prompt_tokens"] / (t1 - t0), decode_tps=p["n_gen"] / (t2 - t1),
            cpu_core_s=integral(tm, proc, t0, t2),
            cpu_core_s_prefill=integral(tm, proc, t0, t1),
            cpu_core_s_decode=integral(tm, proc, t1, t2),
            cpu_core_s_counter=(e["end"]["cpu_s"] - e["start"]["cpu_s"]) - idle_proc_pct / 100.0 * dur,
            cpu_sys_core_s=integral(tm, sysc, t0, t2),
            mem_gb_s=integral(t, rss, t0, t2) / 1e9,
            mem_sys_gb_s=integral(t, mem_sys, t0, t2) / 1e9,
            peak_rss_bytes=int(rss[win].max()) if win.any() else int(np.interp(t2, t, rss)),
            energy_j=en, energy_dyn_j=en - idle["power_w"] * dur,
            energy_prefill_j=energy(t0, t1), energy_decode_j=energy(t1, t2),
            sample_hz=(win.sum() / dur) if dur > 0 else np.nan, n_samples=int(win.sum()),
        )
        rows.append(row)
    return rows


WORKLOADS = ("tokens", "resolution")


def vision_setup(model: str, gguf: str, mmproj: str | None, clamp: dict, settings: Settings) -> tuple[dict, dict]:
    """Check the projector, its pairing, the clamp and the image before any run; return the worker's
    vision settings and the geometry (pixels per token side, clamp in tokens) that the runs record."""
    from .vision import check_clamp, check_pair, projector_info

    if not mmproj:
        raise EdgelawError(f"model {model}: the resolution workload needs a projector; set models.{model}.mmproj")
    info = projector_info(mmproj, model)
    check_pair(info, gguf, model)
    max_tokens, min_tokens = clamp.get("image_max_tokens"), clamp.get("image_min_tokens")
    check_clamp(info, max_tokens, min_tokens, model)
    if settings.resolution["image"]:
        images.load(settings.resolution["image"])  # an unreadable image fails here, before the model loads
    vision = {"mmproj": mmproj, "max_tokens": max_tokens, "min_tokens": min_tokens, "image": settings.resolution["image"],
              "question": settings.resolution["question"]}
    geometry = {"token_side": info.token_side, "clamp_tokens": info.clamp_tokens(max_tokens),
                "projector_type": info.projector_type}
    return vision, geometry


def context_size(settings: Settings, points: list[dict], geometry: dict | None) -> int:
    """The worker's context: the longest prompt, or the most tokens an image of the sweep can become
    (the clamp; without one, e.g. a family that resizes to a fixed size, the largest image bounds it)."""
    if geometry is None:
        return settings.n_ctx()
    largest = max(p["x"] for p in points) // geometry["token_side"] ** 2 + 1
    return settings.n_ctx(geometry["clamp_tokens"] or largest)


def measure(*, device: str, profile: dict, model: str, quant: str, gguf: str, quant_meta: dict, workload: str,
            settings: Settings, threads: int, out_trace: str, out_runs: str, provenance: dict,
            mmproj: str | None = None, clamp: dict | None = None) -> pd.DataFrame:
    if workload not in WORKLOADS:
        raise EdgelawError(f"workload {workload!r} is not known; use one of {', '.join(WORKLOADS)}")
    vision = geometry = None
    if workload == "resolution":
        vision, geometry = vision_setup(model, gguf, mmproj, clamp or {}, settings)
    label = f"{model} {quant} {workload}"
    points = schedule(settings, workload)
    batch = Batch(gguf, threads, settings, label, context_size(settings, points, geometry), vision)
    origin = time.monotonic()
    with sampling(profile, settings.sample_hz) as (sampler, source):
        say(f"{label}: idle baseline {settings.idle_seconds:.0f} s (power source: {source.name}), then "
            f"{sum(not p['warmup'] for p in points)} runs + {settings.warmup} warm-up on {threads} threads")
        t_idle = idle_window(settings.idle_seconds)
        batch.run(sampler, points)
        time.sleep(settings.settle_seconds)
    counter = source.kind == "counter"
    df = label_samples(rates(sampler.frame(), sampler.n_cpus), batch.events)
    idle = idle_baseline(df, *t_idle, counter)
    common = {"device": device, "model": model, "quant": quant, "bpw": quant_meta["bpw"], "workload": workload,
              "n_threads": threads, "energy_source": source.name}
    runs = pd.DataFrame(run_rows(df, batch, points, idle, counter, origin, common, geometry))
    for col in tables.RUNS.names:
        if col not in runs.columns:
            runs[col] = None
    achieved = (len(df) - 1) / (df["t"].iloc[-1] - df["t"].iloc[0]) if len(df) > 1 else float("nan")
    meta = {**provenance, "power_source": source.name, "idle_baseline": idle, "sample_hz_asked": settings.sample_hz,
            "sample_hz_achieved": achieved,
            "corpus_sha256": None if vision else sha256_file(settings.corpus_path()),
            "fatal": batch.fatal, "events": [(k, p) for k, p in batch.events]}
    if geometry:
        meta["vision"] = {**geometry, "mmproj": mmproj, "mmproj_sha256": sha256_file(mmproj), **(clamp or {}),
                          "image": settings.resolution["image"] or "procedural scene (edgelaw.images.scene)"}
    trace = df.assign(t_s=df["t"] - origin)
    trace["rss_bytes"] = trace["rss_bytes"].round().astype("Int64")
    trace["mem_sys_used_bytes"] = trace["mem_sys_used_bytes"].astype("Int64")
    tables.write(trace, tables.SAMPLES, out_trace, meta)
    tables.write(runs, tables.RUNS, out_runs, meta)
    ok = runs[runs["status"] == "ok"]
    say(f"{label}: {len(ok)}/{len(runs)} runs ok, {len(df)} samples at {achieved:.1f} Hz (asked {settings.sample_hz:g})")
    if batch.fatal:
        raise EdgelawError(f"{label}: the worker could not start: {batch.fatal}")
    return runs


def host_record(device: str, profile: dict, idle_seconds: float, sample_hz: float, threads: int) -> dict:
    """This host's fingerprint, power source, idle baseline and memory bandwidth, for results/{device}/host.json."""
    from .bandwidth import copy_bandwidth
    from .devices import fingerprint
    from .llama import build_info

    with sampling(profile, sample_hz) as (sampler, source):
        window = idle_window(idle_seconds)
    df = rates(sampler.frame(), sampler.n_cpus)
    return {
        "device": device,
        "profile": profile,
        "host": fingerprint(),
        "llama_cpp": build_info(),
        "cpu_only": True,
        "power_source": source.name,
        "power_sources_tried": profile["power"]["sources"],
        "idle_baseline": idle_baseline(df, *window, source.kind == "counter"),
        "memory_bandwidth": copy_bandwidth(threads),
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }

