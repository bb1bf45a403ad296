"""Perplexity, KL divergence and top-1 agreement: the library, on the tiny model and on SmolLM2."""

import io

import numpy as np
import pytest

from edgelaw.core.errors import EdgelawError
from edgelaw.core.config import defaults
from edgelaw.quality.logprobs import (BaseReference, Scorer, chunks, evaluate, exact_kld, kld_topk,
                             perplexity, top_k)

from conftest import ROOT

EVAL = (ROOT / "workflow/edgelaw/data/eval.txt").read_text()


def test_perplexity_and_its_error():
    nll = np.log(np.array([2.0, 8.0]))
    ppl, err = perplexity(nll)
    assert ppl == pytest.approx(4.0)
    assert err == pytest.approx(4.0 * np.log(2.0))  # sd of {ln2, 3ln2} is ln2, over sqrt(n-1)=1


def test_topk_kld_is_exact_when_k_covers_the_vocabulary():
    rng = np.random.default_rng(0)
    lp = rng.normal(size=(5, 50))
    lq = lp + rng.normal(scale=0.3, size=(5, 50))
    lp -= np.log(np.exp(lp).sum(1, keepdims=True))
    lq -= np.log(np.exp(lq).sum(1, keepdims=True))
    ids, lk, tail = top_k(lp, 50)
    assert tail == pytest.approx(0.0, abs=1e-12)
    assert kld_topk(ids, lk, tail, lq) == pytest.approx(exact_kld(lp, lq))
    # Rounded log-probabilities (as stored) do not turn into a spurious tail.
    assert kld_topk(ids, np.round(lk, 3), tail, lq) == pytest.approx(exact_kld(lp, lq), abs=2e-3)
    ids, lk, tail = top_k(lp, 5)
    assert tail == pytest.approx(1 - np.exp(lk).sum(1))
    assert (kld_topk(ids, lk, tail, lq) <= exact_kld(lp, lq) + 1e-12).all()  # a lower bound below full K


def test_short_text_and_long_context_are_refused(tiny_gguf):
    with pytest.raises(EdgelawError, match="fewer than one chunk of 512"):
        chunks(list(range(100)), 512, None, "model tiny")
    with pytest.raises(EdgelawError, match="quality.n_ctx 4096 is longer than the model's context 2048"):
        Scorer(str(tiny_gguf), 4096, 2, "model tiny")


def test_same_model_has_zero_divergence(tiny_gguf):
    scorer = Scorer(str(tiny_gguf), 256, 2, "model tiny")
    ch = chunks(scorer.tokenize(EVAL), 256, 3, "model tiny")
    ref, _, _ = evaluate(scorer, ch, 64)
    _, kld, same = evaluate(scorer, ch, 64, ref)
    assert len(kld) == 3 * 127 and np.abs(kld).max() < 1e-6 and same.all()


def test_reference_survives_its_compact_storage(tiny_gguf):
    scorer = Scorer(str(tiny_gguf), 128, 2, "model tiny")
    ch = chunks(scorer.tokenize(EVAL), 128, 2, "model tiny")
    ref, _, _ = evaluate(scorer, ch, 64)
    buf = io.BytesIO()
    ref.save(buf, meta={"n_ctx": 128})
    buf.seek(0)
    back, meta = BaseReference.load(buf)
    assert meta == {"n_ctx": 128}
    assert np.array_equal(back.targets, ref.targets) and np.array_equal(back.top_ids, ref.top_ids)
    assert np.abs(back.top_logp - ref.top_logp).max() < (ref.top_logp.max() - ref.top_logp.min()) / 65535
    assert np.array_equal(back.tail, ref.tail)
    _, kld_stored, _ = evaluate(scorer, ch, 64, back)
    assert np.abs(kld_stored).max() < 1e-6


def test_another_tokenizer_is_refused(tiny_gguf):
    scorer = Scorer(str(tiny_gguf), 128, 2, "model tiny")
    ch = chunks(scorer.tokenize(EVAL), 128, 2, "model tiny")
    ref, _, _ = evaluate(scorer, ch, 16)
    ref.targets = ref.targets + 1
    with pytest.raises(EdgelawError, match="the tokenizers differ"):
        evaluate(scorer, ch, 16, ref)
    with pytest.raises(EdgelawError, match="the tokenizers differ"):
        evaluate(scorer, ch + ch, 16, evaluate(scorer, ch, 16)[0])


@pytest.mark.slow
def test_smollm2_perplexity_rises_as_bits_fall_and_stored_topk_kld_matches_exact(smollm2):
    import json

    base = Scorer(str(smollm2 / "base.gguf"), 512, 2, "base")
    ch = chunks(base.tokenize(EVAL), 512, 6, "smollm2")
    fresh, _, _ = evaluate(base, ch, defaults("quality")["top_k"])
    buf = io.BytesIO()
    fresh.save(buf, meta={})
    buf.seek(0)
    ref, _ = BaseReference.load(buf)  # the compact stored form, as the stage uses it
    ladder = sorted(["Q8_0", "Q4_0", "Q2_K"], key=lambda q: -json.loads((smollm2 / f"{q}.json").read_text())["bpw"])
    assert ladder == ["Q8_0", "Q4_0", "Q2_K"]
    ppl, se, mean_kld, top1 = {}, {}, {}, {}
    base_logprobs = [base.chunk_logprobs(c) for c in ch]
    for q in ladder:
        scorer = Scorer(str(smollm2 / f"{q}.gguf"), 512, 2, q)
        own, kld, same = evaluate(scorer, ch, defaults("quality")["top_k"], ref)
        ppl[q], se[q] = perplexity(own.nll)
        mean_kld[q], top1[q] = kld.mean(), same.mean()
        if q != "Q4_0":  # the top-k KLD against the exact one at both ends of the ladder
            exact = np.concatenate([exact_kld(b, scorer.chunk_logprobs(c)) for b, c in zip(base_logprobs, ch)])
            assert kld.mean() == pytest.approx(exact.mean(), rel=0.01)
    base_ppl = perplexity(ref.nll)[0]
    # Monotone within noise: each step down the ladder may not fall by more than its standard error.
    steps = [("base", "Q8_0"), ("Q8_0", "Q4_0"), ("Q4_0", "Q2_K")]
    value = {"base": base_ppl, **ppl}
    for hi, lo in steps:
        assert value[lo] > value[hi] - se.get(lo, 0.0), (hi, lo, value)
    assert ppl["Q2_K"] > ppl["Q8_0"] + se["Q2_K"] + se["Q8_0"]  # the ends differ well beyond the noise
    assert mean_kld["Q8_0"] < mean_kld["Q4_0"] < mean_kld["Q2_K"]
    assert top1["Q8_0"] > top1["Q4_0"] > top1["Q2_K"]


def test_chunks_are_cut_as_llama_perplexity_cuts_them_with_and_without_bos(tmp_path, tiny_gguf):
    """llama-perplexity tokenizes its -f text (less one final newline) with special tokens, so on a model
    that adds BOS the token list starts with it; it cuts every n_ctx tokens of that list and sets each
    chunk's first token to BOS. Chunk k > 0 therefore starts at text token k*n_ctx (its BOS standing in
    for token k*n_ctx - 1), one token earlier than without a BOS; on a model without one, nothing moves."""
    from edgelaw.core.llama import tokenize
    from edgelaw.quality.jobs import QualitySettings, _token_chunks
    from edgelaw.sources.synthetic import write

    from conftest import TINY

    eval_file = tmp_path / "eval.txt"
    eval_file.write_bytes(EVAL.replace("\n", "\r\n").encode())  # llama.cpp reads the bytes: \r stays
    s = QualitySettings.from_config(defaults("quality", {"n_ctx": 128, "n_chunks": 3, "eval_text": str(eval_file)}))
    text = EVAL.replace("\n", "\r\n").removesuffix("\n")

    write({**TINY, "add_bos": True}, tmp_path / "bos.gguf")
    for gguf, adds_bos in [(tmp_path / "bos.gguf", True), (tiny_gguf, False)]:
        scorer = Scorer(str(gguf), 128, 2, "model")
        assert scorer.add_bos is adds_bos
        plain = tokenize(scorer.vocab, text, add_special=False)
        got = _token_chunks(scorer, s, "model")
        if adds_bos:
            bos = scorer.bos
            assert got == [[bos] + plain[0:127], [bos] + plain[128:255], [bos] + plain[256:383]]
            ref, _, _ = evaluate(scorer, got[1:2], 16)  # scored: the second half, less its first token
            assert np.array_equal(ref.targets, plain[128 + 64:255])
        else:
            assert got == [plain[0:128], plain[128:256], plain[256:384]]
        scorer.close()
