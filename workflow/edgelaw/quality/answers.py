"""Greedy answers to a prompt set, for semantic accuracy.

The prompt goes through the model's own chat template when the GGUF carries one llama.cpp knows
(SmolLM2-Instruct: ChatML); otherwise a plain "Question: ... Answer:" frame. Decoding is greedy and
stops at end-of-generation or after `max_tokens`, so two runs of the same GGUF give the same text.

Prompts are answered BATCH at a time, as parallel sequences of one context: every decode step reads
the weights once for all of them (SmolLM2-135M, 24 prompts, 2 threads: 4.7 s instead of 10.6 s). A
batch's matrix products round differently from one sequence's and greedy decoding carries a changed
token on, so most answers differ from the ones the same prompts get one at a time (22 of 24 on
SmolLM2 Q4_K_M, mostly after the first sentence); for a given GGUF and prompt set they do not change
between runs.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass

from edgelaw.core.errors import EdgelawError
from edgelaw.core.llama import chat_prompt, greedy_token, lib, load_model, new_context, tokenize

PLAIN_FRAME = "Question: {prompt}\nAnswer:"
BATCH = 16  # prompts answered together; the KV cache holds, per prompt, the longest prompt and its answer


@dataclass
class Answer:
    text: str
    n_tokens: int
    prompt_tokens: int


class Answerer:
    def __init__(self, path: str, threads: int, max_tokens: int, what: str, n_ctx: int = 1024, batch: int = BATCH):
        self.ll = ll = lib()
        self.what = what
        self.model = load_model(path, what)
        self.n_ctx = min(n_ctx, ll.llama_model_n_ctx_train(self.model))  # per prompt
        if max_tokens >= self.n_ctx:
            raise EdgelawError(
                f"{what}: quality.max_answer_tokens {max_tokens} does not fit the model's context of {self.n_ctx}; lower it"
            )
        self.batch = batch
        self.threads = threads
        self.ctx = None
        self.ctx_cells = 0
        self.vocab = ll.llama_model_get_vocab(self.model)
        self.max_tokens = max_tokens
        self.template = ll.llama_model_chat_template(self.model, None)
        self.n_vocab = ll.llama_vocab_n_tokens(self.vocab)

    @property
    def prompt_format(self) -> str:
        return "chat_template" if self._chat("probe") is not None else "plain"

    def _chat(self, content: str) -> str | None:
        return chat_prompt(self.template, content)

    def frame(self, prompt: str) -> str:
        return self._chat(prompt) or PLAIN_FRAME.format(prompt=prompt)

    def answer(self, prompt: str) -> Answer:
        return self.answer_all([prompt])[0]

    def answer_all(self, prompts: list[str]) -> list[Answer]:
        answers = []
        for i in range(0, len(prompts), self.batch):
            answers += self._answer_batch(prompts[i:i + self.batch])
        return answers

    def _tokens(self, prompt: str) -> list[int]:
        tokens = tokenize(self.vocab, self.frame(prompt), add_special=True, parse_special=True)
        if len(tokens) + self.max_tokens > self.n_ctx:
            raise EdgelawError(
                f"{self.what}: a prompt of {len(tokens)} tokens plus {self.max_tokens} answer tokens exceeds the "
                f"context of {self.n_ctx}; shorten the prompt or lower quality.max_answer_tokens"
            )
        return tokens

    def _context(self, cells: int):
        """A context of `cells` KV cells per sequence, BATCH sequences; reused while large enough. Sized to
        the prompts, not to n_ctx: a 7B model's KV cache for 16 x 1,024 tokens would be 8 GB."""
        if cells > self.ctx_cells:
            if self.ctx is not None:
                self.ll.llama_free(self.ctx)
            self.ctx = new_context(self.model, self.what, cells * self.batch, self.threads, n_seq_max=self.batch)
            self.ctx_cells = cells
        return self.ctx

    def _answer_batch(self, prompts: list[str]) -> list[Answer]:
        ll = self.ll
        prompt_tokens = [self._tokens(p) for p in prompts]
        self._context(max(len(t) for t in prompt_tokens) + self.max_tokens)
        ll.llama_memory_clear(ll.llama_get_memory(self.ctx), True)
        batch = ll.llama_batch_init(sum(len(t) for t in prompt_tokens), 0, 1)
        try:
            # All prompts in one batch, sequence s at positions 0.., logits at each prompt's last token.
            row = {}
            for s, tokens in enumerate(prompt_tokens):
                for pos, tok in enumerate(tokens):
                    row[s] = self._put(batch, batch.n_tokens, tok, pos, s, pos == len(tokens) - 1)
            self._decode(batch)
            texts = [bytearray() for _ in prompts]
            counts = [0] * len(prompts)
            positions = [len(t) for t in prompt_tokens]
            piece = ctypes.create_string_buffer(256)
            active = list(range(len(prompts)))
            while active:
                step = []
                for s in active:
                    tok = greedy_token(self.ctx, row[s], self.n_vocab)
                    if ll.llama_vocab_is_eog(self.vocab, tok):
                        continue
                    counts[s] += 1
                    k = ll.llama_token_to_piece(self.vocab, tok, piece, len(piece), 0, False)
                    texts[s] += piece.raw[:max(k, 0)]
                    if counts[s] < self.max_tokens:
                        step.append((s, tok))
                # One decode step for every answer still going.
                batch.n_tokens = 0
                for s, tok in step:
                    row[s] = self._put(batch, batch.n_tokens, tok, positions[s], s, True)
                    positions[s] += 1
                if step:
                    self._decode(batch)
                active = [s for s, _ in step]
        finally:
            ll.llama_batch_free(batch)
        return [Answer(t.decode("utf-8", "replace").strip(), n, len(p)) for t, n, p in zip(texts, counts, prompt_tokens)]

    @staticmethod
    def _put(batch, i: int, tok: int, pos: int, seq: int, logits: bool) -> int:
        batch.token[i] = tok
        batch.pos[i] = pos
        batch.n_seq_id[i] = 1
        batch.seq_id[i][0] = seq
        batch.logits[i] = logits
        batch.n_tokens = i + 1
        return i

    def _decode(self, batch) -> None:
        if self.ll.llama_decode(self.ctx, batch) != 0:
            raise EdgelawError(f"{self.what}: llama_decode failed while answering (out of memory?)")
