rule quantize:
    input:
        base="resources/models/{model}/base.gguf",
        code=lib("quantize", "ggufio", "llama"),
    output:
        gguf="results/models/{model}/{quant}.gguf",
        meta="results/models/{model}/{quant}.json",
    log:
        "results/logs/quantize/{model}/{quant}.log",
    conda:
        ENV
    threads: CONFIG["quantize_threads"]
    params:
        scheme=scheme_json,
        edgelaw=EDGELAW,
    shell:
        "{params.edgelaw} --log {log} quantize --model {wildcards.model}"
        " --scheme-name {wildcards.quant} --scheme {params.scheme:q} --base {input.base}"
        " --out-gguf {output.gguf} --out-json {output.meta} --threads {threads}"
