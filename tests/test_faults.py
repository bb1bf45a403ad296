"""Faults a hostile new user finds (issue 16): a model file changed under the pipeline's feet, advice
that destroys data, a full disk, partial settings, an unloadable model, an overwritten replay, two
measurements at once. Each test makes the fault for real: a file rewritten in place, a real full
filesystem, real concurrent invocations."""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edgelaw.core.errors import EdgelawError
from edgelaw.core.hashing import sha256_file

from conftest import TINY, Workflow, tiny_config

# A shared host (other test runs beside these): no run is judged disturbed, the baseline is taken once.
TOLERANT = {"max_other_cores": 8, "idle_max_other_cores": 8, "idle_max_spread_cores": 8}
FAST = {"prompt_tokens": [16, 64], "n_gen": 8, "repetitions": 2, "idle_seconds": 0.5, "settle_seconds": 0.05,
        "disturbance": TOLERANT}


@pytest.fixture(scope="module")
def other_gguf(tmp_path_factory) -> Path:
    """Another model of the same shape (other seed): what a user's file may be replaced with."""
    from edgelaw.sources.synthetic import write

    path = tmp_path_factory.mktemp("other") / "other.gguf"
    write({**TINY, "seed": 1}, path)
    return path


def cli(*args: str, env: dict | None = None, preexec=None, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgelaw", *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})}, preexec_fn=preexec, cwd=cwd)


class FullDisk:
    """A folder on a real, full filesystem: a small tmpfs filled to its last block (needs root). Where
    mounting is not allowed, the folder is an ordinary one and `preexec` caps the size of any file a
    child process writes (RLIMIT_FSIZE, as `ulimit -f`): writes then fail with EFBIG, not ENOSPC."""

    def __init__(self, folder: Path):
        self.folder = folder
        folder.mkdir()
        mount = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(folder)], capture_output=True)
        self.mounted = mount.returncode == 0
        self.preexec = None
        if self.mounted:
            with open(folder / "filler", "wb", buffering=0) as f:  # take every free block
                try:
                    while True:
                        f.write(b"\0" * 4096)
                except OSError:
                    pass
        else:
            self.preexec = lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (16384, 16384))

    def close(self) -> None:
        if self.mounted:
            subprocess.run(["umount", "-l", str(self.folder)], check=False)

    def expected(self) -> str:
        """What the message says of the disk."""
        return "no space left" if self.mounted else "file size limit"


@pytest.fixture
def full_disk(tmp_path):
    disk = FullDisk(tmp_path / "full")
    yield disk
    disk.close()


def no_final_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.is_file() and p.name != "filler")


def quant_json(tmp_path: Path, gguf: Path) -> Path:
    from edgelaw.core.ggufio import summarize

    path = tmp_path / "F16.json"
    path.write_text(json.dumps({"params": {"ftype": "F16"}, "sha256": sha256_file(gguf), **summarize(gguf)}))
    return path


def bench_args(tmp_path: Path, gguf: Path, settings: dict, out: Path) -> list[str]:
    from edgelaw.core.devices import resolve

    from conftest import ROOT

    profile = resolve("auto", ROOT)
    return ["bench", "--device", "auto", "--profile", json.dumps(profile), "--model", "tiny", "--quant", "F16",
            "--gguf", str(gguf), "--quant-json", str(quant_json(tmp_path, gguf)), "--workload", "tokens",
            "--settings", json.dumps(settings), "--threads", "2", "--out-trace", str(out / "trace.parquet"),
            "--out-runs", str(out / "runs.parquet"), "--clamp", "{}"]


# ---------------------------------------------------------------- 1. the file source


def test_a_file_model_rewritten_in_place_leaves_the_base_alone(tmp_path, tiny_gguf, other_gguf):
    """`cp other.gguf mine.gguf` rewrites the user's file in place (same inode): the base is a copy."""
    from edgelaw.sources.fetch import materialize

    mine = tmp_path / "mine.gguf"
    shutil.copyfile(tiny_gguf, mine)
    base, record = tmp_path / "res/base.gguf", tmp_path / "res/base.json"
    materialize("m", {"source": "file", "path": str(mine)}, base, record)
    assert os.stat(base).st_ino != os.stat(mine).st_ino
    shutil.copyfile(other_gguf, mine)  # in place, as cp and curl -o do
    assert sha256_file(mine) == sha256_file(other_gguf)
    assert sha256_file(base) == json.loads(record.read_text())["sha256"] == sha256_file(tiny_gguf)


def test_a_base_whose_bytes_no_longer_match_its_record_is_refused(tmp_path, tiny_gguf, other_gguf):
    from edgelaw.quantize.ptq import quantize
    from edgelaw.sources.fetch import materialize

    base, record = tmp_path / "res/base.gguf", tmp_path / "res/base.json"
    materialize("m", {"source": "file", "path": str(tiny_gguf)}, base, record)
    with open(base, "r+b") as f:  # rewritten in place, whatever did it
        f.write(other_gguf.read_bytes())
    recorded, actual = sha256_file(tiny_gguf), sha256_file(other_gguf)
    out = tmp_path / "out"
    with pytest.raises(EdgelawError) as err:
        quantize("m", "Q8_0", {"ftype": "Q8_0"}, str(base), str(out / "Q8_0.gguf"), str(out / "Q8_0.json"), 2,
                 base_json=str(record))
    message = str(err.value)
    assert recorded in message and actual in message and "fetch it again" in message, message
    assert not out.exists() or no_final_files(out) == []
    # The quality reference reads the base too.
    from edgelaw.core.integrity import check_recorded

    with pytest.raises(EdgelawError, match=actual):
        check_recorded(str(base), str(record), "model m: base")


def test_a_changed_user_file_is_fetched_again(workflow, tiny_gguf, other_gguf):
    mine = workflow.workdir / "mine.gguf"
    shutil.copyfile(tiny_gguf, mine)
    config = tiny_config()
    config["models"] = {"tiny": {"source": "file", "path": "mine.gguf"}}
    workflow.write_config(config)
    target = "resources/models/tiny/base.json"
    workflow.run(target)
    assert workflow.dry_run_jobs(target) == {}
    shutil.copyfile(other_gguf, mine)
    assert workflow.dry_run_jobs(target) == {"fetch_model": 1}
    workflow.run(target)
    assert workflow.read_json(target)["sha256"] == sha256_file(other_gguf)
    mine.unlink()  # a config pointing at a file that is not there stops before any job, naming it
    proc = workflow.run("--dry-run", check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "model tiny: file mine.gguf does not exist; fix models.tiny.path" in out, out[-2000:]


# ---------------------------------------------------------------- 3. advice that fits the source


def test_a_damaged_file_model_is_blamed_on_the_users_file_not_a_fetch(tmp_path, tiny_gguf):
    mine = tmp_path / "mine.gguf"
    mine.write_bytes(tiny_gguf.read_bytes()[: tiny_gguf.stat().st_size // 2])
    spec = {"source": "file", "path": str(mine)}
    proc = cli("fetch-model", "--model", "m", "--spec", json.dumps(spec), "--out-gguf", str(tmp_path / "o/base.gguf"),
               "--out-json", str(tmp_path / "o/base.json"))
    assert proc.returncode == 2 and "is truncated" in proc.stderr, proc.stderr
    assert "delete it" not in proc.stderr and "fetch it again" not in proc.stderr
    assert "your own file" in proc.stderr and "models.m.path" in proc.stderr
    # A sha256 in the config that the user's file does not match: no "changed upstream" either.
    proc = cli("fetch-model", "--model", "m", "--spec", json.dumps({**spec, "sha256": "0" * 64}),
               "--out-gguf", str(tmp_path / "o/base.gguf"), "--out-json", str(tmp_path / "o/base.json"))
    assert proc.returncode == 2 and "sha256 mismatch" in proc.stderr and "upstream" not in proc.stderr, proc.stderr
    assert "models.m.path" in proc.stderr


# ---------------------------------------------------------------- 2. replay into a folder with results


def test_replay_refuses_a_folder_that_holds_files_unless_told_to_overwrite(tmp_path):
    from edgelaw.archive import bundle
    from edgelaw.archive.replay import required

    src = tmp_path / "junk"
    src.write_bytes(b"archived")
    out = tmp_path / "mine"
    (out / "results/auto").mkdir(parents=True)
    (out / "results/auto/laws.parquet").write_bytes(b"my own results")
    meta = {"device": "auto", "created": "2024-01-01T00:00:00Z"}
    archive = tmp_path / "a.tar.gz"
    bundle.build(archive, {name: src for name in required("auto")}, meta)
    proc = cli("replay", str(archive), "--out-dir", str(out))
    assert proc.returncode == 2 and f"{out} is not empty (1 file)" in proc.stderr, proc.stderr
    assert "--overwrite" in proc.stderr and (out / "results/auto/laws.parquet").read_bytes() == b"my own results"
    proc = cli("replay", str(archive), "--out-dir", str(out), "--overwrite")
    assert (out / "results/auto/laws.parquet").read_bytes() == b"archived"
    # (a hand-made archive: the refit fails, with one line)
    assert proc.returncode == 2 and "cannot refit from its files" in proc.stderr and "Traceback" not in proc.stderr
    # An archive without what a replay reads is refused before anything is unpacked.
    partial = tmp_path / "b.tar.gz"
    bundle.build(partial, {"results/auto/laws.parquet": src}, meta)
    (out / "results/auto/laws.parquet").write_bytes(b"my own results")
    proc = cli("replay", str(partial), "--out-dir", str(out), "--overwrite")
    assert proc.returncode == 2 and "it lacks config/config.yaml, results/auto/host.json" in proc.stderr, proc.stderr
    assert (out / "results/auto/laws.parquet").read_bytes() == b"my own results"


# ---------------------------------------------------------------- 6. messages


def test_bench_with_partial_settings_names_the_missing_ones(tmp_path, tiny_gguf):
    proc = cli(*bench_args(tmp_path, tiny_gguf, {"n_gen": 8, "prompt_tokens": [16]}, tmp_path / "out"))
    assert proc.returncode == 2 and "TypeError" not in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert "bench settings: missing" in proc.stderr and "repetitions" in proc.stderr and "corpus" in proc.stderr


def unloadable(tmp_path: Path, tiny_gguf: Path) -> Path:
    """A GGUF that reads as one (so the Python checks pass) but names an architecture llama.cpp lacks."""
    data = tiny_gguf.read_bytes()
    value = b"\x05\x00\x00\x00\x00\x00\x00\x00llama"
    at = data.index(b"general.architecture") + len(b"general.architecture") + 4
    assert data[at:at + len(value)] == value
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(data[:at] + value[:-1] + b"z" + data[at + len(value):])
    return bad


def test_an_unloadable_model_says_llama_cpps_reason(tmp_path, tiny_gguf):
    from edgelaw.core.llama import load_model

    bad = unloadable(tmp_path, tiny_gguf)
    with pytest.raises(EdgelawError, match="unknown model architecture: 'llamz'"):
        load_model(str(bad), "model m")
    # The bench worker, in its own process, says it too.
    from edgelaw.core.config import defaults

    proc = cli(*bench_args(tmp_path, bad, defaults("bench", FAST), tmp_path / "out"), env={"EDGELAW_MEASURE_LOCK": str(tmp_path / "lock")})
    assert proc.returncode == 2 and "unknown model architecture: 'llamz'" in proc.stderr, proc.stderr[-3000:]


def test_bench_on_a_full_disk_says_so_and_leaves_no_table(tmp_path, tiny_gguf, full_disk):
    from edgelaw.core.config import defaults

    out = full_disk.folder / "results"
    log = full_disk.folder / "logs/bench.log"  # as Snakemake has it: the log on the same full disk
    log.parent.mkdir()
    proc = cli("--log", str(log), *bench_args(tmp_path, tiny_gguf, defaults("bench", FAST), out),
               preexec=full_disk.preexec, env={"EDGELAW_MEASURE_LOCK": str(tmp_path / "lock")})
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert full_disk.expected() in proc.stderr and str(out) in proc.stderr and "free" in proc.stderr, proc.stderr
    if full_disk.mounted:  # (under a file size limit the short log still fits)
        assert f"edgelaw: cannot write the log {log}" in proc.stderr  # once, then progress goes to the terminal
    assert no_final_files(full_disk.folder) == [] or no_final_files(full_disk.folder) == ["bench.log"]


def test_quantize_on_a_full_disk_says_so_and_leaves_no_file(tmp_path, tiny_gguf, full_disk):
    from edgelaw.sources.fetch import materialize

    base, record = tmp_path / "res/base.gguf", tmp_path / "res/base.json"
    materialize("m", {"source": "file", "path": str(tiny_gguf)}, base, record)
    out = full_disk.folder / "models"
    proc = cli("quantize", "--model", "m", "--scheme-name", "Q8_0", "--scheme", '{"ftype": "Q8_0"}', "--base", str(base),
               "--base-json", str(record), "--out-gguf", str(out / "Q8_0.gguf"), "--out-json", str(out / "Q8_0.json"),
               "--threads", "2", preexec=full_disk.preexec)
    assert proc.returncode == 2 and "iostream error" not in proc.stderr.split("edgelaw: error:")[-1], proc.stderr
    assert full_disk.expected() in proc.stderr and str(out) in proc.stderr and "free" in proc.stderr, proc.stderr
    assert no_final_files(full_disk.folder) == []


def test_an_archive_on_a_full_disk_says_so_and_leaves_nothing(tmp_path, full_disk):
    src = tmp_path / "host.json"
    src.write_bytes(os.urandom(200_000))  # does not compress: bigger than the room left
    out = full_disk.folder / "archive/auto-x.tar.gz"
    proc = cli("archive", "--device", "auto", "--config", "{}", "--files", "host.json", "--out", str(out),
               preexec=full_disk.preexec, cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert full_disk.expected() in proc.stderr and str(out.parent) in proc.stderr, proc.stderr
    assert no_final_files(full_disk.folder) == []


# ---------------------------------------------------------------- 7. one measurement at a time per host


def _window(workdir: Path) -> tuple[float, float]:
    """The bench job's first and last worker events, on the host's monotonic clock."""
    from edgelaw.core.tables import provenance

    events = provenance(workdir / "results/auto/runs/tiny/Q8_0/tokens.parquet")["events"]
    times = [p["t"] for _, p in events if "t" in p]
    return min(times), max(times)


def test_two_invocations_never_measure_at_once(tmp_path):
    lock = tmp_path / "measure.lock"
    flows = []
    for name in ("a", "b"):
        wf = Workflow(tmp_path / name)
        wf.workdir.mkdir()
        config = tiny_config(bench={**FAST, "repetitions": 3, "settle_seconds": 0.3})
        config["schemes"] = {"Q8_0": {"ftype": "Q8_0"}}
        wf.write_config(config)
        wf.run("--until", "quantize")
        flows.append(wf)
    target = "results/auto/runs/tiny/Q8_0/tokens.parquet"
    env = {**os.environ, "EDGELAW_MEASURE_LOCK": str(lock)}
    procs = [subprocess.Popen(wf.command(target), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
             for wf in flows]  # both at once: without the lock their benches run side by side
    outs = [p.communicate(timeout=300)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outs[0][-3000:] + outs[1][-3000:]
    (a0, a1), (b0, b1) = _window(flows[0].workdir), _window(flows[1].workdir)
    assert a1 < b0 or b1 < a0, f"bench windows overlap: a {a0:.2f}..{a1:.2f}, b {b0:.2f}..{b1:.2f}"
    logs = [(wf.workdir / "results/logs/auto/bench/tiny/Q8_0/tokens.log").read_text() for wf in flows]
    waited = [i for i, log in enumerate(logs) if f"waiting for the measurement lock {lock}: held by pid" in log]
    assert len(waited) == 1, logs
    holder = flows[1 - waited[0]].workdir
    assert f"(bench tiny Q8_0 tokens, in {holder}, since" in logs[waited[0]], logs[waited[0]]


def lock_holder(lock: Path, job: str) -> subprocess.Popen:
    """A process holding the measurement lock at `lock` for `job`, once it has written its name there."""
    env = {**os.environ, "EDGELAW_MEASURE_LOCK": str(lock)}
    holder = subprocess.Popen([sys.executable, "-c", "import time\nfrom edgelaw.core.hostlock import measurement_lock\n"
                               f"with measurement_lock({job!r}):\n    time.sleep(600)"], env=env)
    deadline = time.time() + 30
    while not (lock.exists() and f"pid {holder.pid}" in lock.read_text()):
        if time.time() > deadline:
            holder.kill()
            raise AssertionError(f"the lock holder never wrote its name into {lock}")
        time.sleep(0.05)
    return holder


def test_a_killed_lock_holder_frees_the_lock(tmp_path):
    """The kernel releases a dead holder's flock: a bench killed with SIGKILL never blocks the host."""
    from edgelaw.core.hostlock import measurement_lock

    lock = tmp_path / "measure.lock"
    holder = lock_holder(lock, "bench held")
    try:
        assert f"pid {holder.pid} (bench held, in {os.getcwd()}" in lock.read_text()
    finally:
        holder.kill()
        holder.wait()
    os.environ["EDGELAW_MEASURE_LOCK"] = str(lock)
    try:
        t0 = time.monotonic()
        with measurement_lock("bench next"):
            assert f"pid {os.getpid()} (bench next" in lock.read_text()
        assert time.monotonic() - t0 < 5
    finally:
        del os.environ["EDGELAW_MEASURE_LOCK"]


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_a_bench_interrupted_midway_leaves_no_file_no_worker_and_no_lock(tmp_path, tiny_gguf, sig):
    """Ctrl-C (SIGINT) or Snakemake stopping a job (SIGTERM) in the middle of the runs."""
    import signal
    import uuid

    from edgelaw.core.config import defaults

    out = tmp_path / "out"
    mark = uuid.uuid4().hex
    lock = tmp_path / "measure.lock"
    settings = defaults("bench", {**FAST, "repetitions": 50, "settle_seconds": 0.2})
    proc = subprocess.Popen([sys.executable, "-m", "edgelaw", *bench_args(tmp_path, tiny_gguf, settings, out)],
                            stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "EDGELAW_MEASURE_LOCK": str(lock), "EDGELAW_TEST_MARK": mark})
    seen = ""
    while "run 2/" not in seen:
        line = proc.stderr.readline()
        assert line, seen
        seen += line
    proc.send_signal(getattr(signal, sig))
    err = seen + proc.stderr.read()
    proc.wait(timeout=60)
    assert proc.returncode == 130 and "Traceback" not in err, err[-3000:]
    assert "edgelaw: interrupted: bench stopped before it finished; no file is left half-written" in err, err[-2000:]
    assert not out.exists() or sorted(p.name for p in out.rglob("*")) == []

    def marked() -> list[int]:
        pids = []
        for env in Path("/proc").glob("[0-9]*/environ"):
            try:
                if f"EDGELAW_TEST_MARK={mark}".encode() in env.read_bytes():
                    pids.append(int(env.parent.name))
            except OSError:
                pass
        return pids

    deadline = time.time() + 10
    while marked() and time.time() < deadline:
        time.sleep(0.1)
    assert marked() == [], "a worker outlived its bench job"
    import fcntl

    with open(lock) as f:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)  # free


def test_a_model_name_with_a_slash_is_refused_with_the_rule():
    from edgelaw.core.config import validate

    config = tiny_config()
    config["models"]["org/model"] = config["models"]["tiny"]
    with pytest.raises(EdgelawError, match=r"models: the name 'org/model' is not allowed: a name becomes a folder.*"
                                           r"no '/'.*rename it"):
        validate(config)


@pytest.mark.parametrize("source", ["file", "synthetic"])
def test_a_fetch_on_a_full_disk_says_so_and_leaves_no_base(tmp_path, tiny_gguf, full_disk, source):
    spec = {"source": "file", "path": str(tiny_gguf)} if source == "file" else {"source": "synthetic",
                                                                              "synthetic": dict(TINY)}
    out = full_disk.folder / "resources/models/m"
    proc = cli("fetch-model", "--model", "m", "--spec", json.dumps(spec), "--out-gguf", str(out / "base.gguf"),
               "--out-json", str(out / "base.json"), preexec=full_disk.preexec)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert full_disk.expected() in proc.stderr and str(out) in proc.stderr and "free" in proc.stderr, proc.stderr
    assert no_final_files(full_disk.folder) == []


def test_replay_into_a_path_that_is_a_file_is_refused(tmp_path):
    target = tmp_path / "results.txt"
    target.write_text("mine")
    proc = cli("replay", str(tmp_path / "a.tar.gz"), "--out-dir", str(target))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and "is a file" in proc.stderr, proc.stderr
    assert target.read_text() == "mine"


def test_a_host_record_waits_for_a_measurement_holding_the_lock(tmp_path):
    from edgelaw.core.config import defaults
    from edgelaw.core.devices import resolve

    from conftest import ROOT

    lock = tmp_path / "measure.lock"
    env = {**os.environ, "EDGELAW_MEASURE_LOCK": str(lock)}
    holder = lock_holder(lock, "bench other")
    try:
        settings = defaults("bench", FAST)
        record = subprocess.Popen([sys.executable, "-m", "edgelaw", "host-record", "--device", "auto", "--profile",
                                   json.dumps(resolve("auto", ROOT)), "--settings", json.dumps(settings), "--threads", "2",
                                   "--out", str(tmp_path / "host.json")], stderr=subprocess.PIPE, text=True, env=env)
        line = record.stderr.readline()
        assert f"host-record auto: waiting for the measurement lock {lock}: held by pid {holder.pid} (bench other" in line
        assert not (tmp_path / "host.json").exists()
    finally:
        holder.kill()
        holder.wait()
    err = record.stderr.read()
    assert record.wait(timeout=120) == 0, err
    assert "measurement lock taken after" in err and (tmp_path / "host.json").exists()


@pytest.mark.parametrize("key", ["quality.eval_text", "quality.prompts", "bench.corpus"])
def test_a_binary_file_given_as_text_is_refused_naming_the_key(tmp_path, tiny_gguf, key):
    """A GGUF given where text is expected: refused, not decoded into garbage nor a UnicodeDecodeError."""
    from edgelaw.core.config import defaults
    from edgelaw.measure.settings import Settings
    from edgelaw.quality.evalset import check_inputs

    section, name = key.split(".")
    with pytest.raises(EdgelawError, match=rf"{key}: {tiny_gguf} is not UTF-8 text \(byte \d+\); point it at a text"):
        if section == "quality":
            check_inputs(defaults("quality", {name: str(tiny_gguf)}))
        else:
            Settings.from_config(defaults("bench", {"corpus": str(tiny_gguf)}), "tokens").corpus_text()


def test_a_lock_path_that_cannot_be_opened_names_the_variable(tmp_path, monkeypatch):
    from edgelaw.core.hostlock import measurement_lock

    monkeypatch.setenv("EDGELAW_MEASURE_LOCK", str(tmp_path / "absent/measure.lock"))
    with pytest.raises(EdgelawError, match=r"cannot open the measurement lock .*absent/measure.lock .*EDGELAW_MEASURE_LOCK"):
        with measurement_lock("bench x"):
            pass


def test_a_job_stopped_while_waiting_leaves_the_holders_name(tmp_path):
    import signal

    lock = tmp_path / "measure.lock"
    env = {**os.environ, "EDGELAW_MEASURE_LOCK": str(lock)}
    code = "import sys, time\nfrom edgelaw.core.hostlock import measurement_lock\nwith measurement_lock(sys.argv[1]):\n" \
           "    time.sleep(600)"
    holder = subprocess.Popen([sys.executable, "-c", code, "bench held"], env=env)
    waiter = None
    try:
        while not (lock.exists() and f"pid {holder.pid}" in lock.read_text()):
            time.sleep(0.05)
        waiter = subprocess.Popen([sys.executable, "-c", code, "bench waiting"], env=env, stderr=subprocess.PIPE,
                                  text=True)
        assert "waiting for the measurement lock" in waiter.stderr.readline()
        waiter.send_signal(signal.SIGINT)
        waiter.wait(timeout=30)
        assert f"pid {holder.pid} (bench held" in lock.read_text()
    finally:
        for p in (holder, waiter):
            if p:
                p.kill()
                p.wait()
