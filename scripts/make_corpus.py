"""Regenerate the shipped text corpora from CPython's own documentation (PSF License).

The prose of the Python language reference ships with every CPython as `pydoc_data.topics`.
corpus.txt (prompts, synthetic tokenizer) and eval.txt (quality evaluation) use disjoint sections.
Run: python scripts/make_corpus.py   (the output is committed; this only documents its origin).
"""

import re
import sys
from pathlib import Path

from pydoc_data.topics import topics

CORPUS_TOPICS = ["execmodel", "naming", "import", "objects", "customization", "attribute-access"]
EVAL_TOPICS = ["compound", "types"]
DATA = Path(__file__).resolve().parent.parent / "workflow" / "edgelaw" / "data"


def prose(text: str) -> str:
    """Keep running paragraphs; drop code, tables, headings and underlines."""
    paragraphs = []
    for block in re.split(r"\n\s*\n", text):
        lines = block.splitlines()
        if not lines or any(l.startswith((" ", ">>>", "+", "|", "*", "=", "-", "~")) for l in lines):
            continue
        para = " ".join(l.strip() for l in lines)
        if len(para) > 120 and para.endswith((".", ":")):
            paragraphs.append(para)
    return "\n\n".join(paragraphs)


def build(names: list[str]) -> str:
    return "\n\n".join(prose(topics[n]) for n in names) + "\n"


if __name__ == "__main__":
    (DATA / "corpus.txt").write_text(build(CORPUS_TOPICS))
    (DATA / "eval.txt").write_text(build(EVAL_TOPICS))
    print(f"python {sys.version.split()[0]}", file=sys.stderr)
