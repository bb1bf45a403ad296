"""Perplexity, KL divergence and top-1 agreement (the library; the stage is not wired yet)."""

import numpy as np
import pytest

from edgelaw.errors import EdgelawError
from edgelaw.quality import DEFAULT_TOP_K, Scorer, chunks, evaluate, exact_kld, perplexity, top_k, kld_topk

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
    ids, lk = top_k(lp, 50)
    assert kld_topk(ids, lk, lq) == pytest.approx(exact_kld(lp, lq))
    ids, lk = top_k(lp, 5)
    assert (kld_topk(ids, lk, lq) <= exact_kld(lp, lq) + 1e-12).all()  # a lower bound below full K


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


@pytest.mark.slow
def test_smollm2_quality_falls_with_bits_and_topk_kld_matches_exact(smollm2):
    base = Scorer(str(smollm2 / "base.gguf"), 512, 2, "base")
    ch = chunks(base.tokenize(EVAL), 512, 4, "smollm2")
    ref, _, _ = evaluate(base, ch, DEFAULT_TOP_K)
    ppl = {"base": perplexity(ref.nll)[0]}
    mean_kld = {}
    for q in ["Q8_0", "Q2_K"]:
        scorer = Scorer(str(smollm2 / f"{q}.gguf"), 512, 2, q)
        own, kld, same = evaluate(scorer, ch, DEFAULT_TOP_K, ref)
        ppl[q], mean_kld[q] = perplexity(own.nll)[0], kld.mean()
        exact = np.concatenate([exact_kld(base.chunk_logprobs(c), scorer.chunk_logprobs(c)) for c in ch])
        assert kld.mean() == pytest.approx(exact.mean(), rel=0.01)
    assert ppl["base"] < ppl["Q8_0"] < ppl["Q2_K"]
    assert mean_kld["Q8_0"] < mean_kld["Q2_K"]
