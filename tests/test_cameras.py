"""Camera configuration: what validates, what is refused (naming the part), and its Avro record."""

from __future__ import annotations

from typing import Any

import pytest

from mugpos.core.cameras import (
    CameraConfigError,
    config_from_obj,
    config_to_json,
    config_to_record,
    parse_polygon,
)
from mugpos.core.codec import codec
from mugpos.storage.cameras import CameraRegistry, encode_camera

SQUARE = [[0, 0], [100, 0], [100, 100], [0, 100]]


def test_a_full_configuration_round_trips_through_the_topic_record() -> None:
    config = config_from_obj(
        {
            "source": "kitchen-1",
            "px_per_cm": 12.5,
            "table": [[10, 200], [630, 200], [630, 470], [10, 470]],
            "zones": [
                {"name": "laptop", "polygon": SQUARE},
                {"name": "sink_side", "polygon": [[0, 0], [5, 0], [0, 5]]},
            ],
        }
    )
    decoded = codec.decode(codec.encode("CameraConfig", config_to_record(config)), "CameraConfig")
    again = config_from_obj(decoded, source="kitchen-1")
    assert again == config
    assert again.zone_names == ("laptop", "sink_side")
    assert config_to_json(again)["zones"][0] == {
        "name": "laptop",
        "polygon": [[0.0, 0.0], [100.0, 0.0], [100.0, 100.0], [0.0, 100.0]],
    }


def test_points_may_be_objects_too_and_the_address_names_the_camera() -> None:
    config = config_from_obj(
        {"zones": [{"name": "a", "polygon": [{"x": 0, "y": 0}, {"x": 9, "y": 0}, {"x": 9, "y": 9}]}]}, source="cam"
    )
    assert config.source == "cam" and config.zones[0].polygon[1] == (9.0, 0.0)


BAD: list[tuple[str, dict[str, Any], str]] = [
    ("not a positive scale", {"px_per_cm": 0}, "px_per_cm"),
    ("a scale that is a string", {"px_per_cm": "12"}, "px_per_cm"),
    ("a boolean for a scale", {"px_per_cm": True}, "px_per_cm"),
    ("a table of two points", {"table": [[0, 0], [1, 1]]}, "table"),
    ("a table whose points are on one line", {"table": [[0, 0], [5, 5], [10, 10]]}, "table"),
    ("a negative coordinate", {"table": [[-1, 0], [10, 0], [10, 10]]}, "table[0]"),
    ("an infinite coordinate", {"table": [[0, 0], [float("inf"), 0], [10, 10]]}, "table[1]"),
    ("a point with three numbers", {"table": [[0, 0, 0], [10, 0], [10, 10]]}, "table[0]"),
    ("a zone without a name", {"zones": [{"polygon": SQUARE}]}, "zones[0].name"),
    ("a zone name with a space", {"zones": [{"name": "my desk", "polygon": SQUARE}]}, "zones[0].name"),
    (
        "the same zone twice",
        {"zones": [{"name": "a", "polygon": SQUARE}, {"name": "a", "polygon": SQUARE}]},
        "zones[1].name",
    ),
    ("a zone with an unknown key", {"zones": [{"name": "a", "polygon": SQUARE, "colour": "red"}]}, "zones[0]"),
    ("zones that are not a list", {"zones": "laptop"}, "zones"),
    ("too many zones", {"zones": [{"name": f"z{i}", "polygon": SQUARE} for i in range(33)]}, "zones"),
    ("an unknown top-level key", {"px_per_cm": 10, "scale": 3}, "scale"),
    ("a body naming another camera", {"source": "cam-2"}, "source"),
]


@pytest.mark.parametrize(("case", "body", "path"), BAD, ids=[c[0] for c in BAD])
def test_a_bad_configuration_is_refused_naming_the_part(case: str, body: dict[str, Any], path: str) -> None:
    with pytest.raises(CameraConfigError) as caught:
        config_from_obj(body, source="cam-1")
    assert caught.value.path == path


@pytest.mark.parametrize(
    ("text", "points"),
    [
        ("0,0 10,0 10,10", ((0.0, 0.0), (10.0, 0.0), (10.0, 10.0))),
        ("0,0; 10.5,0; 10,10;", ((0.0, 0.0), (10.5, 0.0), (10.0, 10.0))),
        ("  0,0\n10,0\t10,10 ", ((0.0, 0.0), (10.0, 0.0), (10.0, 10.0))),
    ],
)
def test_the_cli_polygon_form(text: str, points: tuple[tuple[float, float], ...]) -> None:
    assert parse_polygon(text) == points


@pytest.mark.parametrize(
    ("text", "path"), [("0,0 10 10,10", "polygon[1]"), ("0,0 a,b 10,10", "polygon[1]"), ("0,0", "polygon")]
)
def test_a_bad_cli_polygon_names_the_point(text: str, path: str) -> None:
    with pytest.raises(CameraConfigError) as caught:
        parse_polygon(text)
    assert caught.value.path == path


def test_the_registry_applies_changes_and_tombstones_and_keeps_bad_records_apart() -> None:
    registry = CameraRegistry()
    good = config_from_obj({"px_per_cm": 10, "zones": [{"name": "laptop", "polygon": SQUARE}]}, source="cam-1")
    changes = registry.apply(
        [
            (b"cam-1", encode_camera(good)),
            (b"cam-2", b"not avro"),
            (b"cam-3", encode_camera(config_from_obj({}, source="cam-x"))),  # key and record disagree
            (b"cam-1", encode_camera(good)),
        ]
    )
    assert [c.kind for c in changes] == ["added", "rejected", "rejected", "unchanged"]
    camera = registry.get("cam-1")
    assert camera is not None and camera.config.zone_names == ("laptop",)
    assert set(registry.invalid) == {"cam-2", "cam-3"}
    assert [c.kind for c in registry.apply([(b"cam-1", None), (b"cam-9", None)])] == ["removed", "unknown-tombstone"]
    assert registry.get("cam-1") is None
