"""The library code each command runs, found by reading the source: an AST walk of edgelaw's imports.

A job runs `python -m edgelaw COMMAND`: `edgelaw.cli` and the module that implements COMMAND
(`edgelaw.cli.COMMANDS`). From those, every `import` and `from ... import` of an edgelaw module is
followed, at any depth in the file (a lazy import inside a function runs too), with the packages
above each module (their `__init__.py` run on import), every shipped data file the code reads as
`shipped("name")` (edgelaw.data), and the C source a module builds, which sits beside it under its
name (measure/ticker.py builds measure/ticker.c). The workflow puts the checksums of those files among each rule's
params, so editing a module reruns exactly the jobs whose command imports it, and a checkout that
moves, or a fresh clone with new file times, reruns nothing.
"""

from __future__ import annotations

import ast
import hashlib
from functools import lru_cache
from pathlib import Path

import edgelaw

PACKAGE = Path(edgelaw.__file__).resolve().parent
ROOT_NAME = "edgelaw"


def module_path(name: str) -> Path | None:
    """The file of module `name` (edgelaw.a.b: a/b.py or a/b/__init__.py), None if there is none."""
    parts = name.split(".")
    if parts[0] != ROOT_NAME:
        return None
    base = PACKAGE.joinpath(*parts[1:])
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _package_of(path: Path) -> str:
    rel = path.relative_to(PACKAGE).with_suffix("")
    parts = [ROOT_NAME, *rel.parts]
    return ".".join(parts[:-1]) if parts[-1] != "__init__" else ".".join(parts[:-1])


def _absolute(node: ast.ImportFrom, path: Path) -> str:
    if not node.level:
        return node.module or ""
    package = _package_of(path).split(".")
    base = package[: len(package) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


@lru_cache(maxsize=None)
def _direct(path: Path) -> tuple[frozenset[str], frozenset[str]]:
    """(edgelaw modules imported anywhere in the file, shipped data file names it reads)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    modules, data = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules.update(a.name for a in node.names if a.name.split(".")[0] == ROOT_NAME)
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node, path)
            if base.split(".")[0] != ROOT_NAME:
                continue
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                modules.add(sub if module_path(sub) else base)
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "shipped"
              and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            data.add(node.args[0].value)
    return frozenset(modules), frozenset(data)


def _with_parents(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]


def closure(modules: list[str]) -> list[str]:
    """Every file (relative to the package's folder, e.g. edgelaw/core/tables.py) that importing
    `modules` runs or reads, sorted."""
    seen: set[str] = set()
    files: set[Path] = set()
    todo = [p for m in modules for p in _with_parents(m)]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        path = module_path(name)
        if path is None:
            raise ValueError(f"{name} is imported but is not a module of {PACKAGE}")
        files.add(path)
        if path.with_suffix(".c").is_file():
            files.add(path.with_suffix(".c"))
        imported, data = _direct(path)
        files.update(PACKAGE / "data" / d for d in data)
        todo += [p for m in imported for p in _with_parents(m)]
    return sorted(str(f.relative_to(PACKAGE.parent)) for f in files)


def command_modules(command: str) -> list[str]:
    from edgelaw.cli import COMMANDS

    if command not in COMMANDS:
        raise ValueError(f"no edgelaw command {command!r}; known: {', '.join(COMMANDS)}")
    return ["edgelaw.cli", COMMANDS[command][0]]


def command_files(command: str) -> list[str]:
    return closure(command_modules(command))


def command_digest(command: str) -> dict[str, str]:
    """Each file `command` runs, with the first 16 hex digits of its sha256: a rule's `code` param."""
    return {rel: hashlib.sha256((PACKAGE.parent / rel).read_bytes()).hexdigest()[:16] for rel in command_files(command)}
