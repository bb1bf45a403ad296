"""A command's console: `say` for progress (terminal and log), `detail` for the log file only, and
JSON arguments.

A rule runs `python -m edgelaw --log {log} ...`: llama.cpp's chatter goes to the log, while
progress and errors still reach the terminal.
"""

from __future__ import annotations

import sys
import time
from typing import Callable, TextIO

_log: TextIO | None = None


def open_log(path: str | None) -> None:
    global _log
    if path:
        _log = open(path, "a", buffering=1)


def _to_log(text: str) -> bool:
    """Append to the log; a log that cannot be written (a full disk) is dropped, said once on the
    terminal, and the command goes on: the log must not be what stops a measurement."""
    global _log
    try:
        _log.write(text)
        return True
    except OSError as exc:
        name, _log = _log.name, None
        print(f"edgelaw: cannot write the log {name} ({exc.strerror or exc}); details go to the terminal from "
              "here on", file=sys.stderr, flush=True)
        return False


def detail(msg: str) -> None:
    text = msg if msg.endswith("\n") else msg + "\n"
    if not (_log and _to_log(text)):
        sys.stderr.write(text)


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)
    if _log:
        _to_log(msg + "\n")


def json_arg(text: str):
    """An argparse type: a JSON value given on the command line (a config section, a model entry)."""
    import argparse
    import json

    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON ({exc.msg} at character {exc.pos})") from None


def every_so_often(line: Callable[[int, int], str], total: int, seconds: float = 10.0) -> Callable[[int], None]:
    """A progress callback for long work in steps: says `line(done, total)` at most once every `seconds`,
    and always at the last step."""
    last = [time.monotonic()]

    def report(done: int) -> None:
        now = time.monotonic()
        if now - last[0] > seconds or done == total:
            say(line(done, total))
            last[0] = now

    return report
