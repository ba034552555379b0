"""Results store: MongoDB documents per image and per action, plus a bounded in-process view.

Writes are bulk upserts keyed by image id (and action id), so a replay after a crash rewrites the
same documents instead of adding new ones. MongoDB is optional (``MUGPOS_MONGODB_URI`` empty): the
in-process view still serves the web pages of the worker that saw the results.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from cachetools import LRUCache
from pymongo import ASCENDING, DESCENDING, AsyncMongoClient, UpdateOne
from pymongo.errors import BulkWriteError, PyMongoError

from mugpos.core.errors import InfrastructureError
from mugpos.core.settings import Settings
from mugpos.models.annotate import annotate, encode_jpeg
from mugpos.models.imaging import decode_image
from mugpos.storage.metrics import SINK_RETRIES
from mugpos.storage.store import ObjectStore

log = logging.getLogger(__name__)

RESULTS = "analysis_results"
ACTIONS = "actions"

#: Result kinds and the document field each fills.
KIND_FIELDS = {"detection": "detection", "position": "position"}


class PermanentWriteError(Exception):
    """MongoDB refused documents for a reason retrying cannot fix; carries the refused indexes."""

    def __init__(self, message: str, indexes: list[int]) -> None:
        super().__init__(message)
        self.indexes = indexes


#: Largest original an annotated image is rendered from, in pixels (a 16 MP camera frame).
RENDER_MAX_PIXELS = 16_000_000


def result_update(kind: str, record: dict[str, Any]) -> UpdateOne:
    """Upsert of one detection or position into its image's document (idempotent by image id)."""
    body = {k: v for k, v in record.items() if k != "image_id"}
    fields: dict[str, Any] = {
        "image_id": record["image_id"],
        "source": record.get("source"),
        "captured_at": record.get("captured_at"),
        KIND_FIELDS[kind]: body,
        "updated_at": datetime.now(UTC),
    }
    if kind == "detection":
        fields["uri"] = record.get("uri")
    if kind == "position":
        fields["verdict"] = record.get("verdict")
    return UpdateOne({"_id": record["image_id"]}, {"$set": fields}, upsert=True)


def action_update(record: dict[str, Any]) -> UpdateOne:
    """Upsert of one action (idempotent by action id)."""
    return UpdateOne({"_id": record["action_id"]}, {"$set": dict(record)}, upsert=True)


class ResultsStore:
    """MongoDB sink and reader, with a bounded in-process copy of the latest results."""

    def __init__(self, settings: Settings, store: ObjectStore | None = None, memory_size: int = 512) -> None:
        self.settings = settings
        self.object_store = store
        self._memory: LRUCache[str, dict[str, Any]] = LRUCache(maxsize=memory_size)
        self._renders = asyncio.Semaphore(settings.render_concurrency)
        self._client: AsyncMongoClient[dict[str, Any]] | None = None
        if settings.mongodb_uri:
            self._client = AsyncMongoClient(settings.mongodb_uri, serverSelectionTimeoutMS=3000, tz_aware=True)

    @property
    def enabled(self) -> bool:
        return self._client is not None

    def _db(self) -> Any:
        assert self._client is not None
        return self._client[self.settings.mongodb_db]

    async def ensure_indexes(self) -> None:
        """Create the indexes the queries need (idempotent)."""
        if self._client is None:
            return
        db = self._db()
        await db[RESULTS].create_index([("image_id", ASCENDING)], unique=True, name="image_id_unique")
        await db[RESULTS].create_index([("source", ASCENDING), ("captured_at", DESCENDING)], name="source_time")
        await db[ACTIONS].create_index([("rule_id", ASCENDING), ("fired_at", DESCENDING)], name="rule_time")
        await db[ACTIONS].create_index([("source", ASCENDING), ("fired_at", DESCENDING)], name="source_time")

    def remember(self, kind: str, record: dict[str, Any]) -> None:
        """Keep the latest results in memory for the web views."""
        if kind == "action":
            entry = self._memory.get(str(record["image_id"]))
            if entry is not None:
                entry.setdefault("actions", {})[record["action_id"]] = record
            return
        image_id = str(record["image_id"])
        entry = self._memory.get(image_id) or {"image_id": image_id}
        entry[KIND_FIELDS[kind]] = record
        self._memory[image_id] = entry  # the latest result, most recently used

    async def write(self, items: Sequence[tuple[str, dict[str, Any]]]) -> None:
        """Bulk-upsert ``(kind, record)`` pairs; raises PyMongoError on transient failure (retry it),
        PermanentWriteError naming the refused items."""
        if self._client is None or not items:
            return
        # One write per document and kind: a replayed batch can hold the same event twice.
        latest: dict[tuple[str, str], int] = {}
        for i, (kind, record) in enumerate(items):
            latest[(kind, str(record["action_id"] if kind == "action" else record["image_id"]))] = i
        results, actions, result_idx, action_idx = [], [], [], []
        for i in sorted(latest.values()):
            kind, record = items[i]
            if kind == "action":
                actions.append(action_update(record))
                action_idx.append(i)
            else:
                results.append(result_update(kind, record))
                result_idx.append(i)
        refused: list[int] = []
        db = self._db()
        for coll, ops, idx in ((RESULTS, results, result_idx), (ACTIONS, actions, action_idx)):
            if not ops:
                continue
            try:
                await db[coll].bulk_write(ops, ordered=False)
            except BulkWriteError as exc:
                errors = exc.details.get("writeErrors", [])
                if not errors:
                    raise
                refused.extend(idx[e["index"]] for e in errors)
        if refused:
            raise PermanentWriteError(f"MongoDB refused {len(refused)} document(s)", refused)

    async def store(self, items: Sequence[tuple[str, dict[str, Any]]]) -> list[int]:
        """Write once; returns the indexes MongoDB refused for good (to be dead-lettered).

        Raises :class:`InfrastructureError` (service ``mongodb``) when MongoDB is down or slow: the
        caller holds its batch and retries (``mugpos.streams.holding``), nothing acknowledged."""
        try:
            await self.write(items)
        except PermanentWriteError as exc:
            return exc.indexes
        except PyMongoError as exc:
            SINK_RETRIES.inc()
            raise InfrastructureError(f"MongoDB write failed: {exc!r}"[:500], service="mongodb") from exc
        return []

    async def get(self, image_id: str) -> dict[str, Any] | None:
        """The stored result of an image: memory first, then MongoDB."""
        entry = self._memory.get(image_id)
        if entry is not None:
            return entry
        if self._client is None:
            return None
        try:
            doc = await self._db()[RESULTS].find_one({"_id": image_id})
        except PyMongoError as exc:
            log.warning("results store: read of %s failed: %r", image_id, exc)
            return None
        if doc is None:
            return None
        doc.pop("_id", None)
        return dict(doc)

    async def annotated(self, image_id: str) -> bytes | None:
        """JPEG of the image with its detections and verdict drawn on it.

        Rendering costs a fetch, a decode and an encode: at most ``MUGPOS_RENDER_CONCURRENCY`` run at
        once (the others wait), and originals over :data:`RENDER_MAX_PIXELS` are not rendered."""
        result = await self.get(image_id)
        if result is None or self.object_store is None or "detection" not in result:
            return None
        detection = result["detection"]
        async with self._renders:
            try:
                data = await self.object_store.get(detection["uri"], max_bytes=self.settings.max_object_bytes)
                limit = min(self.settings.max_image_pixels, RENDER_MAX_PIXELS)
                image = await asyncio.to_thread(decode_image, data, limit)
            except Exception as exc:  # the original may be gone, unreadable or too large; the page says 404
                log.info("annotated %s: cannot read the original: %r", image_id, exc)
                return None
            drawn = await asyncio.to_thread(annotate, image, detection["detections"], result.get("position"))
            return await asyncio.to_thread(encode_jpeg, drawn)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
