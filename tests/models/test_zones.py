"""Per-camera configuration in positioning: zones by footprint point, a table outline, a configured scale."""

from __future__ import annotations

from typing import Any

import pytest

from mugpos.core.cameras import config_from_obj
from mugpos.core.codec import codec
from mugpos.models.positioning import position_event
from mugpos.models.zones import CameraGeometry
from tests.models.test_positioning import COASTER, NOW, ON_COASTER, TABLE, det, event, mug_at

LAPTOP = [[600, 350], [900, 350], [900, 700], [600, 700]]  # the right part of the table
DESK = [[100, 300], [700, 300], [700, 700], [100, 700]]  # overlaps LAPTOP between x 600 and 700
TRIANGLE = [[100, 700], [400, 300], [400, 700]]


def camera(**body: Any) -> CameraGeometry:
    return CameraGeometry.of(config_from_obj({"source": "cam-1", **body}))


def positioned(cam: CameraGeometry | None, *detections: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    record = position_event(event(*detections, **kwargs), processed_at=NOW, camera=cam)
    codec.encode("PositionEvent", record)  # every record must still fit the schema
    return record


ZONE_CASES = [
    ("footprint well inside the zone", mug_at(750, 600), ["laptop"]),
    ("footprint outside every zone", mug_at(950, 600), []),
    ("the box reaches into a zone, its bottom centre does not", mug_at(570, 600, width=120), ["desk"]),
    ("bottom centre exactly on the zone's edge counts as inside", mug_at(600, 600), ["laptop", "desk"]),
    ("in both overlapping zones, listed in configuration order", mug_at(650, 600), ["laptop", "desk"]),
    ("a tall mug whose top is in the zone but whose base is below it", (700, 250, 780, 340), []),
    ("inside a non-rectangular zone", mug_at(350, 650), ["desk", "corner"]),
    ("beside the hypotenuse, outside the triangle", mug_at(200, 400), ["desk"]),
]


@pytest.mark.parametrize(("case", "box", "zones"), ZONE_CASES, ids=[c[0] for c in ZONE_CASES])
def test_a_mug_is_in_the_zones_that_hold_its_bottom_centre(case: str, box: Any, zones: list[str]) -> None:
    cam = camera(
        zones=[
            {"name": "laptop", "polygon": LAPTOP},
            {"name": "desk", "polygon": DESK},
            {"name": "corner", "polygon": TRIANGLE},
        ]
    )
    record = positioned(cam, det("mug", box), det("surface", TABLE))
    assert record["mugs"][0]["zones"] == zones
    assert record["zones"] == ["laptop", "desk", "corner"]  # what the camera has, for "unknown" vs "false"


def test_each_mug_of_a_frame_gets_its_own_zones() -> None:
    cam = camera(zones=[{"name": "laptop", "polygon": LAPTOP}])
    record = positioned(cam, det("mug", mug_at(300, 600)), det("mug", mug_at(800, 650)), det("surface", TABLE))
    assert [m["zones"] for m in record["mugs"]] == [[], ["laptop"]]


def test_without_a_configuration_no_mug_has_zones_and_nothing_else_changes() -> None:
    plain = position_event(
        event(det("mug", ON_COASTER), det("coaster", COASTER), det("surface", TABLE)), processed_at=NOW
    )
    empty = positioned(camera(), det("mug", ON_COASTER), det("coaster", COASTER), det("surface", TABLE))
    assert plain["zones"] == [] and plain["mugs"][0]["zones"] == []
    assert {k: v for k, v in empty.items()} == plain


SCALE_CASES = [
    ("the image's metadata wins", {"px_per_cm": "10"}, 20.0, 10.0, "metadata"),
    ("the camera's scale when the metadata has none", {}, 20.0, 20.0, "camera"),
    ("the coaster estimate when neither has one", {}, None, 120 / 10.0, "coaster"),
]


@pytest.mark.parametrize(
    ("case", "metadata", "configured", "scale", "source"), SCALE_CASES, ids=[c[0] for c in SCALE_CASES]
)
def test_the_scale_comes_from_metadata_then_the_camera_then_the_coasters(
    case: str, metadata: dict[str, str], configured: float | None, scale: float, source: str
) -> None:
    cam = camera(px_per_cm=configured)
    record = positioned(cam, det("mug", ON_COASTER), det("coaster", COASTER), det("surface", TABLE), metadata=metadata)
    assert record["px_per_cm"] == pytest.approx(scale)
    assert record["scale_source"] == source


def test_a_table_outline_replaces_the_detected_surface_for_edge_distances() -> None:
    # the detected surface says the table goes on to x=900; the outline says it ends at x=700
    outline = [[100, 300], [700, 300], [700, 700], [100, 700]]
    cam = camera(table=outline, px_per_cm=10)
    record = positioned(cam, det("mug", mug_at(640, 600)), det("surface", TABLE))
    mug = record["mugs"][0]
    assert mug["edge_distance_px"] == pytest.approx(20.0)  # 700 - (640 + 40)
    assert mug["edge_distance_cm"] == pytest.approx(2.0)
    assert mug["edge_distance_frac"] == pytest.approx(20.0 / 400)  # over the outline's shorter side
    assert record["verdict"] == "warning"  # 2 cm: closer than 5 cm
    assert any("from the table edge" in r for r in record["reasons"])
    without = positioned(camera(px_per_cm=10), det("mug", mug_at(640, 600)), det("surface", TABLE))
    assert without["mugs"][0]["edge_distance_px"] == pytest.approx(100.0)  # to the surface box's bottom edge


def test_a_slanted_outline_measures_to_the_slanted_edge() -> None:
    cam = camera(table=[[100, 700], [400, 300], [900, 300], [900, 700]])  # the left edge runs diagonally
    near = positioned(cam, det("mug", mug_at(400, 450)), det("surface", TABLE))
    far = positioned(cam, det("mug", mug_at(700, 450)), det("surface", TABLE))
    assert 0 < near["mugs"][0]["edge_distance_px"] < far["mugs"][0]["edge_distance_px"]


@pytest.mark.parametrize(
    ("case", "box", "verdict", "reason"),
    [
        ("a corner of the footprint outside: it overhangs", mug_at(690, 600), "violation", "overhangs the table edge"),
        ("its bottom centre off the table", mug_at(800, 600), "violation", "outside the camera's table outline"),
    ],
    ids=["overhang", "off the table"],
)
def test_a_mug_beyond_the_outline_is_a_violation(case: str, box: Any, verdict: str, reason: str) -> None:
    cam = camera(table=[[100, 300], [700, 300], [700, 700], [100, 700]], px_per_cm=10)
    record = positioned(cam, det("mug", box), det("surface", TABLE))
    assert record["verdict"] == verdict
    assert any(reason in r for r in record["reasons"]), record["reasons"]


def test_with_an_outline_no_surface_detection_is_needed() -> None:
    cam = camera(table=[[100, 300], [900, 300], [900, 700], [100, 700]], px_per_cm=10)
    record = positioned(cam, det("mug", ON_COASTER), det("coaster", COASTER))
    assert record["surface_count"] == 0  # what the model saw
    assert record["mugs"][0]["edge_distance_cm"] == pytest.approx(11.0)  # 700 - 590 px
    assert not any("no table surface" in r for r in record["reasons"])
