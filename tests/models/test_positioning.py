"""Positioning: geometry invariants (hypothesis), readable verdict cases, and the event contract."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from mugpos.core.codec import codec
from mugpos.models.positioning import (
    PositioningConfig,
    PositioningError,
    as_boxes,
    assess,
    assign_coasters,
    base_points,
    box_gaps,
    edge_distances,
    footprints,
    measure,
    model_knows_coasters,
    nearest_mugs,
    open_edges,
    parse_px_per_cm,
    position_event,
    scale_from_coasters,
)

NOW = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
CUSTOM = ["mug", "coaster", "surface"]  # model.labels of a detector trained on the domain
STOCK = ["mug", "surface", "person", "laptop"]  # a COCO model: no coaster class
TABLE = (100, 300, 900, 700)  # 80 x 40 cm at 10 px/cm, every edge inside the 1000 x 800 frame


# -- hand-made events ------------------------------------------------------------------------------


def det(label: str, box: tuple[float, float, float, float], confidence: float = 0.9) -> dict[str, Any]:
    x1, y1, x2, y2 = (float(v) for v in box)
    return {
        "label": label,
        "class_id": 0,
        "class_name": label,
        "confidence": confidence,
        "box": {"x1": x1, "y1": y1, "x2": x2, "y2": y2},
        "box_norm": {"x1": x1 / 1000, "y1": y1 / 800, "x2": x2 / 1000, "y2": y2 / 800},
        "attributes": {},
        "attribute_scores": {},
    }


def event(
    *detections: dict[str, Any],
    labels: list[str] | None = None,
    metadata: dict[str, str] | None = None,
    size: tuple[int, int] = (1000, 800),
) -> dict[str, Any]:
    return {
        "image_id": "img-1",
        "source": "cam-1",
        "uri": "s3://mugpos-images/img-1.jpg",
        "captured_at": NOW,
        "processed_at": NOW,
        "sha256": None,
        "model": {
            "model_id": "test-000000000000",
            "name": "test",
            "version": "0",
            "weights_sha256": "0" * 64,
            "device": "cpu",
            "labels": CUSTOM if labels is None else labels,
        },
        "image_width": size[0],
        "image_height": size[1],
        "detections": list(detections),
        "timings": {"fetch_ms": 0.0, "decode_ms": 0.0, "inference_ms": 0.0, "total_ms": 0.0},
        "batch_size": 1,
        "cached": False,
        "metadata": {"px_per_cm": "10"} if metadata is None else metadata,
    }


def mug_at(cx: float, bottom: float, width: float = 80, height: float = 100) -> tuple[float, float, float, float]:
    """A mug box whose footprint is centred on ``cx`` and ends at ``bottom``."""
    return (cx - width / 2, bottom - height, cx + width / 2, bottom)


def right_edge_gap(gap_px: float) -> tuple[float, float, float, float]:
    """A mug whose box ends ``gap_px`` left of the table's right edge (negative: overhangs)."""
    return mug_at(TABLE[2] - gap_px - 40, 600)


COASTER = (440, 560, 560, 600)
ON_COASTER = mug_at(500, 590)  # base point (500, 577.5): 0.125 of the coaster's radius from its centre


# -- verdicts --------------------------------------------------------------------------------------

VERDICT_CASES: list[tuple[str, dict[str, Any], str, list[str]]] = [
    (
        "centred on its coaster, far from every edge",
        event(det("mug", ON_COASTER), det("coaster", COASTER), det("surface", TABLE)),
        "ok",
        [],
    ),
    (
        "overhangs the right edge by 2 cm",
        event(det("mug", right_edge_gap(-20)), det("surface", TABLE), labels=STOCK),
        "violation",
        ["mug 0 overhangs the table edge by 2.0 cm (20 px)"],
    ),
    (
        "1.5 cm from the edge",
        event(det("mug", right_edge_gap(15)), det("surface", TABLE), labels=STOCK),
        "violation",
        ["mug 0 is 1.5 cm (15 px) from the table edge (violation: closer than 2 cm)"],
    ),
    (
        "3 cm from the edge",
        event(det("mug", right_edge_gap(30)), det("surface", TABLE), labels=STOCK),
        "warning",
        ["mug 0 is 3.0 cm (30 px) from the table edge (warning: closer than 5 cm)"],
    ),
    (
        "6 cm from the edge",
        event(det("mug", right_edge_gap(60)), det("surface", TABLE), labels=STOCK),
        "ok",
        [],
    ),
    (
        "its rim rises above the far edge, its base stands 6 cm before it",
        event(det("mug", (460, 255, 540, 400)), det("surface", TABLE), labels=STOCK),
        "ok",
        [],
    ),
    (
        "named by detection index: surface first, mug second",
        event(det("surface", TABLE), det("mug", right_edge_gap(15)), labels=STOCK),
        "violation",
        ["mug 1 is 1.5 cm (15 px) from the table edge (violation: closer than 2 cm)"],
    ),
    (
        "off its coaster while a coaster is visible",
        event(det("mug", mug_at(250, 600)), det("coaster", COASTER), det("surface", TABLE)),
        "violation",
        ["mug 0 is not on a coaster although 1 coaster is visible"],
    ),
    (
        "the model sees coasters, none in the picture",
        event(det("mug", mug_at(500, 600)), det("surface", TABLE)),
        "warning",
        ["mug 0 is not on a coaster (none visible)"],
    ),
    (
        "stock COCO model: coasters are unknowable",
        event(det("mug", mug_at(500, 600)), det("surface", TABLE), labels=STOCK),
        "ok",
        [],
    ),
    (
        "older writer without model.labels and no coaster detected",
        event(det("mug", mug_at(500, 600)), det("surface", TABLE), labels=[]),
        "ok",
        [],
    ),
    (
        "older writer without model.labels, a coaster detected elsewhere",
        event(det("mug", mug_at(250, 600)), det("coaster", COASTER), det("surface", TABLE), labels=[]),
        "violation",
        ["mug 0 is not on a coaster although 1 coaster is visible"],
    ),
    (
        "standing near the coaster's rim",
        event(det("mug", mug_at(545, 590)), det("coaster", COASTER), det("surface", TABLE)),
        "warning",
        ["mug 0 stands off-centre on coaster 1 (0.76 of its radius; warning above 0.5)"],
    ),
    (
        "two mugs 0.5 cm apart",
        event(det("mug", mug_at(300, 600)), det("mug", mug_at(385, 600)), det("surface", TABLE), labels=STOCK),
        "warning",
        ["mugs 0 and 1 are 0.5 cm (5 px) apart (warning: closer than 1 cm)"],
    ),
    (
        "two mugs 3 cm apart",
        event(det("mug", mug_at(300, 600)), det("mug", mug_at(410, 600)), det("surface", TABLE), labels=STOCK),
        "ok",
        [],
    ),
    (
        "no surface detected",
        event(det("mug", mug_at(500, 600)), labels=STOCK),
        "warning",
        ["no table surface detected: edge distances unknown"],
    ),
    (
        "standing beside the table",
        event(det("mug", mug_at(950, 600)), det("surface", TABLE), labels=STOCK),
        "violation",
        ["mug 0 stands outside every detected table surface"],
    ),
    (
        "the table fills the picture: no visible edge",
        event(det("mug", mug_at(40, 790)), det("surface", (0, 0, 1000, 800)), labels=STOCK),
        "ok",
        [],
    ),
    (
        "no scale: fractions of the table's size (2.5 % / 6.25 %)",
        event(det("mug", right_edge_gap(8)), det("surface", TABLE), labels=STOCK, metadata={}),
        "violation",
        ["mug 0 is 8 px (2.0% of the table) from the table edge (violation: closer than 2.5% of the table's size)"],
    ),
    (
        "unusable px_per_cm metadata: a warning, and no scale",
        event(det("mug", mug_at(500, 600)), det("surface", TABLE), labels=STOCK, metadata={"px_per_cm": "-3"}),
        "warning",
        ["metadata px_per_cm='-3' ignored: not a positive number"],
    ),
    (
        "worst first: an overhang and a warning",
        event(
            det("mug", mug_at(300, 600)),
            det("mug", mug_at(385, 600)),
            det("mug", right_edge_gap(-20)),
            det("surface", TABLE),
            labels=STOCK,
        ),
        "violation",
        [
            "mug 2 overhangs the table edge by 2.0 cm (20 px)",
            "mugs 0 and 1 are 0.5 cm (5 px) apart (warning: closer than 1 cm)",
        ],
    ),
    ("nothing in the picture", event(labels=STOCK), "ok", []),
]


@pytest.mark.parametrize(("case", "detection", "verdict", "reasons"), VERDICT_CASES, ids=[c[0] for c in VERDICT_CASES])
def test_verdict(case: str, detection: dict[str, Any], verdict: str, reasons: list[str]) -> None:
    out = position_event(detection, processed_at=NOW)
    assert (out["verdict"], out["reasons"]) == (verdict, reasons), case
    codec.decode(codec.encode("PositionEvent", out), "PositionEvent")  # a valid PositionEvent


def test_event_fields_of_a_mug_on_its_coaster() -> None:
    out = position_event(
        event(det("surface", TABLE), det("coaster", COASTER), det("mug", ON_COASTER)), processed_at=NOW
    )
    assert (out["mug_count"], out["coaster_count"], out["surface_count"]) == (1, 1, 1)
    assert (out["px_per_cm"], out["scale_source"]) == (10.0, "metadata")
    (mug,) = out["mugs"]
    assert mug["index"] == 2 and mug["on_coaster"] is True and mug["coaster_index"] == 1
    assert mug["coaster_offset_px"] == pytest.approx(2.5)
    assert mug["coaster_offset_frac"] == pytest.approx(0.125)
    assert mug["edge_distance_px"] == pytest.approx(110)  # its bottom (590) to the table's (700)
    assert mug["edge_distance_cm"] == pytest.approx(11.0)
    assert mug["edge_distance_frac"] == pytest.approx(110 / 400)
    assert mug["nearest_mug_px"] is None and mug["nearest_mug_cm"] is None
    assert mug["quality"] == pytest.approx(100 * (1 - 0.4 * 0.125))  # E = 1 (beyond 10 cm), S = 1 (alone)
    assert out["model_id"] == "test-000000000000" and out["metadata"] == {"px_per_cm": "10"}


def test_scale_from_a_coaster_of_known_diameter_when_metadata_has_none() -> None:
    detection = event(det("mug", ON_COASTER), det("coaster", COASTER), det("surface", TABLE), metadata={})
    out = position_event(detection, processed_at=NOW)
    assert (out["px_per_cm"], out["scale_source"]) == (12.0, "coaster")  # 120 px wide / 10 cm
    twelve = position_event(detection, processed_at=NOW, config=PositioningConfig(coaster_diameter_cm=12))
    assert twelve["px_per_cm"] == 10.0
    assert twelve["mugs"][0]["edge_distance_cm"] == pytest.approx(11.0)


def test_stock_model_reports_on_coaster_as_null_not_false() -> None:
    out = position_event(event(det("mug", mug_at(500, 600)), det("surface", TABLE), labels=STOCK), processed_at=NOW)
    assert out["mugs"][0]["on_coaster"] is None and out["mugs"][0]["coaster_index"] is None


def test_no_surface_makes_edge_values_null_and_the_edge_factor_half() -> None:
    out = position_event(event(det("mug", mug_at(500, 600)), labels=STOCK), processed_at=NOW)
    mug = out["mugs"][0]
    assert mug["edge_distance_px"] is None and mug["edge_distance_frac"] is None and mug["edge_distance_cm"] is None
    assert mug["quality"] == 50.0


def test_mug_attributes_pass_through() -> None:
    mug = det("mug", ON_COASTER)
    mug["attributes"] = {"colour": "red"}
    out = position_event(event(mug, det("surface", TABLE), labels=STOCK), processed_at=NOW)
    assert out["mugs"][0]["attributes"] == {"colour": "red"}


@pytest.mark.parametrize(
    "box", [(1, 2, math.nan, 4), (1, 2, math.inf, 4), (10, 2, 5, 4), (1, 9, 3, 4)], ids=["nan", "inf", "x2<x1", "y2<y1"]
)
def test_bad_boxes_are_refused_not_repaired(box: tuple[float, float, float, float]) -> None:
    with pytest.raises(PositioningError) as info:
        position_event(event(det("mug", box)), processed_at=NOW)
    assert info.value.reason == "invalid_box"


@pytest.mark.parametrize(
    ("labels", "seen", "knows"),
    [
        (["mug", "coaster", "surface"], [], True),
        (["mug", "surface"], ["coaster"], False),  # the model list wins: a stray label proves nothing
        ([], ["mug", "coaster"], True),
        ([], ["mug", "surface"], False),
        (None, [], False),
    ],
    ids=["listed", "not-listed", "old-writer-saw-one", "old-writer-saw-none", "no-field"],
)
def test_model_knows_coasters(labels: list[str] | None, seen: list[str], knows: bool) -> None:
    model: dict[str, Any] = {"name": "m"} if labels is None else {"name": "m", "labels": labels}
    assert model_knows_coasters(model, seen) is knows


@pytest.mark.parametrize(
    ("metadata", "value", "note"),
    [
        ({}, None, None),
        ({"px_per_cm": "12.5"}, 12.5, None),
        ({"px_per_cm": " "}, None, None),
        ({"px_per_cm": "abc"}, None, "metadata px_per_cm='abc' ignored: not a positive number"),
        ({"px_per_cm": "0"}, None, "metadata px_per_cm='0' ignored: not a positive number"),
        ({"px_per_cm": "nan"}, None, "metadata px_per_cm='nan' ignored: not a positive number"),
    ],
)
def test_parse_px_per_cm(metadata: dict[str, str], value: float | None, note: str | None) -> None:
    assert parse_px_per_cm(metadata) == (value, note)


def test_scale_from_coasters_is_the_median_major_axis() -> None:
    coasters = as_boxes([[0, 0, 100, 40], [0, 0, 40, 120], [0, 0, 200, 60]])
    assert scale_from_coasters(coasters, 10.0) == 12.0
    assert scale_from_coasters(as_boxes([]), 10.0) is None


@pytest.mark.parametrize(
    "kwargs",
    [
        {"footprint_frac": 0},
        {"footprint_frac": 1.5},
        {"coaster_diameter_cm": 0},
        {"edge_violation_cm": 6},
        {"edge_warning_frac": 0.2},
        {"mug_gap_warning_cm": 5},
        {"coaster_offset_warning": 0},
    ],
)
def test_config_rejects_inconsistent_thresholds(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        PositioningConfig(**kwargs)


# -- geometry by example ---------------------------------------------------------------------------


def test_footprint_and_base_point() -> None:
    mug = as_boxes([[10, 100, 50, 200]])
    assert footprints(mug, 0.25).tolist() == [[10, 175, 50, 200]]
    assert base_points(mug, 0.25).tolist() == [[30, 187.5]]
    assert footprints(mug, 1.0).tolist() == mug.tolist()


def test_edge_distance_is_signed_and_open_edges_are_ignored() -> None:
    surface = as_boxes([[0, 0, 100, 100]])
    feet = as_boxes([[10, 40, 30, 50]])
    assert edge_distances(feet, surface).tolist() == [10]
    assert edge_distances(as_boxes([[-5, 40, 30, 50]]), surface).tolist() == [-5]
    is_open = open_edges(surface, (0, 0, 100, 100), 0.005)
    assert is_open.tolist() == [[True, True, True, True]]
    assert np.isnan(edge_distances(feet, surface, is_open)).all()
    half_open = open_edges(surface, (0, 0, 200, 100), 0.005)  # the right edge is inside the picture
    assert half_open.tolist() == [[True, True, False, True]]
    assert edge_distances(feet, surface, half_open).tolist() == [70]


def test_gaps_between_boxes() -> None:
    a = as_boxes([[0, 0, 10, 10]])
    b = as_boxes([[13, 14, 20, 20], [5, 5, 15, 15], [10, 0, 20, 10]])
    assert box_gaps(a, b).tolist() == [[5.0, 0.0, 0.0]]  # 3-4-5 diagonal, overlapping, touching
    gaps, index = nearest_mugs(as_boxes([[0, 0, 10, 10], [30, 0, 40, 10], [12, 0, 20, 10]]))
    assert gaps.tolist() == [2.0, 10.0, 2.0] and index.tolist() == [2, 2, 0]
    gaps, index = nearest_mugs(as_boxes([[0, 0, 10, 10]]))
    assert np.isnan(gaps).all() and index.tolist() == [-1]


def test_the_coaster_with_the_largest_overlap_wins() -> None:
    mug = as_boxes([[40, 0, 80, 100]])  # footprint (40, 75, 80, 100), base point (60, 87.5)
    coasters = as_boxes([[0, 70, 62, 110], [55, 70, 120, 110], [200, 0, 300, 100]])
    assert assign_coasters(mug, coasters, 0.25).tolist() == [1]


# -- properties ------------------------------------------------------------------------------------

COORD = st.integers(0, 2000)
SIZE = st.integers(1, 800)
SHIFT = st.integers(-5000, 5000)
SCALE = st.sampled_from([0.25, 0.5, 2.0, 4.0, 8.0])  # powers of two: scaling is exact in binary floats


@st.composite
def boxes(draw: st.DrawFn, min_size: int = 0, max_size: int = 6) -> np.ndarray:
    n = draw(st.integers(min_size, max_size))
    rows = [(x, y, x + w, y + h) for x, y, w, h in (draw(st.tuples(COORD, COORD, SIZE, SIZE)) for _ in range(n))]
    return as_boxes(rows)


@st.composite
def scenes(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return draw(boxes(1, 5)), draw(boxes(0, 4)), draw(boxes(0, 3))


def _fields(
    mugs: np.ndarray, coasters: np.ndarray, surfaces: np.ndarray, *, frame: tuple[float, ...]
) -> dict[str, Any]:
    m = measure(mugs, coasters, surfaces, coasters_known=True, frame=frame)
    a = assess(m, px_per_cm=None)
    return {
        "on_coaster": m.on_coaster.tolist() if m.on_coaster is not None else None,
        "coaster_index": m.coaster_index.tolist(),
        "surface_index": m.surface_index.tolist(),
        "offset_frac": m.coaster_offset_frac.tolist(),
        "edge_frac": m.edge_distance_frac.tolist(),
        "quality": a.quality.tolist(),
        "verdict": a.verdict,
    }


def _same(a: dict[str, Any], b: dict[str, Any]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        if key in ("offset_frac", "edge_frac", "quality"):
            np.testing.assert_allclose(a[key], b[key], rtol=1e-12, atol=1e-9, err_msg=key)
        else:
            assert a[key] == b[key], key


FRAME = (0.0, 0.0, 2800.0, 2800.0)


@settings(max_examples=300, deadline=None)
@given(scenes(), SHIFT, SHIFT)
def test_normalised_values_are_translation_invariant(scene: tuple[np.ndarray, ...], dx: int, dy: int) -> None:
    shift = np.array([dx, dy, dx, dy], dtype=np.float64)
    moved = tuple(b + shift for b in scene)
    frame = tuple(np.array(FRAME) + shift)
    _same(_fields(*scene, frame=FRAME), _fields(*moved, frame=frame))


@settings(max_examples=300, deadline=None)
@given(scenes(), SCALE)
def test_normalised_values_are_scale_invariant(scene: tuple[np.ndarray, ...], factor: float) -> None:
    scaled = tuple(b * factor for b in scene)
    frame = tuple(np.array(FRAME) * factor)
    _same(_fields(*scene, frame=FRAME), _fields(*scaled, frame=frame))
    before = measure(*scene, coasters_known=True, frame=FRAME)
    after = measure(*scaled, coasters_known=True, frame=frame)
    np.testing.assert_allclose(after.edge_distance_px, before.edge_distance_px * factor)  # pixels scale
    np.testing.assert_allclose(after.nearest_mug_px, before.nearest_mug_px * factor)


@settings(max_examples=200, deadline=None)
@given(scenes(), SCALE)
def test_centimetre_results_do_not_depend_on_resolution_when_the_scale_comes_from_coasters(
    scene: tuple[np.ndarray, ...], factor: float
) -> None:
    mugs, coasters, surfaces = scene
    assume(len(coasters) > 0)
    results = []
    for k in (1.0, factor):
        m = measure(mugs * k, coasters * k, surfaces * k, coasters_known=True)
        a = assess(m, px_per_cm=scale_from_coasters(coasters * k, 10.0))
        reasons = [re.sub(r"\d+ px", "N px", r) for r in a.reasons]  # pixels scale, centimetres must not
        results.append((a.verdict, reasons, a.quality.tolist()))
    assert results[0] == results[1]


@settings(max_examples=200, deadline=None)
@given(boxes(1, 4), boxes(1, 4), st.sampled_from([0.5, 2.0, 4.0]), st.sampled_from([0.25, 1.0, 8.0]))
def test_coaster_offset_fraction_survives_uneven_stretching(
    mugs: np.ndarray, coasters: np.ndarray, sx: float, sy: float
) -> None:
    """The elliptical fraction cancels per-axis scaling, such as perspective squashing a round coaster."""
    stretch = np.array([sx, sy, sx, sy])
    a = measure(mugs, coasters, as_boxes([]), coasters_known=True)
    b = measure(mugs * stretch, coasters * stretch, as_boxes([]), coasters_known=True)
    assert a.coaster_index.tolist() == b.coaster_index.tolist()
    np.testing.assert_allclose(a.coaster_offset_frac, b.coaster_offset_frac, rtol=1e-12)


@settings(max_examples=300, deadline=None)
@given(boxes(0, 6), boxes(0, 6))
def test_box_gaps_are_symmetric_non_negative_and_zero_exactly_when_boxes_meet(a: np.ndarray, b: np.ndarray) -> None:
    gaps = box_gaps(a, b)
    assert (gaps == box_gaps(b, a).T).all()
    assert (gaps >= 0).all()
    meet = (
        (a[:, None, 0] <= b[None, :, 2])
        & (b[None, :, 0] <= a[:, None, 2])
        & (a[:, None, 1] <= b[None, :, 3])
        & (b[None, :, 1] <= a[:, None, 3])
    )
    assert ((gaps == 0) == meet).all()


@settings(max_examples=300, deadline=None)
@given(boxes(2, 6))
def test_nearest_mug_distances_are_mutual_minima(mugs: np.ndarray) -> None:
    gaps, index = nearest_mugs(footprints(mugs, 0.25))
    full = box_gaps(footprints(mugs, 0.25), footprints(mugs, 0.25))
    for i, j in enumerate(index):
        assert j != i and gaps[i] == full[i, j] == full[j, i]
        assert gaps[i] == min(full[i, k] for k in range(len(mugs)) if k != i)


@settings(max_examples=300, deadline=None)
@given(st.tuples(COORD, COORD, SIZE, SIZE), st.data())
def test_a_mug_inside_a_coaster_is_on_it(coaster: tuple[int, int, int, int], data: st.DataObject) -> None:
    x, y, w, h = coaster
    x1 = data.draw(st.floats(x, x + w))
    x2 = data.draw(st.floats(x1, x + w))
    y1 = data.draw(st.floats(y, y + h))
    y2 = data.draw(st.floats(y1, y + h))
    others = data.draw(boxes(0, 3))
    coasters = np.vstack([as_boxes([[x, y, x + w, y + h]]), others])
    m = measure(as_boxes([[x1, y1, x2, y2]]), coasters, as_boxes([]), coasters_known=True)
    assert m.on_coaster is not None and m.on_coaster.tolist() == [True]


@settings(max_examples=300, deadline=None)
@given(boxes(1, 1), boxes(0, 5), st.floats(0.01, 1000))
def test_a_mug_away_from_every_coaster_is_not_on_one(mug: np.ndarray, coasters: np.ndarray, margin: float) -> None:
    far = coasters[box_gaps(mug, coasters)[0] > margin] if len(coasters) else coasters
    m = measure(mug, far, as_boxes([]), coasters_known=True)
    assert m.on_coaster is not None and m.on_coaster.tolist() == [False]
    assert m.coaster_index.tolist() == [-1]


@settings(max_examples=300, deadline=None)
@given(scenes(), st.booleans(), st.one_of(st.none(), st.floats(0.5, 50)))
def test_quality_is_between_0_and_100_and_a_violation_comes_with_a_reason(
    scene: tuple[np.ndarray, ...], coasters_known: bool, px_per_cm: float | None
) -> None:
    m = measure(*scene, coasters_known=coasters_known, frame=FRAME)
    a = assess(m, px_per_cm=px_per_cm)
    assert ((a.quality >= 0) & (a.quality <= 100)).all()
    assert (a.verdict == "ok") == (a.reasons == ())
    if not coasters_known:
        assert m.on_coaster is None


@settings(max_examples=300, deadline=None)
@given(boxes(1, 4), boxes(1, 1))
def test_edge_distance_is_negative_exactly_when_the_footprint_leaves_the_surface(
    mugs: np.ndarray, surface: np.ndarray
) -> None:
    m = measure(mugs, as_boxes([]), surface, coasters_known=False)
    feet = footprints(mugs, 0.25)
    inside = (
        (feet[:, 0] >= surface[0, 0])
        & (feet[:, 1] >= surface[0, 1])
        & (feet[:, 2] <= surface[0, 2])
        & (feet[:, 3] <= surface[0, 3])
    )
    assert ((m.edge_distance_px >= 0) == inside).all()
    assert (m.on_surface | (m.edge_distance_px < 0)).all()  # off the surface implies overhanging
