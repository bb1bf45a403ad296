"""The sampler on a real busy process: achieved rate and AUC against the OS counter."""

import subprocess
import sys
import time

import numpy as np
import pandas as pd
import psutil
import pytest

from edgelaw.measure.integrate import integral
from edgelaw.measure.power import PowerSource, Reading, UtilisationModel
from edgelaw.measure.sampler import Sampler, rates

BUSY = "import time\nt=time.process_time()\nwhile time.process_time()-t<{s}: pass\nprint(time.process_time())"


@pytest.mark.parametrize("native", [True, False], ids=["native", "python"])
@pytest.mark.parametrize("hz", [20, 50])
def test_auc_of_a_busy_process_matches_its_cpu_counter(hz, native):
    sampler = Sampler(hz, UtilisationModel(1, 2, psutil.cpu_count()), native=native)
    sampler.start()
    time.sleep(0.2)
    t0 = time.monotonic()
    # Busy for 1 s of CPU, then idle while the sampler catches its last interval: a process that exits
    # takes its last interval's CPU with it (its counter is gone), which no worker does mid-run.
    code = BUSY.format(s=1.0) + "\nimport sys; sys.stdout.flush(); time.sleep(0.5)"
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    sampler.attach(proc.pid)
    proc.stdout.readline()
    time.sleep(3 / hz)
    t1 = time.monotonic()
    ct = psutil.Process(proc.pid).cpu_times()
    counted = ct.user + ct.system  # the whole process: interpreter start-up and the busy loop
    proc.wait()
    sampler.stop()
    df = rates(sampler.frame(), psutil.cpu_count())
    auc = integral(df["t_mid"], df["cpu_proc_pct"] / 100.0, t0, t1)
    assert auc == pytest.approx(counted, rel=0.05)
    achieved = (len(df) - 1) / (df["t"].iloc[-1] - df["t"].iloc[0])
    assert achieved == pytest.approx(hz, rel=0.1)
    assert df["rss_bytes"].max() > 1e6 and (df["power_w"] >= 1).all()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc is Linux's")
def test_procfs_counters_agree_with_psutil():
    from edgelaw.measure.sampler import ProcfsCounters, PsutilCounters

    # The child says when it is up: while it is still exec'ing Python, its memory is being replaced
    # and two reads a moment apart can see the old image and the new one.
    proc = subprocess.Popen([sys.executable, "-c", "print('up', flush=True)\n" + BUSY.format(s=0.5)],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "up"
    fast, ref = ProcfsCounters(), PsutilCounters()
    fast.attach(proc.pid)
    ref.attach(proc.pid)
    try:
        for _ in range(5):
            (cpu_a, rss_a), (cpu_b, rss_b) = fast.process(), ref.process()
            (busy_a, total_a, steal_a, used_a), (busy_b, total_b, steal_b, used_b) = fast.system(), ref.system()
            assert cpu_a == pytest.approx(cpu_b, abs=0.03)
            assert rss_a == pytest.approx(rss_b, rel=0.05)
            assert total_a == pytest.approx(total_b, abs=0.1) and busy_a == pytest.approx(busy_b, abs=0.1)
            assert used_a == pytest.approx(used_b, rel=0.02)
            assert steal_a == pytest.approx(steal_b, abs=0.1)  # both from /proc/stat's eighth field
            time.sleep(0.05)
        assert cpu_a > 0 and rss_a > 1e6
        proc.wait()
        assert all(x != x for x in fast.process())  # reaped: NaN, not an error
        with pytest.raises(psutil.NoSuchProcess):
            fast.attach(proc.pid)
    finally:
        fast.close()


def test_rates_between_sparse_host_readings_keep_every_counter_exact():
    # 50 Hz ticks, the host read every 5th: the worker at 0.6 core, the host busy at 1.5, our own 0.1.
    from edgelaw.measure.sampler import FRAME_COLUMNS, NO_HOST

    t = np.arange(0, 2.001, 0.02)
    host = np.arange(len(t)) % 5 == 0
    frame = pd.DataFrame({"t": t, "t_wall": 1000 + t, "proc_cpu_s": 0.6 * t, "rss_bytes": 1e8, "sys_busy_s": 1.5 * t,
                          "sys_total_s": 2 * t, "sys_steal_s": 0.05 * t, "self_cpu_s": 0.1 * t,
                          "mem_sys_used_bytes": 1e9 + 1e8 * t, "power_w": 5 + t, "energy_j": np.nan})[FRAME_COLUMNS]
    frame.loc[~host, ["t_wall", *frame.columns[4:]]] = NO_HOST[0]
    df = rates(frame, 2)
    assert df["cpu_proc_pct"].iloc[1:].to_numpy() == pytest.approx(60)
    assert df["cpu_sys_pct"].iloc[1:].to_numpy() == pytest.approx(150) and df["steal_pct"].iloc[1:].to_numpy() == pytest.approx(5)
    assert df["cpu_other_pct"].iloc[1:].to_numpy() == pytest.approx(80)  # 150 - 60 - 10
    assert integral(df["t_mid"], df["cpu_other_pct"] / 100, 0.5, 1.5) == pytest.approx(0.8, rel=1e-6)
    assert df["mem_sys_used_bytes"].to_numpy() == pytest.approx(1e9 + 1e8 * t)  # levels: interpolated
    assert df["power_w"].to_numpy() == pytest.approx(5 + t)


@pytest.mark.parametrize("native", [True, False], ids=["native", "python"])
def test_the_sampler_reads_the_host_every_nth_tick_and_the_worker_every_tick(native):
    sampler = Sampler(100, UtilisationModel(1, 2, psutil.cpu_count()), host_every=4, native=native)
    assert sampler.ticks_in == "native" if native else sampler.ticks_in.startswith("python")
    sampler.attach(psutil.Process().pid)
    sampler.start()
    time.sleep(0.5)
    sampler.stop()
    df = sampler.frame()
    assert df["proc_cpu_s"].notna().all() and len(df) > 20
    host = df["sys_total_s"].notna().to_numpy()
    assert host[0] and host.sum() == pytest.approx(len(df) / 4, abs=1) and not host[1:4].any()
    assert df["t_wall"].notna().all() and df["t_wall"].is_monotonic_increasing


class Ramp(PowerSource):
    """A meter that reads 10 W plus one watt per second since it started (a stand-in for RAPL or a USB
    meter: what matters here is when it is read, not what it measures)."""

    name, kind = "ramp", "power"

    def __init__(self):
        self.t0 = time.time()
        self.reads = 0

    def read(self, t_wall, cpu_sys_pct):
        self.reads += 1
        return Reading(10.0 + (t_wall - self.t0), None)


def test_a_meter_beside_native_ticks_is_read_at_the_host_rate_and_placed_on_the_host_ticks():
    meter = Ramp()
    sampler = Sampler(50, meter, host_every=5)
    if sampler.ticks_in != "native":
        pytest.fail(f"no native ticker here: {sampler.ticks_in}")
    sampler.start()
    time.sleep(1.0)
    sampler.stop()
    df = sampler.frame()
    host = df[df["sys_total_s"].notna()]
    assert meter.reads == pytest.approx(len(host), abs=3)  # 10 Hz, not 50
    inside = host[(host["t_wall"] > meter.t0 + 0.15) & (host["t_wall"] < meter.t0 + 0.85)]
    assert len(inside) >= 5
    assert inside["power_w"].to_numpy() == pytest.approx(10.0 + inside["t_wall"] - meter.t0, abs=0.02)


def test_without_a_c_compiler_the_python_thread_ticks_and_says_why(monkeypatch, tmp_path):
    from edgelaw.measure import ticker

    monkeypatch.setattr(ticker, "_LIB", None)
    monkeypatch.setattr(ticker, "_WHY_NOT", None)
    monkeypatch.setenv("CC", str(tmp_path / "no-cc"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    sampler = Sampler(50, UtilisationModel(1, 2, psutil.cpu_count()))
    assert sampler.ticks_in.startswith("python (") and "no-cc" in sampler.ticks_in
    sampler.attach(psutil.Process().pid)
    sampler.start()
    time.sleep(0.3)
    sampler.stop()
    assert sampler.frame()["proc_cpu_s"].notna().sum() >= 10


def test_the_native_ticker_is_built_once_into_the_cache_and_its_source_is_bench_code(monkeypatch, tmp_path):
    from edgelaw.core.codedeps import command_files
    from edgelaw.measure import ticker

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    lib = ticker.build()
    assert lib.parent == tmp_path / "edgelaw" and lib.stat().st_size > 0
    assert ticker.build() == lib and lib.stat().st_mtime_ns == ticker.build().stat().st_mtime_ns
    assert [p.name for p in lib.parent.iterdir()] == [lib.name]  # no temp file left behind
    assert "edgelaw/measure/ticker.c" in command_files("bench")
