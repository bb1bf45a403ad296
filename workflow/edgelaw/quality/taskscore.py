"""Task requests scored with llama.cpp: log-likelihoods of continuations, and greedy generations.

Tokenization is lm-eval's (`TemplateLM._encode_pair`): trailing spaces of the context move to the
continuation, the context and context + continuation are each encoded whole, and the continuation's
tokens are what the whole has beyond the context's length. BOS is prepended where the GGUF says the
model adds one (`tokenizer.ggml.add_bos_token`), as lm-eval's Hugging Face backend follows its
tokenizer's. The model input is (context + continuation)[-(n_ctx + 1):][:-1], as lm-eval truncates.

Speed: the requests of one item share the tokens before the first place they differ (all of the
context, for a multiple-choice item). That prefix is evaluated once in one sequence, copied to the
item's other sequences in the KV cache (a copy marks the same cells as belonging to them too: the
cache is unified), and the continuations are evaluated as parallel sequences in one batch. The code
packs items into a batch up to the context's cells and sequences, but takes one item a batch
(ITEMS_PER_BATCH: why below).
`loglikelihood_scratch` scores one request in an empty cache, alone: the reference it is tested against.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass

import numpy as np

from edgelaw.core.errors import EdgelawError
from edgelaw.core.llama import lib, load_model, tokenize

# Why one item a batch, in micro-batches of 32 tokens (measured with llama-cpp-python 0.3.36 on SmolLM2
# against each request scored alone from an empty cache; the causes are not found):
# - a micro-batch of more than 32 tokens that mixes sequences gave wrong log-likelihoods, off by up
#   to 1.7 nats, with flash attention on or off, even for one item's continuations;
# - with flash attention off, mixing sequences was wrong even in micro-batches of 32;
# - llama.cpp's CPU flash attention takes another path above 32 tokens a micro-batch, and its results
#   depend on it: one ARC item moved by 0.39 nats on Q8_0 (0.03 on the F16 base) between micro-batches
#   of 32 and 512 tokens, also for one sequence alone. Micro-batches of 32 keep every decode on one path;
# - several items in one batch were off by up to 0.03 nats on HellaSwag, one item a batch exact
#   (30 HellaSwag and ARC items).
# The reference in bench/tasks_lmeval_ref.py uses micro-batches of 32 too, for the third reason.
UBATCH = 32
ITEMS_PER_BATCH = 1
GEN_SEQS = 8  # greedy generations run side by side, one token each per step

Pair = tuple[list[int], list[int]]  # (context tokens, continuation tokens)


@dataclass
class Score:
    loglik: float
    greedy: bool  # every continuation token is the model's most likely next token
    n_tokens: int


class TaskScorer:
    def __init__(self, path: str, threads: int, what: str, n_ctx: int = 4096, n_seq: int = 16):
        self.ll = ll = lib()
        self.what = what
        self.model = load_model(path, what)
        n_ctx = min(n_ctx, ll.llama_model_n_ctx_train(self.model))
        self.ctx = self._unified_context(n_ctx, threads, n_seq)
        self.n_ctx = ll.llama_n_ctx(self.ctx)
        self.n_seq = n_seq
        self.mem = ll.llama_get_memory(self.ctx)
        self.vocab = ll.llama_model_get_vocab(self.model)
        self.n_vocab = ll.llama_vocab_n_tokens(self.vocab)
        self.add_bos = bool(ll.llama_vocab_get_add_bos(self.vocab))
        self.bos = ll.llama_vocab_bos(self.vocab)
        self.eos = ll.llama_vocab_eos(self.vocab)
        self.batch = ll.llama_batch_init(self.n_ctx, 0, 1)

    def _unified_context(self, n_ctx: int, threads: int, n_seq: int):
        """A CPU-only context whose n_seq sequences share one KV cache (a copied prefix is the same cells).
        Built here rather than through core.llama.new_context so that the bench and quality jobs, whose
        code checksums cover core/llama.py, do not rerun for it."""
        ll = self.ll
        p = ll.llama_context_default_params()
        p.n_ctx = p.n_batch = n_ctx
        p.n_ubatch, p.n_seq_max, p.kv_unified = UBATCH, n_seq, True
        p.n_threads = p.n_threads_batch = threads
        p.offload_kqv = p.op_offload = False
        p.no_perf = True
        ctx = ll.llama_init_from_model(self.model, p)
        if not ctx:
            raise EdgelawError(f"{self.what}: llama.cpp could not create a context of {n_ctx} tokens (out of memory?)")
        return ctx

    def close(self) -> None:
        ll = self.ll
        ll.llama_batch_free(self.batch)
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
    def _decode(self, entries: list[tuple[int, int, int, bool]]) -> np.ndarray | None:
        """Decode (token, pos, seq, wants logits) entries in one batch; the logits rows, in order."""
        ll, b = self.ll, self.batch
        for i, (tok, pos, seq, out) in enumerate(entries):
            b.token[i], b.pos[i], b.n_seq_id[i], b.seq_id[i][0], b.logits[i] = tok, pos, 1, seq, out
        b.n_tokens = len(entries)
        if ll.llama_decode(self.ctx, b) != 0:
            raise EdgelawError(f"{self.what}: llama_decode failed while scoring tasks (out of memory?)")
        n_out = sum(e[3] for e in entries)
        if not n_out:
            return None
        ptr = ll.llama_get_logits(self.ctx)
        return np.ctypeslib.as_array(ctypes.cast(ptr, ctypes.POINTER(ctypes.c_float)), shape=(n_out, self.n_vocab))

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
        logits = self._decode([(t, p, 0, p >= start) for p, t in enumerate(inp)])
        lp, hit = self._scores(logits, pair[1][-(len(inp) - start):])
        return Score(float(lp.sum()), bool(hit.all()), len(lp))

    def loglikelihood(self, groups: list[list[Pair]], progress=None) -> list[list[Score]]:
        """Scores of every pair, grouped as given (one group per item; a group shares its prefix)."""
        plans = [self._plan(g) for g in groups]
        out: list[list[Score]] = [[] for _ in groups]
        i = 0
        while i < len(plans):
            cells = seqs = 0
            j = i
            while (j < len(plans) and j - i < ITEMS_PER_BATCH and cells + plans[j][2] <= self.n_ctx
                   and seqs + len(plans[j][0]) <= self.n_seq):
                cells, seqs = cells + plans[j][2], seqs + len(plans[j][0])
                j += 1
            if j == i:
                raise EdgelawError(f"{self.what}: item {i} needs {plans[i][2]} tokens of context, more than the "
                                   f"{self.n_ctx} the task context holds; raise the task context or shorten shots")
            self._score_batch(plans[i:j], out[i:j])
            i = j
            if progress:
                progress(i)
        return out

    def _plan(self, group: list[Pair]):
        """(inputs with their scoring starts, continuation tokens scored, shared prefix length, KV cells)
        of one item."""
        inputs = [self._input(pair) for pair in group]
        targets = [pair[1][-(len(inp) - start):] for pair, (inp, start) in zip(group, inputs)]
        first = inputs[0][0]
        p = min(start for _, start in inputs)  # the prefix never holds a scored position
        for inp, _ in inputs[1:]:
            k = 0
            while k < p and inp[k] == first[k]:
                k += 1
            p = k
        return inputs, targets, p, p + sum(len(inp) - p for inp, _ in inputs)

    def _score_batch(self, plans, out: list[list[Score]]) -> None:
        ll = self.ll
        ll.llama_memory_clear(self.mem, True)
        prefix, tails, seq = [], [], 0
        for inputs, _, p, _ in plans:
            prefix += [(t, pos, seq, False) for pos, t in enumerate(inputs[0][0][:p])]
            seq += len(inputs)
        if prefix:
            self._decode(prefix)
        seq = 0
        for inputs, _, p, _ in plans:
            first = seq
            for inp, start in inputs:
                if seq != first and p:
                    ll.llama_memory_seq_cp(self.mem, first, seq, 0, p)
                tails += [(inp[pos], pos, seq, pos >= start) for pos in range(p, len(inp))]
                seq += 1
        logits = self._decode(tails)
        flat = [t for _, targets, _, _ in plans for tgt in targets for t in tgt]
        lp, hit = self._scores(logits, flat)
        row = 0
        for (_, targets, _, _), item_out in zip(plans, out):
            for tgt in targets:
                n = len(tgt)
                item_out.append(Score(float(lp[row:row + n].sum()), bool(hit[row:row + n].all()), n))
                row += n

    # -- generation ----------------------------------------------------------------------------------
    def piece(self, tok: int) -> bytes:
        buf = ctypes.create_string_buffer(64)
        n = self.ll.llama_token_to_piece(self.vocab, tok, buf, len(buf), 0, False)
        return buf.raw[:max(n, 0)]

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
            first = [int(self._decode([(t, pos, k - i, pos == len(prompts[k]) - 1) for pos, t in enumerate(prompts[k])])[0].argmax())
                     for k in active]
            made = {k: b"" for k in active}
            pos = {k: len(prompts[k]) for k in active}
            nxt, entries = np.asarray(first), []
            for step in range(max_tokens):
                if step:
                    nxt = self._decode(entries).argmax(axis=1)
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
