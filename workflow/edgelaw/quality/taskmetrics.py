"""Items scored and turned into lm-eval's metrics, with their standard errors.

Multiple choice (lm-eval `ConfigurableTask.process_results`): the prediction is the choice of highest
log-likelihood (`acc`), and of highest log-likelihood per character of the choice text (`acc_norm`:
lm-eval 0.4 divides by `len(choice)`, characters of the choice without its delimiter; its bytes are
`acc_bytes`, not reported by these tasks). Winogrande reports `acc` only. GSM8K compares the greedy
answer with the reference after gsm8k.yaml's filters: `strict-match` takes the first "#### number",
`flexible-extract` the last number; both then drop ",", "$", everything up to "#### " and a final ".",
and ignore case. A metric's standard error is lm-eval's for a mean: sample standard deviation / sqrt(n).
"""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd

from edgelaw.quality.taskformat import MAX_GEN_TOKS, Item
from edgelaw.quality.taskscore import TaskScorer

METRICS = {"winogrande": ("acc",), "mmlu": ("acc",), "gsm8k": ("exact_match,strict-match", "exact_match,flexible-extract")}
MC_METRICS = ("acc", "acc_norm")
# The one metric per task that the trade-offs, the Pareto front of accuracy vs energy and the report's
# mean accuracy use: `acc` (every multiple-choice task has it), gsm8k's strict match.
HEADLINE = {"gsm8k": "exact_match,strict-match"}

STRICT = re.compile(r"#### (\-?[0-9\.\,]+)")
FLEXIBLE = re.compile(r"(-?[$0-9.,]{2,})|(-?[0-9]+)")
IGNORE = (",", "\\$", "(?s).*#### ", "\\.$")


def metrics(task: str) -> tuple[str, ...]:
    return METRICS.get(task, MC_METRICS)


def headline(task: str) -> str:
    return HEADLINE.get(task, "acc")


def extract(text: str, pattern: re.Pattern, group: int) -> str:
    """lm-eval's RegexFilter followed by take_first."""
    found = pattern.findall(text)
    if not found:
        return "[invalid]"
    m = found[group]
    if isinstance(m, tuple):
        m = next((x for x in m if x), "[invalid]")
    return m.strip()


def normalise(text: str) -> str:
    for r in IGNORE:
        text = re.sub(r, "", text)
    return text.lower()


def stderr(values) -> float:
    x = np.asarray(values, dtype=float)
    return float(x.std(ddof=1) / math.sqrt(len(x))) if len(x) > 1 else float("nan")


def score_items(scorer: TaskScorer, items: list[Item], progress=None) -> pd.DataFrame:
    """One row per item: its prediction(s), gold and a 0/1 column per metric."""
    rows = []
    mc = [it for it in items if not it.until]
    if mc:
        scores = scorer.loglikelihood([[scorer.encode_pair(c, k) for c, k in it.pairs] for it in mc], progress)
        for it, sc in zip(mc, scores):
            ll = np.array([s.loglik for s in sc])
            pred = int(np.argmax(ll))
            row = {"task": it.task, "item": it.index, "gold": it.gold, "pred": pred,
                   "loglik": ll.tolist(), "n_tokens": [s.n_tokens for s in sc], "acc": float(pred == it.gold)}
            if "acc_norm" in metrics(it.task):
                row["pred_norm"] = int(np.argmax(ll / np.array([float(len(c)) for c in it.choices])))
                row["acc_norm"] = float(row["pred_norm"] == it.gold)
            rows.append(row)
    gen = [it for it in items if it.until]
    if gen:
        texts = scorer.generate([it.contexts[0] for it in gen], gen[0].until, MAX_GEN_TOKS, progress)
        for it, text in zip(gen, texts):
            strict, flexible = extract(text, STRICT, 0), extract(text, FLEXIBLE, -1)
            gold = normalise(it.target)
            rows.append({"task": it.task, "item": it.index, "answer": text, "strict": strict, "flexible": flexible,
                         "exact_match,strict-match": float(normalise(strict) == gold),
                         "exact_match,flexible-extract": float(normalise(flexible) == gold)})
    return pd.DataFrame(rows)


def summarize(per_item: pd.DataFrame) -> pd.DataFrame:
    """One row per task and metric: value, standard error, items."""
    rows = []
    for task, g in per_item.groupby("task", sort=False):
        for m in metrics(task):
            rows.append({"task": task, "metric": m, "value": float(g[m].mean()), "stderr": stderr(g[m]), "n_items": len(g)})
    return pd.DataFrame(rows)
