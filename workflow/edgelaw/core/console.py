"""A command's console: `say` for progress (terminal and log), `detail` for the log file only, and
JSON arguments.

A rule runs `python -m edgelaw --log {log} ...`: llama.cpp's chatter goes to the log, while
progress and errors still reach the terminal.
"""

from __future__ import annotations

import sys
from typing import TextIO

_log: TextIO | None = None


def open_log(path: str | None) -> None:
    global _log
    if path:
        _log = open(path, "a", buffering=1)


def detail(msg: str) -> None:
    (_log or sys.stderr).write(msg if msg.endswith("\n") else msg + "\n")


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)
    if _log:
        _log.write(msg + "\n")


def json_arg(text: str):
    """An argparse type: a JSON value given on the command line (a config section, a model entry)."""
    import argparse
    import json

    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON ({exc.msg} at character {exc.pos})") from None
