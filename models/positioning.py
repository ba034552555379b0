"""Where each mug stands: coaster, table edge, neighbours, a quality score and a verdict.

Pure functions over numpy arrays (no Kafka, no Faust): boxes are float arrays of shape (N, 4) in
``x1, y1, x2, y2`` pixel order, as in the DetectionEvent. The agent (``agents/position.py``) only
decodes, calls :func:`position_event`, and produces.

Geometry (the camera is assumed to look at the table from the front and slightly above, so a mug's
base is at the bottom of its box and its rim may rise above the table's far edge in the image):

* **footprint**: the bottom ``footprint_frac`` (default 1/4) of the mug's box, i.e. the mug box with
  its top moved down to where the base ellipse starts. Every distance on the table is measured from
  the footprint, so a mug standing 3 cm before the far edge does not read as overhanging because its
  body hides the background. ``footprint_frac=1`` measures from the whole box (a camera looking
  straight down).
* **base point**: the centre of the footprint (bottom-centre of the box, ``footprint_frac/2`` of the
  box height above its bottom edge).
* **on_coaster**: the base point lies inside a coaster box; among several, the coaster with the
  largest overlap with the footprint (then the lowest index). ``None`` when the model cannot see
  coasters (see :func:`model_knows_coasters`): never guessed.
* **coaster offset**: base point to coaster centre, in pixels, and as an elliptical fraction of the
  coaster's half-axes, ``hypot(dx / (w/2), dy / (h/2))``: 0 centred, 1 on the rim of the coaster's
  ellipse. Dividing per axis cancels the perspective squash of a round coaster.
* **supporting surface**: the surface box that contains the base point (largest footprint overlap,
  then largest area); if none does, the largest surface, and the mug is *off the surface*.
* **edge distance**: the smallest signed gap between the footprint and the surface box's edges
  (``fx1 - sx1``, ``fy1 - sy1``, ``sx2 - fx2``, ``sy2 - fy2``); negative when the mug overhangs.
  A surface edge lying on the image border (within ``frame_margin_frac`` of the image size) is not a
  table edge: the table goes on beyond the picture, so that edge is ignored; when every edge is on
  the border, the distance is unknown (``None``) and no edge risk is visible.
* **edge fraction**: edge distance / ``min(surface width, surface height)``.
* **nearest mug**: the smallest Euclidean gap between two footprints (0 when they touch or overlap).
* **camera configuration** (``mugpos cameras set``, optional): a configured scale stands in for the
  metadata's; a configured table outline (polygon) replaces the detected surfaces: a mug is on the
  table when its bottom centre is inside the outline, and its edge distance is the smallest signed
  distance from a footprint corner to the outline; each mug lists the configured zones that hold its
  bottom centre (``mugpos.models.zones``).
* **scale** (``px_per_cm``): the event's ``metadata["px_per_cm"]``; else the camera's; else the median coaster diameter
  in pixels (``max(w, h)``: perspective shortens only one axis) / ``coaster_diameter_cm``; else none.

Quality (0-100) multiplies three factors, each in [0, 1], of what the camera can see::

    quality = 100 * E * C * S

* E, edge: ``clamp((d - violation) / (safe - violation), 0, 1)`` with ``d`` the edge distance in cm
  (thresholds 2 and 10 cm) when a scale is known, else the edge fraction (0.025 and 0.125). 0 when
  the mug overhangs or stands off the surface; 1 when every surface edge is outside the picture;
  0.5 when no surface was detected (unknown: neither safe nor unsafe).
* C, coaster: ``1 - 0.4 * min(offset_frac, 1)`` on a coaster (0.6 to 1), 0.5 off a coaster, and 1 when
  the model cannot see coasters (a property of the model, not of the picture, so not a penalty).
* S, spacing: ``0.5 + 0.5 * clamp(gap / safe_gap, 0, 1)`` with the gap to the nearest mug in cm
  (safe 5 cm), or without a scale in widths of the narrower mug (safe 0.5); 1 for a lone mug.

Verdict: ``violation`` when a mug overhangs, stands off the surface, is closer to an edge than
``edge_violation_cm`` (2 cm; without a scale ``edge_violation_frac``), or is off a coaster while
coasters are visible; ``warning`` when a mug is closer than ``edge_warning_cm`` (5 cm), stands
off-centre on its coaster (offset fraction above 0.5), is not on a coaster and none is visible (the
model can see them), is closer than ``mug_gap_warning_cm`` (1 cm) to another mug, when no surface was
detected under the mugs, or when metadata ``px_per_cm`` is unusable; otherwise ``ok``. Mugs are
named in reasons by their detection index in the DetectionEvent.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from mugpos.models.classmap import COASTER, MUG, SURFACE
from mugpos.models.zones import CameraGeometry

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]
BoolArray = npt.NDArray[np.bool_]
Verdict = Literal["ok", "warning", "violation"]

#: Verdicts from best to worst; an image's verdict is its worst reason's.
VERDICTS: tuple[Verdict, ...] = ("ok", "warning", "violation")

NO_INDEX = -1


class PositioningError(ValueError):
    """A detection event that cannot be positioned; ``reason`` is a stable dead-letter code."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class PositioningConfig:
    """Every threshold of the positioning rules. Distances in cm apply when a scale is known,
    the ``*_frac`` ones (fractions of the surface size or of a mug's width) when it is not."""

    footprint_frac: float = 0.25
    coaster_diameter_cm: float = 10.0
    frame_margin_frac: float = 0.005
    ignore_frame_edges: bool = True
    edge_violation_cm: float = 2.0
    edge_warning_cm: float = 5.0
    edge_safe_cm: float = 10.0
    edge_violation_frac: float = 0.025
    edge_warning_frac: float = 0.0625
    edge_safe_frac: float = 0.125
    coaster_offset_warning: float = 0.5
    mug_gap_warning_cm: float = 1.0
    mug_gap_safe_cm: float = 5.0
    mug_gap_warning_frac: float = 0.1
    mug_gap_safe_frac: float = 0.5
    warn_no_coaster_visible: bool = True
    warn_no_surface: bool = True

    def __post_init__(self) -> None:
        if not 0 < self.footprint_frac <= 1:
            raise ValueError(f"footprint_frac must be in (0, 1], got {self.footprint_frac}")
        if not self.coaster_diameter_cm > 0:
            raise ValueError(f"coaster_diameter_cm must be positive, got {self.coaster_diameter_cm}")
        if not 0 <= self.frame_margin_frac < 0.5:
            raise ValueError(f"frame_margin_frac must be in [0, 0.5), got {self.frame_margin_frac}")
        if not self.coaster_offset_warning > 0:
            raise ValueError(f"coaster_offset_warning must be positive, got {self.coaster_offset_warning}")
        for unit in ("cm", "frac"):
            v, w, s = (getattr(self, f"edge_{level}_{unit}") for level in ("violation", "warning", "safe"))
            if not 0 <= v <= w < s:
                raise ValueError(f"need 0 <= edge_violation_{unit} <= edge_warning_{unit} < edge_safe_{unit}")
            gw, gs = getattr(self, f"mug_gap_warning_{unit}"), getattr(self, f"mug_gap_safe_{unit}")
            if not 0 <= gw < gs:
                raise ValueError(f"need 0 <= mug_gap_warning_{unit} < mug_gap_safe_{unit}")


DEFAULT_CONFIG = PositioningConfig()


# -- boxes -----------------------------------------------------------------------------------------


def as_boxes(values: npt.ArrayLike, what: str = "boxes") -> FloatArray:
    """(N, 4) float64 xyxy array; rejects non-finite or inverted boxes instead of guessing a fix."""
    boxes = np.asarray(values, dtype=np.float64).reshape(-1, 4) if np.size(values) else np.zeros((0, 4))
    if not np.isfinite(boxes).all():
        raise PositioningError("invalid_box", f"{what}: non-finite coordinate")
    if (boxes[:, 2] < boxes[:, 0]).any() or (boxes[:, 3] < boxes[:, 1]).any():
        raise PositioningError("invalid_box", f"{what}: a box with x2 < x1 or y2 < y1")
    return boxes


def widths(boxes: FloatArray) -> FloatArray:
    return boxes[:, 2] - boxes[:, 0]


def heights(boxes: FloatArray) -> FloatArray:
    return boxes[:, 3] - boxes[:, 1]


def areas(boxes: FloatArray) -> FloatArray:
    return widths(boxes) * heights(boxes)


def footprints(mugs: FloatArray, footprint_frac: float) -> FloatArray:
    """The bottom ``footprint_frac`` of each mug box: where the mug touches the table."""
    out = mugs.copy()
    out[:, 1] = mugs[:, 3] - footprint_frac * heights(mugs)
    return out


def base_points(mugs: FloatArray, footprint_frac: float) -> FloatArray:
    """(N, 2) centre of each footprint: the point a mug stands on."""
    x = (mugs[:, 0] + mugs[:, 2]) / 2
    y = mugs[:, 3] - footprint_frac * heights(mugs) / 2
    return np.stack([x, y], axis=1)


def contains(boxes: FloatArray, points: FloatArray) -> BoolArray:
    """(P, B): point p lies inside (or on the border of) box b."""
    px, py = points[:, None, 0], points[:, None, 1]
    return (boxes[None, :, 0] <= px) & (px <= boxes[None, :, 2]) & (boxes[None, :, 1] <= py) & (py <= boxes[None, :, 3])


def intersection_areas(a: FloatArray, b: FloatArray) -> FloatArray:
    """(A, B) area of the intersection of every pair of boxes."""
    w = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])
    h = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])
    return np.clip(w, 0, None) * np.clip(h, 0, None)


def box_gaps(a: FloatArray, b: FloatArray) -> FloatArray:
    """(A, B) Euclidean gap between boxes: 0 when they touch or overlap; symmetric by construction."""
    dx = np.maximum.reduce([np.zeros((len(a), len(b))), b[None, :, 0] - a[:, None, 2], a[:, None, 0] - b[None, :, 2]])
    dy = np.maximum.reduce([np.zeros((len(a), len(b))), b[None, :, 1] - a[:, None, 3], a[:, None, 1] - b[None, :, 3]])
    return np.hypot(dx, dy)


def _pick(candidates: BoolArray, overlap: FloatArray, prefer: FloatArray | None = None) -> IntArray:
    """Per row, the candidate column with the largest overlap (ties: larger ``prefer``, then lower index)."""
    rows, cols = candidates.shape
    if cols == 0:
        return np.full(rows, NO_INDEX, dtype=np.intp)
    order = np.arange(cols) if prefer is None else np.argsort(-prefer, kind="stable")
    score = np.where(candidates, overlap, -np.inf)[:, order]
    best = order[np.argmax(score, axis=1)] if rows else np.zeros(0, dtype=np.intp)
    return np.where(candidates.any(axis=1), best, NO_INDEX).astype(np.intp)


# -- measurements ----------------------------------------------------------------------------------


def assign_coasters(mugs: FloatArray, coasters: FloatArray, footprint_frac: float) -> IntArray:
    """(N,) index of the coaster each mug stands on, ``-1`` for none (see the module docstring)."""
    valid = (widths(coasters) > 0) & (heights(coasters) > 0)
    inside = contains(coasters, base_points(mugs, footprint_frac)) & valid[None, :]
    return _pick(inside, intersection_areas(footprints(mugs, footprint_frac), coasters))


def coaster_offsets(points: FloatArray, coasters: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Offset of each point from its coaster's centre (rows pair up): pixels, and elliptical fraction."""
    dx = points[:, 0] - (coasters[:, 0] + coasters[:, 2]) / 2
    dy = points[:, 1] - (coasters[:, 1] + coasters[:, 3]) / 2
    return np.hypot(dx, dy), np.hypot(dx / (widths(coasters) / 2), dy / (heights(coasters) / 2))


def assign_surfaces(mugs: FloatArray, surfaces: FloatArray, footprint_frac: float) -> tuple[IntArray, BoolArray]:
    """(N,) supporting surface of each mug (``-1`` when there is none) and whether the base point is on it."""
    valid = (widths(surfaces) > 0) & (heights(surfaces) > 0)
    inside = contains(surfaces, base_points(mugs, footprint_frac)) & valid[None, :]
    chosen = _pick(inside, intersection_areas(footprints(mugs, footprint_frac), surfaces), areas(surfaces))
    on_surface = chosen != NO_INDEX
    if valid.any():
        largest = int(np.argmax(np.where(valid, areas(surfaces), -np.inf)))
        chosen = np.where(on_surface, chosen, largest).astype(np.intp)
    return chosen, on_surface


def open_edges(surfaces: FloatArray, frame: Sequence[float] | None, margin_frac: float) -> BoolArray:
    """(S, 4) left/top/right/bottom edges that lie on the image border: the table continues out of view."""
    if frame is None:
        return np.zeros((len(surfaces), 4), dtype=bool)
    fx1, fy1, fx2, fy2 = (float(v) for v in frame)
    mx, my = margin_frac * (fx2 - fx1), margin_frac * (fy2 - fy1)
    return np.stack(
        [
            surfaces[:, 0] <= fx1 + mx,
            surfaces[:, 1] <= fy1 + my,
            surfaces[:, 2] >= fx2 - mx,
            surfaces[:, 3] >= fy2 - my,
        ],
        axis=1,
    )


def edge_distances(feet: FloatArray, surfaces: FloatArray, is_open: BoolArray | None = None) -> FloatArray:
    """Signed distance from each footprint to the nearest closed edge of its surface (rows pair up).

    Negative when the footprint crosses an edge; NaN when every edge of the surface is open.
    """
    gaps = np.stack(
        [
            feet[:, 0] - surfaces[:, 0],
            feet[:, 1] - surfaces[:, 1],
            surfaces[:, 2] - feet[:, 2],
            surfaces[:, 3] - feet[:, 3],
        ],
        axis=1,
    )
    if is_open is not None:
        gaps = np.where(is_open, np.inf, gaps)
    nearest = gaps.min(axis=1) if len(gaps) else np.zeros(0)
    return np.where(np.isinf(nearest), np.nan, nearest)


def nearest_mugs(feet: FloatArray) -> tuple[FloatArray, IntArray]:
    """Gap from each footprint to the nearest other one, and its index; NaN and ``-1`` for a lone mug."""
    if len(feet) < 2:
        return np.full(len(feet), np.nan), np.full(len(feet), NO_INDEX, dtype=np.intp)
    gaps = box_gaps(feet, feet)
    np.fill_diagonal(gaps, np.inf)
    index = np.argmin(gaps, axis=1).astype(np.intp)
    return gaps[np.arange(len(feet)), index], index


def scale_from_coasters(coasters: FloatArray, diameter_cm: float) -> float | None:
    """Pixels per cm from coasters of known diameter (median of ``max(w, h)``); None without coasters."""
    sizes = np.maximum(widths(coasters), heights(coasters))
    sizes = sizes[sizes > 0]
    return float(np.median(sizes)) / diameter_cm if len(sizes) else None


def parse_px_per_cm(metadata: Mapping[str, str]) -> tuple[float | None, str | None]:
    """``metadata["px_per_cm"]`` as a positive finite float; else None and, when present, why not."""
    raw = metadata.get("px_per_cm")
    if raw is None or not str(raw).strip():
        return None, None
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        return None, f"metadata px_per_cm={raw!r} ignored: not a positive number"
    return value, None


def model_knows_coasters(model: Mapping[str, Any], labels_seen: Iterable[str]) -> bool:
    """Whether the detector can see coasters at all, so that "not on a coaster" means something.

    The event's ``model.labels`` lists every domain label the model can produce; older writers leave
    it empty, and then only a detected coaster proves the model knows the class.
    """
    labels = model.get("labels") or []
    if labels:
        return COASTER in labels
    return COASTER in set(labels_seen)


@dataclass(frozen=True)
class Measurements:
    """Geometry of every mug of one image (rows = mugs); NaN / ``-1`` mean unknown / none."""

    coaster_index: IntArray
    on_coaster: BoolArray | None
    coaster_offset_px: FloatArray
    coaster_offset_frac: FloatArray
    surface_index: IntArray
    on_surface: BoolArray
    edge_distance_px: FloatArray
    edge_distance_frac: FloatArray
    nearest_mug_index: IntArray
    nearest_mug_px: FloatArray
    nearest_mug_norm: FloatArray  # nearest gap in widths of the narrower mug of the pair
    mug_gaps_px: FloatArray
    mug_gaps_norm: FloatArray
    mug_count: int
    coaster_count: int
    surface_count: int
    #: Edges were measured to the camera's configured table outline, not to a detected surface.
    table_outline: bool = False


def measure(
    mugs: FloatArray,
    coasters: FloatArray,
    surfaces: FloatArray,
    *,
    coasters_known: bool,
    frame: Sequence[float] | None = None,
    config: PositioningConfig = DEFAULT_CONFIG,
    camera: CameraGeometry | None = None,
) -> Measurements:
    """Every per-mug measurement of the module docstring. ``frame`` (x1, y1, x2, y2) is the image, for open
    edges; a ``camera`` with a table outline replaces the detected surfaces for edge distances."""
    n = len(mugs)
    feet = footprints(mugs, config.footprint_frac)
    points = base_points(mugs, config.footprint_frac)

    coaster_index = assign_coasters(mugs, coasters, config.footprint_frac)
    has_coaster = coaster_index != NO_INDEX
    offset_px, offset_frac = np.full(n, np.nan), np.full(n, np.nan)
    if has_coaster.any():
        px, frac = coaster_offsets(points[has_coaster], coasters[coaster_index[has_coaster]])
        offset_px[has_coaster], offset_frac[has_coaster] = px, frac

    outline = camera if camera is not None and camera.table is not None else None
    if outline is not None:
        edge_px, on_surface = outline.table_edges(feet, mugs)
        surface_index = np.zeros(n, dtype=np.intp)  # the outline is every mug's surface
        edge_frac = edge_px / outline.table_size if outline.table_size > 0 else np.full(n, np.nan)
    else:
        surface_index, on_surface = assign_surfaces(mugs, surfaces, config.footprint_frac)
        has_surface = surface_index != NO_INDEX
        edge_px, edge_frac = np.full(n, np.nan), np.full(n, np.nan)
        if has_surface.any():
            chosen = surfaces[surface_index[has_surface]]
            is_open = open_edges(chosen, frame, config.frame_margin_frac) if config.ignore_frame_edges else None
            edge_px[has_surface] = edge_distances(feet[has_surface], chosen, is_open)
            edge_frac[has_surface] = edge_px[has_surface] / np.minimum(widths(chosen), heights(chosen))

    gap_px, gap_index = nearest_mugs(feet)
    gaps = box_gaps(feet, feet)
    np.fill_diagonal(gaps, np.inf)
    pair_width = np.minimum(widths(mugs)[:, None], widths(mugs)[None, :])
    with np.errstate(divide="ignore", invalid="ignore"):  # zero-width mugs: a 0 gap stays "touching"
        norm = np.where(gaps == 0, 0.0, gaps / pair_width)
    np.fill_diagonal(norm, np.inf)
    gap_norm = norm.min(axis=1) if n >= 2 else np.full(n, np.nan)

    return Measurements(
        coaster_index=coaster_index,
        on_coaster=has_coaster if coasters_known else None,
        coaster_offset_px=offset_px,
        coaster_offset_frac=offset_frac,
        surface_index=surface_index,
        on_surface=on_surface,
        edge_distance_px=edge_px,
        edge_distance_frac=edge_frac,
        nearest_mug_index=gap_index,
        nearest_mug_px=gap_px,
        nearest_mug_norm=gap_norm,
        mug_gaps_px=gaps,
        mug_gaps_norm=norm,
        mug_count=n,
        coaster_count=len(coasters),
        surface_count=len(surfaces),
        table_outline=outline is not None,
    )


# -- assessment ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Assessment:
    """Quality per mug, and the image's verdict with its reasons (worst first)."""

    quality: FloatArray
    verdict: Verdict
    reasons: tuple[str, ...] = field(default_factory=tuple)


def _ramp(value: FloatArray, low: float, high: float) -> FloatArray:
    return np.clip((value - low) / (high - low), 0.0, 1.0)


def quality_scores(m: Measurements, px_per_cm: float | None, config: PositioningConfig = DEFAULT_CONFIG) -> FloatArray:
    """``100 * E * C * S`` per mug, rounded to 0.1 (factors in the module docstring)."""
    n = m.mug_count
    if px_per_cm is not None:
        edge = _ramp(m.edge_distance_px / px_per_cm, config.edge_violation_cm, config.edge_safe_cm)
        spacing = _ramp(m.nearest_mug_px / px_per_cm, 0.0, config.mug_gap_safe_cm)
    else:
        edge = _ramp(m.edge_distance_frac, config.edge_violation_frac, config.edge_safe_frac)
        spacing = _ramp(m.nearest_mug_norm, 0.0, config.mug_gap_safe_frac)
    has_surface = m.surface_index != NO_INDEX
    e = np.where(~has_surface, 0.5, np.where(~m.on_surface, 0.0, np.where(np.isnan(edge), 1.0, edge)))
    if m.on_coaster is None:
        c = np.ones(n)
    else:
        c = np.where(m.on_coaster, 1.0 - 0.4 * np.minimum(np.nan_to_num(m.coaster_offset_frac), 1.0), 0.5)
    s = np.where(np.isnan(spacing), 1.0, 0.5 + 0.5 * np.nan_to_num(spacing))
    return np.round(100.0 * e * c * s, 1)


def _length(px: float, px_per_cm: float | None, frac: float | None = None, of: str = "") -> str:
    if px_per_cm is not None:
        return f"{px / px_per_cm:.1f} cm ({px:.0f} px)"
    return f"{px:.0f} px ({frac:.1%} of {of})" if frac is not None else f"{px:.0f} px"


def assess(
    m: Measurements,
    *,
    px_per_cm: float | None,
    mug_ids: Sequence[int] | None = None,
    coaster_ids: Sequence[int] | None = None,
    notes: Sequence[str] = (),
    config: PositioningConfig = DEFAULT_CONFIG,
) -> Assessment:
    """Quality, verdict and human-readable reasons. ``mug_ids``/``coaster_ids`` name objects in reasons
    (their detection indices); ``notes`` are extra warnings (e.g. unusable metadata)."""
    ids = list(mug_ids) if mug_ids is not None else list(range(m.mug_count))
    cids = list(coaster_ids) if coaster_ids is not None else list(range(m.coaster_count))
    found: list[tuple[Verdict, str]] = [("warning", note) for note in notes]
    for row, mug in enumerate(ids):
        edge = _edge_reason(m, row, px_per_cm, config)
        if edge is not None:
            found.append((edge[0], f"mug {mug} {edge[1]}"))
        coaster = _coaster_reason(m, row, cids, config)
        if coaster is not None:
            found.append((coaster[0], f"mug {mug} {coaster[1]}"))
    if m.mug_count >= 2:
        found.extend(_close_pairs(m, ids, px_per_cm, config))
    if config.warn_no_surface and (m.surface_index == NO_INDEX).any():  # none, or only zero-area boxes
        found.append(("warning", "no table surface detected: edge distances unknown"))

    found.sort(key=lambda item: -VERDICTS.index(item[0]))  # stable: worst first, then in order of discovery
    verdict: Verdict = found[0][0] if found else "ok"
    return Assessment(quality_scores(m, px_per_cm, config), verdict, tuple(text for _, text in found))


def _edge_reason(
    m: Measurements, row: int, px_per_cm: float | None, config: PositioningConfig
) -> tuple[Verdict, str] | None:
    """Why one mug's edge distance is a problem (the text follows "mug N"), or None."""
    if m.surface_index[row] == NO_INDEX:
        return None  # no surface at all: one image-level warning instead
    if not m.on_surface[row]:
        where = "the camera's table outline" if m.table_outline else "every detected table surface"
        return "violation", f"stands outside {where}"
    px, frac = float(m.edge_distance_px[row]), float(m.edge_distance_frac[row])
    if math.isnan(px):
        return None  # every edge of its surface is outside the picture
    if px < 0:
        return "violation", f"overhangs the table edge by {_length(-px, px_per_cm, -frac, 'the table')}"
    if px_per_cm is not None:
        value, unit = px / px_per_cm, "{:g} cm"
        levels: tuple[tuple[Verdict, float], ...] = (
            ("violation", config.edge_violation_cm),
            ("warning", config.edge_warning_cm),
        )
    else:
        value, unit = frac, "{:.1%} of the table's size"
        levels = (("violation", config.edge_violation_frac), ("warning", config.edge_warning_frac))
    for level, limit in levels:
        if value < limit:
            distance = _length(px, px_per_cm, frac, "the table")
            return level, f"is {distance} from the table edge ({level}: closer than {unit.format(limit)})"
    return None


def _coaster_reason(
    m: Measurements, row: int, coaster_ids: Sequence[int], config: PositioningConfig
) -> tuple[Verdict, str] | None:
    """Why one mug's coaster placement is a problem (the text follows "mug N"), or None."""
    if m.on_coaster is None:
        return None  # the model cannot see coasters: nothing to say
    if not m.on_coaster[row]:
        if m.coaster_count:
            visible = "1 coaster is" if m.coaster_count == 1 else f"{m.coaster_count} coasters are"
            return "violation", f"is not on a coaster although {visible} visible"
        return ("warning", "is not on a coaster (none visible)") if config.warn_no_coaster_visible else None
    offset = float(m.coaster_offset_frac[row])
    if offset <= config.coaster_offset_warning:
        return None
    coaster = coaster_ids[int(m.coaster_index[row])]
    limit = config.coaster_offset_warning
    return "warning", f"stands off-centre on coaster {coaster} ({offset:.2f} of its radius; warning above {limit:g})"


def _close_pairs(
    m: Measurements, ids: Sequence[int], px_per_cm: float | None, config: PositioningConfig
) -> list[tuple[Verdict, str]]:
    """One warning per pair of mugs closer than the gap threshold (each pair once, not once per mug)."""
    if px_per_cm is not None:
        close = m.mug_gaps_px / px_per_cm < config.mug_gap_warning_cm
        limit = f"{config.mug_gap_warning_cm:g} cm"
    else:
        close = m.mug_gaps_norm < config.mug_gap_warning_frac
        limit = f"{config.mug_gap_warning_frac:g} mug widths"
    out: list[tuple[Verdict, str]] = []
    for a, b in zip(*np.nonzero(np.triu(close, k=1)), strict=True):
        gap = _length(float(m.mug_gaps_px[a, b]), px_per_cm)
        out.append(("warning", f"mugs {ids[a]} and {ids[b]} are {gap} apart (warning: closer than {limit})"))
    return out


# -- events ----------------------------------------------------------------------------------------


def _box_of(detection: Mapping[str, Any]) -> list[float]:
    box = detection["box"]
    return [box["x1"], box["y1"], box["x2"], box["y2"]]


def _none_if_nan(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


def position_event(
    detection_event: Mapping[str, Any],
    *,
    processed_at: datetime,
    config: PositioningConfig = DEFAULT_CONFIG,
    camera: CameraGeometry | None = None,
) -> dict[str, Any]:
    """The PositionEvent record of one DetectionEvent record. Raises :class:`PositioningError` on bad boxes.

    ``camera`` is the source's configuration (``mugpos cameras set``): its scale stands in when the
    metadata gives none, its table outline replaces the detected surfaces, its zones name where each
    mug stands."""
    detections = list(detection_event["detections"])
    by_label: dict[str, list[int]] = {MUG: [], COASTER: [], SURFACE: []}
    for i, det in enumerate(detections):
        if det["label"] in by_label:
            by_label[det["label"]].append(i)
    mugs, coasters, surfaces = (
        as_boxes([_box_of(detections[i]) for i in by_label[label]], label) for label in (MUG, COASTER, SURFACE)
    )

    metadata: dict[str, str] = dict(detection_event.get("metadata") or {})
    px_per_cm, note = parse_px_per_cm(metadata)
    scale_source: str | None = "metadata" if px_per_cm is not None else None
    if px_per_cm is None and camera is not None and camera.config.px_per_cm is not None:
        px_per_cm, scale_source = camera.config.px_per_cm, "camera"
    if px_per_cm is None:
        px_per_cm = scale_from_coasters(coasters, config.coaster_diameter_cm)
        scale_source = "coaster" if px_per_cm is not None else None

    width, height = int(detection_event["image_width"]), int(detection_event["image_height"])
    frame = (0.0, 0.0, float(width), float(height)) if width > 0 and height > 0 else None
    knows = model_knows_coasters(detection_event["model"], (d["label"] for d in detections))
    m = measure(mugs, coasters, surfaces, coasters_known=knows, frame=frame, config=config, camera=camera)
    zones = camera.zones_of(mugs) if camera is not None else [[] for _ in range(len(mugs))]
    verdict = assess(
        m,
        px_per_cm=px_per_cm,
        mug_ids=by_label[MUG],
        coaster_ids=by_label[COASTER],
        notes=[note] if note else (),
        config=config,
    )

    def cm(px: float) -> float | None:
        return None if px_per_cm is None or math.isnan(px) else px / px_per_cm

    mug_records = []
    for row, index in enumerate(by_label[MUG]):
        det = detections[index]
        coaster_row = int(m.coaster_index[row])
        mug_records.append(
            {
                "index": index,
                "confidence": float(det["confidence"]),
                "box": dict(det["box"]),
                "on_coaster": None if m.on_coaster is None else bool(m.on_coaster[row]),
                "coaster_index": by_label[COASTER][coaster_row] if coaster_row != NO_INDEX else None,
                "coaster_offset_px": _none_if_nan(m.coaster_offset_px[row]),
                "coaster_offset_frac": _none_if_nan(m.coaster_offset_frac[row]),
                "edge_distance_px": _none_if_nan(m.edge_distance_px[row]),
                "edge_distance_frac": _none_if_nan(m.edge_distance_frac[row]),
                "edge_distance_cm": cm(float(m.edge_distance_px[row])),
                "nearest_mug_px": _none_if_nan(m.nearest_mug_px[row]),
                "nearest_mug_cm": cm(float(m.nearest_mug_px[row])),
                "quality": float(verdict.quality[row]),
                "attributes": dict(det.get("attributes") or {}),
                "zones": zones[row],
            }
        )
    return {
        "image_id": detection_event["image_id"],
        "source": detection_event["source"],
        "captured_at": detection_event["captured_at"],
        "processed_at": processed_at,
        "model_id": detection_event["model"]["model_id"],
        "image_width": width,
        "image_height": height,
        "px_per_cm": px_per_cm,
        "scale_source": scale_source,
        "mug_count": m.mug_count,
        "coaster_count": m.coaster_count,
        "surface_count": m.surface_count,
        "mugs": mug_records,
        "verdict": verdict.verdict,
        "reasons": list(verdict.reasons),
        "metadata": metadata,
        "zones": list(camera.config.zone_names) if camera is not None else [],
    }
