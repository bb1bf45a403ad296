"""Task requests scored with llama.cpp: log-likelihoods of continuations, and greedy generations.

Tokenization is lm-eval's (`TemplateLM._encode_pair`): trailing spaces of the context move to the
continuation, the context and context + continuation are each encoded whole, and the continuation's
tokens are what the whole has beyond the context's length. BOS is prepended where the GGUF says the
model adds one (`tokenizer.ggml.add_bos_token`), as lm-eval's Hugging Face backend follows its
tokenizer's. The model input is (context + continuation)[-(n_ctx + 1):][:-1], as lm-eval truncates.

Speed: the requests of one item share the tokens before the first place they differ (all of the
context but its last token, for a multiple-choice item). Those tokens go into the batch once, carrying
the sequence ids of all the item's requests (the KV cache is unified: one cell serves every sequence
that holds it), and each request's remaining tokens follow as its own sequence. Items are packed into
one batch up to BATCH_TOKENS tokens (the cache is cleared between batches); logits are requested only
for the positions that score a continuation token, and log p is taken over those rows only.

Same numbers as scoring each request alone: llama.cpp's CPU flash attention takes one of two kernels by
the number of query rows in a micro-batch: below 64 rows it visits only the cells a row may see, one
after another (Q rounded to F16, an F16 accumulator), so a row's result does not depend on which other
sequences share the batch or where its cells lie; from 64 rows on it works in F32 tiles of 64 cells,
and the result moves with the batching (by 0.34 nats on one ARC request of SmolLM2 Q8_0). Without flash
attention the softmax and the V product sum in SIMD groups by cell index, so a request's result moves
with where its cells land (0.19 nats on that request, up to 1.3 on 20 HellaSwag items). So flash
attention is on (FLASH_ATTN) and every micro-batch has 2 to UBATCH = 63 rows (a single query row over
512 cells or more takes a third kernel, split over the threads): fast scoring then equals scoring from
scratch with the same settings to the last bit on SmolLM2 Q8_0 (bench/tasks_profile.py, docs/tasks.md).
The CPU weight repacking (REPACK) is off: with it, a k-quant's matmul rounds a row differently by its
place in the micro-batch (most likely the repacked kernels' groups of 4 rows; not traced), and SmolLM2 Q4_K_M's log-likelihoods moved
by up to 1.5 nats with the batching; without it, by 5e-3 at most.
`loglikelihood_scratch` scores one request in an empty cache, alone: the reference it is tested against.
"""

from __future__ import annotations

import ctypes
import time
from dataclasses import dataclass

import numpy as np

from edgelaw.core.errors import EdgelawError
from edgelaw.core.llama import lib, load_model, tokenize

UBATCH = 63  # rows a micro-batch at most: below ggml's 64-row flash-attention tile (module docstring)
BATCH_TOKENS = 512  # rows packed across items into one batch; an item longer than this goes alone
FLASH_ATTN = 1  # LLAMA_FLASH_ATTN_TYPE_ENABLED (module docstring)
REPACK = False  # llama.cpp's CPU weight repacking off (module docstring)
N_SEQ = 64  # sequences a batch holds (llama.cpp's n_seq_max)
GEN_SEQS = 8  # greedy generations run side by side, one token each per step

Pair = tuple[list[int], list[int]]  # (context tokens, continuation tokens)


@dataclass
class Score:
    loglik: float
    greedy: bool  # every continuation token is the model's most likely next token
    n_tokens: int


@dataclass
class _Plan:
    """One item's batch rows: its shared prefix (`prefix` rows, each in all of the item's sequences),
    then each request's own rows (`tail_seq`: the request's sequence, counted from the item's first);
    token, position and whether its logits are read per row; the continuation tokens each request
    scores, in row order."""

    tokens: np.ndarray
    pos: np.ndarray
    wants: np.ndarray
    prefix: int
    tail_seq: np.ndarray
    targets: list[list[int]]

    @property
    def n_seq(self) -> int:
        return len(self.targets)


class _Batch:
    """The arrays of a llama_batch (one row of `n_seq` sequence ids per token), filled without a Python
    loop over tokens; `_decode` points llama_batch views into them."""

    def __init__(self, ll, n: int, n_seq: int):
        self.i32 = i32 = ctypes.POINTER(ctypes.c_int32)
        self.token = np.zeros(n, np.int32)
        self.pos = np.zeros(n, np.int32)
        self.n_seq_id = np.zeros(n, np.int32)
        self.seq = np.zeros((n, n_seq), np.int32)
        self.logits = np.zeros(n, np.int8)
        base, row = self.seq.ctypes.data, self.seq.strides[0]
        self.rows = (i32 * n)(*[ctypes.cast(base + i * row, i32) for i in range(n)])


class TaskScorer:
    def __init__(self, path: str, threads: int, what: str, n_ctx: int = 4096, n_seq: int = N_SEQ,
                 ubatch: int = UBATCH, batch_tokens: int = BATCH_TOKENS, flash_attn: int = FLASH_ATTN,
                 items_per_batch: int | None = None, repack: bool = REPACK):
        self.ll = ll = lib()
        self.what = what
        self.model = load_model(path, what, repack=repack)
        n_ctx = min(n_ctx, ll.llama_model_n_ctx_train(self.model))
        self.ctx = self._unified_context(n_ctx, threads, n_seq, ubatch, flash_attn)
        self.n_ctx = ll.llama_n_ctx(self.ctx)
        self.n_seq = n_seq
        self.batch_tokens = min(batch_tokens, self.n_ctx)
        self.items_per_batch = items_per_batch
        self.mem = ll.llama_get_memory(self.ctx)
        self.vocab = ll.llama_model_get_vocab(self.model)
        self.n_vocab = ll.llama_vocab_n_tokens(self.vocab)
        self.add_bos = bool(ll.llama_vocab_get_add_bos(self.vocab))
        self.bos = ll.llama_vocab_bos(self.vocab)
        self.eos = ll.llama_vocab_eos(self.vocab)
        self.batch = _Batch(ll, self.n_ctx, n_seq)
        self.ubatch = min(ubatch, self.n_ctx)
        self.decode_seconds = 0.0  # time inside llama_decode (bench/tasks_profile.py)
        self.decodes = self.batches = self.tokens_decoded = 0

    def _unified_context(self, n_ctx: int, threads: int, n_seq: int, ubatch: int, flash_attn: int):
        """A CPU-only context whose n_seq sequences share one KV cache (a cell can belong to several).
        Built here rather than through core.llama.new_context so that the bench and quality jobs, whose
        code checksums cover core/llama.py, do not rerun for it."""
        ll = self.ll
        p = ll.llama_context_default_params()
        p.n_ctx = p.n_batch = n_ctx
        p.n_ubatch, p.n_seq_max, p.kv_unified = min(ubatch, n_ctx), n_seq, True
        p.flash_attn_type = flash_attn
        p.n_threads = p.n_threads_batch = threads
        p.offload_kqv = p.op_offload = False
        p.no_perf = True
        ctx = ll.llama_init_from_model(self.model, p)
        if not ctx:
            raise EdgelawError(f"{self.what}: llama.cpp could not create a context of {n_ctx} tokens (out of memory?)")
        return ctx

    def close(self) -> None:
        ll = self.ll
        ll.llama_free(self.ctx)
        ll.llama_model_free(self.model)
        self.ctx = self.model = None

    # -- tokenization, as lm-eval's TemplateLM --------------------------------------------------------
    def encode(self, text: str) -> list[int]:
        return ([self.bos] if self.add_bos else []) + tokenize(self.vocab, text, add_special=False)

    def encode_pair(self, context: str, continuation: str) -> Pair:
        if not context:  # lm-eval conditions an empty context on its prefix token (BOS, else EOS)
            return [self.bos if self.bos >= 0 else self.eos], tokenize(self.vocab, continuation, add_special=False)
        n_spaces = len(context) - len(context.rstrip())
        if n_spaces:
            context, continuation = context[:-n_spaces], context[-n_spaces:] + continuation
        whole, ctx = self.encode(context + continuation), self.encode(context)
        return ctx, whole[len(ctx):]

    def _input(self, pair: Pair) -> tuple[list[int], int]:
        """The tokens fed to the model and the index of the first whose logits score the continuation."""
        ctx, cont = pair
        if not cont:
            raise EdgelawError(f"{self.what}: a continuation encodes to no tokens; check the task's documents")
        inp = (ctx + cont)[-(self.n_ctx + 1):][:-1]
        return inp, len(inp) - len(cont)

    # -- decoding ------------------------------------------------------------------------------------
    def _decode(self, n: int) -> np.ndarray | None:
        """Decode the first n rows of the batch in micro-batches of at most UBATCH rows, of sizes as equal
        as they can be (so none has a single row: llama.cpp's CPU flash attention takes yet another path
        for one query row over 512 cells or more); the logits rows asked for, in row order."""
        ll, b = self.ll, self.batch
        k = -(-n // self.ubatch)
        sizes = [n // k + (i < n % k) for i in range(k)]
        out, at = [], 0
        for size in sizes:
            view = ll.llama_batch()
            view.n_tokens, view.embd = size, None
            view.token, view.pos = b.token[at:].ctypes.data_as(b.i32), b.pos[at:].ctypes.data_as(b.i32)
            view.n_seq_id = b.n_seq_id[at:].ctypes.data_as(b.i32)
            view.seq_id = ctypes.cast(ctypes.addressof(b.rows) + at * ctypes.sizeof(b.i32), ctypes.POINTER(b.i32))
            view.logits = b.logits[at:].ctypes.data_as(ctypes.POINTER(ctypes.c_int8))
            t0 = time.perf_counter()
            rc = ll.llama_decode(self.ctx, view)
            self.decode_seconds += time.perf_counter() - t0
            self.decodes += 1
            if rc != 0:
                raise EdgelawError(f"{self.what}: llama_decode failed while scoring tasks (out of memory?)")
            n_out = int(b.logits[at:at + size].sum())
            if n_out:
                ptr = ll.llama_get_logits(self.ctx)
                out.append(np.ctypeslib.as_array(ctypes.cast(ptr, ctypes.POINTER(ctypes.c_float)),
                                                 shape=(n_out, self.n_vocab)).copy())
            at += size
        self.batches += 1
        self.tokens_decoded += n
        return np.concatenate(out) if out else None

    def _fill(self, at: int, plan: _Plan, first_seq: int) -> int:
        """Put one item's rows into the batch from row `at`, its sequences from `first_seq`; the next row."""
        b, p, k = self.batch, plan.prefix, plan.n_seq
        mid, end = at + p, at + len(plan.tokens)
        b.token[at:end], b.pos[at:end], b.logits[at:end] = plan.tokens, plan.pos, plan.wants
        b.n_seq_id[at:mid], b.n_seq_id[mid:end] = k, 1
        b.seq[at:mid, :k] = np.arange(first_seq, first_seq + k, dtype=np.int32)
        b.seq[mid:end, 0] = plan.tail_seq + first_seq
        return end

    @staticmethod
    def _scores(logits: np.ndarray, targets: list[int]) -> tuple[np.ndarray, np.ndarray]:
        """log p(target) per row and whether the target is the row's argmax. The sum of exponentials
        runs in float32 (a third of the time of float64 over 49152 tokens a row; it changes a
        log-likelihood by under 1e-5), the rest in float64."""
        m = logits.max(axis=1)
        lse = m.astype(np.float64) + np.log(np.exp(logits - m[:, None]).sum(axis=1, dtype=np.float64))
        t = np.asarray(targets)
        return logits[np.arange(len(t)), t].astype(np.float64) - lse, logits.argmax(axis=1) == t

    def loglikelihood_scratch(self, pair: Pair) -> Score:
        inp, start = self._input(pair)
        self.ll.llama_memory_clear(self.mem, True)
        n = len(inp)
        plan = _Plan(np.asarray(inp, np.int32), np.arange(n, dtype=np.int32), (np.arange(n) >= start).astype(np.int8),
                     0, np.zeros(n, np.int32), [pair[1]])
        self._fill(0, plan, 0)
        logits = self._decode(n)
        lp, hit = self._scores(logits, pair[1][-(n - start):])
        return Score(float(lp.sum()), bool(hit.all()), len(lp))

    def loglikelihood(self, groups: list[list[Pair]], progress=None) -> list[list[Score]]:
        """Scores of every pair, grouped as given (one group per item; a group shares its prefix)."""
        plans = [self._plan(g) for g in groups]
        out: list[list[Score]] = [[] for _ in groups]
        cap = self.items_per_batch or len(plans)
        i = 0
        while i < len(plans):
            rows = seqs = 0
            j = i
            while j < len(plans) and j - i < cap:
                n, k = len(plans[j].tokens), plans[j].n_seq
                if j > i and (rows + n > self.batch_tokens or seqs + k > self.n_seq):
                    break
                if n > self.n_ctx or k > self.n_seq:
                    raise EdgelawError(f"{self.what}: item {j} needs {n} tokens and {k} sequences, more than the "
                                       f"{self.n_ctx} and {self.n_seq} the task context holds; raise the task context "
                                       "(tasks.n_ctx) or shorten shots")
                rows, seqs = rows + n, seqs + k
                j += 1
            self._score_batch(plans[i:j], out[i:j])
            i = j
            if progress:
                progress(i)
        return out

    def _plan(self, group: list[Pair]) -> _Plan:
        inputs = [self._input(pair) for pair in group]
        first = inputs[0][0]
        p = min(start for _, start in inputs)  # the shared prefix never holds a scored position
        for inp, _ in inputs[1:]:
            k = 0
            while k < p and inp[k] == first[k]:
                k += 1
            p = k
        tokens, pos, wants, tail_seq, targets = list(first[:p]), list(range(p)), [0] * p, [], []
        for s, (pair, (inp, start)) in enumerate(zip(group, inputs)):
            tokens += inp[p:]
            pos += range(p, len(inp))
            wants += [int(q >= start) for q in range(p, len(inp))]
            tail_seq += [s] * (len(inp) - p)
            targets.append(pair[1][-(len(inp) - start):])
        return _Plan(np.asarray(tokens, np.int32), np.asarray(pos, np.int32), np.asarray(wants, np.int8), p,
                     np.asarray(tail_seq, np.int32), targets)

    def _score_batch(self, plans: list[_Plan], out: list[list[Score]]) -> None:
        self.ll.llama_memory_clear(self.mem, True)
        at = seq = 0
        for plan in plans:
            at = self._fill(at, plan, seq)
            seq += plan.n_seq
        logits = self._decode(at)
        flat = [t for plan in plans for tgt in plan.targets for t in tgt]
        lp, hit = self._scores(logits, flat)
        row = 0
        for plan, item_out in zip(plans, out):
            for tgt in plan.targets:
                n = len(tgt)
                item_out.append(Score(float(lp[row:row + n].sum()), bool(hit[row:row + n].all()), n))
                row += n

    # -- generation ----------------------------------------------------------------------------------
    def piece(self, tok: int) -> bytes:
        buf = ctypes.create_string_buffer(64)
        n = self.ll.llama_token_to_piece(self.vocab, tok, buf, len(buf), 0, False)
        return buf.raw[:max(n, 0)]

    def _decode_rows(self, rows: list[tuple[int, int, int, bool]]) -> np.ndarray | None:
        """Decode (token, pos, seq, wants logits) rows, one sequence each."""
        b = self.batch
        n = len(rows)
        tok, pos, seq, out = zip(*rows)
        b.token[:n], b.pos[:n], b.seq[:n, 0], b.logits[:n] = tok, pos, seq, out
        b.n_seq_id[:n] = 1
        return self._decode(n)

    def generate(self, contexts: list[str], until: tuple[str, ...], max_tokens: int, progress=None) -> list[str]:
        """Greedy continuations of each context, cut at the first stop string (lm-eval's generate_until:
        the context encoded with BOS as for scoring and left-truncated to n_ctx - max_tokens; generation
        also stops at an end-of-generation token). Each prompt is decoded alone, then up to GEN_SEQS generations
        advance side by side, one token each per decode."""
        ll = self.ll
        prompts = [self.encode(c)[-(self.n_ctx - max_tokens):] for c in contexts]
        texts: list[str] = [""] * len(prompts)
        i = 0
        while i < len(prompts):
            cells, j = 0, i
            while j < len(prompts) and j - i < GEN_SEQS and cells + len(prompts[j]) + max_tokens <= self.n_ctx:
                cells += len(prompts[j]) + max_tokens
                j += 1
            j = max(j, i + 1)
            ll.llama_memory_clear(self.mem, True)
            active = list(range(i, j))
            # each prompt decoded alone, then one token per sequence per step
            first = [int(self._decode_rows([(t, pos, k - i, pos == len(prompts[k]) - 1)
                                            for pos, t in enumerate(prompts[k])])[0].argmax())
                     for k in active]
            made = {k: b"" for k in active}
            pos = {k: len(prompts[k]) for k in active}
            nxt, entries = np.asarray(first), []
            for step in range(max_tokens):
                if step:
                    nxt = self._decode_rows(entries).argmax(axis=1)
                entries, still = [], []
                for k, tok in zip(active, nxt.tolist()):
                    if ll.llama_vocab_is_eog(self.vocab, tok):
                        continue
                    made[k] += self.piece(tok)
                    if any(u in made[k].decode("utf-8", "replace") for u in until):
                        continue
                    entries.append((tok, pos[k], k - i, True))
                    pos[k] += 1
                    still.append(k)
                active = still
                if not active:
                    break
            for k, b in made.items():
                text = b.decode("utf-8", "replace")
                for u in until:
                    text = text.split(u)[0]
                texts[k] = text
            i = j
            if progress:
                progress(i)
        return texts
