"""Builders for decoded PositionEvent records, shaped exactly like the Avro decoder's output."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

T0 = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


def mug(index: int = 0, **fields: Any) -> dict[str, Any]:
    """A well-placed mug; override what the test is about."""
    base: dict[str, Any] = {
        "index": index,
        "confidence": 0.9,
        "box": {"x1": 10.0, "y1": 10.0, "x2": 60.0, "y2": 80.0},
        "on_coaster": True,
        "coaster_index": 10 + index,
        "coaster_offset_px": 2.0,
        "coaster_offset_frac": 0.05,
        "edge_distance_px": 240.0,
        "edge_distance_frac": 0.2,
        "edge_distance_cm": 20.0,
        "nearest_mug_px": None,
        "nearest_mug_cm": None,
        "quality": 95.0,
        "attributes": {"colour": "white"},
    }
    base.update(fields)
    return base


def position(
    *mugs: dict[str, Any], image_id: str = "img-1", source: str = "kitchen-1", **fields: Any
) -> dict[str, Any]:
    """A PositionEvent record with the given mugs (counts follow them unless overridden)."""
    event: dict[str, Any] = {
        "image_id": image_id,
        "source": source,
        "captured_at": T0,
        "processed_at": T0,
        "model_id": "yolo26n",
        "image_width": 1280,
        "image_height": 720,
        "px_per_cm": 12.0,
        "scale_source": "coaster",
        "mug_count": len(mugs),
        "coaster_count": sum(1 for m in mugs if m.get("on_coaster")),
        "surface_count": 1,
        "mugs": list(mugs),
        "verdict": "ok",
        "reasons": [],
        "metadata": {},
    }
    event.update(fields)
    return event
