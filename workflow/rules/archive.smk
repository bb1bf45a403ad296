# Not part of `all`: run `snakemake archive` (or `snakemake compare`) when the results are final.
rule archive:
    input:
        files=archived_files(),
        code=lib("archive", "cli"),
    output:
        ARCHIVE,
    log:
        f"results/logs/{DEVICE_NAME}/archive.log",
    conda:
        ENV
    params:
        config=json.dumps(CONFIG, sort_keys=True),
        device=DEVICE_NAME,
        edgelaw=EDGELAW,
    shell:
        "{params.edgelaw} --log {log} archive --device {params.device}"
        " --config {params.config:q} --files {input.files} --out {output}"


rule compare:
    input:
        archives=CONFIG["compare"]["archives"],
        code=lib("compare", "archive", "report", "figures", "tables", "cli"),
    output:
        html="results/compare/index.html",
        summary="results/compare/summary.md",
        tradeoffs="results/compare/tradeoffs.parquet",
        laws="results/compare/laws.parquet",
        figure=multiext("results/compare/devices", ".png", ".svg"),
    log:
        "results/logs/compare.log",
    conda:
        ENV
    params:
        edgelaw=EDGELAW,
    shell:
        "{params.edgelaw} --log {log} compare {input.archives} --out-dir results/compare"
