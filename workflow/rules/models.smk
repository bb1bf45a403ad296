rule fetch_model:
    output:
        gguf="resources/models/{model}/base.gguf",
        meta="resources/models/{model}/base.json",
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
    params:
        spec=model_spec_json,
        py=PY,
    log:
        "results/logs/fetch_model/{model}.log",
    shell:
        "{params.py} -m edgelaw --log {log} fetch-model --model {wildcards.model}"
        " --spec {params.spec:q} --out-gguf {output.gguf} --out-json {output.meta}"
