"""Greedy answers to a prompt set, for semantic accuracy.

The prompt goes through the model's own chat template when the GGUF carries one llama.cpp knows
(SmolLM2-Instruct: ChatML); otherwise a plain "Question: ... Answer:" frame. Decoding is greedy and
stops at end-of-generation or after `max_tokens`, so two runs of the same GGUF give the same text.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass

from .errors import EdgelawError
from .llama import chat_prompt, greedy_sampler, lib, load_model, new_context, tokenize

PLAIN_FRAME = "Question: {prompt}\nAnswer:"


@dataclass
class Answer:
    text: str
    n_tokens: int
    prompt_tokens: int


class Answerer:
    def __init__(self, path: str, threads: int, max_tokens: int, what: str, n_ctx: int = 1024):
        self.ll = ll = lib()
        self.what = what
        self.model = load_model(path, what)
        self.n_ctx = min(n_ctx, ll.llama_model_n_ctx_train(self.model))
        if max_tokens >= self.n_ctx:
            raise EdgelawError(
                f"{what}: quality.max_answer_tokens {max_tokens} does not fit the model's context of {self.n_ctx}; lower it"
            )
        self.ctx = new_context(self.model, what, self.n_ctx, threads)
        self.vocab = ll.llama_model_get_vocab(self.model)
        self.max_tokens = max_tokens
        self.template = ll.llama_model_chat_template(self.model, None)
        self.sampler = greedy_sampler()

    @property
    def prompt_format(self) -> str:
        return "chat_template" if self._chat("probe") is not None else "plain"

    def _chat(self, content: str) -> str | None:
        return chat_prompt(self.template, content)

    def frame(self, prompt: str) -> str:
        return self._chat(prompt) or PLAIN_FRAME.format(prompt=prompt)

    def answer(self, prompt: str) -> Answer:
        ll = self.ll
        tokens = tokenize(self.vocab, self.frame(prompt), add_special=True, parse_special=True)
        if len(tokens) + self.max_tokens > self.n_ctx:
            raise EdgelawError(
                f"{self.what}: a prompt of {len(tokens)} tokens plus {self.max_tokens} answer tokens exceeds the "
                f"context of {self.n_ctx}; shorten the prompt or lower quality.max_answer_tokens"
            )
        ll.llama_memory_clear(ll.llama_get_memory(self.ctx), True)
        ll.llama_sampler_reset(self.sampler)
        arr = (ll.llama_token * len(tokens))(*tokens)
        self._decode(arr, len(tokens))
        out = bytearray()
        n = 0
        piece = ctypes.create_string_buffer(256)
        one = (ll.llama_token * 1)()
        while n < self.max_tokens:
            tok = ll.llama_sampler_sample(self.sampler, self.ctx, -1)
            if ll.llama_vocab_is_eog(self.vocab, tok):
                break
            n += 1
            k = ll.llama_token_to_piece(self.vocab, tok, piece, len(piece), 0, False)
            out += piece.raw[:max(k, 0)]
            one[0] = tok
            self._decode(one, 1)
        return Answer(out.decode("utf-8", "replace").strip(), n, len(tokens))

    def _decode(self, arr, n: int) -> None:
        if self.ll.llama_decode(self.ctx, self.ll.llama_batch_get_one(arr, n)) != 0:
            raise EdgelawError(f"{self.what}: llama_decode failed while answering (out of memory?)")
