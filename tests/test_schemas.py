"""The Avro contract in schemas/*.avsc: parseable, documented, namespaced, evolvable."""

from __future__ import annotations

import json
from collections.abc import Iterator
from importlib import resources
from typing import Any

import avro.schema
import pytest
from fastavro import parse_schema

from mugpos import schemas

NAMES = sorted(schemas.SCHEMA_FILES)
AVSC_FILES = sorted(p.name for p in resources.files("schemas").iterdir() if p.name.endswith(".avsc"))


def walk_fields(node: Any, path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every record field in a schema, nested records included, as (dotted path, field JSON)."""
    if isinstance(node, list):  # union
        for branch in node:
            yield from walk_fields(branch, path)
    elif isinstance(node, dict):
        kind = node.get("type")
        if kind == "record":
            for field in node["fields"]:
                field_path = f"{path}.{field['name']}"
                yield field_path, field
                yield from walk_fields(field["type"], field_path)
        elif kind == "array":
            yield from walk_fields(node["items"], path + "[]")
        elif kind == "map":
            yield from walk_fields(node["values"], path + "{}")
        elif isinstance(kind, dict | list):
            yield from walk_fields(kind, path)


def all_fields() -> list[tuple[str, dict[str, Any]]]:
    return [item for name in NAMES for item in walk_fields(schemas.schema_json(name), name)]


FIELDS = all_fields()
NULLABLE_FIELDS = [
    (path, field) for path, field in FIELDS if isinstance(field["type"], list) and "null" in field["type"]
]


def test_every_avsc_file_is_registered() -> None:
    assert sorted(schemas.SCHEMA_FILES.values()) == AVSC_FILES


def test_walker_sees_nested_fields() -> None:
    """Guards the doc/default checks below: they must reach records nested in arrays and recursion."""
    paths = {path for path, _ in FIELDS}
    assert "DetectionEvent.detections[].box.x1" in paths
    assert "DetectionEvent.model.weights_sha256" in paths
    assert "PositionEvent.mugs[].edge_distance_cm" in paths
    assert "RuleDefinition.condition.value" in paths
    assert "RuleDefinition.action.target" in paths
    assert len(NULLABLE_FIELDS) >= 20


@pytest.mark.parametrize("name", NAMES)
def test_schema_parses_with_fastavro(name: str) -> None:
    parsed = parse_schema(schemas.schema_json(name))
    assert isinstance(parsed, dict)
    assert parsed["name"] == f"mugpos.{name}"
    assert schemas.load(name)["name"] == f"mugpos.{name}"


@pytest.mark.parametrize("name", NAMES)
def test_schema_parses_with_reference_avro(name: str) -> None:
    """The Apache `avro` package is stricter about defaults and names than fastavro."""
    parsed = avro.schema.parse(json.dumps(schemas.schema_json(name)))
    assert isinstance(parsed, avro.schema.RecordSchema)
    assert parsed.fullname == f"mugpos.{name}"


@pytest.mark.parametrize("name", NAMES)
def test_schema_file_name_matches_record(name: str) -> None:
    data = schemas.schema_json(name)
    assert data["type"] == "record"
    assert data["name"] == name
    assert data["namespace"] == schemas.NAMESPACE == "mugpos"
    assert data.get("doc", "").strip(), f"{name} has no record doc"


def test_schema_json_accepts_full_name_and_rejects_unknown() -> None:
    assert schemas.schema_json("mugpos.ImageEvent") == schemas.schema_json("ImageEvent")
    with pytest.raises(KeyError, match="NoSuchEvent"):
        schemas.schema_json("NoSuchEvent")


@pytest.mark.parametrize(("path", "field"), FIELDS, ids=[path for path, _ in FIELDS])
def test_every_field_has_a_doc(path: str, field: dict[str, Any]) -> None:
    doc = field.get("doc")
    assert isinstance(doc, str) and doc.strip(), f"{path} has no doc"


@pytest.mark.parametrize(("path", "field"), NULLABLE_FIELDS, ids=[path for path, _ in NULLABLE_FIELDS])
def test_nullable_field_defaults_to_null(path: str, field: dict[str, Any]) -> None:
    """Optional fields must be ["null", ...] with default null so old writers stay readable."""
    assert field["type"][0] == "null", f"{path}: null must be the first union branch"
    assert "default" in field and field["default"] is None, f'{path} needs "default": null'


def named_types(node: Any) -> Iterator[dict[str, Any]]:
    """Every record, enum and fixed definition inside a schema JSON."""
    if isinstance(node, list):
        for item in node:
            yield from named_types(item)
    elif isinstance(node, dict):
        if node.get("type") in ("record", "enum", "fixed"):
            yield node
        for value in node.values():
            yield from named_types(value)


@pytest.mark.parametrize("name", NAMES)
def test_nested_named_types_live_in_the_namespace(name: str) -> None:
    """Nested types inherit ``mugpos``; none may move itself elsewhere."""
    nested = list(named_types(schemas.schema_json(name)))
    assert len(nested) >= 1
    for node in nested:
        assert node.get("namespace", "mugpos") == "mugpos", node["name"]
        assert "." not in node["name"] or node["name"].startswith("mugpos."), node["name"]


def test_all_schemas_returns_every_record() -> None:
    loaded = schemas.all_schemas()
    assert sorted(loaded) == NAMES
    assert loaded["ImageEvent"] is schemas.load("ImageEvent")
