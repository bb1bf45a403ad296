# A measurement (the idle baseline needs a quiet host): no benchmark directive, every core. It runs
# first (priority), so that a host the device's profile does not fit stops the run before other work.
rule host_record:
    output:
        host=layout.HOST,
    log:
        log("{device}/host"),
    priority: 100
    conda:
        "../../envs/edgelaw.yaml"
    threads: measurement_threads
    resources:
        slurm_partition=measurement_partition,
    params:
        profile=profile_json,
        settings=host_record_json(),
        n_threads=bench_threads,
        code=code("host-record"),
    shell:
        "python -m edgelaw --log {log} host-record --device {wildcards.device}"
        " --profile {params.profile:q} --settings {params.settings:q}"
        " --threads {params.n_threads} --out {output.host}"
