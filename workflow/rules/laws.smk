rule laws:
    input:
        runs=lambda wildcards: bench_outputs("runs", wildcards.device),
        quality=quality_outputs(),
        answers=quality_outputs("answers"),
        quant_json=quant_jsons(),
        host="results/{device}/host.json",
        code=lib("laws", "fit", "tables", "provenance", "cli"),
    output:
        laws="results/{device}/laws.parquet",
        tradeoffs="results/{device}/tradeoffs.parquet",
        comparisons="results/{device}/comparisons.parquet",
    log:
        "results/logs/{device}/laws.log",
    conda:
        ENV
    params:
        settings=laws_json(),
        comparisons=comparisons_json(),
        edgelaw=EDGELAW,
    shell:
        "{params.edgelaw} --log {log} laws --runs {input.runs} --quality {input.quality}"
        " --answers {input.answers} --quant-json {input.quant_json} --host {input.host}"
        " --settings {params.settings:q} --comparisons {params.comparisons:q}"
        " --out-laws {output.laws} --out-tradeoffs {output.tradeoffs}"
        " --out-comparisons {output.comparisons}"
