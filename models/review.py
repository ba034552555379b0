"""Frames for labelling: a sample of what the detector saw, with its boxes as YOLO label files.

A model trained on renderings is a start; a user's own cameras are the real test. The detect
worker writes some frames under a ``review/`` prefix of the store, as ``images/<name>.<ext>`` and
``labels/<name>.txt`` (YOLO: ``class xc yc w h``, classes 0 mug, 1 coaster, 2 surface), which is
the layout Label Studio, CVAT and Roboflow import and ``mugpos train --data`` reads back. A person
corrects the boxes, and the next head is trained on them.

Which frames: a share of all frames (``rate``), chosen by a hash of the image id so that a frame
processed twice (at-least-once) is chosen both times or never, plus every frame where the model
was unsure: a mug, coaster or surface scored below ``uncertain_below``.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any, Protocol

from prometheus_client import Counter

log = logging.getLogger(__name__)

REVIEW_FRAMES = Counter(
    "mugpos_review_frames_total", "Frames chosen for labelling, by reason, and their writes.", ["result"]
)

#: Class order of the label files: the head's classes (``mugpos.training.synth.CLASS_NAMES``).
REVIEW_CLASSES = ("mug", "coaster", "surface")


class Writer(Protocol):
    """Writes an object (see ``mugpos.storage.store``)."""

    async def put(self, key_or_uri: str, data: bytes, content_type: str | None = None) -> str: ...


def yolo_label_text(detections: Sequence[Mapping[str, Any]], width: int, height: int) -> str:
    """YOLO label lines for the domain detections (other COCO classes have no class number here)."""
    lines = []
    for d in detections:
        if d["label"] not in REVIEW_CLASSES or width <= 0 or height <= 0:
            continue
        b = d["box"]
        x1, y1 = max(0.0, float(b["x1"])) / width, max(0.0, float(b["y1"])) / height
        x2, y2 = min(float(width), float(b["x2"])) / width, min(float(height), float(b["y2"])) / height
        if x2 <= x1 or y2 <= y1:
            continue
        cls = REVIEW_CLASSES.index(d["label"])
        lines.append(f"{cls} {(x1 + x2) / 2:.6f} {(y1 + y2) / 2:.6f} {x2 - x1:.6f} {y2 - y1:.6f}")
    return "\n".join(lines) + ("\n" if lines else "")


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "x"


@dataclass
class ReviewSampler:
    """Chooses frames for review and writes them with their labels; failures are counted, never raised.

    Writing for review is a side product of detection, not one of its outputs: a store that is down
    costs the sample (counted in ``failed`` and logged), never the detection event.
    """

    writer: Writer
    rate: float = 0.0
    uncertain_below: float = 0.0
    prefix: str = "review/"
    written: int = 0
    failed: int = 0
    chosen: dict[str, int] = field(default_factory=lambda: {"sampled": 0, "uncertain": 0})

    def __post_init__(self) -> None:
        if not 0.0 <= self.rate <= 1.0:
            raise ValueError(f"review sample rate must be within [0, 1], got {self.rate}")
        if not 0.0 <= self.uncertain_below <= 1.0:
            raise ValueError(f"review confidence bound must be within [0, 1], got {self.uncertain_below}")

    @property
    def enabled(self) -> bool:
        return self.rate > 0.0 or self.uncertain_below > 0.0

    def reason(self, image_id: str, detections: Sequence[Mapping[str, Any]]) -> str | None:
        """``uncertain``, ``sampled`` or None (not chosen); the same answer every time for one image id."""
        if any(d["label"] in REVIEW_CLASSES and float(d["confidence"]) < self.uncertain_below for d in detections):
            return "uncertain"
        draw = int.from_bytes(hashlib.sha256(image_id.encode()).digest()[:8], "big") / 2**64
        return "sampled" if draw < self.rate else None

    def keys(self, source: str, image_id: str, uri: str) -> tuple[str, str]:
        """Object keys of the image and its label file under the review prefix."""
        ext = PurePosixPath(uri.split("?")[0]).suffix.lower() or ".jpg"
        name = f"{_safe(source)}-{_safe(image_id)}"
        base = self.prefix.rstrip("/")
        return f"{base}/images/{name}{ext}", f"{base}/labels/{name}.txt"

    async def offer(
        self,
        items: Sequence[tuple[Mapping[str, Any], bytes, Sequence[Mapping[str, Any]], tuple[int, int]]],
    ) -> int:
        """Write the chosen of ``(event, image bytes, detections, (width, height))``; returns how many."""
        jobs = []
        for event, data, detections, (width, height) in items:
            why = self.reason(str(event["image_id"]), detections)
            if why is None:
                continue
            self.chosen[why] += 1
            REVIEW_FRAMES.labels(why).inc()
            source = str(event.get("source") or "unknown")
            image_key, label_key = self.keys(source, str(event["image_id"]), event["uri"])
            jobs.append(self._write(image_key, data, label_key, yolo_label_text(detections, width, height)))
        done = await asyncio.gather(*jobs)
        return sum(done)

    async def _write(self, image_key: str, data: bytes, label_key: str, labels: str) -> bool:
        try:
            await self.writer.put(image_key, data)
            await self.writer.put(label_key, labels.encode(), "text/plain")
        except Exception as exc:  # counted and logged: a sample is not worth holding a batch for
            self.failed += 1
            REVIEW_FRAMES.labels("write_failed").inc()
            log.warning("review sample %s not written: %r", image_key, exc)
            return False
        self.written += 1
        REVIEW_FRAMES.labels("written").inc()
        return True
