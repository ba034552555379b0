"""GPU cost accounting: GPU-hours and dollars per 1,000 images from ``MUGPOS_GPU_HOUR_COST``.

One worker holds one GPU for as long as it runs, loading or busy: a GPU is billed by the hour it is
allocated, not by the images it processes, so idle workers are the cost to cut.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class CostSummary:
    """GPU time and money for a number of processed images."""

    gpu_seconds: float
    images: float
    gpu_hour_cost: float

    @property
    def gpu_hours(self) -> float:
        return self.gpu_seconds / 3600.0

    @property
    def cost(self) -> float:
        """Dollars (or whatever currency ``gpu_hour_cost`` is in)."""
        return self.gpu_hours * self.gpu_hour_cost

    @property
    def per_1000_images(self) -> float | None:
        """Cost of 1,000 images; ``None`` before the first image."""
        return self.cost / self.images * 1000.0 if self.images > 0 else None

    def as_dict(self) -> dict[str, float | None]:
        return {
            "gpu_seconds": round(self.gpu_seconds, 3),
            "gpu_hours": round(self.gpu_hours, 6),
            "images": self.images,
            "gpu_hour_cost": self.gpu_hour_cost,
            "cost": round(self.cost, 6),
            "cost_per_1000_images": None if self.per_1000_images is None else round(self.per_1000_images, 6),
        }


def cost_summary(gpu_seconds: float, images: float, gpu_hour_cost: float) -> CostSummary:
    """Validate and bundle; negative or non-finite inputs are a programming error."""
    for name, value in (("gpu_seconds", gpu_seconds), ("images", images), ("gpu_hour_cost", gpu_hour_cost)):
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return CostSummary(gpu_seconds, images, gpu_hour_cost)


class CostMeter:
    """Integrates running workers over time and counts processed images, for the stats page."""

    def __init__(self, gpu_hour_cost: float) -> None:
        cost_summary(0.0, 0.0, gpu_hour_cost)
        self.gpu_hour_cost = gpu_hour_cost
        self.gpu_seconds = 0.0
        self.images = 0.0
        self._last: tuple[float, int] | None = None

    def observe(self, now: float, workers: int, images_total: float | None = None) -> None:
        """Record that ``workers`` run from ``now`` on; bills the previous count for the time since."""
        if self._last is not None:
            then, running = self._last
            self.gpu_seconds += max(0.0, now - then) * running
        self._last = (now, max(0, workers))
        if images_total is not None:
            self.images = max(self.images, float(images_total))

    def add_images(self, count: float) -> None:
        self.images += max(0.0, count)

    def summary(self) -> CostSummary:
        return CostSummary(self.gpu_seconds, self.images, self.gpu_hour_cost)
