"""A GGUF against its record (base.json, {quant}.json): the bytes must still be the ones recorded.

A file in resources/ or results/ can be rewritten in place (by a user, an editor, a copy over it); a job
that read it anyway would measure another model under the recorded name. So every job that reads a base
or a scheme hashes it again first. Always: a size-and-time shortcut misses a rewrite within the clock's
tick of the first write, and the hash is seconds next to the job (quantizing hashed its base anyway).
"""

from __future__ import annotations

import json
import os

from edgelaw.core.errors import EdgelawError
from edgelaw.core.hashing import sha256_file


def check_recorded(gguf: str | os.PathLike, record_path: str | os.PathLike, what: str) -> str:
    """The sha256 of `gguf`, which must be the one its record holds; raise naming both if not."""
    try:
        recorded = json.loads(open(record_path).read()).get("sha256")
    except (OSError, ValueError) as exc:
        raise EdgelawError(f"{what}: cannot read its record {record_path} ({exc}); delete {gguf} and run again "
                           "to make both again") from None
    if not recorded:
        raise EdgelawError(f"{what}: its record {record_path} holds no sha256 of {gguf}; the rule that makes them "
                           "must write one (edgelaw.core.hashing.sha256_file, see docs/extending.md)")
    actual = sha256_file(gguf)
    if actual != recorded:
        raise EdgelawError(
            f"{what}: {gguf} is not the file its record {record_path} describes: recorded sha256 {recorded}, "
            f"its bytes now {actual} (it was rewritten in place); delete {gguf} and run again to fetch it again "
            "from its source (or make it again), so that the record and the file agree"
        )
    return actual
