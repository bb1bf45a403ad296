rule laws:
    input:
        runs=lambda wildcards: bench_outputs(layout.RUNS, wildcards.device),
        quality=quality_outputs(),
        answers=quality_outputs(layout.ANSWERS),
        tasks=task_outputs(),
        task_items=task_outputs(layout.TASK_ITEMS),
        quant_json=quantized(layout.QUANT_JSON),
        host=layout.HOST,
    output:
        laws=layout.LAWS,
        tradeoffs=layout.TRADEOFFS,
        comparisons=layout.COMPARISONS,
        crossover=layout.CROSSOVER,
        bottleneck=layout.BOTTLENECK,
    log:
        log("{device}/laws"),
    benchmark:
        benchmark("{device}/laws")
    conda:
        "../../envs/edgelaw.yaml"
    resources:
        slurm_partition=compute_partition,
    params:
        settings=laws_json(),
        comparisons=comparisons_json(),
        code=code("laws"),
    shell:
        "python -m edgelaw --log {log} laws --runs {input.runs} --quality {input.quality}"
        " --answers {input.answers} --tasks {input.tasks} --task-items {input.task_items}"
        " --quant-json {input.quant_json} --host {input.host}"
        " --settings {params.settings:q} --comparisons {params.comparisons:q}"
        " --out-laws {output.laws} --out-tradeoffs {output.tradeoffs}"
        " --out-comparisons {output.comparisons} --out-crossover {output.crossover}"
        " --out-bottleneck {output.bottleneck}"
