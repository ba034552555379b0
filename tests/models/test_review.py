"""Frames for labelling: which are chosen, what is written, and that a store failure costs only the sample."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cv2
import pytest

from mugpos.models.attributes import DominantColour
from mugpos.models.batching import BatchProcessor, Failure
from mugpos.models.review import REVIEW_FRAMES, ReviewSampler, yolo_label_text
from mugpos.storage.store import FileStore, StoreUnavailable
from tests.models.drawing import draw_mug_scene


class _Nowhere:
    async def put(self, key_or_uri: str, data: bytes, content_type: str | None = None) -> str:
        raise StoreUnavailable("cannot reach the store")


def _det(label: str, conf: float, box: tuple[float, float, float, float] = (10, 20, 50, 80)) -> dict[str, Any]:
    return {"label": label, "confidence": conf, "box": dict(zip(("x1", "y1", "x2", "y2"), box, strict=True))}


@pytest.mark.parametrize(
    ("case", "rate", "below", "detections", "expected"),
    [
        ("off", 0.0, 0.0, [_det("mug", 0.3)], None),
        ("an unsure mug", 0.0, 0.5, [_det("mug", 0.3)], "uncertain"),
        ("a sure mug only", 0.0, 0.5, [_det("mug", 0.9)], None),
        ("an unsure person does not count", 0.0, 0.5, [_det("person", 0.3)], None),
        ("every frame", 1.0, 0.0, [], "sampled"),
    ],
)
def test_which_frames_are_chosen(case: str, rate: float, below: float, detections: list, expected: str | None) -> None:
    sampler = ReviewSampler(_Nowhere(), rate, below)
    assert sampler.reason("img-1", detections) == expected, case


def test_a_sample_rate_picks_that_share_and_the_same_frames_every_time() -> None:
    sampler = ReviewSampler(_Nowhere(), rate=0.2)
    chosen = [i for i in range(5000) if sampler.reason(f"frame-{i}", [])]
    assert 0.17 < len(chosen) / 5000 < 0.23
    assert chosen == [i for i in range(5000) if sampler.reason(f"frame-{i}", [])]


def test_labels_are_yolo_lines_of_the_domain_classes_only() -> None:
    found = [_det("mug", 0.9, (10, 20, 50, 80)), _det("person", 0.9), _det("coaster", 0.4, (0, 0, 200, 100))]
    text = yolo_label_text(found, 200, 100)
    assert text.splitlines() == ["0 0.150000 0.500000 0.200000 0.600000", "1 0.500000 0.500000 1.000000 1.000000"]


def test_rates_out_of_range_are_refused() -> None:
    with pytest.raises(ValueError, match="within"):
        ReviewSampler(_Nowhere(), rate=1.5)


def _png(image: Any) -> bytes:
    ok, buf = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    assert ok
    return buf.tobytes()


def _event(image_id: str, uri: str) -> dict[str, Any]:
    return {"image_id": image_id, "source": "cam/kitchen", "uri": uri, "captured_at": datetime.now(UTC)}


def test_the_detect_path_writes_chosen_frames_with_their_labels(detector: Any, tmp_path: Path) -> None:
    """A real detector, a file store: the frame and its mug box land under review/, ready for `train --data`."""
    image, _box = draw_mug_scene()
    store = FileStore(f"file://{tmp_path}")
    asyncio.run(store.put("in/a.png", _png(image)))
    sampler = ReviewSampler(store, rate=0.0, uncertain_below=1.0)  # every frame with a mug is "unsure"
    processor = BatchProcessor(detector, DominantColour(), store, review=sampler)
    try:
        [out] = asyncio.run(processor.process([_event("a", f"file://{tmp_path}/in/a.png")]))
    finally:
        processor.close()
    assert not isinstance(out, Failure) and any(d["label"] == "mug" for d in out["detections"])
    written = tmp_path / "review" / "images" / "cam_kitchen-a.png"
    labels = tmp_path / "review" / "labels" / "cam_kitchen-a.txt"
    assert written.read_bytes() == (tmp_path / "in" / "a.png").read_bytes()
    assert [line.split()[0] for line in labels.read_text().splitlines()] == ["0"]
    assert sampler.written == 1 and sampler.chosen["uncertain"] == 1


def test_a_review_store_that_is_down_costs_the_sample_not_the_detection(detector: Any, tmp_path: Path) -> None:
    image, _box = draw_mug_scene()
    store = FileStore(f"file://{tmp_path}")
    asyncio.run(store.put("in/a.png", _png(image)))
    sampler = ReviewSampler(_Nowhere(), rate=1.0)
    failed_before = REVIEW_FRAMES.labels("write_failed")._value.get()
    processor = BatchProcessor(detector, DominantColour(), store, review=sampler)
    try:
        [out] = asyncio.run(processor.process([_event("a", f"file://{tmp_path}/in/a.png")]))
    finally:
        processor.close()
    assert not isinstance(out, Failure) and out["detections"]
    assert sampler.failed == 1 and sampler.written == 0
    assert REVIEW_FRAMES.labels("write_failed")._value.get() == failed_before + 1  # counted where Prometheus sees it
