"""How the workflow's jobs reach the library: every job's command is `python -m edgelaw COMMAND`.

`python` must be an interpreter that imports the same library the workflow imported (the code whose
checksums are the rules' `code` params). Without conda it is the interpreter running Snakemake: its
folder goes first on the jobs' PATH, as an activated venv has it. Under `--sdm conda` it is the rule
environment's, with the library's folder on PYTHONPATH: a conda environment cannot install a checkout
whose path it does not know (install edgelaw with `pip install -e .` for that). Neither path is in a
rule's command or params, so a moved checkout or a venv rebuilt elsewhere reruns nothing.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import edgelaw


def _prepend(variable: str, folder: str) -> None:
    rest = [p for p in os.environ.get(variable, "").split(os.pathsep) if p and p != folder]
    os.environ[variable] = os.pathsep.join([folder, *rest])


def prepare_environment(conda: bool) -> None:
    """Set this process's environment, which Snakemake's jobs inherit, so `python -m edgelaw` works."""
    if conda:
        _prepend("PYTHONPATH", str(Path(edgelaw.__file__).resolve().parent.parent))
    else:
        _prepend("PATH", os.path.dirname(sys.executable))
