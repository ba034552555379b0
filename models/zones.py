"""Per-camera geometry from its configuration: which zones hold a mug, how far it is from the table's outline.

A mug is in a zone when its footprint point, the bottom centre of its box, is inside the zone's
polygon (its boundary included), the anchor Frigate and supervision's ``PolygonZone`` use. The
test is OpenCV's ``pointPolygonTest`` on the float polygon rather than ``PolygonZone`` itself,
which rasterises each polygon into a mask as large as its extent and rounds its vertices to whole
pixels: per zone and per camera that is megabytes, where the point test needs none.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np
import numpy.typing as npt

from mugpos.core.cameras import CameraConfig, Polygon

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class CameraGeometry:
    """A configuration's polygons as OpenCV contours, built once per configuration."""

    config: CameraConfig
    # derived from ``config``, so equal configurations make equal geometries
    zones: tuple[tuple[str, npt.NDArray[np.float32]], ...] = field(compare=False)
    table: npt.NDArray[np.float32] | None = field(compare=False)
    table_size: float = field(compare=False)  # shorter side of the table outline's bounding box, for edge fractions

    @classmethod
    def of(cls, config: CameraConfig) -> CameraGeometry:
        table = None if config.table is None else _contour(config.table)
        size = 0.0
        if config.table is not None:
            xs, ys = [p[0] for p in config.table], [p[1] for p in config.table]
            size = min(max(xs) - min(xs), max(ys) - min(ys))
        return cls(config, tuple((z.name, _contour(z.polygon)) for z in config.zones), table, size)

    def zones_of(self, mugs: FloatArray) -> list[list[str]]:
        """Per mug box (x1, y1, x2, y2), the names of the zones holding its bottom centre, in configuration order."""
        points = footprint_points(mugs)
        return [[name for name, contour in self.zones if _inside(contour, x, y)] for x, y in points]

    def table_edges(self, feet: FloatArray, mugs: FloatArray) -> tuple[FloatArray, npt.NDArray[np.bool_]]:
        """Signed distance from each footprint box to the table outline (negative where a corner is
        outside: it overhangs) and whether its bottom centre is on the table at all."""
        assert self.table is not None
        n = len(feet)
        distance = np.full(n, np.nan)
        on = np.zeros(n, dtype=bool)
        for row, ((x1, y1, x2, y2), (px, py)) in enumerate(zip(feet, footprint_points(mugs), strict=True)):
            corners = ((x1, y1), (x2, y1), (x1, y2), (x2, y2))
            distance[row] = min(_signed(self.table, float(x), float(y)) for x, y in corners)
            on[row] = _inside(self.table, float(px), float(py))
        return distance, on


def footprint_points(mugs: FloatArray) -> FloatArray:
    """(N, 2) bottom centre of each box."""
    if len(mugs) == 0:
        return np.zeros((0, 2))
    return np.stack([(mugs[:, 0] + mugs[:, 2]) / 2, mugs[:, 3]], axis=1)


def _contour(polygon: Polygon | Sequence[tuple[float, float]]) -> npt.NDArray[np.float32]:
    return np.asarray(polygon, dtype=np.float32).reshape(-1, 1, 2)


def _inside(contour: npt.NDArray[np.float32], x: float, y: float) -> bool:
    return bool(cv2.pointPolygonTest(contour, (float(x), float(y)), False) >= 0)


def _signed(contour: npt.NDArray[np.float32], x: float, y: float) -> float:
    """Distance to the outline, positive inside, negative outside (OpenCV's convention)."""
    return float(cv2.pointPolygonTest(contour, (x, y), True))
