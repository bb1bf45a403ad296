rule fetch_model:
    input:
        code=lib(
            "sources/__init__",
            "sources/hf",
            "sources/pypi",
            "sources/file",
            "sources/synthetic",
            "ggufio",
            "bpe",
        ),
    output:
        gguf="resources/models/{model}/base.gguf",
        meta="resources/models/{model}/base.json",
    log:
        "results/logs/fetch_model/{model}.log",
    conda:
        ENV
    params:
        spec=model_spec_json,
        edgelaw=EDGELAW,
    shell:
        "{params.edgelaw} --log {log} fetch-model --model {wildcards.model}"
        " --spec {params.spec:q} --out-gguf {output.gguf} --out-json {output.meta}"


rule fetch_mmproj:
    input:
        language="resources/models/{model}/base.gguf",
        code=lib(
            "sources/__init__",
            "sources/hf",
            "sources/pypi",
            "sources/file",
            "sources/synthetic_vision",
            "vision",
            "ggufio",
        ),
    output:
        gguf="resources/models/{model}/mmproj.gguf",
        meta="resources/models/{model}/mmproj.json",
    log:
        "results/logs/fetch_mmproj/{model}.log",
    conda:
        ENV
    params:
        spec=mmproj_spec_json,
        edgelaw=EDGELAW,
    shell:
        "{params.edgelaw} --log {log} fetch-mmproj --model {wildcards.model}"
        " --spec {params.spec:q} --language {input.language}"
        " --out-gguf {output.gguf} --out-json {output.meta}"
