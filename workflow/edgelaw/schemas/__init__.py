"""JSON schemas (YAML) of the config and of device profiles, shipped as package data."""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def schema_path(name: str) -> Path:
    """`config` or `device`."""
    return Path(str(resources.files(__name__).joinpath(f"{name}.schema.yaml")))
