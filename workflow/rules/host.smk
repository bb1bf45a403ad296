rule host_record:
    input:
        code=lib("bench", "sampler", "power", "devices", "bandwidth"),
    output:
        host="results/{device}/host.json",
    log:
        "results/logs/{device}/host.log",
    conda:
        ENV
    threads: workflow.cores  # the idle baseline needs a quiet host: nothing runs beside it
    params:
        profile=profile_json(),
        idle=CONFIG["bench"]["idle_seconds"],
        hz=CONFIG["bench"]["sample_hz"],
        n_threads=bench_threads(),
        edgelaw=EDGELAW,
    shell:
        "{params.edgelaw} --log {log} host-record --device {wildcards.device}"
        " --profile {params.profile:q} --idle-seconds {params.idle} --sample-hz {params.hz}"
        " --threads {params.n_threads}"
        " --out {output.host}"
