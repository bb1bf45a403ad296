# A measurement (the idle baseline needs a quiet host): no benchmark directive, every core.
rule host_record:
    output:
        host=layout.HOST,
    log:
        log("{device}/host"),
    conda:
        "../../envs/edgelaw.yaml"
    threads: measurement_threads
    params:
        profile=profile_json(),
        settings=host_record_json(),
        n_threads=bench_threads(),
        code=code("host-record"),
    shell:
        "python -m edgelaw --log {log} host-record --device {wildcards.device}"
        " --profile {params.profile:q} --settings {params.settings:q}"
        " --threads {params.n_threads} --out {output.host}"
