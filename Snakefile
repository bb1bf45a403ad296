# edgelaw: the cost of local CPU inference, measured and fitted. See README.md.
from snakemake.utils import min_version

min_version("9.11")


configfile: "config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/models.smk"
include: "workflow/rules/quantize.smk"


rule all:
    input:
        all_targets(),
    default_target: True
