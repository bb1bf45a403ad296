"""The code each command runs, as the workflow derives it: against Python's own imports, and the
import layering (stages import the core, never the reverse)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from edgelaw.cli import COMMANDS
from edgelaw.core import codedeps

STAGES = ["sources", "quantize", "measure", "quality", "laws", "report", "archive"]
# Which stage packages a stage may import besides the core (the flow: fetch -> quantize -> measure,
# quality -> laws -> report -> archive).
MAY_IMPORT = {"sources": set(), "quantize": set(), "measure": set(), "quality": set(), "laws": set(),
              "report": {"laws"}, "archive": {"laws", "report"}}


def imported_at_load(module: str) -> set[str]:
    """The edgelaw modules Python loads for `import edgelaw.cli, <module>` in a fresh process."""
    code = (f"import sys, importlib; import edgelaw.cli; importlib.import_module({module!r}); "
            "print(__import__('json').dumps(sorted(m for m in sys.modules if m.startswith('edgelaw'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(json.loads(out.stdout))


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_module_python_loads_for_a_command_is_in_its_code(command):
    files = set(codedeps.command_files(command))
    for module in imported_at_load(COMMANDS[command][0]):
        path = codedeps.module_path(module)
        assert str(path.relative_to(codedeps.PACKAGE.parent)) in files, f"{command}: {module} is loaded but not in its code"


def test_lazy_imports_and_shipped_data_are_followed():
    files = codedeps.command_files("bench")
    # imported inside functions only (the resolution workload's projector, the power sources)
    assert "edgelaw/measure/vision.py" in files and "edgelaw/measure/images.py" in files
    assert "edgelaw/data/corpus.txt" in files  # shipped("corpus.txt")
    assert "edgelaw/quality/jobs.py" not in files and "edgelaw/report/figures.py" not in files
    quality = codedeps.command_files("quality")
    assert {"edgelaw/data/eval.txt", "edgelaw/data/prompts.jsonl"} <= set(quality)
    assert "edgelaw/data/corpus.txt" not in quality


def test_the_digest_changes_with_the_text_of_a_file(tmp_path, monkeypatch):
    before = codedeps.command_digest("laws")
    assert set(before) == set(codedeps.command_files("laws"))
    assert all(len(h) == 16 for h in before.values())
    assert codedeps.command_digest("laws") == before


def test_an_unknown_command_is_named():
    with pytest.raises(ValueError, match="no edgelaw command 'nope'"):
        codedeps.command_files("nope")


def _package(rel: str) -> str:
    parts = rel.split("/")
    return parts[1] if len(parts) > 2 else ""


def test_imports_run_from_the_stages_down_to_the_core():
    for path in sorted(codedeps.PACKAGE.rglob("*.py")):
        rel = str(path.relative_to(codedeps.PACKAGE.parent))
        here = _package(rel)
        imported, _ = codedeps._direct(path)
        targets = {_package(str(codedeps.module_path(m).relative_to(codedeps.PACKAGE.parent))) for m in imported}
        targets -= {here, "", "core", "data", "schemas"}
        if here in ("core", "data", "schemas"):
            assert not targets, f"{rel}: the core imports the stage(s) {sorted(targets)}"
        elif here in MAY_IMPORT:
            assert targets <= MAY_IMPORT[here], f"{rel}: stage {here} imports {sorted(targets - MAY_IMPORT[here])}"
