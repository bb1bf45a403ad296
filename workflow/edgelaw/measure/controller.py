"""The controller of one bench job: idle baseline, workers, sampler, then the trace and runs tables.

One job = one device x model x scheme x workload (the token sweep, or a VLM's resolution sweep: one
image at many sizes, through the model's projector). The model is loaded once per worker; a point that
fails is recorded with its status and the others still run; a crashed worker is replaced and the
schedule resumes after the point it crashed on (edgelaw.measure.supervisor). The numbers come from
edgelaw.measure.accounting.
"""

from __future__ import annotations

import time

import pandas as pd

from edgelaw.core import tables
from edgelaw.core.console import say
from edgelaw.core.errors import EdgelawError
from edgelaw.core.hashing import sha256_file
from edgelaw.core.hostlock import measurement_lock
from edgelaw.core.points import describe, missing_points, remeasure_command
from edgelaw.core.projectors import check_clamp, check_pair, projector_info
from edgelaw.measure import images
from edgelaw.measure.accounting import idle_baseline, label_phases, run_rows
from edgelaw.measure.disturbance import DisturbanceSettings, ProcessCensus, RunJudge, quiet_idle_window
from edgelaw.measure.progress import Progress
from edgelaw.measure.sampler import rates, sampling
from edgelaw.measure.schedule import context_size, schedule
from edgelaw.measure.settings import Settings, check_workload
from edgelaw.measure.supervisor import WorkerSupervisor


def vision_setup(model: str, gguf: str, mmproj: str | None, clamp: dict, settings: Settings) -> tuple[dict, dict]:
    """Check the projector, its pairing, the clamp and the image before any run; return the worker's
    vision settings and the geometry (pixels per token side, clamp in tokens) that the runs record."""
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


def measure(**job) -> pd.DataFrame:
    """Run one bench job (the arguments of `_measure`) while holding the host's measurement lock: another
    measurement on this host (another invocation, another checkout) waits for it, and it for them."""
    with measurement_lock(f"bench {job['model']} {job['quant']} {job['workload']}"):
        return _measure(**job)


def _measure(*, device: str, profile: dict, model: str, quant: str, gguf: str, quant_meta: dict, workload: str,
             settings: Settings, threads: int, out_trace: str, out_runs: str, provenance: dict,
             mmproj: str | None = None, clamp: dict | None = None) -> pd.DataFrame:
    """Run one bench job and write its trace (every sample) and runs (one row per measured point) tables."""
    check_workload(workload)
    vision = geometry = None
    if workload == "resolution":
        vision, geometry = vision_setup(model, gguf, mmproj, clamp or {}, settings)
    else:
        settings.corpus_text()  # a missing or binary corpus fails here, before the idle baseline
    label = f"{model} {quant} {workload}"
    points = schedule(settings, workload)
    supervisor = WorkerSupervisor(gguf, threads, settings, label, context_size(settings, points, geometry), vision)
    disturbance = DisturbanceSettings.from_config(settings.disturbance)
    progress = Progress(points)
    origin = time.monotonic()
    with sampling(profile, settings.sample_hz) as (sampler, source):
        say(f"{label}: idle baseline {settings.idle_seconds:.0f} s (power source: {source.name}), then "
            f"{sum(not p['warmup'] for p in points)} runs + {settings.warmup} warm-up on {threads} threads")
        census = ProcessCensus()
        *t_idle, background = quiet_idle_window(sampler, source.kind, settings.idle_seconds, disturbance, census,
                                                label)
        judge = RunJudge(sampler, disturbance, census, supervisor.timeline, progress, label, background)
        timeline = supervisor.run(sampler, points, judge, progress)
        time.sleep(settings.settle_seconds)
    counter = source.kind == "counter"
    df = label_phases(rates(sampler.frame(), sampler.n_cpus), timeline)
    idle = {**idle_baseline(df, *t_idle, counter), "other_cores": background}
    common = {"device": device, "model": model, "quant": quant, "bpw": quant_meta["bpw"], "workload": workload,
              "n_threads": threads, "energy_source": source.name}
    runs = pd.DataFrame(run_rows(df, timeline, supervisor.points, idle, counter, origin, common, geometry))
    for col in tables.RUNS.names:
        if col not in runs.columns:
            runs[col] = None
    achieved = (len(df) - 1) / (df["t"].iloc[-1] - df["t"].iloc[0]) if len(df) > 1 else float("nan")
    meta = {**provenance, "power_source": source.name, "idle_baseline": idle, "sample_hz_asked": settings.sample_hz,
            "sample_hz_achieved": achieved, "sampler_ticks": sampler.ticks_in,
            "corpus_sha256": None if vision else sha256_file(settings.corpus_path()),
            "fatal": timeline.fatal, "events": list(timeline.events)}
    if geometry:
        meta["vision"] = {**geometry, "mmproj": mmproj, "mmproj_sha256": sha256_file(mmproj), **(clamp or {}),
                          "image": settings.resolution["image"] or "procedural scene (edgelaw.measure.images.scene)"}
    meta["disturbance"] = {**settings.disturbance, "disturbed": dict(timeline.disturbed)}
    trace = df.assign(t_s=df["t"] - origin)
    trace["rss_bytes"] = trace["rss_bytes"].round().astype("Int64")
    trace["mem_sys_used_bytes"] = trace["mem_sys_used_bytes"].astype("Int64")
    tables.write(trace, tables.SAMPLES, out_trace, meta)
    tables.write(runs, tables.RUNS, out_runs, meta)
    ok = runs[runs["status"] == "ok"]
    disturbed = runs[runs["status"] == "disturbed"]
    again = f"; {len(disturbed)} disturbed and measured again" if len(disturbed) else ""
    say(f"{label}: {len(ok)}/{len(runs)} runs ok{again}, {len(df)} samples at {achieved:.1f} Hz "
        f"(asked {settings.sample_hz:g})")
    lost = missing_points(runs.to_dict("records"))
    if lost and not timeline.fatal:
        say(f"{label}: {describe(lost)}; the tables keep the other points, and the report lists the missing "
            f"ones. To measure them again: "
            f"{remeasure_command(device, model, quant, workload)} (with this run's --configfile/--config options)")
    if timeline.fatal:
        raise EdgelawError(f"{label}: the worker could not start: {timeline.fatal}")
    return runs
