"""Each task's documents turned into requests as lm-evaluation-harness v0.4 (0.4.13) builds them.

Read from lm-eval's task YAMLs and `ConfigurableTask.fewshot_context`/`construct_requests`: a prompt is
the description, then per few-shot example `question + target_delimiter + answer + fewshot_delimiter`
(" " and "\\n\\n"), then the question; a multiple-choice request per choice is
(prompt, " " + choice). Winogrande (lm-eval's "multiple input") puts the choices in the contexts
instead: one context per option (the sentence up to the blank, filled), one shared continuation (the
rest of the sentence) -- its partial scoring. Few-shot examples are drawn by a Random(seed) shared by
the whole task in item order (lm-eval's sampler, seed 1234 by default); from the scored split itself,
lm-eval draws n + 1 and drops the scored item. MMLU takes its subject's dev split in order (first_n).
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field

from edgelaw.core.errors import EdgelawError
from edgelaw.quality.taskdata import TaskData

TARGET_DELIMITER, FEWSHOT_DELIMITER = " ", "\n\n"
FEWSHOT_SEED = 1234  # lm-eval's default --fewshot_seed

# gsm8k.yaml: generation_kwargs.until, and lm-eval's default max_gen_toks
GSM8K_UNTIL = ("Question:", "</s>", "<|im_end|>")
MAX_GEN_TOKS = 256
# lm-eval's num_fewshot per task where it is not 0 (gsm8k.yaml): the shots of a task whose config says null
LM_EVAL_SHOTS = {"gsm8k": 5}


def default_shots(task: str) -> int:
    return LM_EVAL_SHOTS.get(task, 0)


@dataclass
class Item:
    """One scored document: multiple choice (contexts x continuations) or a generation."""

    task: str
    index: int  # the document's position in its data set
    contexts: list[str]
    continuations: list[str]  # one per choice; winogrande: one per context
    gold: int = -1
    choices: list[str] = field(default_factory=list)  # lm-eval's choice texts (acc_norm divides by their length)
    target: str = ""  # generation tasks: the reference answer
    until: tuple[str, ...] = ()

    @property
    def pairs(self) -> list[tuple[str, str]]:
        if len(self.contexts) == 1:
            return [(self.contexts[0], c) for c in self.continuations]
        return list(zip(self.contexts, self.continuations))


def _hellaswag_clean(text: str) -> str:
    # lm-eval's hellaswag utils.preprocess: WikiHow's bracketed artifacts removed
    text = text.strip().replace(" [title]", ". ")
    text = re.sub("\\[.*?\\]", "", text)
    return text.replace("  ", " ")


def _mc(task: str, doc: dict) -> tuple[str, list[str], int]:
    """(question text, choices, gold index) of a multiple-choice document."""
    if task in ("arc_easy", "arc_challenge"):
        return f"Question: {doc['question']}\nAnswer:", list(doc["choices"]["text"]), doc["choices"]["label"].index(doc["answerKey"])
    if task == "hellaswag":
        ctx = doc["ctx_a"] + " " + doc["ctx_b"].capitalize()
        return (_hellaswag_clean(doc["activity_label"] + ": " + ctx), [_hellaswag_clean(e) for e in doc["endings"]],
                int(doc["label"]))
    if task == "piqa":
        return f"Question: {doc['goal']}\nAnswer:", [doc["sol1"], doc["sol2"]], int(doc["label"])
    if task == "mmlu":
        c = doc["choices"]
        q = f"{doc['question'].strip()}\nA. {c[0]}\nB. {c[1]}\nC. {c[2]}\nD. {c[3]}\nAnswer:"
        return q, ["A", "B", "C", "D"], int(doc["answer"])
    raise AssertionError(task)


def _winogrande(doc: dict) -> tuple[list[str], str, int]:
    """(the sentence up to the blank filled with each option, the rest of the sentence, gold index)."""
    idx = doc["sentence"].index("_")
    partials = [doc["sentence"][:idx] + o for o in (doc["option1"], doc["option2"])]
    return partials, doc["sentence"][idx + 1:].strip(), {"1": 0, "2": 1}[doc["answer"]]


def description(task: str, doc: dict) -> str:
    if task == "mmlu":
        return f"The following are multiple choice questions (with answers) about {doc['subject'].replace('_', ' ')}.\n\n"
    return ""


def shot(task: str, doc: dict) -> str:
    """One solved example: question, target delimiter, answer, few-shot delimiter."""
    if task == "winogrande":
        partials, rest, gold = _winogrande(doc)
        q, a = partials[gold], rest
    elif task == "gsm8k":
        q, a = f"Question: {doc['question']}\nAnswer:", doc["answer"]
    else:
        q, choices, gold = _mc(task, doc)
        a = choices[gold]
    return q + TARGET_DELIMITER + a + FEWSHOT_DELIMITER


def item(task: str, index: int, doc: dict, prefix: str) -> Item:
    """The requests of one document after `prefix` (description and few-shot examples)."""
    if task == "winogrande":
        partials, rest, gold = _winogrande(doc)
        return Item(task, index, [prefix + p for p in partials], [TARGET_DELIMITER + rest] * 2, gold, partials)
    if task == "gsm8k":
        return Item(task, index, [prefix + f"Question: {doc['question']}\nAnswer:"], [], target=doc["answer"],
                    until=GSM8K_UNTIL)
    q, choices, gold = _mc(task, doc)
    return Item(task, index, [prefix + q], [TARGET_DELIMITER + c for c in choices], gold, choices)


def sample_indices(n: int, items: int | None, seed: int) -> list[int]:
    """All documents, or a seeded sample of `items` of them in their data set's order."""
    if items is None or items >= n:
        return list(range(n))
    return sorted(random.Random(seed).sample(range(n), items))


def build(data: TaskData, indices: list[int], shots: int, seed: int = FEWSHOT_SEED) -> list[Item]:
    """The items of `data.docs[indices]` with `shots` few-shot examples each, as lm-eval lays them out."""
    rnd = random.Random(seed)
    out = []
    for i in indices:
        doc = data.docs[i]
        try:
            if shots == 0:
                examples = []
            elif data.fewshot is not None:  # MMLU: the subject's dev split, first n
                pool = [d for d in data.fewshot if d.get("subject") == doc.get("subject")]
                if len(pool) < shots:
                    raise EdgelawError(f"tasks.{data.name}: {shots} shots asked, the few-shot split has {len(pool)}; lower shots")
                examples = pool[:shots]
            else:
                if len(data.docs) <= shots:
                    raise EdgelawError(f"tasks.{data.name}: {shots} shots need more than {len(data.docs)} documents; lower shots")
                examples = [d for d in rnd.sample(data.docs, shots + 1) if d != doc][:shots]
            prefix = description(data.name, doc) + "".join(shot(data.name, d) for d in examples)
            out.append(item(data.name, i, doc, prefix))
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise EdgelawError(f"tasks.{data.name}: document {i} does not have the shape of {data.name} "
                               f"({type(exc).__name__}: {exc}); check the fields of the task's documents") from None
    return out
