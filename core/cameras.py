"""Per-camera configuration: scale, an optional table outline and named zones.

A camera's configuration lives on the compacted ``cameras`` topic, keyed by source, like the rules
(``mugpos.storage.cameras``). It is plain data on the ground floor because every layer reads it:
positioning measures with it (``mugpos.models.zones``), rules name its zones (``mugpos.rules``),
the CLI and the HTTP API write it. Coordinates are pixels of the camera's frames, origin top left,
as the boxes of a DetectionEvent are.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from mugpos.core.errors import MugposError

#: A zone's name, as written in rules ("in zone laptop") and in ``mug.zone.NAME``.
ZONE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
#: A source id that may carry a configuration (the topic key).
SOURCE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:@-]{0,127}")
MAX_ZONES = 32
MAX_VERTICES = 64
#: Largest coordinate accepted: a frame of 65,536 px per side is beyond any camera.
MAX_COORD = 65536.0

Point = tuple[float, float]
Polygon = tuple[Point, ...]


class CameraConfigError(MugposError, ValueError):
    """A configuration that does not validate; ``path`` names the offending part (``zones[1].polygon``)."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


@dataclass(frozen=True, slots=True)
class Zone:
    """A named area of the picture; a mug is in it when its footprint point is inside ``polygon``."""

    name: str
    polygon: Polygon


@dataclass(frozen=True, slots=True)
class CameraConfig:
    """What a camera's frames cannot tell by themselves."""

    source: str
    #: Pixels per centimetre on the table; used when an image event's metadata gives none.
    px_per_cm: float | None = None
    #: The table top's outline: when set, it is the surface edge distances are measured to.
    table: Polygon | None = None
    zones: tuple[Zone, ...] = ()
    updated_at: datetime = field(default_factory=lambda: datetime.now(UTC), compare=False)

    @property
    def zone_names(self) -> tuple[str, ...]:
        return tuple(z.name for z in self.zones)


def parse_polygon(text: str, path: str = "polygon") -> Polygon:
    """A polygon from ``"x,y x,y x,y"`` (spaces or semicolons between points), as the CLI takes it."""
    points: list[list[float]] = []
    for i, token in enumerate(t for t in re.split(r"[\s;]+", text.strip()) if t):
        parts = token.split(",")
        if len(parts) != 2:
            raise CameraConfigError(f"{path}[{i}]", f"expected x,y, got {token!r}")
        try:
            points.append([float(parts[0]), float(parts[1])])
        except ValueError:
            raise CameraConfigError(f"{path}[{i}]", f"expected two numbers x,y, got {token!r}") from None
    return check_polygon(points, path)


def check_polygon(value: Any, path: str) -> Polygon:
    """``value`` as a polygon of 3 to :data:`MAX_VERTICES` finite, non-negative points with an area."""
    if not isinstance(value, Sequence) or isinstance(value, str | bytes):
        raise CameraConfigError(path, "must be a list of [x, y] points")
    if not 3 <= len(value) <= MAX_VERTICES:
        raise CameraConfigError(path, f"needs 3 to {MAX_VERTICES} points, got {len(value)}")
    points: list[Point] = []
    for i, point in enumerate(value):
        if isinstance(point, Mapping):
            point = (point.get("x"), point.get("y"))
        if not isinstance(point, Sequence) or isinstance(point, str | bytes) or len(point) != 2:
            raise CameraConfigError(f"{path}[{i}]", "must be [x, y]")
        xy = []
        for c in point:
            if isinstance(c, bool) or not isinstance(c, int | float) or not math.isfinite(c):
                raise CameraConfigError(f"{path}[{i}]", f"coordinates must be finite numbers, got {c!r}")
            if not 0 <= c <= MAX_COORD:
                raise CameraConfigError(f"{path}[{i}]", f"coordinates are pixels, 0 to {MAX_COORD:g}, got {c!r}")
            xy.append(float(c))
        points.append((xy[0], xy[1]))
    if polygon_area(points) < 1.0:
        raise CameraConfigError(path, "the points enclose no area (all on one line?)")
    return tuple(points)


def polygon_area(points: Sequence[Point]) -> float:
    """Unsigned area by the shoelace formula."""
    total = 0.0
    for (x1, y1), (x2, y2) in zip(points, [*points[1:], points[0]], strict=True):
        total += x1 * y2 - x2 * y1
    return abs(total) / 2


def check_source(value: Any) -> str:
    if not isinstance(value, str) or not SOURCE_ID.fullmatch(value):
        raise CameraConfigError("source", f"must match {SOURCE_ID.pattern}, got {value!r}")
    return value


def config_from_obj(obj: Any, *, source: str | None = None) -> CameraConfig:
    """Validate a JSON object (the HTTP body, a decoded record) into a :class:`CameraConfig`.

    ``source``, when given (from the URL or the topic key), wins over, and must agree with, the body's.
    """
    if not isinstance(obj, Mapping):
        raise CameraConfigError("$", f"must be a JSON object, got {type(obj).__name__}")
    unknown = sorted(set(obj) - {"source", "px_per_cm", "table", "zones", "updated_at"})
    if unknown:
        raise CameraConfigError(unknown[0], "unknown key; allowed: source, px_per_cm, table, zones")
    body_source = obj.get("source")
    if source is not None and body_source not in (None, source):
        raise CameraConfigError("source", f"the body says {body_source!r} but the address says {source!r}")
    src = check_source(source if source is not None else body_source)
    scale = obj.get("px_per_cm")
    if scale is not None:
        if isinstance(scale, bool) or not isinstance(scale, int | float) or not math.isfinite(scale) or scale <= 0:
            raise CameraConfigError("px_per_cm", f"must be a positive number, got {scale!r}")
        if scale > 10000:
            raise CameraConfigError("px_per_cm", f"{scale!r} pixels per centimetre is beyond any camera")
    table_raw = obj.get("table")
    table = None if table_raw is None else check_polygon(table_raw, "table")
    zones_raw = obj.get("zones") or []
    if not isinstance(zones_raw, Sequence) or isinstance(zones_raw, str | bytes):
        raise CameraConfigError("zones", "must be a list of {name, polygon}")
    if len(zones_raw) > MAX_ZONES:
        raise CameraConfigError("zones", f"at most {MAX_ZONES} zones per camera, got {len(zones_raw)}")
    zones: list[Zone] = []
    for i, z in enumerate(zones_raw):
        if not isinstance(z, Mapping) or set(z) - {"name", "polygon"}:
            raise CameraConfigError(f"zones[{i}]", "must be {name, polygon}")
        name = z.get("name")
        if not isinstance(name, str) or not ZONE_NAME.fullmatch(name):
            raise CameraConfigError(f"zones[{i}].name", f"must match {ZONE_NAME.pattern}, got {name!r}")
        if any(other.name == name for other in zones):
            raise CameraConfigError(f"zones[{i}].name", f"zone {name!r} is named twice")
        zones.append(Zone(name, check_polygon(z.get("polygon"), f"zones[{i}].polygon")))
    updated = obj.get("updated_at")
    if isinstance(updated, datetime):
        updated_at = updated.astimezone(UTC)
    elif isinstance(updated, int | float) and not isinstance(updated, bool):
        updated_at = datetime.fromtimestamp(updated / 1000, UTC)
    else:
        updated_at = datetime.now(UTC)
    return CameraConfig(src, None if scale is None else float(scale), table, tuple(zones), updated_at)


def _points(polygon: Polygon) -> list[dict[str, float]]:
    return [{"x": x, "y": y} for x, y in polygon]


def config_to_record(config: CameraConfig) -> dict[str, Any]:
    """The Avro ``CameraConfig`` record (points as ``{x, y}``)."""
    return {
        "source": config.source,
        "px_per_cm": config.px_per_cm,
        "table": None if config.table is None else _points(config.table),
        "zones": [{"name": z.name, "polygon": _points(z.polygon)} for z in config.zones],
        "updated_at": config.updated_at,
    }


def config_to_json(config: CameraConfig) -> dict[str, Any]:
    """What ``mugpos cameras list --json`` and ``GET /mugpos/cameras`` show (points as ``[x, y]``)."""
    return {
        "source": config.source,
        "px_per_cm": config.px_per_cm,
        "table": None if config.table is None else [list(p) for p in config.table],
        "zones": [{"name": z.name, "polygon": [list(p) for p in z.polygon]} for z in config.zones],
        "updated_at": config.updated_at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
    }
