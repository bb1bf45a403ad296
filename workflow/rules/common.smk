# Config validation, the device check and path helpers. Runs at parse time, before any job.
import json
import shlex
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError

sys.path.insert(0, str(Path(workflow.basedir) / "workflow"))

from edgelaw.config import model_schemes, validate
from edgelaw.devices import resolve
from edgelaw.errors import EdgelawError
from edgelaw.evalset import check_inputs

try:
    CONFIG = validate(config)
    DEVICE = resolve(CONFIG["device"], workflow.basedir, force=CONFIG["force_device"])
    # Missing, empty or malformed evaluation files stop the run here, before any job.
    QUALITY_INPUTS = (
        check_inputs(CONFIG["quality"])
        if CONFIG["quality"]["enabled"]
        else {"eval_text": [], "prompts": []}
    )
except EdgelawError as exc:
    raise WorkflowError(str(exc)) from None

DEVICE_NAME = CONFIG["device"]
QUALITY_DIR = (
    Path("results") / DEVICE_NAME / "quality"
    if CONFIG["quality"]["per_device"]
    else Path("results") / "quality"
)
LIB = Path(workflow.basedir) / "workflow" / "edgelaw"
# Under --sdm conda the rule's environment provides python; otherwise the one running Snakemake.
# PYTHONPATH makes the library importable in either without installing it.
_PYTHON = (
    "python"
    if "conda" in str(workflow.deployment_settings.deployment_method).lower()
    else sys.executable
)
EDGELAW = (
    f"env PYTHONPATH={shlex.quote(str(LIB.parent))} {shlex.quote(_PYTHON)} -m edgelaw"
)
ENV = str(Path(workflow.basedir) / "envs" / "edgelaw.yaml")


def lib(*modules):
    """Library files a job depends on; editing one reruns its jobs and all downstream."""
    return [str(LIB / f"{m}.py") for m in modules]


def model_spec_json(wildcards):
    spec = {
        k: v for k, v in CONFIG["models"][wildcards.model].items() if k != "schemes"
    }
    return json.dumps(spec, sort_keys=True)


def scheme_json(wildcards):
    return json.dumps(CONFIG["schemes"][wildcards.quant], sort_keys=True)


def bench_json():
    return json.dumps(CONFIG["bench"], sort_keys=True)


def profile_json():
    return json.dumps(DEVICE, sort_keys=True)


def bench_threads():
    return CONFIG["threads"] or DEVICE["threads"]


def bench_outputs(kind):
    return [
        f"results/{DEVICE_NAME}/{kind}/{model}/{quant}/{workload}.parquet"
        for model in CONFIG["models"]
        for quant in model_schemes(CONFIG, model)
        for workload in CONFIG["bench"]["workloads"]
    ]


def quality_json():
    return json.dumps(CONFIG["quality"], sort_keys=True)


def quality_path(relative):
    """A path under the quality folder (results/quality, or results/{device}/quality when per device)."""
    return str(QUALITY_DIR / relative)


def quality_log(relative):
    return str(Path("results") / "logs" / QUALITY_DIR.relative_to("results") / relative)


QUALITY_CODE = lib(
    "quality_stage",
    "quality",
    "evalset",
    "answers",
    "semantic",
    "llama",
    "tables",
    "provenance",
)


def quality_outputs():
    if not CONFIG["quality"]["enabled"]:
        return []
    return [
        quality_path(f"{model}/{quant}.parquet")
        for model in CONFIG["models"]
        for quant in model_schemes(CONFIG, model)
    ]


def quantized_models():
    return [
        f"results/models/{model}/{quant}.gguf"
        for model in CONFIG["models"]
        for quant in model_schemes(CONFIG, model)
    ]


def all_targets():
    return (
        quantized_models()
        + [f"results/{DEVICE_NAME}/host.json"]
        + bench_outputs("traces")
        + bench_outputs("runs")
        + quality_outputs()
    )
