rule bench:
    input:
        gguf="results/models/{model}/{quant}.gguf",
        meta="results/models/{model}/{quant}.json",
        mmproj=mmproj_input,
        code=lib(
            "bench",
            "worker",
            "vision",
            "images",
            "llama",
            "sampler",
            "power",
            "integrate",
            "tables",
            "provenance",
        ),
    output:
        trace="results/{device}/traces/{model}/{quant}/{workload}.parquet",
        runs="results/{device}/runs/{model}/{quant}/{workload}.parquet",
    log:
        "results/logs/{device}/bench/{model}/{quant}/{workload}.log",
    conda:
        ENV
    # A measurement runs alone: it takes every core Snakemake has, so no other job runs beside it.
    threads: workflow.cores
    params:
        settings=bench_json,
        profile=profile_json(),
        n_threads=bench_threads(),
        clamp=clamp_json,
        mmproj=lambda wildcards, input: (
            f"--mmproj {input.mmproj}" if input.mmproj else ""
        ),
        edgelaw=EDGELAW,
    shell:
        "{params.edgelaw} --log {log} bench --device {wildcards.device}"
        " --profile {params.profile:q} --model {wildcards.model} --quant {wildcards.quant}"
        " --gguf {input.gguf} --quant-json {input.meta} --workload {wildcards.workload}"
        " --settings {params.settings:q} --threads {params.n_threads}"
        " --out-trace {output.trace} --out-runs {output.runs}"
        " --clamp {params.clamp:q} {params.mmproj}"
