"""Every schema change is backward and forward compatible: old readers read new messages, and the reverse.

Each earlier version kept in ``schemas/history`` is paired with the current schema of its record;
a record filled in from the writer's schema (every field set, arrays and maps with one item, so
that nested records are exercised) is written with one and read with the other.
"""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from importlib import resources
from typing import Any

import pytest
from fastavro import parse_schema, schemaless_reader, schemaless_writer

from mugpos import schemas

PRIMITIVES: dict[str, Any] = {"string": "x", "int": 7, "long": 7, "float": 1.5, "double": 1.5, "boolean": True}


def _history() -> list[tuple[str, dict[str, Any]]]:
    folder = resources.files(schemas).joinpath("history")
    out = []
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".avsc"):
            out.append((entry.name, json.loads(entry.read_text(encoding="utf-8"))))
    return out


def sample(schema: Any, names: dict[str, Any], depth: int = 0) -> Any:
    """A value of ``schema`` with every field present (no defaults relied upon); a recursive
    type (a condition's children) is filled to a few levels, then its arrays are empty."""
    if isinstance(schema, str):
        if schema in PRIMITIVES:
            return PRIMITIVES[schema]
        if schema == "null":
            return None
        return sample(names[schema.removeprefix(schemas.NAMESPACE + ".")], names, depth + 1)
    if isinstance(schema, list):  # a union: its first non-null branch
        branch = next((b for b in schema if b != "null"), "null")
        return sample(branch, names, depth)
    kind = schema["type"]
    if "name" in schema and kind in ("record", "enum", "fixed"):
        names.setdefault(schema["name"], schema)
    if kind == "record":
        return {f["name"]: sample(f["type"], names, depth) for f in schema["fields"]}
    if kind == "enum":
        return schema["symbols"][0]
    if kind == "array":
        return [sample(schema["items"], names, depth)] if depth < 3 else []
    if kind == "map":
        return {"k": sample(schema["values"], names, depth)}
    if schema.get("logicalType") in ("timestamp-millis", "timestamp-micros"):
        return datetime(2026, 12, 2, 8, 0, tzinfo=UTC)
    return sample(kind, names, depth)


def roundtrip(record: Any, writer: dict[str, Any], reader: dict[str, Any]) -> Any:
    buffer = io.BytesIO()
    schemaless_writer(buffer, parse_schema(writer), record)
    buffer.seek(0)
    return schemaless_reader(buffer, parse_schema(writer), parse_schema(reader))


@pytest.mark.parametrize(("name", "old"), _history(), ids=[n for n, _ in _history()])
def test_new_readers_read_old_messages_and_old_readers_read_new_ones(name: str, old: dict[str, Any]) -> None:
    current = schemas.schema_json(old["name"])
    old_record, new_record = sample(old, {}), sample(current, {})
    read_new = roundtrip(old_record, old, current)  # a new reader, an old message
    added = {f["name"] for f in current["fields"]} - {f["name"] for f in old["fields"]}
    for field in current["fields"]:
        if field["name"] in added:
            assert "default" in field, f"{field['name']} was added without a default"
            assert read_new[field["name"]] == field["default"]
        else:
            assert field["name"] in read_new
    read_old = roundtrip(new_record, current, old)  # an old reader, a new message
    assert set(read_old) == {f["name"] for f in old["fields"]}
    for field in old["fields"]:
        if not isinstance(new_record.get(field["name"]), dict | list):
            assert read_old[field["name"]] == new_record[field["name"]]


def test_the_latest_history_version_of_position_events_is_the_one_before_zones() -> None:
    """Messages of the previous release (with track ids, without zones) stay readable."""
    versions = {n: s for n, s in _history() if n.startswith("PositionEvent.")}
    latest = versions[max(versions, key=lambda n: int(n.split(".")[1]))]
    mug = next(f for f in latest["fields"] if f["name"] == "mugs")["type"]["items"]
    assert "track_id" in {f["name"] for f in mug["fields"]}
    assert "zones" not in {f["name"] for f in mug["fields"]}
