"""The reference for task accuracy: lm-evaluation-harness 0.4.13 itself, with a small model class that
scores every request from scratch with llama-cpp-python in process.

Runs in its own venv (lm-eval and llama-cpp-python only, no torch); bench/tasks_agreement.py calls it.
lm-eval does the task formatting, the context/continuation split (TemplateLM._encode_pair over this
class's tok_encode) and the metrics; this class only turns token lists into log-likelihoods and greedy
text. Each task is the stock one through a YAML that includes it and points its data at a local
parquet file (every split name at the same file: the items sampled by the driver).

Why not lm-eval's `gguf` model against llama-cpp-python's server: its echoed prompt log-probs are
shifted by one token for a model that adds no BOS (llama-cpp-python #1983), and the last continuation
token is dropped whenever the server's own next token is end-of-generation.

    lmeval-venv/bin/python bench/tasks_lmeval_ref.py --gguf Q8_0.gguf --task arc_easy --parquet items.parquet --out ref.json
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import llama_cpp as ll  # noqa: E402
from lm_eval.api.model import TemplateLM  # noqa: E402


class LlamaScratch(TemplateLM):
    """loglikelihood and generate_until over llama.cpp, each request alone in an empty cache."""

    def __init__(self, gguf: str, threads: int, ubatch: int, flash_attn: int, repack: bool, n_ctx: int = 2048):
        super().__init__()
        self._quiet = ll.llama_log_callback(lambda *a: None)  # kept: llama.cpp holds the pointer
        ll.llama_log_set(self._quiet, ctypes.c_void_p(0))
        ll.llama_backend_init()
        mp = ll.llama_model_default_params()
        mp.n_gpu_layers = 0
        mp.use_extra_bufts = repack  # llama.cpp's CPU weight repacking, as edgelaw's taskscore.REPACK
        self.model = ll.llama_model_load_from_file(gguf.encode(), mp)
        cp = ll.llama_context_default_params()
        cp.n_ctx = cp.n_batch = n_ctx
        cp.n_threads = cp.n_threads_batch = threads
        cp.offload_kqv = cp.op_offload = False
        # micro-batch size and flash attention as edgelaw scores tasks (the driver passes taskscore's
        # UBATCH, FLASH_ATTN and REPACK): llama.cpp's CPU flash attention gives results that depend on the number
        # of tokens in a micro-batch, by up to 0.39 nats an item (edgelaw.quality.taskscore)
        cp.n_ubatch = ubatch
        cp.flash_attn_type = flash_attn
        self.ctx = ll.llama_init_from_model(self.model, cp)
        self.mem = ll.llama_get_memory(self.ctx)
        self.vocab = ll.llama_model_get_vocab(self.model)
        self.n_vocab = ll.llama_vocab_n_tokens(self.vocab)
        self.add_bos = bool(ll.llama_vocab_get_add_bos(self.vocab))  # the GGUF's own flag
        self.n_ctx = n_ctx
        self.batch = ll.llama_batch_init(n_ctx, 0, 1)
        self.seconds = 0.0

    @property
    def eot_token_id(self):
        return ll.llama_vocab_eos(self.vocab)

    @property
    def prefix_token_id(self):
        bos = ll.llama_vocab_bos(self.vocab)
        return bos if bos >= 0 else self.eot_token_id

    def tok_encode(self, string: str, add_special_tokens=None, **kwargs) -> list[int]:
        data = string.encode()
        buf = (ll.llama_token * (len(data) + 16))()
        n = ll.llama_tokenize(self.vocab, data, len(data), buf, len(buf), False, False)
        bos = self.add_bos if add_special_tokens is None else (add_special_tokens and self.add_bos)
        return ([ll.llama_vocab_bos(self.vocab)] if bos else []) + list(buf[:n])

    def tok_decode(self, tokens, special: bool = False) -> str:
        out = b""
        for t in tokens:
            buf = ctypes.create_string_buffer(64)
            n = ll.llama_token_to_piece(self.vocab, t, buf, 64, 0, special)
            out += buf.raw[:max(n, 0)]
        return out.decode("utf-8", "replace")

    def _decode(self, tokens: list[int], outputs_from: int):
        b = self.batch
        for i, t in enumerate(tokens):
            b.token[i], b.pos[i], b.n_seq_id[i], b.seq_id[i][0], b.logits[i] = t, i, 1, 0, i >= outputs_from
        b.n_tokens = len(tokens)
        assert ll.llama_decode(self.ctx, b) == 0
        n = len(tokens) - outputs_from
        ptr = ll.llama_get_logits(self.ctx)
        return np.ctypeslib.as_array(ctypes.cast(ptr, ctypes.POINTER(ctypes.c_float)), shape=(n, self.n_vocab)).copy()

    def _loglikelihood_tokens(self, requests, disable_tqdm=False, **kwargs):
        t0 = time.perf_counter()
        out = []
        for _, ctx, cont in requests:
            inp = (ctx + cont)[-(self.n_ctx + 1):][:-1]  # as lm-eval's HF backend truncates
            ll.llama_memory_clear(self.mem, True)
            logits = self._decode(inp, len(inp) - len(cont)).astype(np.float64)
            m = logits.max(axis=1, keepdims=True)
            logp = logits - m - np.log(np.exp(logits - m).sum(axis=1, keepdims=True))
            t = np.asarray(cont)
            out.append((float(logp[np.arange(len(t)), t].sum()), bool((logits.argmax(axis=1) == t).all())))
        self.seconds += time.perf_counter() - t0
        return out

    def generate_until(self, requests, disable_tqdm=False):
        t0 = time.perf_counter()
        out = []
        for req in requests:
            context, kw = req.args
            # lm-eval's HF backend adds the end-of-text token's text, special tokens rendered (SmolLM2:
            # "<|im_end|>"); rendered as plain text it would be "", which every text contains
            until = list(kw.get("until", [])) + [self.tok_decode([self.eot_token_id], special=True)]
            max_gen = kw.get("max_gen_toks", 256)
            toks = self.tok_encode(context)[-(self.n_ctx - max_gen):]
            ll.llama_memory_clear(self.mem, True)
            logits = self._decode(toks, len(toks) - 1)
            gen: list[int] = []
            for _ in range(max_gen):
                nxt = int(logits[-1].argmax())
                if ll.llama_vocab_is_eog(self.vocab, nxt):
                    break
                gen.append(nxt)
                text = self.tok_decode(gen)
                if any(u in text for u in until):
                    break
                b = self.batch
                b.token[0], b.pos[0], b.n_seq_id[0], b.seq_id[0][0], b.logits[0] = nxt, len(toks) + len(gen) - 1, 1, 0, True
                b.n_tokens = 1
                assert ll.llama_decode(self.ctx, b) == 0
                ptr = ll.llama_get_logits(self.ctx)
                logits = np.ctypeslib.as_array(ctypes.cast(ptr, ctypes.POINTER(ctypes.c_float)), shape=(1, self.n_vocab))
            text = self.tok_decode(gen)
            for u in until:
                text = text.split(u)[0]
            out.append(text)
        self.seconds += time.perf_counter() - t0
        return out

    def loglikelihood_rolling(self, requests, disable_tqdm=False):
        raise NotImplementedError


STOCK = {"arc_easy": "arc/arc_easy.yaml", "arc_challenge": "arc/arc_challenge.yaml", "hellaswag": "hellaswag/hellaswag.yaml",
         "piqa": "piqa/piqa.yaml", "winogrande": "winogrande/default.yaml", "gsm8k": "gsm8k/gsm8k.yaml"}


def task_yaml(folder: Path, task: str, parquet: str) -> str:
    """A task that includes lm-eval's stock one and overrides only where its data comes from."""
    import lm_eval.tasks

    stock = Path(lm_eval.tasks.__file__).parent / STOCK[task]
    name = f"{task}_local"
    files = {s: parquet for s in ("train", "validation", "test")}
    (folder / f"{name}.yaml").write_text(
        f"include: {stock}\ntask: {name}\ntag: []\ndataset_path: parquet\ndataset_name: null\n"
        f"dataset_kwargs:\n  data_files: {json.dumps(files)}\n")
    return name


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--gguf", required=True)
    ap.add_argument("--task", required=True, choices=sorted(STOCK))
    ap.add_argument("--parquet", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--shots", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--ubatch", type=int, required=True)
    ap.add_argument("--flash-attn", type=int, required=True, help="-1 auto, 0 off, 1 on")
    ap.add_argument("--repack", type=int, required=True, help="1: llama.cpp's CPU weight repacking on, 0 off")
    a = ap.parse_args()
    import lm_eval
    from lm_eval.tasks import TaskManager

    lm = LlamaScratch(a.gguf, a.threads, a.ubatch, a.flash_attn, bool(a.repack))
    with tempfile.TemporaryDirectory() as d:
        name = task_yaml(Path(d), a.task, a.parquet)
        res = lm_eval.simple_evaluate(model=lm, tasks=[name], num_fewshot=a.shots, task_manager=TaskManager(include_path=d),
                                      log_samples=True, bootstrap_iters=0)
    items, seen = [], set()
    for s in sorted(res["samples"][name], key=lambda s: s["doc_id"]):
        if s["doc_id"] in seen:  # a generation task lists each item once per filter
            continue
        seen.add(s["doc_id"])
        row = {"doc_id": s["doc_id"]}
        if a.task == "gsm8k":
            row["answer"] = s["resps"][0][0]
        else:
            lls = [r[0] for r in s["filtered_resps"]]
            row.update(loglik=lls, pred=int(np.argmax(lls)), acc=s["acc"], acc_norm=s.get("acc_norm"),
                       requests=[list(v) for v in s["arguments"]])
        items.append(row)
    Path(a.out).write_text(json.dumps({"results": res["results"][name], "seconds": lm.seconds, "items": items}, default=str))


if __name__ == "__main__":
    main()
