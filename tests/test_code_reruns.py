"""Code changes rerun exactly the jobs that run the changed code; a moved checkout and venv rerun nothing.

Both tests work on a copy of the repository whose library the Snakemake process imports (PYTHONPATH),
so that editing the copy is editing the code the jobs run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from conftest import ROOT, Workflow, tiny_config

pytestmark = pytest.mark.slow

PARAMS_CHANGED = "Params have changed since last execution"
INPUT_UPDATED = "Input files updated by another job"
RULE_COMMANDS = {"fetch_model": "fetch-model", "fetch_mmproj": "fetch-mmproj", "quantize": "quantize",
                 "host_record": "host-record", "bench": "bench", "quality_reference": "quality-reference",
                 "quality": "quality", "laws": "laws", "report": "report"}


def copy_repo(dest: Path) -> Path:
    dest.mkdir(parents=True)
    for part in ["Snakefile", "workflow", "config", "envs"]:
        src = ROOT / part
        if src.is_dir():
            shutil.copytree(src, dest / part, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, dest / part)
    return dest


class CopiedWorkflow(Workflow):
    """A workflow run with the Snakefile and the library of a copied repository."""

    def __init__(self, workdir: Path, repo: Path, python: str = sys.executable):
        super().__init__(workdir)
        self.repo, self.python = repo, python

    def run(self, *args: str, check: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
        cmd = [self.python, "-m", "snakemake", "--snakefile", str(self.repo / "Snakefile"), "--directory",
               str(self.workdir), "--configfile", str(self.configfile), "--replace-workflow-config", "--cores", "2",
               *args]
        env = {**os.environ, "PYTHONPATH": str(self.repo / "workflow"), **(env or {})}
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if check and proc.returncode != 0:
            raise AssertionError(f"snakemake failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
        return proc

    def rerun_reasons(self) -> dict[str, set[str]]:
        """The rules a dry run would run, each with the reasons Snakemake gives for its jobs."""
        out = self.run("--dry-run").stdout
        reasons: dict[str, set[str]] = {}
        rule = None
        for line in out.splitlines():
            if line.startswith("rule ") and line.endswith(":"):
                rule = line[5:-1]
            elif line.strip().startswith("reason:") and rule and rule != "all":
                reasons.setdefault(rule, set()).update(r.split(":")[0].strip() for r in line.split("reason:", 1)[1].split(";"))
        return reasons


def small_config() -> dict:
    """The tiny model with two schemes and the quality stage: every rule of a default run, quickly."""
    config = tiny_config(quality={"n_ctx": 64, "n_chunks": 1, "max_answer_tokens": 4, "semantic": False})
    config["schemes"] = {"F16": {"ftype": "F16"}, "Q8_0": {"ftype": "Q8_0"}}
    config["bench"].update(prompt_tokens=[16], repetitions=1, warmup=0)
    return config


def second_venv(where: Path) -> str:
    """A venv at another path whose packages are this one's (a .pth file): a rebuilt venv, cheaply."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(where)], check=True)
    site = next(where.glob("lib/python*/site-packages"))
    (site / "edgelaw-test.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return str(where / "bin" / "python")


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> CopiedWorkflow:
    """A copy of the repository and a finished small run with it (both tests start from one)."""
    base = tmp_path_factory.mktemp("finished")
    wf = CopiedWorkflow(base / "work", copy_repo(base / "repo"))
    wf.workdir.mkdir()
    wf.write_config(small_config())
    wf.run()
    return wf


def test_a_moved_checkout_with_another_venv_has_nothing_to_do(finished, tmp_path):
    moved = tmp_path / "b" / "work"
    # the results, the models and Snakemake's records, as a user copies a project folder
    shutil.copytree(finished.workdir, moved, symlinks=True)
    second = CopiedWorkflow(moved, copy_repo(tmp_path / "b" / "repo"), python=second_venv(tmp_path / "b" / "venv"))
    second.write_config(small_config())
    out = second.run("--dry-run")
    assert "Nothing to be done" in out.stdout + out.stderr, out.stdout[-3000:]
    assert second.dry_run_jobs() == {}


def check_edit(wf: CopiedWorkflow, rel: str, in_dag: set[str]) -> list[str]:
    """Edit one file of the copy's library, dry-run, restore it; return the rules expected to rerun."""
    from edgelaw.core import codedeps

    path = wf.repo / "workflow" / rel
    original = path.read_bytes()
    path.write_bytes(original + (b"\n# edited\n" if rel.endswith(".py") else b"\n"))
    try:
        reasons = wf.rerun_reasons()
    finally:
        path.write_bytes(original)
    expected = {rule for rule in in_dag if rel in codedeps.command_files(RULE_COMMANDS[rule])}
    changed = {rule for rule, why in reasons.items() if PARAMS_CHANGED in why}
    # Snakemake gives a job one reason: a rule below another rerun one says "input updated", not params.
    downstream = {rule for rule, why in reasons.items() if why == {INPUT_UPDATED}}
    assert changed <= expected <= set(reasons), f"editing {rel}: {reasons}, expected {sorted(expected)}"
    assert set(reasons) - changed <= downstream, f"editing {rel}: {reasons}, expected {sorted(expected)}"
    return sorted(expected)


def edit_sample(files: list[str], in_dag: set[str]) -> list[str]:
    """The files whose edits are tried: every file the derivation says no rule runs (a module imported
    in a way the import walk misses would sit there), one file of each other set of rules, and the
    modules whose users are known by design (checked below)."""
    from edgelaw.core import codedeps

    by_rules: dict[tuple, list[str]] = {}
    for rel in files:
        by_rules.setdefault(tuple(r for r in sorted(in_dag) if rel in codedeps.command_files(RULE_COMMANDS[r])), []).append(rel)
    sample = set(by_rules.pop((), [])) | {group[0] for group in by_rules.values()} | set(KNOWN)
    return sorted(sample)


KNOWN = {  # modules whose users are known by design
    "edgelaw/cli.py": None,  # every rule: every job runs through the command line
    "edgelaw/report/figures.py": ["report"],
    "edgelaw/laws/fit.py": ["laws", "report"],  # the figures draw the fitted curves
    "edgelaw/measure/sampler.py": ["bench", "host_record"],
    "edgelaw/quantize/ptq.py": ["quantize"],
    "edgelaw/data/eval.txt": ["quality", "quality_reference"],
    "edgelaw/schemas/config.schema.yaml": [],  # read at parse time: it changes params, not code
}


def test_editing_a_module_reruns_exactly_the_rules_that_import_it(finished, tmp_path):
    first = finished
    assert first.rerun_reasons() == {}
    in_dag = set(first.dry_run_jobs("--forceall")) - {"all"}
    assert in_dag == set(RULE_COMMANDS) - {"fetch_mmproj"}
    # A second finished copy, so that two dry runs go at once (one per core).
    second = CopiedWorkflow(tmp_path / "b" / "work", copy_repo(tmp_path / "b" / "repo"))
    shutil.copytree(first.workdir, second.workdir, symlinks=True)
    library = first.repo / "workflow"
    files = sorted(str(p.relative_to(library)) for p in (library / "edgelaw").rglob("*")
                   if p.is_file() and "__pycache__" not in p.parts)
    assert set(KNOWN) <= set(files)
    sample = edit_sample(files, in_dag)
    with ThreadPoolExecutor(2) as pool:
        halves = [pool.submit(lambda wf, part: {rel: check_edit(wf, rel, in_dag) for rel in part}, wf, sample[i::2])
                  for i, wf in enumerate((first, second))]
        table = {rel: rules for h in halves for rel, rules in h.result().items()}
    assert set(table) == set(sample)
    for rel, rules in KNOWN.items():
        assert table[rel] == (sorted(in_dag) if rules is None else rules), rel
    print("\n".join(f"{rel:45} {', '.join(rules) or '-'}" for rel, rules in sorted(table.items())))
