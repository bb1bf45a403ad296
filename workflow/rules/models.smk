rule fetch_model:
    input:
        user_file=model_user_files,
    output:
        gguf=layout.BASE_GGUF,
        meta=layout.BASE_JSON,
    log:
        log("fetch_model/{model}"),
    benchmark:
        benchmark("fetch_model/{model}")
    conda:
        "../../envs/edgelaw.yaml"
    resources:
        slurm_partition=compute_partition,
    params:
        spec=model_spec_json,
        code=code("fetch-model"),
    shell:
        "python -m edgelaw --log {log} fetch-model --model {wildcards.model}"
        " --spec {params.spec:q} --out-gguf {output.gguf} --out-json {output.meta}"


rule fetch_mmproj:
    input:
        language=layout.BASE_GGUF,
        user_file=projector_user_files,
    output:
        gguf=layout.MMPROJ_GGUF,
        meta=layout.MMPROJ_JSON,
    log:
        log("fetch_mmproj/{model}"),
    benchmark:
        benchmark("fetch_mmproj/{model}")
    conda:
        "../../envs/edgelaw.yaml"
    resources:
        slurm_partition=compute_partition,
    params:
        spec=mmproj_spec_json,
        code=code("fetch-mmproj"),
    shell:
        "python -m edgelaw --log {log} fetch-mmproj --model {wildcards.model}"
        " --spec {params.spec:q} --language {input.language}"
        " --out-gguf {output.gguf} --out-json {output.meta}"


rule fetch_encoder:
    input:
        user_files=ENCODER_USER_FILES,
    output:
        gguf=layout.ENCODER_GGUF,
        meta=layout.ENCODER_JSON,
    log:
        log("fetch_encoder"),
    benchmark:
        benchmark("fetch_encoder")
    conda:
        "../../envs/edgelaw.yaml"
    params:
        spec=encoder_spec_json(),
        code=code("fetch-encoder"),
    shell:
        "python -m edgelaw --log {log} fetch-encoder --spec {params.spec:q}"
        " --out-gguf {output.gguf} --out-json {output.meta}"
