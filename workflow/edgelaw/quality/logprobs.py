"""Quality of a quantization against its base: perplexity, KL divergence and top-1 agreement.

Perplexity follows llama.cpp's `llama-perplexity` (tools/perplexity/perplexity.cpp, `perplexity()`):
the evaluation text, less one final newline (as `-f` reads a file), is tokenized with the model's
special tokens (a BOS first where the GGUF's add_bos_token says so), the tokens are cut into chunks of
n_ctx, the first token of each chunk is replaced by BOS where the model adds one, and only the second
half of each chunk is scored, so every scored token has at least n_ctx/2 tokens of context. On a model
that adds BOS the first chunk thus begins with the BOS of the tokenization and every later chunk is cut
one token earlier in the text than without it. The error is the standard error of the mean negative
log-likelihood, carried through exp(). `bench/perplexity_agreement.py` checks this against the
llama-perplexity built from the same sdist.

KL divergence needs the base model's distribution at every scored token. Storing all logits of a large
vocabulary does not fit (49152 x 4 bytes per token for SmolLM2), so the base pass keeps the top-K
tokens' log-probabilities and the probability mass of the rest. KL(base || quant) is then computed over
K + 1 outcomes (the top-K tokens and "any other token"). By the log-sum inequality this never exceeds the
exact KL, and it converges to it as K grows; `exact_kld` computes the exact value to check K.
On SmolLM2-135M (512-token chunks of the shipped eval text) the mean KLD falls short of the exact one by
15% at K=64, 7% at K=256, 2% at K=1024 and under 0.5% at K=4096, hence the schema's default quality.top_k of 4096.

The reference is stored compactly (BaseReference.save): 16-bit token ids where the vocabulary fits,
log-probabilities as 16-bit codes on a per-row linear scale, and the exact mass outside the top K.
The stage around this module is quality_stage.py.
"""

from __future__ import annotations

import ctypes
import json
from dataclasses import dataclass

import numpy as np

from edgelaw.core.errors import EdgelawError
from edgelaw.core.llama import lib, load_model, new_context, tokenize

def log_softmax(logits: np.ndarray) -> np.ndarray:
    m = logits.max(axis=-1, keepdims=True)
    z = logits - m
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


class Scorer:
    """One model with a context of n_ctx tokens that returns log-probabilities of the scored half."""

    def __init__(self, path: str, n_ctx: int, threads: int, what: str):
        self.ll = ll = lib()
        self.model = load_model(path, what)
        n_train = ll.llama_model_n_ctx_train(self.model)
        if n_ctx > n_train:
            raise EdgelawError(f"{what}: quality.n_ctx {n_ctx} is longer than the model's context {n_train}; lower quality.n_ctx")
        self.ctx = new_context(self.model, what, n_ctx, threads, n_ubatch=min(512, n_ctx), fix="; lower quality.n_ctx")
        self.vocab = ll.llama_model_get_vocab(self.model)
        self.n_vocab = ll.llama_vocab_n_tokens(self.vocab)
        self.n_ctx = n_ctx
        self.batch = ll.llama_batch_init(n_ctx, 0, 1)
        self.add_bos = bool(ll.llama_vocab_get_add_bos(self.vocab))
        self.bos = ll.llama_vocab_bos(self.vocab)

    def tokenize(self, text: str) -> list[int]:
        """As llama-perplexity's common_tokenize(ctx, text, add_special=true): BOS first where the model adds one."""
        return tokenize(self.vocab, text, add_special=True)

    def chunks(self, text: str, n_chunks: int | None, what: str) -> list[list[int]]:
        """The chunks llama-perplexity decodes for `text` (the text of its -f file): tokens cut every n_ctx,
        each chunk's first token BOS where the model adds one."""
        text = text[:-1] if text.endswith("\n") else text  # llama.cpp's -f drops one final newline
        return chunks(self.tokenize(text), self.n_ctx, n_chunks, what, self.bos if self.add_bos else None)

    def close(self) -> None:
        """Free the context and the model now (the answers load the model again; two copies would not fit
        on a small device)."""
        ll = self.ll
        ll.llama_batch_free(self.batch)
        ll.llama_free(self.ctx)
        ll.llama_model_free(self.model)
        self.ctx = self.model = None

    def chunk_logprobs(self, chunk: list[int]) -> np.ndarray:
        """log-softmax rows for positions n_ctx/2 .. n_ctx-2 (each predicts the next token); the chunk is
        decoded as given (`chunks` has put BOS first where the model wants one)."""
        ll, b, n = self.ll, self.batch, len(chunk)
        first = n // 2
        for i, tok in enumerate(chunk):
            b.token[i] = tok
            b.pos[i] = i
            b.n_seq_id[i] = 1
            b.seq_id[i][0] = 0
            b.logits[i] = first <= i < n - 1
        b.n_tokens = n
        ll.llama_memory_clear(ll.llama_get_memory(self.ctx), True)
        if ll.llama_decode(self.ctx, b) != 0:
            raise EdgelawError("llama_decode failed while scoring (out of memory?)")
        n_out = n - 1 - first
        ptr = ll.llama_get_logits(self.ctx)
        logits = np.ctypeslib.as_array(ctypes.cast(ptr, ctypes.POINTER(ctypes.c_float)), shape=(n_out, self.n_vocab))
        return log_softmax(logits.astype(np.float64))


def chunks(tokens: list[int], n_ctx: int, n_chunks: int | None, what: str, bos: int | None = None) -> list[list[int]]:
    """Consecutive chunks of n_ctx tokens (n_chunks at most), each one's first token replaced by `bos` if
    given. The scored targets are never a chunk's first token, so the replacement changes the context only."""
    available = len(tokens) // n_ctx
    if available < 1:
        raise EdgelawError(
            f"{what}: the evaluation text has {len(tokens)} tokens, fewer than one chunk of {n_ctx}; "
            "use a longer quality.eval_text or a smaller quality.n_ctx"
        )
    k = available if n_chunks is None else min(n_chunks, available)
    cut = [tokens[i * n_ctx:(i + 1) * n_ctx] for i in range(k)]
    return cut if bos is None else [[bos] + c[1:] for c in cut]


@dataclass
class BaseReference:
    """What the quantized models are compared with: the base's top-K and the tokens scored."""

    targets: np.ndarray  # next-token ids, [N]
    top_ids: np.ndarray  # [N, K]
    top_logp: np.ndarray  # [N, K]
    tail: np.ndarray  # [N], the base's probability mass outside its top K (computed in float64)
    nll: np.ndarray  # base's own negative log-likelihood per scored token

    def save(self, file, meta: dict) -> None:
        """Compactly, as llama-perplexity stores its base logits: per row, 16-bit codes on a linear
        scale between the row's lowest and highest log-probability (error under range / 131070, about
        2e-4 nats here); token ids in 16 bits where the vocabulary allows."""
        id_type = np.uint16 if int(self.top_ids.max(initial=0)) < 2**16 else np.int32
        lp = self.top_logp.astype(np.float64)
        lo = lp.min(axis=1)
        scale = (lp.max(axis=1) - lo) / 65535
        scale[scale <= 0] = 1.0
        codes = np.rint((lp - lo[:, None]) / scale[:, None]).astype(np.uint16)
        np.savez_compressed(
            file, targets=self.targets.astype(np.int32), top_ids=self.top_ids.astype(id_type), codes=codes,
            lo=lo, scale=scale, tail=self.tail, nll=self.nll, meta=np.array(json.dumps(meta, sort_keys=True)),
        )

    @classmethod
    def load(cls, path) -> tuple["BaseReference", dict]:
        try:
            z = np.load(path)
            logp = z["lo"][:, None] + z["codes"].astype(np.float64) * z["scale"][:, None]
            ref = cls(z["targets"].astype(np.int64), z["top_ids"].astype(np.int64), logp, z["tail"], z["nll"])
            meta = json.loads(str(z["meta"]))
        except (OSError, ValueError, KeyError) as exc:
            raise EdgelawError(f"{path} is not a readable base reference ({exc}); rerun the quality_reference job") from None
        return ref, meta


def top_k(lp: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The k most likely tokens of each row, most likely first, their log-probabilities, and the
    probability mass of all other tokens."""
    ids = np.argpartition(-lp, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(lp, ids, 1), axis=1, kind="stable")
    ids = np.take_along_axis(ids, order, 1)
    top = np.take_along_axis(lp, ids, 1)
    tail = np.clip(1.0 - np.exp(top).sum(axis=1), 0.0, 1.0)
    return ids.astype(np.int32), top, tail


def kld_topk(ref_ids: np.ndarray, ref_logp: np.ndarray, ref_tail: np.ndarray, lq: np.ndarray) -> np.ndarray:
    """KL(base || quant) per row over the base's top-K tokens plus one bucket for all others.

    The stored log-probabilities are rounded, so the top-K probabilities are rescaled to the mass the
    base gave them (1 - tail, exact): otherwise rounding would show up as a spurious tail.
    """
    lp = ref_logp.astype(np.float64)
    with np.errstate(divide="ignore"):
        lp = lp + (np.log1p(-ref_tail) - np.log(np.exp(lp).sum(axis=1)))[:, None]
    p = np.exp(lp)
    lq_k = np.take_along_axis(lq, ref_ids.astype(np.int64), 1)
    q_tail = np.clip(1.0 - np.exp(lq_k).sum(axis=1), 1e-300, 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        tail_term = np.where(ref_tail > 0, ref_tail * (np.log(ref_tail) - np.log(q_tail)), 0.0)
    return (p * (lp - lq_k)).sum(axis=1) + tail_term


def exact_kld(lp: np.ndarray, lq: np.ndarray) -> np.ndarray:
    return (np.exp(lp) * (lp - lq)).sum(axis=1)


def evaluate(scorer: Scorer, token_chunks: list[list[int]], k: int, reference: BaseReference | None = None,
             progress=None):
    """Score every chunk. Without `reference`: this model's BaseReference (its top-k per token). With one:
    this model's NLL, and per token KL(reference || this) and whether both put the same token first."""
    nll, targets, ids_all, logp_all, tails, kld, same = [], [], [], [], [], [], []
    offset = 0
    for chunk in token_chunks:
        lp = scorer.chunk_logprobs(chunk)
        tgt = np.asarray(chunk[len(chunk) // 2 + 1:], dtype=np.int64)
        nll.append(-lp[np.arange(len(tgt)), tgt])
        targets.append(tgt)
        if reference is None:
            ids, logp, tail = top_k(lp, k)
            ids_all.append(ids)
            logp_all.append(logp.astype(np.float32))
            tails.append(tail)
        else:
            if offset + len(tgt) > len(reference.targets):
                raise EdgelawError("the quantized model scored more tokens than its base: the tokenizers differ")
            rows = slice(offset, offset + len(tgt))
            kld.append(kld_topk(reference.top_ids[rows], reference.top_logp[rows], reference.tail[rows], lp))
            same.append(lp.argmax(axis=1) == reference.top_ids[rows, 0])
        offset += len(tgt)
        if progress:
            progress(len(nll))
    if reference is None:
        own = BaseReference(np.concatenate(targets), np.concatenate(ids_all), np.concatenate(logp_all),
                            np.concatenate(tails), np.concatenate(nll))
        return own, None, None
    own = BaseReference(np.concatenate(targets), np.empty((0, 0), np.int32), np.empty((0, 0)), np.empty(0),
                        np.concatenate(nll))
    if len(own.targets) != len(reference.targets) or not np.array_equal(own.targets, reference.targets):
        raise EdgelawError("the quantized model scored other tokens than its base: the tokenizers differ")
    return own, np.concatenate(kld), np.concatenate(same)


def perplexity(nll: np.ndarray) -> tuple[float, float]:
    """llama-perplexity's estimate and its standard error (delta method on the mean NLL)."""
    mean = float(nll.mean())
    var = float((nll**2).mean() - mean**2)
    se = np.sqrt(var / (len(nll) - 1)) if var > 0 and len(nll) > 1 else 0.0
    ppl = float(np.exp(mean))
    return ppl, ppl * float(se)
