"""Files shipped with edgelaw: the bench corpus, the evaluation text, the prompt set, the BPE vocabulary.

Code reads them through `shipped("name")` with the name written out: the workflow's code
dependencies (edgelaw.core.codedeps) find those calls, so editing a shipped file reruns exactly the
jobs whose code reads it.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def shipped(name: str) -> Path:
    return Path(str(resources.files(__name__).joinpath(name)))
