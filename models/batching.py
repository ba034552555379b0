"""Micro-batch processing: from image events to detection results, one forward pass per batch.

The stream layer hands over a batch of decoded ``ImageEvent`` records and gets back, in the same
order, a ``DetectionEvent`` record, a :class:`Failure` with a reason code (bad input: a dead
letter), or an :class:`~mugpos.core.errors.InfrastructureError` (the store or the device is in
trouble: the stream layer holds that event and retries it). Nothing is dropped, and one bad image
never fails its batch-mates. Stages:

1. cache look-up by the producer's sha256 (skips the fetch entirely on a hit);
2. concurrent fetch (the store bounds its own concurrency), size capped, checksum verified;
3. a second cache look-up by the content's own sha256 and de-duplication inside the batch;
4. decode + letterbox in a thread pool (each image decoded once);
5. one batched forward pass on a dedicated inference thread, then batched attribute tagging;
6. results written back to the cache, and some frames written for labelling (``models.review``).

This module knows nothing of Kafka or Faust: the fetcher and the cache are small protocols.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import numpy as np

from mugpos.core.errors import InfrastructureError
from mugpos.core.metrics import INTERNAL_ERRORS
from mugpos.models.attributes import AttributeTagger
from mugpos.models.detector import Detector
from mugpos.models.imaging import ImageError, decode_image
from mugpos.models.letterbox import Letterboxed
from mugpos.models.review import ReviewSampler

log = logging.getLogger(__name__)

Record = dict[str, Any]


class Fetcher(Protocol):
    """Reads an object's bytes; errors carry a ``reason`` code (see ``mugpos.storage.store``)."""

    async def get(self, key_or_uri: str, max_bytes: int | None = None) -> bytes: ...


class Cache(Protocol):
    """A bytes cache with batched look-ups (see ``mugpos.storage.cache.ResultCache``)."""

    async def get_many(self, keys: Iterable[str]) -> dict[str, bytes]: ...

    async def put_many(self, items: Mapping[str, bytes]) -> None: ...


@dataclass(frozen=True)
class Failure:
    """Why an image produced no detection event; becomes a dead letter."""

    stage: str
    reason: str
    message: str


Outcome = Record | Failure | InfrastructureError


@dataclass
class _Work:
    event: Record
    key: str | None = None
    data: bytes | None = None
    original: bytes | None = None  # kept only while a review sampler may want the frame
    sha256: str | None = None
    image: np.ndarray | None = None
    prepared: Letterboxed | None = None
    size: tuple[int, int] = (0, 0)
    detections: list[Record] | None = None
    cached: bool = False
    timings: dict[str, float] = field(default_factory=lambda: {"fetch_ms": 0.0, "decode_ms": 0.0, "inference_ms": 0.0})
    outcome: Outcome | None = None


def default_cache_key(sha256: str, scope: str) -> str:
    """Cache key of one result: content hash and ``Detector.cache_scope`` (model and how it is run)."""
    return f"mugpos:det:{scope}:{sha256}"


class BatchProcessor:
    """Turns batches of ImageEvents into DetectionEvents (or Failures) with one forward pass each."""

    def __init__(
        self,
        detector: Detector,
        tagger: AttributeTagger,
        fetcher: Fetcher,
        cache: Cache | None = None,
        *,
        max_pixels: int = 50_000_000,
        max_bytes: int = 32 * 1024 * 1024,
        batch_max: int = 32,
        decode_workers: int = 4,
        cache_key: Callable[[str, str], str] = default_cache_key,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        review: ReviewSampler | None = None,
    ) -> None:
        self.detector = detector
        self.tagger = tagger
        self.fetcher = fetcher
        self.cache = cache
        self.max_pixels = max_pixels
        self.max_bytes = max_bytes
        self.batch_max = batch_max
        self._cache_key = cache_key
        self._clock = clock
        self.review = review if review is not None and review.enabled else None
        self._decode_pool = ThreadPoolExecutor(decode_workers, thread_name_prefix="mugpos-decode")
        # One inference thread: torch parallelises inside an op; two concurrent batches only contend.
        self._infer_pool = ThreadPoolExecutor(1, thread_name_prefix="mugpos-infer")

    @property
    def model_id(self) -> str:
        return str(self.detector.info["model_id"])

    @property
    def cache_scope(self) -> str:
        """What a cached result depends on besides the image: the model and how it is run."""
        return self.detector.cache_scope

    def close(self) -> None:
        self._decode_pool.shutdown(wait=False, cancel_futures=True)
        self._infer_pool.shutdown(wait=False, cancel_futures=True)

    async def aclose(self) -> None:
        """:meth:`close`, and the store's and the cache's connections too (a stopping worker)."""
        self.close()
        for client in (self.fetcher, self.cache):
            close = getattr(client, "close", None)
            if close is None:
                continue
            try:
                await close()
            except Exception as exc:  # shutting down: a connection that will not close is only logged
                log.warning("closing %s: %r", type(client).__name__, exc)

    async def process(self, events: Sequence[Record]) -> list[Outcome]:
        """Process one micro-batch; the result list is parallel to ``events``."""
        started = time.perf_counter()
        work = [_Work(event=e) for e in events]
        await self._from_cache([w for w in work if w.event.get("sha256")], by="event")
        await self._fetch([w for w in work if w.outcome is None and w.detections is None])
        await self._from_cache([w for w in work if w.outcome is None and w.detections is None], by="content")
        todo = self._dedupe([w for w in work if w.outcome is None and w.detections is None])
        await self._decode(todo)
        ready = [w for w in todo if w.prepared is not None]
        for start in range(0, len(ready), self.batch_max):
            await self._infer(ready[start : start + self.batch_max])
        await self._store([w for w in todo if w.detections is not None])
        await self._offer_for_review(todo)
        self._share_duplicates(work)
        batch_size = len(ready)
        return [self._finish(w, started, batch_size) for w in work]

    # -- stages ------------------------------------------------------------------------------

    async def _from_cache(self, items: list[_Work], by: str) -> None:
        if self.cache is None or not items:
            return
        for w in items:
            sha = w.event["sha256"] if by == "event" else w.sha256
            w.key = self._cache_key(str(sha), self.cache_scope)
        hits = await self.cache.get_many(w.key for w in items if w.key)
        for w in items:
            if w.key in hits:
                try:
                    payload = json.loads(hits[w.key])
                    w.size = (int(payload["w"]), int(payload["h"]))
                    w.detections = list(payload["detections"])
                    w.cached = True
                except (ValueError, KeyError, TypeError) as exc:  # a corrupt entry is a miss, not a failure
                    log.warning("ignoring corrupt cache entry %s: %r", w.key, exc)

    async def _fetch(self, items: list[_Work]) -> None:
        async def one(w: _Work) -> None:
            t0 = time.perf_counter()
            uri = str(w.event["uri"])
            try:
                data = await self.fetcher.get(uri, max_bytes=self.max_bytes)
            except InfrastructureError as exc:  # the store is down or slow: held, never a dead letter
                w.outcome = exc
                return
            except Exception as exc:
                reason = getattr(exc, "reason", None)
                if not isinstance(reason, str):  # not a store error: a bug, not the message's fault
                    log.exception("fetching %s failed", uri)
                    INTERNAL_ERRORS.labels("fetch").inc()
                    w.outcome = Failure("fetch", "internal_error", repr(exc)[:500])
                    return
                w.outcome = Failure("fetch", reason, str(exc) or repr(exc))  # bad input: missing, denied, too large
                return
            finally:
                w.timings["fetch_ms"] = (time.perf_counter() - t0) * 1000
            if not data:
                w.outcome = Failure("fetch", "empty_object", f"object {uri} is empty (0 bytes)")
                return
            w.sha256 = hashlib.sha256(data).hexdigest()
            expected = w.event.get("sha256")
            if expected and expected.lower() != w.sha256:
                w.outcome = Failure(
                    "fetch", "checksum_mismatch", f"object {uri} has sha256 {w.sha256}, the event says {expected}"
                )
                return
            w.data = data

        await asyncio.gather(*(one(w) for w in items))

    def _dedupe(self, items: list[_Work]) -> list[_Work]:
        """Keep the first image of each content hash; the others copy its result at the end."""
        seen: dict[str, _Work] = {}
        unique = []
        for w in items:
            if w.sha256 in seen:
                continue
            seen[str(w.sha256)] = w
            unique.append(w)
        return unique

    async def _decode(self, items: list[_Work]) -> None:
        loop = asyncio.get_running_loop()

        def decode(w: _Work) -> tuple[np.ndarray, Letterboxed, float]:
            t0 = time.perf_counter()
            image = decode_image(w.data or b"", self.max_pixels)
            prepared = self.detector.prepare(image)
            return image, prepared, (time.perf_counter() - t0) * 1000

        results = await asyncio.gather(
            *(loop.run_in_executor(self._decode_pool, decode, w) for w in items), return_exceptions=True
        )
        for w, result in zip(items, results, strict=True):
            if self.review is not None:
                w.original = w.data
            w.data = None  # decoded once; free the bytes early
            if isinstance(result, ImageError):
                w.outcome = Failure("image", result.reason, str(result))
            elif isinstance(result, BaseException):
                w.outcome = Failure("image", "image_corrupt", f"cannot decode {w.event['uri']}: {result!r}")
            else:
                w.image, w.prepared, w.timings["decode_ms"] = result
                w.size = (int(w.image.shape[1]), int(w.image.shape[0]))

    async def _infer(self, items: list[_Work]) -> None:
        loop = asyncio.get_running_loop()

        def run(batch: list[_Work]) -> tuple[list[list[Record]], float]:
            t0 = time.perf_counter()
            found = self.detector.infer([w.prepared for w in batch if w.prepared is not None])
            self._tag(batch, found)
            return found, (time.perf_counter() - t0) * 1000

        try:
            found, elapsed = await loop.run_in_executor(self._infer_pool, run, items)
        except Exception as exc:
            if _out_of_memory(exc) and len(items) > 1:  # halve the batch and try again
                half = len(items) // 2
                log.warning(
                    "device out of memory at batch %d; retrying as %d + %d", len(items), half, len(items) - half
                )
                _release_device_memory()
                await self._infer(items[:half])
                await self._infer(items[half:])
                return
            if _out_of_memory(exc) or _device_lost(exc):  # the device, not the image: hold and retry
                _release_device_memory()
                held = InfrastructureError(f"inference device unavailable: {exc!r}"[:500], service="device")
                for w in items:
                    w.outcome = held
                return
            if len(items) == 1:  # a bug or a model failure on this one image: logged, counted, dead-lettered
                log.error("inference failed for %s", items[0].event.get("image_id"), exc_info=exc)
                INTERNAL_ERRORS.labels("detect").inc()
                items[0].outcome = Failure("detect", "inference_error", f"inference failed: {exc!r}")
                return
            log.warning("batch of %d failed (%r); retrying one image at a time", len(items), exc)
            for w in items:
                await self._infer([w])
            return
        for w, detections in zip(items, found, strict=True):
            w.detections = detections
            w.timings["inference_ms"] = elapsed
            w.image = w.prepared = None

    def _tag(self, batch: list[_Work], found: list[list[Record]]) -> None:
        """Attributes for every mug of the batch, in one call."""
        requests: list[tuple[np.ndarray, list[tuple[float, float, float, float]]]] = []
        owners: list[list[Record]] = []
        for w, detections in zip(batch, found, strict=True):
            mugs = [d for d in detections if d["label"] == "mug"]
            if mugs and w.image is not None:
                boxes = [(d["box"]["x1"], d["box"]["y1"], d["box"]["x2"], d["box"]["y2"]) for d in mugs]
                requests.append((w.image, boxes))
                owners.append(mugs)
        if not requests:
            return
        for mugs, tags in zip(owners, self.tagger.tag_many(requests), strict=True):
            for det, (attributes, scores) in zip(mugs, tags, strict=True):
                det["attributes"] = dict(attributes)
                det["attribute_scores"] = {k: float(v) for k, v in scores.items()}

    async def _store(self, items: list[_Work]) -> None:
        if self.cache is None or not items:
            return
        entries = {}
        for w in items:
            if w.sha256 and w.detections is not None:
                key = self._cache_key(w.sha256, self.cache_scope)
                entries[key] = json.dumps({"w": w.size[0], "h": w.size[1], "detections": w.detections}).encode()
        await self.cache.put_many(entries)

    async def _offer_for_review(self, items: list[_Work]) -> None:
        if self.review is None:
            return
        offered = [
            (w.event, w.original, w.detections, w.size)
            for w in items
            if w.detections is not None and w.original is not None
        ]
        for w in items:
            w.original = None
        if offered:
            await self.review.offer(offered)

    def _share_duplicates(self, work: list[_Work]) -> None:
        done = {w.sha256: w for w in work if w.detections is not None and w.sha256 and not w.cached}
        failed = {w.sha256: w for w in work if w.outcome is not None and w.sha256}
        for w in work:
            if w.outcome is not None or w.detections is not None or not w.sha256:
                continue
            if w.sha256 in done:
                w.detections, w.size, w.cached = done[w.sha256].detections, done[w.sha256].size, True
            elif w.sha256 in failed:
                w.outcome = failed[w.sha256].outcome

    def _finish(self, w: _Work, started: float, batch_size: int) -> Outcome:
        if w.outcome is not None:
            return w.outcome
        if w.detections is None:  # every path above sets one or the other; guard the invariant
            return Failure("detect", "internal_error", "no result and no failure recorded")
        event = w.event
        return {
            "image_id": event["image_id"],
            "source": event.get("source") or "unknown",
            "uri": event["uri"],
            "captured_at": event["captured_at"],
            "processed_at": self._clock(),
            "sha256": w.sha256 or event.get("sha256"),
            "model": dict(self.detector.info),
            "image_width": w.size[0],
            "image_height": w.size[1],
            "detections": [_copy_detection(d) for d in w.detections],
            "timings": {**w.timings, "total_ms": (time.perf_counter() - started) * 1000},
            "batch_size": 0 if w.cached else batch_size,
            "cached": w.cached,
            "metadata": dict(event.get("metadata") or {}),
        }


def _out_of_memory(exc: BaseException) -> bool:
    """CUDA (or another accelerator) ran out of memory: a smaller batch may fit."""
    import torch

    return isinstance(exc, torch.OutOfMemoryError) or "out of memory" in str(exc).lower()


def _device_lost(exc: BaseException) -> bool:
    """The accelerator failed (driver error, device lost, ECC): nothing about the image."""
    import torch

    accelerator_error = getattr(torch, "AcceleratorError", ())
    if accelerator_error and isinstance(exc, accelerator_error):
        return True
    text = str(exc)
    return isinstance(exc, RuntimeError) and any(
        marker in text for marker in ("CUDA error", "CUDA driver", "cuDNN error", "CUBLAS_STATUS", "device-side assert")
    )


def _release_device_memory() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _copy_detection(d: Mapping[str, Any]) -> Record:
    return {
        **d,
        "box": dict(d["box"]),
        "box_norm": dict(d["box_norm"]),
        "attributes": dict(d.get("attributes", {})),
        "attribute_scores": dict(d.get("attribute_scores", {})),
    }
