# Not part of `all`: run `snakemake archive` (or `snakemake cross_device`) when the results are final.
rule archive:
    input:
        files=archived_files(),
    output:
        ARCHIVE,
    log:
        log(f"{DEVICE_NAME}/archive"),
    benchmark:
        benchmark(f"{DEVICE_NAME}/archive")
    conda:
        "../../envs/edgelaw.yaml"
    params:
        config=json.dumps(CONFIG, sort_keys=True),
        device=DEVICE_NAME,
        code=code("archive"),
    shell:
        "python -m edgelaw --log {log} archive --device {params.device}"
        " --config {params.config:q} --files {input.files} --out {output}"


rule cross_device:
    input:
        archives=CONFIG["cross_device"]["archives"],
    output:
        html=f"{layout.CROSS_DEVICE_DIR}/{layout.HTML_FILE}",
        summary=f"{layout.CROSS_DEVICE_DIR}/{layout.SUMMARY_FILE}",
        tradeoffs=layout.CROSS_DEVICE_TRADEOFFS,
        laws=layout.CROSS_DEVICE_LAWS,
        figure=expand(
            f"{layout.CROSS_DEVICE_DIR}/{layout.FIGURE_FILE}",
            figure=layout.CROSS_DEVICE_FIGURE,
            ext=layout.FIGURE_FORMATS,
        ),
    log:
        log("cross_device"),
    benchmark:
        benchmark("cross_device")
    conda:
        "../../envs/edgelaw.yaml"
    params:
        out_dir=lambda wildcards, output: os.path.dirname(output.html),
        code=code("cross-device"),
    shell:
        "python -m edgelaw --log {log} cross-device {input.archives} --out-dir {params.out_dir}"
