"""The laws stage's command: fits, trade-offs and comparisons of one device."""

from __future__ import annotations

import json

from edgelaw.core.console import json_arg, say


def args_laws(p) -> None:
    p.add_argument("--runs", nargs="*", default=[])
    p.add_argument("--quality", nargs="*", default=[])
    p.add_argument("--answers", nargs="*", default=[])
    p.add_argument("--tasks", nargs="*", default=[], help="task tables (one per model x scheme)")
    p.add_argument("--task-items", nargs="*", default=[], help="per-item task tables (one per model x scheme)")
    p.add_argument("--quant-json", nargs="*", default=[])
    p.add_argument("--host", required=True)
    p.add_argument("--settings", required=True, type=json_arg, help="the config's laws section as JSON")
    p.add_argument("--comparisons", required=True, type=json_arg, help="the config's comparisons as JSON")
    p.add_argument("--out-laws", required=True)
    p.add_argument("--out-tradeoffs", required=True)
    p.add_argument("--out-comparisons", required=True)
    p.add_argument("--out-crossover", required=True)
    p.add_argument("--out-bottleneck", required=True)


def cmd_laws(a) -> None:
    from edgelaw.core import tables
    from edgelaw.core.provenance import record
    from edgelaw.laws.derive import derive, weight_bytes
    from edgelaw.laws.findings import derive_findings, sizes

    runs, tasks, host = tables.read_many(a.runs), tables.read_many(a.tasks), json.loads(open(a.host).read())
    fits, trade, comp, x_ref = derive(
        runs, tables.read_many(a.quality), tables.read_many(a.answers),
        weight_bytes(a.quant_json), host, a.settings, a.comparisons, tasks,
    )
    cross, neck = derive_findings(runs, tables.read_many(a.task_items), tasks, sizes(a.quant_json), host, a.settings)
    prov = record({"laws": a.settings, "comparisons": a.comparisons},
                  inputs=sorted(a.runs + a.quality + a.tasks + a.task_items), x_ref=x_ref)
    tables.write(fits, tables.LAWS, a.out_laws, prov)
    tables.write(trade, tables.TRADEOFFS, a.out_tradeoffs, prov)
    tables.write(comp, tables.COMPARISONS, a.out_comparisons, prov)
    tables.write(cross, tables.CROSSOVER, a.out_crossover, prov)
    tables.write(neck, tables.BOTTLENECK, a.out_bottleneck, prov)
    failed = fits[fits["note"].str.startswith("not fitted")]
    say(f"laws: {fits['law'].nunique()} laws, {len(fits)} parameters at {x_ref} tokens; {len(failed)} not fitted; "
        f"{len(comp)} comparison rows; {len(cross)} crossover rows, {len(neck)} bottleneck rows")
    for note in failed["note"].unique():
        say(f"  {note}")
