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

try:
    CONFIG = validate(config)
    DEVICE = resolve(CONFIG["device"], workflow.basedir, force=CONFIG["force_device"])
except EdgelawError as exc:
    raise WorkflowError(str(exc)) from None

DEVICE_NAME = CONFIG["device"]
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
    )
