"""The bench job's arithmetic on constructed traces and events whose answers are known exactly:
no model, no worker process, no sampler thread.

The traces are sampled every 0.25 s (binary fractions: the trapezoids add up without rounding) and
the rates sit at the sample times (t_mid = t), so a curve that is constant or linear over a window
integrates to its area exactly.
"""

import math

import numpy as np
import pandas as pd
import pytest

from edgelaw.measure.accounting import (Curves, cpu_core_s_counter, energy_between, idle_baseline, idle_worker_pct,
                                        image_row, label_phases, run_rows, run_status)
from edgelaw.measure.progress import Progress
from edgelaw.measure.supervisor import WorkerSupervisor
from edgelaw.measure.timeline import Timeline

STEP = 0.25
IDLE = (0.0, 1.0)  # the idle window, before the worker loads at 1.25-1.5
COMMON = {"device": "d", "model": "m", "quant": "q"}


def trace(end=6.0, **columns) -> pd.DataFrame:
    """Samples every STEP s over [0, end]; a column is a constant, or a function of t."""
    t = np.arange(0.0, end + STEP / 2, STEP)
    df = pd.DataFrame({"t": t, "t_mid": t, "proc_cpu_s": 1.0, "cpu_proc_pct": 0.0, "cpu_sys_pct": 0.0,
                       "rss_bytes": 0.0, "mem_sys_used_bytes": 0, "power_w": math.nan, "energy_j": math.nan,
                       "sys_busy_s": 0.0, "sys_total_s": 2 * t, "self_cpu_s": 0.0, "sys_steal_s": 0.0})
    for name, value in columns.items():
        df[name] = value(t) if callable(value) else value
    return df


def inside(t0, t1, level, outside=0.0):
    """A curve at `level` on [t0, t1] (samples at both ends included) and `outside` elsewhere."""
    return lambda t: np.where((t >= t0) & (t <= t1), level, outside)


def events(*runs, load=(1.25, 1.5), finished=True) -> list[tuple[str, dict]]:
    """A worker's events: a model load, then each run (run_id, start, first_token, end[, cpu_start, cpu_end])."""
    out = [("load_start", {"t": load[0], "cpu_s": 0.0}), ("load_end", {"t": load[1], "cpu_s": 0.2})]
    for run_id, t0, t1, t2, *cpu in runs:
        c0, c2 = cpu or (0.0, 0.0)
        out += [("start", {"t": t0, "cpu_s": c0, "run_id": run_id}),
                ("first_token", {"t": t1, "cpu_s": c0, "run_id": run_id}),
                ("end", {"t": t2, "cpu_s": c2, "run_id": run_id}),
                ("done", {"t": t2, "cpu_s": c2, "run_id": run_id})]
    return out + ([("finished", {"t": 99.0, "cpu_s": 0.0})] if finished else [])


def timeline_of(evs) -> Timeline:
    tl = Timeline()
    for kind, p in evs:
        tl.add(kind, p)
    return tl


def point(run_id, x=64, n_gen=12, rep=0, warmup=False, **extra):
    return {"run_id": run_id, "point_id": run_id, "attempt": 0, "x": x, "n_gen": n_gen, "rep": rep, "warmup": warmup,
            **extra}


def rows_of(df, tl, points, counter=False, origin=0.0, geometry=None):
    df = label_phases(df, tl)
    idle = idle_baseline(df, *IDLE, counter)
    return pd.DataFrame(run_rows(df, tl, points, idle, counter, origin, COMMON, geometry)).set_index("run_id")


# A run: start at 2, first token at 2.5, end at 4 (prefill 0.5 s, decode 1.5 s).
RUN = ("x64-r0", 2.0, 2.5, 4.0)


def test_a_constant_worker_cpu_integrates_to_rate_times_duration():
    df = trace(cpu_proc_pct=inside(2.0, 4.0, 150.0))
    row = rows_of(df, timeline_of(events(RUN)), [point("x64-r0")]).loc["x64-r0"]
    assert row["status"] == "ok"
    assert row["cpu_core_s"] == pytest.approx(3.0, abs=1e-12)
    assert row["cpu_core_s_prefill"] == pytest.approx(0.75, abs=1e-12)  # split at the first token
    assert row["cpu_core_s_decode"] == pytest.approx(2.25, abs=1e-12)
    assert row["ttft_s"] == 0.5 and row["prefill_tps"] == 128.0 and row["decode_tps"] == 8.0
    assert row["n_samples"] == 9 and row["sample_hz"] == 4.5  # samples at 2, 2.25, ..., 4 over 2 s


def test_a_ramp_integrates_to_the_area_under_it():
    # 100 t % (t cores); no worker attached outside the run, so no idle level to subtract
    df = trace(cpu_proc_pct=lambda t: 100.0 * t, proc_cpu_s=inside(2.0, 4.0, 1.0, math.nan))
    row = rows_of(df, timeline_of(events(RUN)), [point("x64-r0")]).loc["x64-r0"]
    assert row["cpu_core_s"] == pytest.approx((4**2 - 2**2) / 2, abs=1e-12)
    assert row["cpu_core_s_prefill"] == pytest.approx((2.5**2 - 2**2) / 2, abs=1e-12)
    assert row["cpu_core_s_decode"] == pytest.approx((4**2 - 2.5**2) / 2, abs=1e-12)


def test_the_idle_levels_are_subtracted():
    # the worker idles at 10 % between runs and runs at 160 %; the system idles at 40 % and runs at 240 %
    df = trace(cpu_proc_pct=inside(2.0, 4.0, 160.0, 10.0), cpu_sys_pct=inside(2.0, 4.0, 240.0, 40.0),
               mem_sys_used_bytes=inside(2.0, 4.0, 3_000_000_000, 1_000_000_000))
    tl = timeline_of(events((*RUN, 10.0, 13.2)))
    labelled = label_phases(df, tl)
    assert idle_worker_pct(labelled) == 10.0
    row = rows_of(df, tl, [point("x64-r0")]).loc["x64-r0"]
    assert row["cpu_core_s"] == pytest.approx(1.5 * 2, abs=1e-12)
    assert row["cpu_sys_core_s"] == pytest.approx(2.0 * 2, abs=1e-12)
    assert row["mem_sys_gb_s"] == pytest.approx(2.0 * 2, abs=1e-12)
    # the OS counter: 3.2 s of CPU over the 2 s run, less the 10 % idle level
    assert row["cpu_core_s_counter"] == pytest.approx(3.2 - 0.1 * 2, abs=1e-12)
    assert cpu_core_s_counter(tl.runs["x64-r0"], 0.0) == pytest.approx(3.2, abs=1e-12)
    assert row["idle_cpu_sys_pct"] == 40.0 and row["idle_mem_sys_used_bytes"] == 1_000_000_000


def test_a_worker_never_idle_while_attached_has_no_idle_level():
    df = label_phases(trace(cpu_proc_pct=50.0, proc_cpu_s=math.nan), timeline_of(events(RUN)))
    assert idle_worker_pct(df) == 0.0


def test_the_idle_baseline_over_its_window():
    df = trace(cpu_sys_pct=lambda t: np.where(t == 0, 999.0, 30.0), mem_sys_used_bytes=2_000_000_000,
               power_w=4.0, energy_j=lambda t: 100.0 + 2.5 * t)
    by_power = idle_baseline(df, *IDLE, counter=False)
    assert by_power == {"seconds": 1.0, "cpu_sys_pct": 30.0, "mem_sys_used_bytes": 2_000_000_000, "power_w": 4.0,
                        "n_samples": 5}  # the first sample's rate (999) covers time before the window
    assert idle_baseline(df, *IDLE, counter=True)["power_w"] == pytest.approx(2.5, abs=1e-12)
    assert math.isnan(idle_baseline(df.assign(power_w=math.nan), *IDLE, counter=False)["power_w"])


# 3 W idle and 8 W during the run, as power samples or as the cumulative counter of that power.
POWER = inside(2.0, 4.0, 8.0, 3.0)


def energy_counter(t):
    return 3.0 * t + 5.0 * np.clip(t - 2.0, 0.0, 2.0)


@pytest.mark.parametrize("counter", [True, False], ids=["counter", "power"])
def test_energy_from_a_counter_or_from_power_samples(counter):
    df = trace(energy_j=energy_counter) if counter else trace(power_w=POWER)
    row = rows_of(df, timeline_of(events(RUN)), [point("x64-r0")], counter=counter).loc["x64-r0"]
    assert row["idle_power_w"] == pytest.approx(3.0, abs=1e-12)
    assert row["energy_j"] == pytest.approx(8.0 * 2, abs=1e-12)
    assert row["energy_prefill_j"] == pytest.approx(8.0 * 0.5, abs=1e-12)
    assert row["energy_decode_j"] == pytest.approx(8.0 * 1.5, abs=1e-12)
    assert row["energy_dyn_j"] == pytest.approx(8.0 * 2 - 3.0 * 2, abs=1e-12)  # energy - idle power x duration


def test_energy_is_unknown_without_power_samples():
    t = np.arange(0, 5.0, STEP)
    assert math.isnan(energy_between(t, np.full_like(t, math.nan), np.full_like(t, math.nan), False, 1.0, 2.0))
    assert math.isnan(energy_between(t, np.full_like(t, math.nan), np.full_like(t, 5.0), True, 1.0, 2.0))
    assert energy_between(t, t * 0, np.full_like(t, 5.0), False, 1.0, 2.0) == pytest.approx(5.0, abs=1e-12)


def test_peak_rss_and_memory_area():
    df = trace(rss_bytes=inside(2.0, 4.0, 2e9, 1e9), proc_cpu_s=inside(0.0, 5.0, 1.0, math.nan))
    df.loc[df["t"] == 3.0, "rss_bytes"] = 5e9
    df.loc[df["t"] > 5.0, "rss_bytes"] = math.nan  # no worker attached: counted as 0
    row = rows_of(df, timeline_of(events(RUN)), [point("x64-r0")]).loc["x64-r0"]
    assert row["peak_rss_bytes"] == 5_000_000_000
    assert row["mem_gb_s"] == pytest.approx(2 * 2 + 3 * STEP, abs=1e-12)  # the 5 GB spike is a triangle of base 2 STEP
    # a run shorter than a sample interval: the memory interpolated at its end
    short = ("x16-r0", 4.05, 4.1, 4.15)
    row = rows_of(df, timeline_of(events(short)), [point("x16-r0", x=16)]).loc["x16-r0"]
    assert row["n_samples"] == 0 and row["peak_rss_bytes"] == int(np.interp(4.15, df["t"], df["rss_bytes"].fillna(0)))


def test_phases_and_run_ids_at_exact_boundaries():
    tl = timeline_of(events(RUN))
    df = label_phases(trace(), tl).set_index("t")
    expect = {0.0: ("idle", ""), 1.0: ("idle", ""), 1.25: ("load", "load"), 1.5: ("load", "load"),
              1.75: ("idle", ""), 2.0: ("prefill", "x64-r0"), 2.25: ("prefill", "x64-r0"),
              2.5: ("decode", "x64-r0"), 4.0: ("decode", "x64-r0"), 4.25: ("idle", "")}
    for t, (phase, run_id) in expect.items():
        assert (df.loc[t, "phase"], df.loc[t, "run_id"]) == (phase, run_id), t


def test_every_measured_point_gets_a_status():
    tl = timeline_of(events(RUN, finished=False))
    tl.add("start", {"t": 4.5, "cpu_s": 0.0, "run_id": "x128-r0"})
    tl.crash("x128-r0", "worker died with signal 6")
    for kind, p in events(load=(5.0, 5.25), finished=False)[:2]:
        tl.add(kind, p)
    tl.add("start", {"t": 5.5, "cpu_s": 0.0, "run_id": "x256-r0"})
    tl.add("point_error", {"t": 5.6, "cpu_s": 0.0, "run_id": "x256-r0", "error": "context full"})
    tl.add("done", {"t": 5.6, "cpu_s": 0.0, "run_id": "x256-r0"})
    points = [point("warmup0", warmup=True, rep=-1), point("x64-r0"), point("x128-r0", x=128),
              point("x256-r0", x=256), point("x512-r0", x=512)]
    rows = rows_of(trace(), tl, points)
    assert list(rows.index) == ["x64-r0", "x128-r0", "x256-r0", "x512-r0"]  # the warm-up is not recorded
    assert rows["status"].to_dict() == {"x64-r0": "ok", "x128-r0": "crashed", "x256-r0": "error",
                                        "x512-r0": "not_run"}
    assert pd.isna(rows.loc["x64-r0", "error"])
    assert rows["error"].drop("x64-r0").to_dict() == {"x128-r0": "worker died with signal 6",
                                                      "x256-r0": "context full", "x512-r0": "not reached"}
    assert rows.loc["x64-r0", "load_s"] == 0.25  # the first worker's load
    assert rows.loc["x128-r0", ["cpu_core_s", "energy_j"]].isna().all()


def test_a_worker_that_cannot_start_fails_every_point_with_its_error():
    tl = Timeline()
    tl.add("load_start", {"t": 1.25, "cpu_s": 0.0})
    tl.add("fatal", {"t": 1.75, "cpu_s": 0.1, "error": "the sweep needs a context of 4016 tokens"})
    assert tl.fatal == "the sweep needs a context of 4016 tokens" and tl.load_seconds == []
    assert (label_phases(trace(), tl).set_index("t").loc[[1.25, 1.5, 1.75], "phase"] == "load").all()
    rows = rows_of(trace(), tl, [point("x64-r0")])
    assert rows.loc["x64-r0", "status"] == "not_run" and rows.loc["x64-r0", "error"] == tl.fatal
    assert math.isnan(rows.loc["x64-r0", "load_s"])


def test_an_image_run_without_its_image_info_is_not_ok():
    p = point("64x48-r0", x=64 * 48, w=64, h=48, series="4:3")
    tl = timeline_of(events(("64x48-r0", 2.0, 2.5, 4.0)))
    assert run_status(p, tl.runs["64x48-r0"], tl) == ("not_run", "not reached")
    tl.add("image", {"t": 4.0, "cpu_s": 0.0, "run_id": "64x48-r0", "image_tokens": 12, "grid_x": 4, "grid_y": 3,
                     "n_prompt_tokens": 40, "encode_s": 0.125})
    assert run_status(p, tl.runs["64x48-r0"], tl) == ("ok", None)
    row = rows_of(trace(), tl, [p], geometry={"token_side": 28, "clamp_tokens": 64}).loc["64x48-r0"]
    assert row["prefill_tps"] == 40 / 0.5  # the prompt's tokens (image and text), not its pixels


def test_image_row_reports_the_size_after_preprocessing():
    p = point("64x48-r0", x=64 * 48, w=64, h=48, series="4:3")
    info = {"image_tokens": 12, "grid_x": 4, "grid_y": 3, "n_prompt_tokens": 40, "encode_s": 0.125}
    assert image_row(p, info, {"token_side": 28, "clamp_tokens": 64}) == {
        "image_series": "4:3", "nominal_w": 64, "nominal_h": 48, "image_max_tokens": 64, "clamp_pixels": 64 * 784,
        "effective_w": 112, "effective_h": 84, "effective_pixels": 112 * 84, "image_tokens": 12,
        "n_prompt_tokens": 40, "encode_s": 0.125}
    assert image_row(p, None, {"token_side": 28, "clamp_tokens": None}) == {
        "image_series": "4:3", "nominal_w": 64, "nominal_h": 48, "image_max_tokens": None, "clamp_pixels": None}


def test_run_times_are_reported_from_the_origin():
    row = rows_of(trace(), timeline_of(events(RUN)), [point("x64-r0")], origin=1.5).loc["x64-r0"]
    assert (row["t_start"], row["t_first_token"], row["t_end"]) == (0.5, 1.0, 2.5)
    assert row["device"] == "d" and row["n_prompt_tokens"] == 64


def test_the_timeline_of_a_crash_and_restart():
    evs = events(("x16-r0", 2.0, 2.5, 3.0), finished=False) + [("start", {"t": 3.5, "cpu_s": 0.5, "run_id": "x64-r0"})]
    tl = timeline_of(evs)
    assert tl.current == "x64-r0" and tl.done == {"x16-r0"}
    tl.crash("x64-r0", "worker died with signal 9")
    assert tl.current is None
    restart = events(("x256-r0", 6.0, 6.5, 7.0, 1.0, 1.75), load=(4.0, 5.0))
    for kind, p in restart:
        tl.add(kind, p)
    assert [(w.start, w.end, w.loaded) for w in tl.loads] == [(1.25, 1.5, True), (4.0, 5.0, True)]
    assert tl.load_seconds == [0.25, 1.0]
    assert tl.runs["x16-r0"].timed and tl.runs["x256-r0"].timed
    assert not tl.runs["x64-r0"].timed and tl.runs["x64-r0"].start == 3.5
    assert (tl.runs["x256-r0"].cpu_start, tl.runs["x256-r0"].cpu_end) == (1.0, 1.75)
    assert tl.crashed == {"x64-r0": "worker died with signal 9"} and tl.done == {"x16-r0", "x256-r0"}
    assert tl.finished and tl.fatal is None
    assert tl.events == evs + restart  # kept as sent, for the provenance
    # the crashed run's samples stay idle: it has no phase boundaries to label
    assert set(label_phases(trace(end=8.0), tl)["run_id"]) == {"", "load", "x16-r0", "x256-r0"}


def test_a_dead_worker_is_blamed_on_its_point_or_on_the_load(capsys):
    supervisor = WorkerSupervisor("m.gguf", 2, None, "m q tokens", 512)
    supervisor._blame(point("x64-r0"), -9)
    assert supervisor.timeline.crashed == {"x64-r0": "worker died with signal 9 (killed: out of memory?)"}
    assert "m q tokens: x64-r0: worker died with signal 9" in capsys.readouterr().err
    supervisor._blame(None, 1)  # died loading the model, before any point
    assert supervisor.timeline.crashed[None] == "worker exited with code 1"
    assert "m q tokens: the model load: worker exited with code 1" in capsys.readouterr().err


def test_progress_lines_are_read_off_the_timeline():
    points = [point("warmup0", warmup=True, rep=-1), point("x16-r0", x=16), point("x64-r1", rep=1)]
    progress = Progress(points)
    tl = Timeline()
    said = []
    by_id = {p["run_id"]: p for p in points}
    for kind, p in events(("warmup0", 1.75, 1.8, 1.9), ("x64-r1", 2.0, 2.5, 4.0)):
        tl.add(kind, p)
        said.append(progress.line(tl, kind, by_id.get(p.get("run_id"))))
    assert [s for s in said if s] == ["model loaded in 0.25 s",
                                      "run 2/2 (64 tokens, rep 1): prefill 128 tok/s, decode 8.0 tok/s"]
    tl.add("point_error", {"t": 5.0, "cpu_s": 0.0, "run_id": "x16-r0", "error": "context full"})
    assert progress.line(tl, "point_error", by_id["x16-r0"]) == "x16-r0 failed: context full"


def test_an_image_runs_progress_line_comes_with_its_image_info():
    p = point("64x48-r0", x=64 * 48, n_gen=4, w=64, h=48, series="4:3")
    progress, tl = Progress([p]), timeline_of(events(("64x48-r0", 2.0, 2.5, 4.0)))
    assert progress.line(tl, "end", p) is None
    tl.add("image", {"t": 4.0, "cpu_s": 0.0, "run_id": "64x48-r0", "image_tokens": 12, "grid_x": 4, "grid_y": 3,
                     "n_prompt_tokens": 40, "encode_s": 0.25})
    assert progress.line(tl, "image", p) == (
        "run 1/1 (64x48 px -> 12 image tokens, rep 0): encode 0.25 s, first token after 0.50 s")


def test_curves_hold_the_trace_above_its_idle_levels():
    df = label_phases(trace(cpu_proc_pct=inside(2.0, 4.0, 160.0, 10.0), cpu_sys_pct=50.0), timeline_of(events(RUN)))
    c = Curves.from_trace(df, {"cpu_sys_pct": 50.0, "mem_sys_used_bytes": 0}, counter=False)
    assert c.idle_worker_pct == 10.0
    assert set(c.worker_cores) == {0.0, 1.5} and set(c.system_cores) == {0.0}
