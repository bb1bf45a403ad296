rule quantize:
    output:
        gguf="results/models/{model}/{quant}.gguf",
        meta="results/models/{model}/{quant}.json",
    input:
        base="resources/models/{model}/base.gguf",
        code=lib("quantize", "ggufio", "llama"),
    params:
        scheme=scheme_json,
        py=PY,
    threads: CONFIG["quantize_threads"]
    log:
        "results/logs/quantize/{model}/{quant}.log",
    shell:
        "{params.py} -m edgelaw --log {log} quantize --model {wildcards.model}"
        " --scheme-name {wildcards.quant} --scheme {params.scheme:q} --base {input.base}"
        " --out-gguf {output.gguf} --out-json {output.meta} --threads {threads}"
