rule quality_reference:
    input:
        base="resources/models/{model}/base.gguf",
        eval_text=QUALITY_INPUTS["eval_text"],
        prompts=QUALITY_INPUTS["prompts"],
        code=QUALITY_CODE,
    output:
        npz=quality_path("{model}/reference/logprobs.npz"),
        answers=quality_path("{model}/reference/answers.parquet"),
    log:
        quality_log("{model}/reference.log"),
    conda:
        ENV
    threads: bench_threads()
    params:
        settings=quality_json(),
        edgelaw=EDGELAW,
    shell:
        "{params.edgelaw} --log {log} quality-reference --model {wildcards.model}"
        " --base {input.base} --settings {params.settings:q} --threads {threads}"
        " --out-npz {output.npz} --out-answers {output.answers}"


rule quality:
    input:
        gguf="results/models/{model}/{quant}.gguf",
        meta="results/models/{model}/{quant}.json",
        ref_npz=quality_path("{model}/reference/logprobs.npz"),
        ref_answers=quality_path("{model}/reference/answers.parquet"),
        eval_text=QUALITY_INPUTS["eval_text"],
        prompts=QUALITY_INPUTS["prompts"],
        code=QUALITY_CODE,
    output:
        table=quality_path("{model}/{quant}.parquet"),
        answers=quality_path("{model}/answers/{quant}.parquet"),
    log:
        quality_log("{model}/{quant}.log"),
    conda:
        ENV
    threads: bench_threads()
    params:
        settings=quality_json(),
        edgelaw=EDGELAW,
    shell:
        "{params.edgelaw} --log {log} quality --model {wildcards.model} --quant {wildcards.quant}"
        " --gguf {input.gguf} --quant-json {input.meta} --settings {params.settings:q}"
        " --threads {threads} --ref-npz {input.ref_npz} --ref-answers {input.ref_answers}"
        " --out-table {output.table} --out-answers {output.answers}"
