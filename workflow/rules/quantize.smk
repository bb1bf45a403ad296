rule quantize:
    input:
        base=layout.BASE_GGUF,
        base_meta=layout.BASE_JSON,
    output:
        gguf=layout.QUANT_GGUF,
        meta=layout.QUANT_JSON,
    log:
        log("quantize/{model}/{quant}"),
    benchmark:
        benchmark("quantize/{model}/{quant}")
    conda:
        "../../envs/edgelaw.yaml"
    threads: CONFIG["quantize_threads"]
    resources:
        slurm_partition=compute_partition,
    params:
        scheme=scheme_json,
        code=code("quantize"),
    shell:
        "python -m edgelaw --log {log} quantize --model {wildcards.model}"
        " --scheme-name {wildcards.quant} --scheme {params.scheme:q} --base {input.base}"
        " --base-json {input.base_meta}"
        " --out-gguf {output.gguf} --out-json {output.meta} --threads {threads}"
