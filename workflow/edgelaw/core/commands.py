"""Commands of the shared core: check a config file, print this host's fingerprint."""

from __future__ import annotations

import json


def args_validate_config(p) -> None:
    p.add_argument("config", help="a config YAML file")


def cmd_validate_config(a) -> None:
    from edgelaw.core.config import load_config_file, validate

    validate(load_config_file(a.config))
    print(f"{a.config}: valid")


def args_host(p) -> None:
    pass


def cmd_host(a) -> None:
    from edgelaw.core.devices import fingerprint

    print(json.dumps(fingerprint(), indent=2))
