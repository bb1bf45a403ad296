"""docs/contracts.md lists exactly the columns of every schema in edgelaw.core.tables, in order, with their types.

A table's section is a `## ` heading followed by a line naming its schema ("Schema `RUNS` in
`edgelaw.core.tables`") and one or more markdown tables `| column | type | meaning |` with one row per
column, the name in backticks. A section may start from another schema's documented columns ("every
column of `TRADEOFFS`") and list only the columns it adds.
"""

from __future__ import annotations

import re
from pathlib import Path

import pyarrow as pa
import pytest

from edgelaw.core import tables

DOC = Path(__file__).resolve().parent.parent / "docs" / "contracts.md"

# The one mapping from arrow types to the type words of the docs.
TYPE_WORDS = {pa.string(): "string", pa.float64(): "float", pa.int64(): "int", pa.bool_(): "bool"}

# The schemas this test was written with: discovery must find at least these.
KNOWN = {"SAMPLES", "RUNS", "QUALITY", "ANSWERS", "TASKS", "TASK_ITEMS", "LAWS", "TRADEOFFS", "COMPARISONS",
         "CROSS_DEVICE_TRADEOFFS", "CROSS_DEVICE_LAWS"}

MARKER = re.compile(r"^Schema `([A-Za-z_][A-Za-z0-9_]*)` in `edgelaw\.core\.tables`", re.M)
INHERITS = re.compile(r"every column of `([A-Za-z_][A-Za-z0-9_]*)`")
HEADER = ["column", "type", "meaning"]
SEPARATOR = re.compile(r"^:?-{3,}:?$")
NAME = re.compile(r"^`([A-Za-z_][A-Za-z0-9_]*)`$")


def schemas() -> dict[str, pa.Schema]:
    """Every pa.Schema attribute of edgelaw.core.tables, by name."""
    return {name: getattr(tables, name) for name in dir(tables) if isinstance(getattr(tables, name), pa.Schema)}


def _cells(line: str) -> list[str]:
    inner = line.strip()
    inner = inner[1:-1] if inner.endswith("|") and len(inner) > 1 else inner[1:]
    return [c.strip() for c in re.split(r"(?<!\\)\|", inner)]


def _type(cell: str, where: str) -> tuple[str, bool]:
    """A type cell, e.g. `float, null`: the type word and whether the column may be null."""
    parts = [p.strip() for p in cell.split(",")]
    if len(parts) > 2 or (len(parts) == 2 and parts[1] != "null"):
        raise ValueError(f"{where}: type {cell!r} is not 'WORD' or 'WORD, null'")
    return parts[0], len(parts) == 2


def sections(text: str) -> list[dict]:
    """The `## ` sections of the document: heading, schema named (or None), inherited schema and rows.

    A row is (column, type word, nullable). A markdown row that is not a header, a separator or a
    well-formed column row is an error, so that a malformed table cannot be skipped silently.
    """
    out = []
    for chunk in re.split(r"^(?=## )", text, flags=re.M):
        if not chunk.startswith("## "):
            continue
        heading, _, body = chunk.partition("\n")
        heading = heading[3:].strip()
        markers = MARKER.findall(body)
        if len(markers) > 1:
            raise ValueError(f"section {heading!r} names several schemas {markers}; give each its own section")
        inherits = INHERITS.findall(body)
        if len(inherits) > 1:
            raise ValueError(f"section {heading!r} starts from several schemas {inherits}")
        rows, header_seen = [], False
        for line in body.splitlines():
            if not line.lstrip().startswith("|"):
                continue
            cells = _cells(line)
            where = f"section {heading!r}, line {line.strip()!r}"
            if [c.lower() for c in cells] == HEADER:
                header_seen = True
                continue
            if all(SEPARATOR.match(c) for c in cells):
                continue
            if not header_seen:
                raise ValueError(f"{where}: a table row before a `| column | type | meaning |` header")
            if len(cells) != 3:
                raise ValueError(f"{where}: {len(cells)} cells, expected column | type | meaning")
            name = NAME.match(cells[0])
            if not name:
                raise ValueError(f"{where}: the first cell must be one column name in backticks")
            word, nullable = _type(cells[1], where)
            rows.append((name.group(1), word, nullable))
        out.append({"heading": heading, "schema": markers[0] if markers else None,
                    "inherits": inherits[0] if inherits else None, "rows": rows})
    return out


def documented(text: str) -> dict[str, dict]:
    """Schema name -> {heading, rows}, with inherited rows in front of a section's own."""
    by_schema = {}
    for s in sections(text):
        if s["schema"] is None:
            continue
        if s["schema"] in by_schema:
            raise ValueError(f"schema {s['schema']} is documented twice: {by_schema[s['schema']]['heading']!r} "
                             f"and {s['heading']!r}")
        by_schema[s["schema"]] = s
    resolved = {}

    def rows(name: str, seen: tuple = ()) -> list[tuple[str, str, bool]]:
        s = by_schema[name]
        if s["inherits"] is None:
            return s["rows"]
        if s["inherits"] in seen or s["inherits"] not in by_schema:
            raise ValueError(f"section {s['heading']!r} starts from {s['inherits']}, which has no section "
                             f"(or the references loop)")
        return rows(s["inherits"], seen + (name,)) + s["rows"]

    for name, s in by_schema.items():
        resolved[name] = {"heading": s["heading"], "rows": rows(name)}
    return resolved


def problems(name: str, schema: pa.Schema, docs: dict[str, dict]) -> list[str]:
    """What the docs get wrong about one schema (empty when they match it exactly)."""
    if name not in docs:
        return [f"schema {name} (edgelaw.core.tables) has no section in docs/contracts.md; document it: a section "
                f"whose first line is 'Schema `{name}` in `edgelaw.core.tables`' and a `| column | type | meaning |` "
                f"table with one row per column"]
    heading, rows = docs[name]["heading"], docs[name]["rows"]
    found = [r[0] for r in rows]
    out = []
    extra, missing = sorted(set(found) - set(schema.names)), sorted(set(schema.names) - set(found))
    if extra:
        out.append(f"{name} ({heading!r}): documented but not in the schema: {extra}")
    if missing:
        out.append(f"{name} ({heading!r}): in the schema but not documented: {missing}")
    if len(found) != len(set(found)):
        out.append(f"{name} ({heading!r}): columns documented twice {sorted({c for c in found if found.count(c) > 1})}")
    if not out and found != schema.names:
        i = next(i for i, (a, b) in enumerate(zip(found, schema.names)) if a != b)
        out.append(f"{name} ({heading!r}): the documented order differs from the schema's at column {i}: "
                   f"documented {found[i:i + 3]}..., schema {schema.names[i:i + 3]}...")
    for column, word, _ in rows:
        if column not in schema.names:
            continue
        arrow = schema.field(column).type
        if arrow not in TYPE_WORDS:
            out.append(f"{name}.{column}: arrow type {arrow} has no type word; add it to TYPE_WORDS in this test")
        elif TYPE_WORDS[arrow] != word:
            out.append(f"{name}.{column} ({heading!r}): documented as {word!r}, the schema has {arrow} "
                       f"({TYPE_WORDS[arrow]!r})")
    return out


@pytest.fixture(scope="module")
def docs() -> dict[str, dict]:
    return documented(DOC.read_text(encoding="utf-8"))


def test_discovery_finds_the_known_schemas():
    found = schemas()
    assert KNOWN <= set(found), f"edgelaw.core.tables lacks {sorted(KNOWN - set(found))}"
    assert all(len(s) > 0 for s in found.values())


@pytest.mark.parametrize("name", sorted(schemas()))
def test_docs_list_the_schema_columns(name, docs):
    found = problems(name, schemas()[name], docs)
    assert not found, "\n".join(found)


def test_every_schema_section_documents_a_schema(docs):
    unknown = sorted(set(docs) - set(schemas()))
    assert not unknown, f"docs/contracts.md documents schemas edgelaw.core.tables does not have: {unknown}"


def test_no_column_table_outside_a_schema_section():
    orphans = [s["heading"] for s in sections(DOC.read_text(encoding="utf-8")) if s["rows"] and s["schema"] is None]
    assert not orphans, f"sections with column tables but no 'Schema `NAME` in `edgelaw.core.tables`' line: {orphans}"


def test_the_parser_finds_every_section_and_row(docs):
    """A parser that found nothing would make the checks above vacuous: count what it found."""
    expected = schemas()
    assert len(docs) == len(expected)
    assert sum(len(d["rows"]) for d in docs.values()) == sum(len(s) for s in expected.values())
    # The samples table, as written: every column, two of them nullable int/float.
    samples = docs["SAMPLES"]["rows"]
    assert [r[0] for r in samples][:2] == ["run_id", "t_s"] and len(samples) == len(schemas()["SAMPLES"])
    assert ("rss_bytes", "int", True) in samples and ("phase", "string", False) in samples
    # The runs section spans two tables (the resolution sweep's columns in the second).
    assert [r[0] for r in docs["RUNS"]["rows"]][-2:] == ["clamp_pixels", "encode_s"]
    # The cross-device tables start from the device's table.
    assert [r[0] for r in docs["CROSS_DEVICE_LAWS"]["rows"]] == [*[r[0] for r in docs["LAWS"]["rows"]], "device"]


SAMPLE_DOC = """# Title

Intro with | a pipe that is not a table.

## First: `a/{x}.parquet`

Schema `FIRST` in `edgelaw.core.tables`. Prose.

| column | type | meaning |
| --- | --- | --- |
| `a` | string | one \\| two |
| `b` | float, null | b |

More prose.

| column | type | meaning |
| --- | --- | --- |
| `c` | bool | c |

## Second: `b.parquet`

Schema `SECOND` in `edgelaw.core.tables`: every column of `FIRST`, then:

| column | type | meaning |
| --- | --- | --- |
| `d` | int | d |

## Not a table

Prose only.
"""

FIRST = pa.schema([("a", pa.string()), ("b", pa.float64()), ("c", pa.bool_())])
SECOND = pa.schema([*FIRST, pa.field("d", pa.int64())])


def test_parser_on_a_small_document():
    found = sections(SAMPLE_DOC)
    assert [s["heading"] for s in found] == ["First: `a/{x}.parquet`", "Second: `b.parquet`", "Not a table"]
    assert found[0]["rows"] == [("a", "string", False), ("b", "float", True), ("c", "bool", False)]
    assert found[1]["inherits"] == "FIRST" and found[2]["schema"] is None and found[2]["rows"] == []
    docs = documented(SAMPLE_DOC)
    assert [r[0] for r in docs["SECOND"]["rows"]] == ["a", "b", "c", "d"]
    assert problems("FIRST", FIRST, docs) == [] and problems("SECOND", SECOND, docs) == []


def test_problems_are_reported():
    docs = documented(SAMPLE_DOC)
    missing = problems("THIRD", FIRST, docs)
    assert len(missing) == 1 and "THIRD" in missing[0] and "document it" in missing[0]
    reordered = problems("FIRST", pa.schema([FIRST.field("b"), FIRST.field("a"), FIRST.field("c")]), docs)
    assert len(reordered) == 1 and "order" in reordered[0]
    extra = problems("FIRST", pa.schema([*FIRST, pa.field("e", pa.int64())]), docs)
    assert len(extra) == 1 and "not documented: ['e']" in extra[0]
    fewer = problems("FIRST", pa.schema([FIRST.field("a"), FIRST.field("c")]), docs)
    assert len(fewer) == 1 and "not in the schema: ['b']" in fewer[0]
    retyped = problems("FIRST", pa.schema([FIRST.field("a"), pa.field("b", pa.int64()), FIRST.field("c")]), docs)
    assert len(retyped) == 1 and "FIRST.b" in retyped[0] and "'float'" in retyped[0]
    untyped = problems("FIRST", pa.schema([FIRST.field("a"), pa.field("b", pa.int32()), FIRST.field("c")]), docs)
    assert len(untyped) == 1 and "TYPE_WORDS" in untyped[0]


@pytest.mark.parametrize("row, message", [
    ("| `a` (and _x) | string | grouped |", "backticks"),
    ("| a, b | string | grouped |", "backticks"),
    ("| `a` | string |", "cells"),
    ("| `a` | float, maybe | x |", "WORD, null"),
])
def test_malformed_rows_are_errors(row, message):
    doc = f"## T\n\nSchema `T` in `edgelaw.core.tables`.\n\n| column | type | meaning |\n| --- | --- | --- |\n{row}\n"
    with pytest.raises(ValueError, match=re.escape(message)):
        sections(doc)


def test_a_schema_documented_twice_is_an_error():
    with pytest.raises(ValueError, match="documented twice"):
        documented(SAMPLE_DOC + "\n## Again\n\nSchema `FIRST` in `edgelaw.core.tables`.\n")
