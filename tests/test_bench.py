"""The bench stage through the real workflow: tables, contracts, faults, interruption, caching."""

import json
import os
import signal
import subprocess
import sys
import time

import duckdb
import pandas as pd
import pyarrow.parquet as pq
import pytest

from edgelaw.core import tables

from conftest import ROOT, settled, tiny_config

pytestmark = pytest.mark.slow

FAST = {"prompt_tokens": [16, 64], "n_gen": 8, "repetitions": 2, "idle_seconds": 0.5, "settle_seconds": 0.05}


def bench_config(**bench):
    config = tiny_config(bench={**FAST, **bench})
    config["schemes"] = {"Q8_0": {"ftype": "Q8_0"}, "Q4_K_M": {"ftype": "Q4_K_M"}}
    return config


def runs_path(quant, device="auto"):
    return f"results/{device}/runs/tiny/{quant}/tokens.parquet"


def test_tables_follow_the_contract_and_read_as_one_dataset(workflow):
    workflow.write_config(bench_config())
    workflow.run()
    wd = workflow.workdir
    runs = settled(pd.read_parquet(wd / runs_path("Q8_0")))
    assert pq.read_schema(wd / runs_path("Q8_0")).names == tables.RUNS.names
    assert sorted(runs["x"]) == [16, 16, 64, 64] and set(runs["status"]) == {"ok"}
    assert (runs["prefill_tps"] > 0).all() and (runs["decode_tps"] > 0).all() and (runs["peak_rss_bytes"] > 0).all()
    assert (runs["t_first_token"] > runs["t_start"]).all() and (runs["t_end"] > runs["t_first_token"]).all()
    assert (runs["energy_source"] == "model").all() and runs["energy_j"].notna().all()
    trace_file = wd / "results/auto/traces/tiny/Q8_0/tokens.parquet"
    trace = pd.read_parquet(trace_file)
    assert pq.read_schema(trace_file).names == tables.SAMPLES.names
    assert "idle" in set(trace["phase"]) <= {"idle", "load", "prefill", "decode"}  # tiny runs last ~1 ms
    assert trace["t_s"].is_monotonic_increasing
    meta = tables.provenance(wd / runs_path("Q8_0"))
    assert {"pipeline_version", "git_commit", "config_hash", "llama_cpp", "host", "idle_baseline"} <= set(meta)
    assert meta["sample_hz_achieved"] == pytest.approx(50, rel=0.2)
    host = json.loads((wd / "results/auto/host.json").read_text())
    assert host["power_source"] == "model" and host["idle_baseline"]["n_samples"] > 10
    # Every scheme's runs, as one table, in DuckDB and pandas alike.
    glob = str(wd / "results/auto/runs/*/*/*.parquet")
    n = duckdb.sql(f"select count(*) from read_parquet('{glob}') where status = 'ok'").fetchall()[0][0]
    by_quant = dict(duckdb.sql(f"select quant, count(*) from read_parquet('{glob}') where status = 'ok' group by quant").fetchall())
    assert n == 8 and by_quant == {"Q8_0": 4, "Q4_K_M": 4}
    assert len(settled(pd.read_parquet(wd / "results/auto/runs"))) == 8


def test_a_crashed_point_is_recorded_said_and_measured_again_by_one_command(workflow):
    config = bench_config()
    config["schemes"] = {"Q8_0": {"ftype": "Q8_0"}}
    workflow.write_config(config)
    proc = workflow.run(env={"EDGELAW_CRASH_AT_RUN": "x64-r0"})
    runs = settled(pd.read_parquet(workflow.workdir / runs_path("Q8_0")).set_index("run_id", drop=False))
    assert runs.loc["x64-r0", "status"] == "crashed"
    assert "signal 6" in runs.loc["x64-r0", "error"]
    assert set(runs.drop("x64-r0")["status"]) == {"ok"}
    # The job's output, the summary and the page name the missing point and the one command.
    command = f"snakemake --cores all --forcerun {runs_path('Q8_0')}"
    out = proc.stdout + proc.stderr
    assert "tiny Q8_0 tokens: 1 point not measured: x64-r0 (crashed: worker died with signal 6" in out, out[-3000:]
    assert command in out
    report = workflow.workdir / "results/auto/report"
    for page in ("summary.md", "index.html"):
        text = (report / page).read_text()
        assert "Not measured" in text and "x64-r0 (crashed" in text and command in text, page
    dry = workflow.run("--dry-run")  # nothing to do, and it says what is missing
    assert f"{runs_path('Q8_0')}: 1 point not measured: x64-r0 (crashed" in dry.stdout + dry.stderr
    assert command in dry.stdout + dry.stderr
    # That command, as the user types it (with the run's own config options): the point is measured.
    again = [*workflow.command("--forcerun", runs_path("Q8_0"))]
    again[again.index("--cores") + 1] = "all"
    subprocess.run(again, check=True, capture_output=True)
    runs = settled(pd.read_parquet(workflow.workdir / runs_path("Q8_0")))
    assert len(runs) == 4 and set(runs["status"]) == {"ok"}
    assert "Not measured" not in (report / "summary.md").read_text()


def test_a_sweep_longer_than_the_model_context_fails_clearly(workflow):
    workflow.write_config(bench_config(prompt_tokens=[4000]))
    proc = workflow.run("--keep-going", check=False)
    assert proc.returncode != 0
    assert "needs a context of 4016 tokens but the model was trained for 2048" in proc.stderr
    assert not (workflow.workdir / runs_path("Q8_0")).exists()


def test_a_job_killed_midway_leaves_no_table_and_the_rerun_completes(workflow):
    workflow.write_config(bench_config(settle_seconds=0.4, repetitions=3))
    workflow.run("--until", "quantize")
    log = workflow.workdir / "results/logs/auto/bench/tiny/Q8_0/tokens.log"
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"), "--directory", str(workflow.workdir),
           "--configfile", str(workflow.configfile), "--replace-workflow-config", "--cores", "2", runs_path("Q8_0")]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and not (log.exists() and "run 2/" in log.read_text()):
        time.sleep(0.1)
    assert log.exists() and "run 2/" in log.read_text(), "the bench never started"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    folder = workflow.workdir / "results/auto/runs/tiny/Q8_0"
    assert not (folder / "tokens.parquet").exists()
    workflow.run("--unlock")  # a SIGKILL leaves Snakemake's lock, as after a power loss
    workflow.run(runs_path("Q8_0"))
    assert len(settled(pd.read_parquet(workflow.workdir / runs_path("Q8_0")))) == 6


def test_changing_the_sweep_reruns_only_the_bench(workflow):
    config = bench_config()
    workflow.write_config(config)
    workflow.run()
    config["bench"]["n_gen"] = 16
    workflow.write_config(config)
    assert workflow.dry_run_jobs() == {"bench": 2, "laws": 1, "report": 1, "all": 1}
    config["schemes"]["Q6_K"] = {"ftype": "Q6_K"}
    workflow.write_config(config)
    assert workflow.dry_run_jobs() == {"bench": 3, "quantize": 1, "laws": 1, "report": 1, "all": 1}


def test_the_worker_decodes_on_a_persistent_threadpool(tiny_gguf):
    from edgelaw.measure.worker import Engine

    engine = Engine(str(tiny_gguf), 2, 256, 2048, 512)
    assert engine.threadpool  # attached once, as llama-bench does, not made and freed per decoded token
    tokens = engine.tokenize("the quick brown fox jumps over the lazy dog " * 8)
    arr = (engine.ll.llama_token * len(tokens))(*tokens)
    seen = []
    for _ in range(2):
        engine.run(arr, 32, 8, seen.append)
    assert seen == ["start", "first_token", "end"] * 2


def test_the_worker_picks_the_token_llama_cpps_greedy_sampler_picks(tiny_gguf):
    from edgelaw.core.llama import greedy_sampler
    from edgelaw.measure.worker import Engine

    engine = Engine(str(tiny_gguf), 2, 256, 2048, 512)
    ll, sampler = engine.ll, greedy_sampler()
    tokens = engine.tokenize("the quick brown fox jumps over the lazy dog")
    engine._decode((ll.llama_token * len(tokens))(*tokens), len(tokens))
    picked = []
    for _ in range(12):
        ours, theirs = engine.greedy(), ll.llama_sampler_sample(sampler, engine.ctx, -1)
        assert ours == theirs
        picked.append(ours)
        engine._decode((ll.llama_token * 1)(ours), 1)
    assert len(set(picked)) > 1  # the logits moved: a stale view would have repeated one token


def test_the_greedy_pick_reads_the_asked_output_row(tiny_gguf):
    from edgelaw.quality.answers import Answerer
    from edgelaw.core.llama import greedy_sampler, greedy_token

    # Two prompts as two sequences of one batch (as the quality stage answers): each has its own row.
    a = Answerer(str(tiny_gguf), 2, 4, "model tiny", batch=2)
    ll, ctx = a.ll, a._context(64)
    batch = ll.llama_batch_init(64, 0, 1)
    rows = []
    for seq, text in enumerate(["the quick brown fox", "a lazy dog sleeps all day long"]):
        tokens = a._tokens(text)
        for pos, tok in enumerate(tokens):
            row = a._put(batch, batch.n_tokens, tok, pos, seq, pos == len(tokens) - 1)
        rows.append(row)
    a._decode(batch)
    ll.llama_batch_free(batch)
    picks = [greedy_token(ctx, row, a.n_vocab) for row in rows]
    assert picks == [ll.llama_sampler_sample(greedy_sampler(), ctx, row) for row in rows]
    assert greedy_token(ctx, -1, a.n_vocab) == picks[1]  # -1 is the batch's last output row
