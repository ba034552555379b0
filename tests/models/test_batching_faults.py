"""What the batch processor makes of failures: bad input is a Failure, trouble is held, a bug is a bug.

A real detector does the work; the wrapper around it only makes the device fail the way a GPU
does (out of memory above some batch size, or lost), which this CPU cannot do on its own.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cv2
import pytest
import torch

from mugpos.core.errors import InfrastructureError
from mugpos.core.metrics import INTERNAL_ERRORS
from mugpos.models.attributes import DominantColour
from mugpos.models.batching import BatchProcessor, Failure
from mugpos.storage.store import FileStore, ObjectNotFound, StoreUnavailable
from tests.models.drawing import draw_mug_scene


class FailingDevice:
    """The real detector, on a device that runs out of memory above ``fits`` images, or is lost."""

    def __init__(self, detector: Any, fits: int | None = None, lost: bool = False) -> None:
        self._detector = detector
        self.fits = fits
        self.lost = lost
        self.batches: list[tuple[int, bool]] = []  # (size, succeeded)

    def infer(self, prepared: list[Any]) -> list[list[dict[str, Any]]]:
        if self.lost:
            self.batches.append((len(prepared), False))
            raise RuntimeError("CUDA error: an illegal memory access was encountered")
        if self.fits is not None and len(prepared) > self.fits:
            self.batches.append((len(prepared), False))
            raise torch.OutOfMemoryError(f"CUDA out of memory. Tried to allocate {len(prepared) * 64} MiB")
        self.batches.append((len(prepared), True))
        return list(self._detector.infer(prepared))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._detector, name)


class Fetcher:
    """A store whose ``get`` raises ``error`` (or reads the file store when there is none)."""

    def __init__(self, store: FileStore, error: BaseException | None = None) -> None:
        self.store = store
        self.error = error

    async def get(self, key_or_uri: str, max_bytes: int | None = None) -> bytes:
        if self.error is not None:
            raise self.error
        return await self.store.get(key_or_uri, max_bytes=max_bytes)


def scenes(tmp_path: Path, count: int) -> tuple[FileStore, list[dict[str, Any]]]:
    store = FileStore(f"file://{tmp_path}")
    events = []
    for i in range(count):
        image, _ = draw_mug_scene(320, 240, seed=i)
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        assert ok
        uri = asyncio.run(store.put(f"in/{i}.jpg", buf.tobytes()))
        events.append({"image_id": f"img-{i}", "source": "cam", "uri": uri, "captured_at": datetime.now(UTC)})
    return store, events


def run(processor: BatchProcessor, events: list[dict[str, Any]]) -> list[Any]:
    try:
        return asyncio.run(processor.process(events))
    finally:
        processor.close()


def test_out_of_memory_halves_the_batch_until_it_fits_and_every_image_gets_its_result(
    detector: Any, tmp_path: Path
) -> None:
    store, events = scenes(tmp_path, 5)
    device = FailingDevice(detector, fits=2)
    outcomes = run(BatchProcessor(device, DominantColour(), Fetcher(store)), events)  # type: ignore[arg-type]

    assert all(isinstance(o, dict) for o in outcomes), outcomes
    assert [o["image_id"] for o in outcomes] == [e["image_id"] for e in events]
    assert device.batches[0] == (5, False)
    assert max(size for size, ok in device.batches if ok) <= 2
    assert sum(size for size, ok in device.batches if ok) == 5  # each image inferred once


@pytest.mark.parametrize(
    ("case", "device_kwargs"), [("a lost device", {"lost": True}), ("out of memory at one image", {"fits": 0})]
)
def test_a_device_that_cannot_run_even_one_image_holds_the_batch(
    detector: Any, tmp_path: Path, case: str, device_kwargs: dict[str, Any]
) -> None:
    store, events = scenes(tmp_path, 3)
    device = FailingDevice(detector, **device_kwargs)
    outcomes = run(BatchProcessor(device, DominantColour(), Fetcher(store)), events)  # type: ignore[arg-type]

    assert all(isinstance(o, InfrastructureError) and o.service == "device" for o in outcomes), (case, outcomes)


def test_a_store_that_is_down_holds_the_image_and_a_missing_object_is_bad_input(detector: Any, tmp_path: Path) -> None:
    store, events = scenes(tmp_path, 1)
    down = run(BatchProcessor(detector, DominantColour(), Fetcher(store, StoreUnavailable("S3 refused"))), events)
    missing = run(BatchProcessor(detector, DominantColour(), Fetcher(store, ObjectNotFound("s3://b/k"))), events)

    assert isinstance(down[0], InfrastructureError) and not isinstance(down[0], Failure)
    assert missing[0] == Failure("fetch", "object_missing", "object s3://b/k does not exist")


def test_a_bug_in_the_fetcher_is_logged_with_its_traceback_counted_and_never_called_a_store_error(
    detector: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store, events = scenes(tmp_path, 1)
    before = INTERNAL_ERRORS.labels("fetch")._value.get()
    with caplog.at_level(logging.ERROR, logger="mugpos.models.batching"):
        [outcome] = run(BatchProcessor(detector, DominantColour(), Fetcher(store, KeyError("endpoint"))), events)

    assert isinstance(outcome, Failure) and (outcome.stage, outcome.reason) == ("fetch", "internal_error")
    assert INTERNAL_ERRORS.labels("fetch")._value.get() == before + 1
    assert any(r.exc_info and isinstance(r.exc_info[1], KeyError) for r in caplog.records)
