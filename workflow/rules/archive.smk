# Not part of `all`: run `snakemake archive` (every device of the run) or `snakemake cross_device` when
# the results are final. A fleet's run makes its cross-device comparison itself (`all`).
rule archive:
    input:
        [layout.fill(ARCHIVE, device=device) for device in DEVICES],


rule archive_device:
    input:
        files=lambda wildcards: archived_files(wildcards.device),
    output:
        ARCHIVE,
    log:
        log("{device}/archive"),
    benchmark:
        benchmark("{device}/archive")
    conda:
        "../../envs/edgelaw.yaml"
    resources:
        slurm_partition=compute_partition,
    params:
        config=json.dumps(CONFIG, sort_keys=True),
        code=code("archive"),
    shell:
        "python -m edgelaw --log {log} archive --device {wildcards.device}"
        " --config {params.config:q} --files {input.files} --out {output}"


# The devices of a fleet's run (their laws, trade-offs and host records) and the archives of devices
# measured elsewhere (cross_device.archives), merged into results/cross_device/.
rule cross_device:
    input:
        **cross_device_inputs(),
    output:
        html=CROSS_DEVICE_HTML,
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
    resources:
        slurm_partition=compute_partition,
    params:
        devices=" ".join(DEVICES) if FLEET else "",
        out_dir=lambda wildcards, output: os.path.dirname(output.html),
        code=code("cross-device"),
    shell:
        "python -m edgelaw --log {log} cross-device {input.archives} --devices {params.devices}"
        " --out-dir {params.out_dir}"
