"""The quality stage's inputs: shipped defaults, user files, and the errors that name them."""

import json

import numpy as np
import pytest
from scipy import stats

from edgelaw.core.errors import EdgelawError
from edgelaw.data import shipped
from edgelaw.core.config import defaults
from edgelaw.quality.evalset import check_inputs, checksums, read_eval_text, read_prompts
from edgelaw.quality.semantic import trimmed


def test_shipped_files_are_valid_and_checksummed():
    prompts = read_prompts(shipped("prompts.jsonl"))
    assert len(prompts) == 24 and len({p.id for p in prompts}) == 24
    assert len(read_eval_text(shipped("eval.txt")).split()) > 3000
    sums = checksums(shipped("eval.txt"), shipped("prompts.jsonl"))
    assert all(len(v["sha256"]) == 64 for v in sums.values())


def test_user_files_are_used_and_checked(tmp_path):
    text, prompts = tmp_path / "my_eval.txt", tmp_path / "my_prompts.jsonl"
    text.write_text("some text " * 100)
    prompts.write_text(json.dumps({"id": "a", "prompt": "Why?", "reference": "Because."}) + "\n")
    inputs = check_inputs(defaults("quality", {"eval_text": str(text), "prompts": str(prompts), "semantic": True}))
    assert inputs == {"eval_text": [str(text)], "prompts": [str(prompts)]}
    assert check_inputs(defaults("quality", {"eval_text": str(text), "prompts": None, "semantic": False}))["prompts"] == []


@pytest.mark.parametrize(
    "content, message",
    [
        ("", "my_eval.txt is empty; point quality.eval_text at a text"),
        ("  \n\n", "my_eval.txt is empty"),
    ],
)
def test_empty_eval_text_names_the_file(tmp_path, content, message):
    path = tmp_path / "my_eval.txt"
    path.write_text(content)
    with pytest.raises(EdgelawError, match=message):
        check_inputs(defaults("quality", {"eval_text": str(path), "semantic": False}))


def test_missing_files_name_the_key_and_the_fix(tmp_path):
    with pytest.raises(EdgelawError, match=r"quality.eval_text: .*nope.txt does not exist; .*remove the key"):
        check_inputs(defaults("quality", {"eval_text": str(tmp_path / "nope.txt")}))
    with pytest.raises(EdgelawError, match=r"quality.prompts: .*nope.jsonl does not exist"):
        check_inputs(defaults("quality", {"prompts": str(tmp_path / "nope.jsonl"), "semantic": True}))


@pytest.mark.parametrize(
    "lines, message",
    [
        (['{"id": "a", "prompt": "Why?"}'], r"my.jsonl line 1 \(id 'a'\): no reference"),
        (['{"id": "a", "prompt": "Why?", "reference": "  "}'], r"line 1 \(id 'a'\): no reference"),
        (['# a comment', '{"id": "b", "reference": "x"}'], r"line 2 \(id 'b'\): no prompt"),
        (['{"id": "a", "prompt": "Why?", "reference": "x"}', "{oops"], r"line 2: not valid JSON"),
        (['{"id": "a", "prompt": "p", "reference": "r"}'] * 2, r"line 2: id 'a' appears twice"),
        (["# nothing here"], r"holds no prompts"),
    ],
)
def test_bad_prompt_sets_name_the_file_and_line(tmp_path, lines, message):
    path = tmp_path / "my.jsonl"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(EdgelawError, match=message):
        read_prompts(path)


def test_symmetric_trimming_drops_both_tails_equally():
    values = np.array([0.9, 0.1, 0.5, 0.6, 0.95, 0.55, 0.7, 0.4, 0.65, 0.3])
    mean, kept = trimmed(values, 0.1)
    assert mean == pytest.approx(stats.trim_mean(values, 0.1))
    assert not kept[1] and not kept[4] and kept.sum() == 8  # the lowest and the highest
    assert trimmed(values, 0.0)[0] == pytest.approx(values.mean())
    assert trimmed(values, 0.19)[1].sum() == 8 and trimmed(values, 0.09)[1].sum() == 10  # floor(fraction * n)
    with pytest.raises(EdgelawError, match="no similarities to average"):
        trimmed(np.array([]), 0.1)
