# edgelaw: the cost of local CPU inference, measured and fitted. See README.md.
from snakemake.utils import min_version

min_version("9.11")


configfile: "config/config.yaml"


include: "workflow/rules/common.smk"


wildcard_constraints:
    model=r"[a-z0-9][a-z0-9._-]*",
    quant=r"[A-Za-z0-9][A-Za-z0-9_.-]*",
    device=r"[A-Za-z0-9_-]+",
    workload=r"[a-z0-9_]+",


include: "workflow/rules/models.smk"
include: "workflow/rules/quantize.smk"
include: "workflow/rules/host.smk"
include: "workflow/rules/bench.smk"
include: "workflow/rules/quality.smk"
include: "workflow/rules/tasks.smk"
include: "workflow/rules/laws.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/archive.smk"


# Targets that only gather others: on a cluster they stay on the machine that runs Snakemake.
localrules:
    all,
    archive,


rule all:
    default_target: True
    input:
        all_targets(),
