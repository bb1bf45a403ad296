"""Two output streams: `say` for the console (and the log), `detail` for the log file only.

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
