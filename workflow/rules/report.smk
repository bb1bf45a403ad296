rule report:
    input:
        runs=lambda wildcards: bench_outputs(layout.RUNS, wildcards.device),
        quality=quality_outputs(),
        tasks=task_outputs(),
        laws=layout.LAWS,
        tradeoffs=layout.TRADEOFFS,
        comparisons=layout.COMPARISONS,
        crossover=layout.CROSSOVER,
        bottleneck=layout.BOTTLENECK,
        host=layout.HOST,
    output:
        **{
            figure: report(
                layout.fill(layout.FIGURE, figure=figure, ext="png"),
                caption=f"../report/{figure}.rst",
                category="Figures",
            )
            for figure in layout.FIGURES
        },
        svg=expand(layout.FIGURE, figure=layout.FIGURES, ext="svg", allow_missing=True),
        summary=report(layout.SUMMARY, category="Summary"),
        html=layout.HTML,
    log:
        log("{device}/report"),
    benchmark:
        benchmark("{device}/report")
    conda:
        "../../envs/edgelaw.yaml"
    resources:
        slurm_partition=compute_partition,
    params:
        out_dir=lambda wildcards, output: os.path.dirname(output.html),
        budgets=budgets_json(),
        settings=laws_json(),
        code=code("report"),
    shell:
        "python -m edgelaw --log {log} report --runs {input.runs} --quality {input.quality}"
        " --tasks {input.tasks}"
        " --laws {input.laws} --tradeoffs {input.tradeoffs} --comparisons {input.comparisons}"
        " --crossover {input.crossover} --bottleneck {input.bottleneck}"
        " --host {input.host} --budgets {params.budgets:q} --settings {params.settings:q}"
        " --out-dir {params.out_dir}"
