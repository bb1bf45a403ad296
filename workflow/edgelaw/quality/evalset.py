"""The quality stage's inputs: an evaluation text and a prompt set with reference answers.

Both default to files shipped in `edgelaw/data`; a user points `quality.eval_text` and
`quality.prompts` at their own. Every problem names the file and what to do about it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edgelaw.core.errors import EdgelawError
from edgelaw.core.textfile import json_objects, read_text
from edgelaw.core.hashing import sha256_file
from edgelaw.data import shipped


def eval_text_path(configured: str | None) -> Path:
    if configured is None:
        return shipped("eval.txt")
    return _existing(configured, "quality.eval_text", "a plain-text file of a few thousand tokens")


def prompts_path(configured: str | None) -> Path:
    if configured is None:
        return shipped("prompts.jsonl")
    return _existing(configured, "quality.prompts", "a JSON-lines file of prompts with references")


def _existing(configured: str, key: str, what: str) -> Path:
    path = Path(configured)
    if not path.is_file():
        raise EdgelawError(f"{key}: {path} does not exist; point it at {what}, or remove the key to use the shipped one")
    return path


def read_eval_text(path: Path) -> str:
    text = read_text(path, "quality.eval_text", keep_newlines=True)  # as llama-perplexity reads it
    if not text.strip():
        raise EdgelawError(
            f"quality.eval_text: {path} is empty; point quality.eval_text at a text of a few thousand tokens"
        )
    return text


@dataclass(frozen=True)
class Prompt:
    id: str
    prompt: str
    reference: str


def read_prompts(path: Path) -> list[Prompt]:
    """One JSON object per line with `id`, `prompt` and `reference` (blank lines and # comments skipped)."""
    prompts: list[Prompt] = []
    seen: set[str] = set()
    for n, item in json_objects(path, "quality.prompts", 'an object {"id", "prompt", "reference"}', comments=True):
        where = f"quality.prompts: {path} line {n}"
        pid = str(item.get("id", n))
        for key in ("prompt", "reference"):
            value = item.get(key)
            if not isinstance(value, str) or not value.strip():
                raise EdgelawError(
                    f"{where} (id {pid!r}): no {key}; every prompt needs a non-empty \"prompt\" and \"reference\""
                )
        if pid in seen:
            raise EdgelawError(f"{where}: id {pid!r} appears twice; give every prompt its own id")
        seen.add(pid)
        prompts.append(Prompt(pid, item["prompt"].strip(), item["reference"].strip()))
    if not prompts:
        raise EdgelawError(f"quality.prompts: {path} holds no prompts; add lines like "
                           '{"id": "q1", "prompt": "...", "reference": "..."}')
    return prompts


def checksums(eval_text: Path, prompts: Path | None) -> dict:
    """What goes into the results' provenance: each input file with its sha256."""
    out = {"eval_text": {"path": str(eval_text), "sha256": sha256_file(eval_text)}}
    if prompts is not None:
        out["prompts"] = {"path": str(prompts), "sha256": sha256_file(prompts)}
    return out


def input_paths(eval_text: str | None, prompts: str | None, semantic: bool) -> tuple[Path, Path | None]:
    """The evaluation text and, when answers are scored, the prompt set (shipped ones unless configured)."""
    return eval_text_path(eval_text), (prompts_path(prompts) if semantic else None)


def check_inputs(section: dict) -> dict[str, list[str]]:
    """Read the config's quality files once up front (errors name the file) and return the user's own
    ones as rule inputs, so that editing either reruns the quality jobs. The shipped files are part of
    the stage's code (edgelaw.data): their checksums are among the rules' code params already."""
    eval_text, prompts = input_paths(section["eval_text"], section["prompts"], section["semantic"])
    read_eval_text(eval_text)
    if prompts is not None:
        read_prompts(prompts)
    return {"eval_text": [section["eval_text"]] if section["eval_text"] else [],
            "prompts": [section["prompts"]] if section["prompts"] and section["semantic"] else []}
