"""The report of one device (or several): figures, summary.md in plain words, a self-contained index.html.

The HTML page embeds its figures as data URIs and links nowhere, so it can be mailed or archived alone.
"""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path

import pandas as pd

from edgelaw.report import answer as answers
from edgelaw.report import figures as draw
from edgelaw.report import findings as size_findings
from edgelaw.core import tables
from edgelaw.core.atomic import atomic_path
from edgelaw.core.layout import FIGURES, HTML_FILE, SUMMARY_FILE
from edgelaw.core.points import by_job, describe, missing_points, remeasure_command


def _fmt(v: float, digits: int = 3) -> str:
    return "n/a" if pd.isna(v) else f"{v:.{digits}g}"


# Column names in words, with their units, as the summary prints them.
WORDS = {"cpu_core_s": "CPU core-seconds", "mem_gb_s": "memory GB-seconds", "energy_j": "energy (J)",
         "peak_rss_bytes": "peak memory (MB)", "decode_tps": "decode tok/s", "ppl": "perplexity",
         "top1_pct": "top-1 agreement (%)", "kld_mean": "mean KL divergence (nats)", "sem_ref":
         "semantic similarity to the references", "sem_base": "semantic similarity to the base"}


def words(column: str) -> str:
    return WORDS.get(column, column)


def tradeoff_table(trade: pd.DataFrame, has_tasks: bool) -> str:
    """The trade-offs table in words and a person's units (MB, J, %, tok/s)."""
    t = trade.assign(peak_mb=trade["peak_rss_bytes"] / 1e6, roofline_pct=100 * trade["roofline_fraction"])
    cols = {"model": "model", "quant": "scheme", "bpw": "bits per weight", "cpu_core_s": "CPU core-s",
            "mem_gb_s": "memory GB-s", "energy_j": "energy (J)", "peak_mb": "peak memory (MB)",
            "decode_tps": "decode tok/s", "roofline_pct": "of the bandwidth bound (%)", "ppl": "perplexity",
            "top1_pct": "top-1 agreement (%)", "sem_base": "similarity to base"}
    if has_tasks:
        t = t.assign(acc_pct=100 * t["task_acc"], acc_se=100 * t["task_acc_se"])
        cols.update(acc_pct="task accuracy (%)", acc_se="± (points, 1 s.e.)")
    fronts = [("CPU", t["pareto_cpu"])] + ([("energy", t["pareto_energy"])] if has_tasks else [])
    t["front"] = [", ".join(n for (n, _), on in zip(fronts, flags) if on) for flags in zip(*(f for _, f in fronts))]
    cols["front"] = "Pareto front"
    return markdown_table(t[[c for c in cols if c in t]].rename(columns=cols))


def _param(laws: pd.DataFrame, sel, param: str) -> pd.Series | None:
    rows = laws[sel & (laws["param"] == param)]
    return rows.iloc[0] if len(rows) else None


def measurement_lines(runs: pd.DataFrame) -> list[str]:
    """How many runs were measured, and which were not kept: disturbed by other processes (measured
    again), failed, or never run. Every fit, trade-off and comparison uses the `ok` runs only."""
    if runs.empty:
        return []
    counts = runs["status"].value_counts()
    ok, disturbed = int(counts.get("ok", 0)), int(counts.get("disturbed", 0))
    line = f"Runs: {len(runs)} measured, {ok} kept (`ok`)"
    if disturbed:
        points = runs[runs["status"] == "disturbed"].groupby(["model", "quant", "workload", "x", "rep"])
        settled = runs[runs["status"] == "ok"].set_index(["model", "quant", "workload", "x", "rep"]).index
        still = [key for key, _ in points if key not in settled]
        line += (f"; {disturbed} disturbed by other processes on the host and measured again"
                 + (f" ({len(still)} points disturbed on every try, left out)" if still else ""))
    others = {k: int(v) for k, v in counts.items() if k not in ("ok", "disturbed")}
    if others:
        line += "; not measured: " + ", ".join(f"{v} {k}" for k, v in sorted(others.items()))
    return [line + ". Fits, trade-offs and comparisons use the kept runs only.", ""] + missing_lines(runs)


def missing_lines(runs: pd.DataFrame) -> list[str]:
    """The points without an `ok` run, per bench job, with the command that measures that job again."""
    lost = missing_points(runs.to_dict("records"))
    if not lost:
        return []
    lines = [f"Not measured: {len(lost)} point{'s' * (len(lost) > 1)}, left out of every fit. Each job's command "
             "measures it again (add the run's own --configfile/--config options):", ""]
    for job, points in by_job(lost).items():
        lines.append(f"- {' '.join(job[1:])}: {describe(points)}: `{remeasure_command(*job)}`")
    return lines + [""]


def task_accuracy_table(tasks: pd.DataFrame) -> str:
    """model/scheme/BPW rows, one `value ± stderr` column per task/metric (the items scored in the
    header), in markdown."""
    df = tasks.assign(col=tasks["task"] + "/" + tasks["metric"] + " (n " + tasks["n_items"].astype(str) + ")",
                      cell=[f"{v:.3f} ± {e:.3f}" for v, e in zip(tasks["value"], tasks["stderr"])])
    wide = df.pivot_table(index=["model", "quant", "bpw"], columns="col", values="cell", aggfunc="first", sort=False)
    wide = wide.reset_index().sort_values(["model", "bpw"], ascending=[True, False])
    wide.columns.name = None
    return markdown_table(wide.rename(columns={"quant": "scheme", "bpw": "BPW"}))


def task_lines(tasks: pd.DataFrame, laws: pd.DataFrame) -> list[str]:
    """The task accuracy section: the table, where the data came from, and the thresholds."""
    if tasks.empty:
        return []
    lines = ["", "## Task accuracy against bits per weight (lm-evaluation-harness tasks)", "",
             "Each task formatted and scored as lm-evaluation-harness 0.4 scores it, on a seeded sample of its "
             "documents (the same items for every scheme); value ± standard error over the items (a 95% interval "
             "is 1.96 standard errors: with a few dozen items it spans about ±0.3, so small differences between "
             "schemes are noise).", "", task_accuracy_table(tasks), ""]
    for task, g in tasks.groupby("task", sort=False):
        r = g.iloc[0].to_dict()
        note = f" {r['notes']}." if r["notes"] else ""
        lines.append(f"- {task}: {int(r['n_items'])} of {int(r['n_docs'])} documents, {int(r['shots'])} shots, split "
                     f"{r['split']} (lm-eval's: {r['lm_eval_split']}); {r['source']}, licence {r['licence']}.{note}")
    knees = laws[(laws["law"] == "task_vs_bpw") & (laws["param"] == "knee")]
    failed = laws[(laws["law"] == "task_vs_bpw") & laws["note"].str.startswith("not fitted")]
    if len(knees) or len(failed):
        lines += ["", "Thresholds (hinge of accuracy against BPW; the interval resamples schemes, so it does not "
                  "carry the items' sampling error shown above):", ""]
    for _, r in knees.iterrows():
        note = f" Note: {r.note}." if r.note else ""
        lines.append(f"- {r.model}: {r.y} is flat above {r.value:.2f} BPW (95% CI {_fmt(r.ci_low)} to "
                     f"{_fmt(r.ci_high)}; R² {_fmt(r.r2, 2)}).{note}")
    for _, r in failed.iterrows():
        lines.append(f"- {r.model}: {r.y}: {r.note}.")
    return lines


def summary_lines(runs, quality, laws, trade, comp, host: dict, tasks: pd.DataFrame | None = None,
                  cross: pd.DataFrame | None = None, neck: pd.DataFrame | None = None,
                  opening: list[str] | None = None) -> list[str]:
    """The summary in markdown: the title, `opening` (the answer section), then the host and the findings."""
    lines = [f"# edgelaw report: {host.get('device', '?')}", ""] + (opening or [])
    lines += ["## Host and runs", ""] if opening else []
    h = host.get("host", {})
    bw = host.get("memory_bandwidth", {}).get("copy_gb_s")
    lines += [f"Host: {h.get('cpu', '?')}, {h.get('cores_logical', '?')} logical cores, "
              f"{h.get('memory_bytes', 0) / 2**30:.0f} GiB; power source `{host.get('power_source', '?')}`; "
              f"memory bandwidth (copy) {_fmt(bw)} GB/s.", ""]
    lines += measurement_lines(runs)
    lines += ["## Cost is linear in prompt tokens (study A, law 1)", ""]
    lines += ["| model | scheme | cost | per token (95% CI) | at 0 tokens | R² | n |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for y in ["cpu_core_s", "mem_gb_s", "energy_j"]:
        for (model, quant), g in laws[(laws["law"] == "cost_vs_tokens") & (laws["y"] == y)].groupby(["model", "quant"]):
            s, i = g[g["param"] == "slope"], g[g["param"] == "intercept"]
            if s.empty:
                continue
            s, i = s.iloc[0], i.iloc[0]
            lines.append(f"| {model} | {quant} | {words(y)} | {_fmt(s.value)} ({_fmt(s.ci_low)} to {_fmt(s.ci_high)}) | "
                         f"{_fmt(i.value)} | {s.r2:.3f} | {s.n} |")
    lines += ["", "## Cost against bits per weight (study B, finding 2)", ""]
    for _, r in laws[laws["law"].str.startswith("cost_vs_bpw") & (laws["param"] == "slope")].iterrows():
        unit = {"peak_rss_bytes": " MB", "energy_j": " J", "cpu_core_s": " core-s"}.get(r.y, "")
        scale = 1e6 if r.y == "peak_rss_bytes" else 1
        what = words(r.y).split(" (")[0]  # the unit goes with the number
        lines.append(f"- {r.model}: {what} changes by {_fmt(r.value / scale)}{unit} per bit per weight "
                     f"(95% CI {_fmt(r.ci_low / scale)} to {_fmt(r.ci_high / scale)}; R² {r.r2:.2f}, n {r.n}).")
    lines += ["", "## Quality against bits per weight (study B's threshold)", ""]
    for _, r in laws[(laws["law"] == "quality_vs_bpw") & (laws["param"] == "knee")].iterrows():
        note = f" Note: {r.note}." if r.note else ""
        lines.append(f"- {r.model}: {words(r.y)} is flat above {r.value:.2f} BPW and changes below it "
                     f"(95% CI {r.ci_low:.2f} to {r.ci_high:.2f}; R² {r.r2:.2f}).{note}")
    lines += task_lines(tasks if tasks is not None else pd.DataFrame(), laws)
    if len(trade):
        has_tasks = "task_acc" in trade and trade["task_acc"].notna().any()
        lines += ["", f"## Trade-offs at {int(trade['x_ref'].iloc[0])} prompt tokens", "",
                  "Per run (the prompt and bench.n_gen generated tokens), mean of the runs at that length.", "",
                  tradeoff_table(trade, has_tasks)]
        front = trade[trade["pareto_cpu"]]
        if len(front):
            lines += ["", f"Pareto front (CPU vs perplexity): {', '.join(front['model'] + '/' + front['quant'])}."]
        if has_tasks:
            front = trade[trade["pareto_energy"]]
            lines += ["", "Task accuracy is the mean of the tasks' headline metrics (`acc`; gsm8k's strict match), "
                      "± its standard error. Pareto front (energy vs task accuracy): "
                      f"{', '.join(front['model'] + '/' + front['quant']) or 'none'}."]
        rf = trade["roofline_fraction"].dropna()
        if len(rf):
            lines += [f"Decode reaches {100 * rf.min():.0f}% to {100 * rf.max():.0f}% of the memory-bandwidth bound."]
    if len(comp):
        lines += ["", "## Comparisons", ""]
        for (b, v), g in comp.groupby(["baseline", "variant"], sort=False):
            parts = [f"{words(r.metric)} {r.change_pct:+.1f}% ({r.ci_low:+.1f} to {r.ci_high:+.1f})" for r in g.itertuples()]
            lines.append(f"- {v} vs {b}: " + "; ".join(parts) + ".")
    knees = laws[laws["law"].str.startswith("resolution_knee") & (laws["param"] == "knee")]
    if len(knees):
        lines += ["", "## Resolution knee (study A, law 2)", ""]
        images = runs[runs["workload"] == "resolution"]
        for _, r in knees.iterrows():
            series = "square series" if r.law.endswith("square") else "main series"
            clamp = images.loc[(images["model"] == r.model) & (images["quant"] == r.quant), "clamp_pixels"].dropna()
            where = (f"; the clamp is at {clamp.iloc[0]:,.0f} px (knee / clamp = {r.value / clamp.iloc[0]:.2f})"
                     if len(clamp) else "")
            lines.append(f"- {r.model}/{r.quant}, {series}: {words(r.y)} is flat above {r.value:,.0f} nominal pixels "
                         f"(95% CI {r.ci_low:,.0f} to {r.ci_high:,.0f}){where}.")
    if cross is not None and neck is not None:
        lines += size_findings.lines(cross, neck, trade)
    lines += ["", "Figures: " + ", ".join(f"`{f}.png`" for f in FIGURES) + " (and `.svg`)."]
    return lines


def markdown_table(df: pd.DataFrame) -> str:
    def cell(v):
        if isinstance(v, float):
            return _fmt(v, 4)
        return str(v)

    head = "| " + " | ".join(df.columns) + " |\n| " + " | ".join("---" for _ in df.columns) + " |\n"
    return head + "\n".join("| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False))


def write_summary(path: Path, lines: list[str]) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines) + "\n")


IMAGE = re.compile(r"!\[(?P<alt>[^\]]*)\]\((?P<name>[A-Za-z0-9_]+)\.png\)")


def section_id(heading: str) -> str:
    """A level-2 heading's section id: its words before any colon, lowercased ("Answer: ..." -> answer)."""
    return re.sub(r"[^a-z0-9]+", "-", heading.split(":", 1)[0].lower()).strip("-") or "section"


def _figure(name: str, figure_dir: Path) -> str:
    data = base64.b64encode((figure_dir / f"{name}.png").read_bytes()).decode()
    return (f'<figure id="{name}"><img alt="{name}" src="data:image/png;base64,{data}">'
            f"<figcaption>{name.replace('_', ' ')}</figcaption></figure>")


def write_html(path: Path, lines: list[str], figure_dir: Path, title: str, figures: list[str] | None = None) -> None:
    """Markdown-ish summary to HTML (headings, bullets, tables, `![alt](figure.png)` lines), each level-2
    heading opening a <section> (id: section_id), then every figure not already shown inline."""
    body, table, shown, open_section = [], [], set(), [False]

    def flush_table():
        if table:
            rows = [r.strip("|").split("|") for r in table if not set(r.replace("|", "").strip()) <= {"-", " "}]
            cells = ["<tr>" + "".join(f"<td>{html.escape(c.strip())}</td>" for c in r) + "</tr>" for r in rows]
            body.append("<table>" + "".join(cells) + "</table>")
            table.clear()

    def close_section():
        if open_section[0]:
            body.append("</section>")
            open_section[0] = False

    for line in (part for entry in lines for part in entry.split("\n")):
        if line.startswith("|"):
            table.append(line)
            continue
        flush_table()
        if (image := IMAGE.fullmatch(line.strip())) and (figure_dir / f"{image['name']}.png").is_file():
            body.append(_figure(image["name"], figure_dir))
            shown.add(image["name"])
        elif line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            text = line.lstrip("#").strip()
            if level <= 2:
                close_section()
            if level == 2:
                body.append(f'<section id="{section_id(text)}">')
                open_section[0] = True
            body.append(f"<h{level}>{html.escape(text)}</h{level}>")
        elif line.startswith("- "):
            body.append(f"<p>&bull; {html.escape(line[2:])}</p>")
        elif line.strip():
            body.append(f"<p>{html.escape(line)}</p>")
    flush_table()
    close_section()
    for name in figures if figures is not None else FIGURES:
        if name not in shown:
            body.append(_figure(name, figure_dir))
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title><style>"
            "body{font-family:sans-serif;max-width:1200px;margin:auto;padding:1em}table{border-collapse:collapse;"
            "font-size:12px}td{border:1px solid #ccc;padding:2px 6px}img{max-width:100%}"
            "section#answer{border:2px solid #4a7;padding:0 1em 1em;margin-bottom:1em}</style></head><body>"
            + "\n".join(body) + "</body></html>\n")
    with atomic_path(path) as tmp:
        tmp.write_text(page)


def build(out_dir: Path, runs, quality, laws, trade, comp, host: dict, tasks: pd.DataFrame | None = None,
          cross: pd.DataFrame | None = None, neck: pd.DataFrame | None = None,
          budgets: answers.Budgets | None = None, n_boot: int = 1000, seed: int = 0) -> None:
    """The report of one device; `budgets` (the config's, default the schema's) and the laws' bootstrap
    settings (n_boot, seed) make its opening answer."""
    from edgelaw.core.config import defaults

    tasks = tasks if tasks is not None else pd.DataFrame()
    cross = cross if cross is not None else pd.DataFrame(columns=tables.CROSSOVER.names)
    neck = neck if neck is not None else pd.DataFrame(columns=tables.BOTTLENECK.names)
    budgets = budgets or answers.Budgets.from_config(defaults("budgets"))
    out_dir.mkdir(parents=True, exist_ok=True)
    bw = host.get("memory_bandwidth", {}).get("copy_gb_s")
    x_ref = int(trade["x_ref"].iloc[0]) if len(trade) else 0
    answer = answers.choose(answers.candidates(runs, tasks, budgets, x_ref, n_boot, seed))
    drawn = {
        answers.FIGURE: draw.answer(answer.table, budgets, answer.best, answer.runner_up),
        "cost_vs_tokens": draw.cost_vs_tokens(runs, laws),
        "cost_vs_bpw": draw.cost_vs_bpw(trade, laws),
        "quality_vs_bpw": draw.quality_vs_bpw(quality, laws),
        "tasks_vs_bpw": draw.tasks_vs_bpw(tasks, laws),
        "pareto": draw.pareto(trade),
        "roofline": draw.roofline(trade, bw),
        "comparisons": draw.comparisons(comp),
        "knee": draw.knee(runs, laws),
        **size_findings.draw(cross, neck, trade),
    }
    for name, fig in drawn.items():
        draw.save(fig, str(out_dir / name))
    lines = summary_lines(runs, quality, laws, trade, comp, host, tasks, cross, neck,
                          opening=answers.lines(answer, budgets, tasks, x_ref))
    write_summary(out_dir / SUMMARY_FILE, lines)
    write_html(out_dir / HTML_FILE, lines, out_dir, f"edgelaw report: {host.get('device', '')}")
