"""A text file the user points a setting at (corpus, evaluation text, prompts), read strictly as UTF-8:
a binary file given by mistake is refused by name, neither decoded into garbage that would be measured
or scored, nor left to a UnicodeDecodeError."""

from __future__ import annotations

from pathlib import Path

from edgelaw.core.errors import EdgelawError


def read_text(path: str | Path, key: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise EdgelawError(f"{key}: {path} is not UTF-8 text (byte {exc.start}); point it at a text file") from None
