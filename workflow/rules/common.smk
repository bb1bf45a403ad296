# Config validation, the device check and the input functions. Runs at parse time, before any job.
import json
import sys
import time
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.logging import logger

try:
    import edgelaw
except ImportError:
    raise WorkflowError(
        f"edgelaw is not installed in this Python ({sys.executable}); run `make setup` in the checkout, "
        "or `pip install -e .` in the environment that runs Snakemake"
    ) from None

from edgelaw.core import layout
from edgelaw.core.codedeps import command_digest
from edgelaw.core.config import fetch_spec, model_schemes, model_workloads, validate
from edgelaw.core.devices import resolve
from edgelaw.core.errors import EdgelawError
from edgelaw.core.jobs import prepare_environment
from edgelaw.core.points import missing_in_tables
from edgelaw.measure.settings import workload_settings
from edgelaw.quality.evalset import check_inputs
from edgelaw.sources import encoder
from edgelaw.sources.file import user_files

try:
    CONFIG = validate(config)
    DEVICE = resolve(CONFIG["device"], workflow.basedir, force=CONFIG["force_device"])
    # Missing, empty or malformed evaluation files stop the run here, before any job.
    QUALITY_INPUTS = (
        check_inputs(CONFIG["quality"])
        if CONFIG["quality"]["enabled"]
        else {"eval_text": [], "prompts": []}
    )
    # A model file of the user's own that is not there stops the run here too.
    for _model, _spec in CONFIG["models"].items():
        user_files(CONFIG, _model)
        if _spec.get("mmproj"):
            user_files(CONFIG, _model, projector=True)
    # The sentence encoder: a directory of the user's that is not there stops the run here too.
    SEMANTIC = CONFIG["quality"]["enabled"] and CONFIG["quality"]["semantic"]
    ENCODER_USER_FILES = (
        encoder.user_files(CONFIG["quality"]["embedder"]) if SEMANTIC else []
    )
except EdgelawError as exc:
    raise WorkflowError(str(exc)) from None

DEVICE_NAME = CONFIG["device"]
QUALITY_DIR = layout.quality_dir(CONFIG["quality"]["per_device"], DEVICE_NAME)
USES_CONDA = "conda" in str(workflow.deployment_settings.deployment_method).lower()
prepare_environment(USES_CONDA)


def code(command):
    """The library files a command runs, with their checksums, for the params of the jobs that run
    it: editing one reruns exactly those jobs, and moving the checkout reruns nothing.
    """
    return command_digest(command)


def log(name):
    return f"{layout.LOGS}/{name}.log"


def benchmark(name):
    return f"{layout.BENCHMARKS}/{name}.tsv"


def measurement_threads(wildcards):
    """A measurement runs alone: it takes every core Snakemake has, so no other job runs beside it.
    (A function, so that `snakemake --unlock` and other runs without --cores can parse the workflow.)
    """
    return workflow.cores


def model_spec_json(wildcards):
    return json.dumps(fetch_spec(CONFIG, wildcards.model), sort_keys=True)


def model_user_files(wildcards):
    """A `file` source's GGUF: an input of its fetch, so that rewriting it fetches it again (the base is a
    copy, which the rewrite does not touch)."""
    return user_files(CONFIG, wildcards.model)


def projector_user_files(wildcards):
    return user_files(CONFIG, wildcards.model, projector=True)


def vision_models():
    return [name for name, spec in CONFIG["models"].items() if spec.get("mmproj")]


def mmproj_spec_json(wildcards):
    return json.dumps(CONFIG["models"][wildcards.model]["mmproj"], sort_keys=True)


def mmproj_input(wildcards):
    """The projector, for a resolution job only: the token sweep does not depend on it."""
    if wildcards.workload != "resolution":
        return []
    return layout.fill(layout.MMPROJ_GGUF, model=wildcards.model)


def clamp_json(wildcards):
    """The model's image clamp, for a resolution job only (so changing it reruns nothing else)."""
    if wildcards.workload != "resolution":
        return "{}"
    spec = CONFIG["models"][wildcards.model]
    keys = ("image_max_tokens", "image_min_tokens")
    return json.dumps({k: spec.get(k) for k in keys}, sort_keys=True)


def scheme_json(wildcards):
    return json.dumps(CONFIG["schemes"][wildcards.quant], sort_keys=True)


def bench_json(wildcards):
    """Only the bench keys this workload reads (declared by the measurement stage)."""
    return json.dumps(
        workload_settings(CONFIG["bench"], wildcards.workload), sort_keys=True
    )


def bench_user_files(wildcards):
    """The user's own files a bench job reads (the shipped ones are part of its code)."""
    spec = CONFIG["bench"]
    if wildcards.workload == "tokens":
        return [spec["corpus"]] if spec["corpus"] else []
    image = spec["resolution"]["image"]
    return [image] if image else []


def profile_json():
    return json.dumps(DEVICE, sort_keys=True)


def bench_threads():
    return CONFIG["threads"] or DEVICE["threads"]


def host_record_json():
    return json.dumps(
        {k: CONFIG["bench"][k] for k in ("idle_seconds", "sample_hz", "disturbance")},
        sort_keys=True,
    )


def bench_outputs(template, device=DEVICE_NAME):
    return [
        layout.fill(
            template, device=device, model=model, quant=quant, workload=workload
        )
        for model in CONFIG["models"]
        for quant in model_schemes(CONFIG, model)
        for workload in model_workloads(CONFIG, model)
    ]


def warn_missing_points():
    """A bench job that lost points ended well, so Snakemake sees nothing to do: say it on every run,
    dry runs included."""
    done = [p for p in bench_outputs(layout.RUNS) if os.path.exists(p)]
    for line in missing_in_tables(done):
        logger.warning(
            f"edgelaw: {line} (with this run's --configfile/--config options)"
        )


def quality_json():
    return json.dumps(CONFIG["quality"], sort_keys=True)


def encoder_spec_json():
    return json.dumps(CONFIG["quality"]["embedder"], sort_keys=True)


# The quality jobs' sentence encoder (converted by fetch_encoder), with quality.semantic only.
ENCODER = {
    "gguf": [layout.ENCODER_GGUF] if SEMANTIC else [],
    "json": [layout.ENCODER_JSON] if SEMANTIC else [],
}


def encoder_args():
    if not SEMANTIC:
        return ""
    return f"--encoder {layout.ENCODER_GGUF} --encoder-json {layout.ENCODER_JSON}"


def quality_path(template):
    """A quality template in the configured quality folder, its other wildcards left open."""
    return layout.fill(template, quality=QUALITY_DIR)


def quality_log(name):
    return log(f"{QUALITY_DIR.removeprefix('results/')}/{name}")


def quality_models():
    if not CONFIG["quality"]["enabled"]:
        return []
    return [name for name, spec in CONFIG["models"].items() if spec["quality"]]


def quality_outputs(template=layout.QUALITY_TABLE):
    return [
        layout.fill(template, quality=QUALITY_DIR, model=model, quant=quant)
        for model in quality_models()
        for quant in model_schemes(CONFIG, model)
    ]


def quantized(template):
    return [
        layout.fill(template, model=model, quant=quant)
        for model in CONFIG["models"]
        for quant in model_schemes(CONFIG, model)
    ]


def laws_json():
    return json.dumps(CONFIG["laws"], sort_keys=True)


def comparisons_json():
    return json.dumps(CONFIG["comparisons"], sort_keys=True)


def device_path(template):
    return layout.fill(template, device=DEVICE_NAME)


ARCHIVE = layout.fill(
    layout.ARCHIVE,
    device=DEVICE_NAME,
    stamp=CONFIG["archive"]["stamp"] or time.strftime("%Y%m%d", time.gmtime()),
)


def archived_files():
    """What an archive holds besides the config and the lock: every table, record and report file."""
    models = [layout.fill(layout.BASE_JSON, model=m) for m in CONFIG["models"]]
    models += [layout.fill(layout.MMPROJ_JSON, model=m) for m in vision_models()]
    reference = [
        layout.fill(layout.REFERENCE_ANSWERS, quality=QUALITY_DIR, model=m)
        for m in quality_models()
    ]
    encoder_record = ENCODER["json"] if quality_models() else []
    derived = [layout.LAWS, layout.TRADEOFFS, layout.COMPARISONS]
    return (
        models
        + quantized(layout.QUANT_JSON)
        + [device_path(layout.HOST)]
        + bench_outputs(layout.TRACE)
        + bench_outputs(layout.RUNS)
        + quality_outputs()
        + quality_outputs(layout.ANSWERS)
        + reference
        + encoder_record
        + [device_path(t) for t in derived]
        + layout.report_files(DEVICE_NAME)
    )


def all_targets():
    return (
        quantized(layout.QUANT_GGUF)
        + [device_path(layout.HOST)]
        + bench_outputs(layout.TRACE)
        + bench_outputs(layout.RUNS)
        + quality_outputs()
        + [device_path(layout.HTML)]
    )
