"""The Avro contract: one ``.avsc`` file per event type, loaded and parsed once.

Producers in any language read the same files; Python code gets parsed fastavro schemas.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

from fastavro import parse_schema

NAMESPACE = "mugpos"

#: Record name -> file in this package.
SCHEMA_FILES: dict[str, str] = {
    "ImageEvent": "image_event.avsc",
    "DetectionEvent": "detection_event.avsc",
    "PositionEvent": "position_event.avsc",
    "ActionEvent": "action_event.avsc",
    "RuleDefinition": "rule_definition.avsc",
    "ScalingDecision": "scaling_decision.avsc",
    "DeadLetter": "dead_letter.avsc",
    "CameraConfig": "camera_config.avsc",
}


def schema_json(name: str) -> dict[str, Any]:
    """The schema of record ``name`` (short or full name) as plain JSON."""
    short = name.removeprefix(NAMESPACE + ".")
    try:
        filename = SCHEMA_FILES[short]
    except KeyError:
        raise KeyError(f"unknown schema {name!r}; known: {', '.join(SCHEMA_FILES)}") from None
    text = resources.files(__name__).joinpath(filename).read_text(encoding="utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


@cache
def load(name: str) -> Any:
    """The parsed (fastavro) schema of record ``name``; cached."""
    return parse_schema(schema_json(name))


def history() -> list[Any]:
    """Parsed earlier versions of the schemas (``history/<Record>.<n>.avsc``): messages written with
    them stay readable after a schema evolves, since single-object encoding names the writer's version."""
    folder = resources.files(__name__).joinpath("history")
    return [
        parse_schema(json.loads(entry.read_text(encoding="utf-8")))
        for entry in sorted(folder.iterdir(), key=lambda e: e.name)
        if entry.name.endswith(".avsc")
    ]


def all_schemas() -> dict[str, Any]:
    """Every parsed schema by short record name."""
    return {name: load(name) for name in SCHEMA_FILES}
