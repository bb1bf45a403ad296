"""The real workflow on the tiny synthetic model, in a temp working directory."""

import subprocess

import pandas as pd
import pytest

from conftest import ROOT, Workflow, settled, tiny_config, vlm_model

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Workflow:
    """The tiny ladder, built once: the tests below edit its config and dry-run, which changes nothing."""
    wf = Workflow(tmp_path_factory.mktemp("built"))
    wf.write_config(tiny_config())
    wf.run()
    return wf


def test_builds_the_ladder_then_has_nothing_to_do(built):
    built.write_config(tiny_config())
    bpw = {q: built.read_json(f"results/models/tiny/{q}.json")["bpw"] for q in ["F16", "Q8_0", "Q4_K_M"]}
    assert bpw["F16"] > bpw["Q8_0"] > bpw["Q4_K_M"]
    assert built.read_json("resources/models/tiny/base.json")["source"] == "synthetic"
    assert (built.workdir / "results/logs/quantize/tiny/Q8_0.log").stat().st_size > 0
    assert built.dry_run_jobs() == {}


def test_adding_a_scheme_or_a_model_schedules_only_its_jobs(built):
    config = tiny_config()
    config["schemes"]["Q5_K_M"] = {"ftype": "Q5_K_M"}
    built.write_config(config)
    assert built.dry_run_jobs() == {"quantize": 1, "bench": 1, "laws": 1, "report": 1, "all": 1}
    config["models"]["tiny2"] = {"source": "synthetic", "synthetic": {**config["models"]["tiny"]["synthetic"], "seed": 7}}
    built.write_config(config)
    assert built.dry_run_jobs() == {"fetch_model": 1, "quantize": 1 + 4, "bench": 1 + 4, "laws": 1, "report": 1, "all": 1}
    # Narrowing one model's ladder builds nothing and loses nothing.
    config["models"]["tiny2"]["schemes"] = ["Q8_0"]
    built.write_config(config)
    assert built.dry_run_jobs() == {"fetch_model": 1, "quantize": 2, "bench": 2, "laws": 1, "report": 1, "all": 1}


def test_changing_a_scheme_reruns_only_that_scheme(built):
    config = tiny_config()
    config["schemes"]["Q4_K_M"]["output_tensor_type"] = "Q8_0"
    built.write_config(config)
    assert built.dry_run_jobs() == {"quantize": 1, "bench": 1, "laws": 1, "report": 1, "all": 1}


def test_device_profile_that_does_not_match_stops_at_its_first_job(workflow):
    """Parse time validates the config only; the host record, the first job (priority), checks the host it
    runs on and stops the run before any other work."""
    from edgelaw.core.devices import fingerprint, suggest

    workflow.write_config(tiny_config())
    other = "m2" if fingerprint()["system"] != "Darwin" else "rpi5"
    assert workflow.run("--config", f"device={other}", "--dry-run").returncode == 0
    proc = workflow.run("--config", f"device={other}", check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert f"device profile '{other}' does not match this host" in out
    assert f"--config device={suggest(fingerprint(), ROOT)}" in out and "force_device=true" in out
    assert not (workflow.workdir / "resources").exists() and not (workflow.workdir / f"results/{other}").exists()


def test_a_fleet_measures_each_device_and_compares_them_in_the_same_run(workflow):
    """`--config devices=a,b`: each device's host record, bench, laws and report, and the cross-device
    comparison as part of `all` (a dry run: the measurement itself is the cluster test's)."""
    workflow.write_config(tiny_config())
    jobs = workflow.dry_run_jobs("--config", "devices=x86,auto")
    assert jobs == {"fetch_model": 1, "quantize": 3, "host_record": 2, "bench": 6, "laws": 2, "report": 2,
                    "cross_device": 1, "all": 1}
    workflow.write_config(tiny_config(devices=["x86", "auto"], quality={"enabled": False, "per_device": True}))
    proc = workflow.run("--dry-run", check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "quality.per_device: a fleet (devices) shares one quality folder" in out


def test_bad_config_key_fails_before_any_work(workflow):
    workflow.write_config(tiny_config(theads=4))
    proc = workflow.run(check=False)
    assert proc.returncode != 0
    assert "invalid config" in proc.stderr and "unknown key(s) 'theads'" in proc.stderr
    assert not (workflow.workdir / "results").exists()


def test_a_failing_scheme_names_itself_and_loses_nothing(workflow):
    config = tiny_config()
    config["schemes"]["IQ2_XXS"] = {"ftype": "IQ2_XXS"}
    workflow.write_config(config)
    proc = workflow.run("--keep-going", check=False)
    assert proc.returncode != 0
    assert "model tiny, scheme IQ2_XXS: ftype IQ2_XXS needs an importance matrix" in proc.stderr
    built = sorted(p.name for p in (workflow.workdir / "results/models/tiny").glob("*.gguf"))
    assert len(list((workflow.workdir / "results/auto/runs/tiny").glob("*/tokens.parquet"))) == 3
    assert built == ["F16.gguf", "Q4_K_M.gguf", "Q8_0.gguf"]
    del config["schemes"]["IQ2_XXS"]
    workflow.write_config(config)
    assert workflow.dry_run_jobs() == {"laws": 1, "report": 1, "all": 1}  # they waited for the failed scheme


def test_a_vlm_gets_its_projector_and_moving_its_clamp_reruns_only_its_sweep(workflow):
    config = tiny_config()
    config["models"]["vlm"] = vlm_model(64, schemes=["F16"])
    config["bench"]["resolution"] = {"long_sides": [64, 256], "square": False, "n_gen": 2}
    workflow.write_config(config)
    jobs = workflow.dry_run_jobs()
    assert jobs["fetch_mmproj"] == 1 and jobs["fetch_model"] == 2 and jobs["bench"] == 3 + 1
    workflow.run()
    runs = settled(pd.read_parquet(workflow.workdir / "results/auto/runs/vlm/F16/resolution.parquet"))
    assert (runs["status"] == "ok").all() and set(runs["nominal_w"]) == {64, 256}
    assert workflow.read_json("resources/models/vlm/mmproj.json")["projector_type"] == "qwen2vl_merger"
    config["models"]["vlm"]["image_max_tokens"] = 32
    workflow.write_config(config)
    assert workflow.dry_run_jobs() == {"bench": 1, "laws": 1, "report": 1, "all": 1}
    config["bench"]["resolution"]["n_gen"] = 3  # a resolution setting: the token sweeps stay
    workflow.write_config(config)
    assert workflow.dry_run_jobs() == {"bench": 1, "laws": 1, "report": 1, "all": 1}
    config["bench"]["prompt_tokens"] = [16, 32]  # a token-sweep setting: the three token sweeps rerun
    workflow.write_config(config)
    # (+1: the VLM's sweep is still out of date from the changes above, which were only dry runs)
    assert workflow.dry_run_jobs() == {"bench": 3 + 1, "laws": 1, "report": 1, "all": 1}


def test_the_documented_unlock_works_without_cores(workflow):
    """README: after Snakemake itself was killed, `snakemake --unlock` (a measurement's threads are
    read when a job runs, not when the workflow is parsed)."""
    workflow.write_config(tiny_config())
    cmd = [c for c in workflow.command("--unlock") if c not in ("--cores", "2")]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0 and "Unlocked working directory" in proc.stdout + proc.stderr, proc.stderr[-2000:]
