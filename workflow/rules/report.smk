rule report:
    input:
        runs=lambda wildcards: bench_outputs("runs", wildcards.device),
        quality=quality_outputs(),
        laws="results/{device}/laws.parquet",
        tradeoffs="results/{device}/tradeoffs.parquet",
        comparisons="results/{device}/comparisons.parquet",
        host="results/{device}/host.json",
        code=lib("report", "figures", "atomic", "tables", "cli"),
    output:
        cost_vs_tokens=report(
            "results/{device}/report/cost_vs_tokens.png",
            caption="../report/cost_vs_tokens.rst",
            category="Figures",
        ),
        cost_vs_bpw=report(
            "results/{device}/report/cost_vs_bpw.png",
            caption="../report/cost_vs_bpw.rst",
            category="Figures",
        ),
        quality_vs_bpw=report(
            "results/{device}/report/quality_vs_bpw.png",
            caption="../report/quality_vs_bpw.rst",
            category="Figures",
        ),
        pareto=report(
            "results/{device}/report/pareto.png",
            caption="../report/pareto.rst",
            category="Figures",
        ),
        roofline=report(
            "results/{device}/report/roofline.png",
            caption="../report/roofline.rst",
            category="Figures",
        ),
        comparisons=report(
            "results/{device}/report/comparisons.png",
            caption="../report/comparisons.rst",
            category="Figures",
        ),
        knee=report(
            "results/{device}/report/knee.png",
            caption="../report/knee.rst",
            category="Figures",
        ),
        svg=expand("results/{{device}}/report/{name}.svg", name=FIGURES),
        summary=report("results/{device}/report/summary.md", category="Summary"),
        html="results/{device}/report/index.html",
    log:
        "results/logs/{device}/report.log",
    conda:
        ENV
    params:
        edgelaw=EDGELAW,
    shell:
        "{params.edgelaw} --log {log} report --runs {input.runs} --quality {input.quality}"
        " --laws {input.laws} --tradeoffs {input.tradeoffs} --comparisons {input.comparisons}"
        " --host {input.host} --out-dir results/{wildcards.device}/report"
