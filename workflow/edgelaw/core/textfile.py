"""A text file the user points a setting at (corpus, evaluation text, prompts), read strictly as UTF-8:
a binary file given by mistake is refused by name, neither decoded into garbage that would be measured
or scored, nor left to a UnicodeDecodeError."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

from edgelaw.core.errors import EdgelawError


def read_text(path: str | Path, key: str, keep_newlines: bool = False) -> str:
    """The file's UTF-8 text; line ends become \\n unless keep_newlines (then the bytes' own, as C reads them)."""
    try:
        with open(path, encoding="utf-8", newline="" if keep_newlines else None) as f:
            return f.read()
    except UnicodeDecodeError as exc:
        raise EdgelawError(f"{key}: {path} is not UTF-8 text (byte {exc.start}); point it at a text file") from None


def json_objects(path: str | Path, key: str, expected: str, comments: bool = False) -> Iterator[tuple[int, dict]]:
    """(line number, object) for each line of a JSON-lines file, blank lines (and # comments if asked)
    skipped; a line that is not a JSON object is refused with its number and `expected` (what it should be)."""
    for n, line in enumerate(read_text(path, key).splitlines(), start=1):
        if not line.strip() or (comments and line.lstrip().startswith("#")):
            continue
        where = f"{key}: {path} line {n}"
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise EdgelawError(f"{where}: not valid JSON ({exc.msg}); write one JSON object per line") from None
        if not isinstance(item, dict):
            raise EdgelawError(f"{where}: expected {expected}")
        yield n, item
