warn_missing_points()


# A measurement: no benchmark directive (the job records its own timings), every core. It checks that its
# host is the kind of host the device's host record describes, when there is one (the host record runs
# first, by priority). The record is no input: taking it again must not rerun every measurement, and an
# ancient() input would hide the bench's own params changes behind the host record's rerun (Snakemake
# skips a job downstream of a rerun job whose inputs are all ancient).
rule bench:
    input:
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
        host_record=lambda wildcards: layout.fill(layout.HOST, device=wildcards.device),
        code=code("bench"),
    shell:
        "python -m edgelaw --log {log} bench --device {wildcards.device}"
        " --profile {params.profile:q} --host-record {params.host_record} --model {wildcards.model} --quant {wildcards.quant}"
        " --gguf {input.gguf} --quant-json {input.meta} --workload {wildcards.workload}"
        " --settings {params.settings:q} --threads {params.n_threads}"
        " --out-trace {output.trace} --out-runs {output.runs}"
        " --clamp {params.clamp:q} {params.mmproj}"
