# Config validation, the device check and path helpers. Runs at parse time, before any job.
import json
import shlex
import sys
import time
from pathlib import Path

from snakemake.exceptions import WorkflowError

sys.path.insert(0, str(Path(workflow.basedir) / "workflow"))

from edgelaw.config import NOT_FETCH_KEYS, model_schemes, model_workloads, validate
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
        k: v
        for k, v in CONFIG["models"][wildcards.model].items()
        if k not in NOT_FETCH_KEYS
    }
    return json.dumps(spec, sort_keys=True)


def vision_models():
    return [name for name, spec in CONFIG["models"].items() if spec.get("mmproj")]


def mmproj_spec_json(wildcards):
    return json.dumps(CONFIG["models"][wildcards.model]["mmproj"], sort_keys=True)


def mmproj_input(wildcards):
    """The projector, for a resolution job only: the token sweep does not depend on it."""
    if wildcards.workload != "resolution":
        return []
    return f"resources/models/{wildcards.model}/mmproj.gguf"


def clamp_json(wildcards):
    """The model's image clamp, for a resolution job only (so changing it reruns nothing else)."""
    if wildcards.workload != "resolution":
        return "{}"
    spec = CONFIG["models"][wildcards.model]
    keys = ("image_max_tokens", "image_min_tokens")
    return json.dumps({k: spec.get(k) for k in keys}, sort_keys=True)


def scheme_json(wildcards):
    return json.dumps(CONFIG["schemes"][wildcards.quant], sort_keys=True)


# The settings one workload does not read: changing them must not rerun its jobs.
OTHER_WORKLOAD_KEYS = {
    "tokens": {"resolution", "workloads"},
    "resolution": {"prompt_tokens", "n_gen", "corpus", "workloads"},
}


def bench_json(wildcards):
    drop = OTHER_WORKLOAD_KEYS[wildcards.workload]
    return json.dumps(
        {k: v for k, v in CONFIG["bench"].items() if k not in drop}, sort_keys=True
    )


def profile_json():
    return json.dumps(DEVICE, sort_keys=True)


def bench_threads():
    return CONFIG["threads"] or DEVICE["threads"]


def bench_outputs(kind, device=DEVICE_NAME):
    return [
        f"results/{device}/{kind}/{model}/{quant}/{workload}.parquet"
        for model in CONFIG["models"]
        for quant in model_schemes(CONFIG, model)
        for workload in model_workloads(CONFIG, model)
    ]


def quality_json():
    return json.dumps(CONFIG["quality"], sort_keys=True)


def quality_path(relative):
    """A path under the quality folder (results/quality, or results/{device}/quality when per device)."""
    return str(QUALITY_DIR / relative)


def quality_log(relative):
    return str(Path("results") / "logs" / QUALITY_DIR.relative_to("results") / relative)


QUALITY_CODE = lib(
    "cli",
    "quality_stage",
    "quality",
    "evalset",
    "answers",
    "semantic",
    "llama",
    "tables",
    "provenance",
)


def quality_outputs(kind="table"):
    if not CONFIG["quality"]["enabled"]:
        return []
    relative = (
        "{model}/{quant}.parquet"
        if kind == "table"
        else "{model}/answers/{quant}.parquet"
    )
    return [
        quality_path(relative.format(model=model, quant=quant))
        for model in quality_models()
        for quant in model_schemes(CONFIG, model)
    ]


def quality_models():
    if not CONFIG["quality"]["enabled"]:
        return []
    return [name for name, spec in CONFIG["models"].items() if spec["quality"]]


def quant_jsons():
    return [path.replace(".gguf", ".json") for path in quantized_models()]


def laws_json():
    return json.dumps(CONFIG["laws"], sort_keys=True)


def comparisons_json():
    return json.dumps(CONFIG["comparisons"], sort_keys=True)


ARCHIVE = "results/archive/{device}-{stamp}.tar.gz".format(
    device=DEVICE_NAME,
    stamp=CONFIG["archive"]["stamp"] or time.strftime("%Y%m%d", time.gmtime()),
)


def archived_files():
    """What an archive holds besides the config and the lock: every table, record and report file."""
    device = f"results/{DEVICE_NAME}"
    models = [f"resources/models/{model}/base.json" for model in CONFIG["models"]]
    models += [f"resources/models/{model}/mmproj.json" for model in vision_models()]
    reference = [
        quality_path(f"{model}/reference/answers.parquet") for model in quality_models()
    ]
    report_files = [
        f"{device}/report/{name}.{ext}" for name in FIGURES for ext in ("png", "svg")
    ]
    return (
        models
        + quant_jsons()
        + [f"{device}/host.json"]
        + bench_outputs("traces")
        + bench_outputs("runs")
        + quality_outputs()
        + quality_outputs("answers")
        + reference
        + [f"{device}/{name}.parquet" for name in ("laws", "tradeoffs", "comparisons")]
        + report_files
        + [f"{device}/report/summary.md", f"{device}/report/index.html"]
    )


FIGURES = [
    "cost_vs_tokens",
    "cost_vs_bpw",
    "quality_vs_bpw",
    "pareto",
    "roofline",
    "comparisons",
    "knee",
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
        + [f"results/{DEVICE_NAME}/report/index.html"]
    )
