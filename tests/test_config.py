import pytest
import yaml

from edgelaw.core.config import validate
from edgelaw.core.errors import EdgelawError

from conftest import tiny_config


def test_defaults_are_filled():
    config = validate(tiny_config())
    assert config["threads"] is None
    assert config["force_device"] is False
    assert config["models"]["tiny"]["synthetic"]["tie_embeddings"] is False
    assert config["schemes"]["Q8_0"]["pure"] is False


def test_shipped_config_is_valid(root):
    config = validate(yaml.safe_load((root / "config" / "config.yaml").read_text()))
    assert "smollm2-135m" in config["models"]
    assert list(config["schemes"])[:2] == ["F16", "Q8_0"]


def test_unknown_key_names_path_and_allowed_keys():
    bad = tiny_config()
    bad["models"]["tiny"]["sorce"] = "x"
    with pytest.raises(EdgelawError) as err:
        validate(bad)
    msg = str(err.value)
    assert "models.tiny" in msg and "'sorce'" in msg and "allowed keys" in msg and "source" in msg


def test_unknown_ftype_lists_allowed_values():
    bad = tiny_config()
    bad["schemes"]["Q9"] = {"ftype": "Q9_K"}
    with pytest.raises(EdgelawError) as err:
        validate(bad)
    assert "schemes.Q9.ftype" in str(err.value) and "Q4_K_M" in str(err.value)


def test_hf_source_requires_a_pinned_revision():
    bad = tiny_config(models={"m": {"source": "hf", "repo_id": "a/b", "filename": "x.gguf", "revision": "main"}})
    with pytest.raises(EdgelawError) as err:
        validate(bad)
    assert "models.m.revision" in str(err.value) and "does not match" in str(err.value)
    bad["models"]["m"]["sha256"] = "1234"
    with pytest.raises(EdgelawError, match="models.m.sha256"):
        validate(bad)


def test_every_preset_is_valid(root):
    presets = sorted((root / "config" / "experiments").glob("*.yaml"))
    assert presets
    for path in presets:
        config = validate(yaml.safe_load(path.read_text()))
        for model in config["models"].values():
            assert model["source"] != "hf" or len(model["revision"]) == 40
    paper = validate(yaml.safe_load((root / "config" / "experiments" / "paper-a.yaml").read_text()))
    vlm = paper["models"]["qwen2-vl-2b"]
    assert vlm["mmproj"]["source"] == "hf" and "mmproj" in vlm["mmproj"]["filename"]


def test_model_ladder_must_name_defined_schemes():
    bad = tiny_config()
    bad["models"]["tiny"]["schemes"] = ["Q8_0", "Q5_K_S"]
    with pytest.raises(EdgelawError, match=r"models.tiny.schemes: 'Q5_K_S' is not a defined scheme"):
        validate(bad)


def test_every_problem_is_reported_at_once():
    bad = tiny_config(device=3)
    bad["schemes"]["Q8_0"]["ftype"] = "Q8"
    with pytest.raises(EdgelawError) as err:
        validate(bad)
    assert "device" in str(err.value) and "schemes.Q8_0.ftype" in str(err.value)


def test_command_line_strings_take_the_schema_type():
    config = validate(tiny_config(force_device="true", threads="null"))
    assert config["force_device"] is True and config["threads"] is None
    with pytest.raises(EdgelawError, match="force_device"):
        validate(tiny_config(force_device="maybe"))


def test_default_comparisons_keep_the_pairs_this_ladder_has():
    config = validate(tiny_config())  # F16, Q8_0, Q4_K_M: no Q2_K
    assert config["comparisons"] == [{"baseline": "F16", "variant": "Q8_0"}, {"baseline": "F16", "variant": "Q4_K_M"}]


def test_a_comparison_of_an_undefined_scheme_names_it_and_the_fix():
    with pytest.raises(EdgelawError, match=r"comparisons\[0\]: 'tiny/Q2_K' is not a model/scheme of this config"):
        validate(tiny_config(comparisons=[{"baseline": "tiny/F16", "variant": "tiny/Q2_K"}]))
    ok = validate(tiny_config(comparisons=[{"baseline": "tiny/F16", "variant": "Q8_0"}]))
    assert ok["comparisons"][0]["variant"] == "Q8_0"


def test_a_yaml_syntax_error_names_the_file_and_line_without_a_traceback(tmp_path):
    import subprocess
    import sys

    bad = tmp_path / "my.yaml"
    bad.write_text("models:\n  tiny:\n    source: synthetic\n  synthetic: {arch: llama\n")
    out = subprocess.run([sys.executable, "-m", "edgelaw", "validate-config", str(bad)], capture_output=True, text=True)
    assert out.returncode == 2
    assert f"config {bad} line 5, column 1: not valid YAML" in out.stderr and "fix the file there" in out.stderr
    assert "Traceback" not in out.stderr
