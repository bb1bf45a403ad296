rule quality_reference:
    input:
        base=layout.BASE_GGUF,
        base_meta=layout.BASE_JSON,
        eval_text=QUALITY_INPUTS["eval_text"],
        prompts=QUALITY_INPUTS["prompts"],
        encoder=ENCODER["gguf"],
        encoder_meta=ENCODER["json"],
    output:
        npz=quality_path(layout.REFERENCE_NPZ),
        answers=quality_path(layout.REFERENCE_ANSWERS),
    log:
        quality_log("{model}/reference"),
    benchmark:
        benchmark("quality_reference/{model}")
    conda:
        "../../envs/edgelaw.yaml"
    threads: quality_threads()
    resources:
        slurm_partition=compute_partition,
    params:
        settings=quality_json(),
        encoder=encoder_args(),
        code=code("quality-reference"),
    shell:
        "python -m edgelaw --log {log} quality-reference --model {wildcards.model}"
        " --base {input.base} --base-json {input.base_meta} --settings {params.settings:q} --threads {threads}"
        " --out-npz {output.npz} --out-answers {output.answers} {params.encoder}"


rule quality:
    input:
        gguf=layout.QUANT_GGUF,
        meta=layout.QUANT_JSON,
        ref_npz=quality_path(layout.REFERENCE_NPZ),
        ref_answers=quality_path(layout.REFERENCE_ANSWERS),
        eval_text=QUALITY_INPUTS["eval_text"],
        prompts=QUALITY_INPUTS["prompts"],
        encoder=ENCODER["gguf"],
        encoder_meta=ENCODER["json"],
    output:
        table=quality_path(layout.QUALITY_TABLE),
        answers=quality_path(layout.ANSWERS),
    log:
        quality_log("{model}/{quant}"),
    benchmark:
        benchmark("quality/{model}/{quant}")
    conda:
        "../../envs/edgelaw.yaml"
    threads: quality_threads()
    resources:
        slurm_partition=compute_partition,
    params:
        settings=quality_json(),
        encoder=encoder_args(),
        code=code("quality"),
    shell:
        "python -m edgelaw --log {log} quality --model {wildcards.model} --quant {wildcards.quant}"
        " --gguf {input.gguf} --quant-json {input.meta} --settings {params.settings:q}"
        " --threads {threads} --ref-npz {input.ref_npz} --ref-answers {input.ref_answers}"
        " --out-table {output.table} --out-answers {output.answers} {params.encoder}"
