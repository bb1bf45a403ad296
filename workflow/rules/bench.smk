warn_missing_points()


# A measurement: no benchmark directive (the job records its own timings), every core. It checks that its
# host is the kind of host the device's host record describes (ancient: a host record taken again does
# not rerun the measurements).
rule bench:
    input:
        host=ancient(layout.HOST),
        gguf=layout.QUANT_GGUF,
        meta=layout.QUANT_JSON,
        mmproj=mmproj_input,
        user_files=bench_user_files,
    output:
        trace=layout.TRACE,
        runs=layout.RUNS,
    log:
        log("{device}/bench/{model}/{quant}/{workload}"),
    conda:
        "../../envs/edgelaw.yaml"
    threads: measurement_threads
    resources:
        slurm_partition=measurement_partition,
    params:
        settings=bench_json,
        profile=profile_json,
        n_threads=bench_threads,
        clamp=clamp_json,
        mmproj=lambda wildcards, input: (
            f"--mmproj {input.mmproj}" if input.mmproj else ""
        ),
        code=code("bench"),
    shell:
        "python -m edgelaw --log {log} bench --device {wildcards.device}"
        " --profile {params.profile:q} --host-record {input.host} --model {wildcards.model} --quant {wildcards.quant}"
        " --gguf {input.gguf} --quant-json {input.meta} --workload {wildcards.workload}"
        " --settings {params.settings:q} --threads {params.n_threads}"
        " --out-trace {output.trace} --out-runs {output.runs}"
        " --clamp {params.clamp:q} {params.mmproj}"
