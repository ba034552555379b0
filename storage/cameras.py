"""The compacted cameras topic: each camera's configuration, keyed by source, and the registry workers keep.

``mugpos cameras set/rm`` and ``PUT/DELETE /mugpos/cameras/{source}`` write a ``CameraConfig`` or a
tombstone; every positioning worker tails the topic with a :class:`CameraFeed` (see
``storage.compacted``) into a :class:`CameraRegistry`, which keeps each camera's polygons ready for
the point tests, so a new zone applies to the next frame without a restart.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from mugpos.core.cameras import SOURCE_ID, CameraConfig, CameraConfigError, config_from_obj, config_to_record
from mugpos.core.codec import CodecError, codec
from mugpos.core.settings import Settings
from mugpos.models.zones import CameraGeometry
from mugpos.storage.compacted import CompactedFeed, CompactedTopic, Records
from mugpos.storage.metrics import CAMERA_RECORDS

log = logging.getLogger(__name__)


@dataclass
class CameraChange:
    """What one record on the cameras topic did (for logs and tests)."""

    source: str
    kind: str  # added, updated, unchanged, removed, rejected, unknown-tombstone
    detail: str = ""


@dataclass
class CameraRegistry:
    """Current configuration per source, with its geometry built once."""

    cameras: dict[str, CameraGeometry] = field(default_factory=dict)
    invalid: dict[str, str] = field(default_factory=dict)
    version: int = 0
    ready: asyncio.Event = field(default_factory=asyncio.Event)

    def get(self, source: str) -> CameraGeometry | None:
        return self.cameras.get(source)

    @property
    def configs(self) -> list[CameraConfig]:
        return [g.config for g in self.cameras.values()]

    def apply(self, records: Records) -> list[CameraChange]:
        changes = [self._apply_one(key, value) for key, value in records]
        if any(c.kind in ("added", "updated", "removed") for c in changes):
            self.version += 1
        return changes

    def _apply_one(self, key: bytes | None, value: bytes | None) -> CameraChange:
        try:
            source = key.decode("utf-8") if key is not None else ""
        except UnicodeDecodeError:
            source = ""
        if not SOURCE_ID.fullmatch(source):
            return self._reject(source or repr(key), "bad_key", "record key is not a source id")
        if value is None:
            self.invalid.pop(source, None)
            if self.cameras.pop(source, None) is None:
                return CameraChange(source, "unknown-tombstone")
            return CameraChange(source, "removed")
        try:
            config = config_from_obj(codec.decode(value, "CameraConfig"), source=source)
        except CodecError as exc:
            return self._reject(source, exc.reason, exc.message)
        except CameraConfigError as exc:
            return self._reject(source, "invalid_camera", str(exc))
        old = self.cameras.get(source)
        self.invalid.pop(source, None)
        if old is not None and old.config == config:
            return CameraChange(source, "unchanged")
        self.cameras[source] = CameraGeometry.of(config)
        CAMERA_RECORDS.labels("applied").inc()
        return CameraChange(source, "updated" if old is not None else "added", ", ".join(config.zone_names))

    def _reject(self, source: str, reason: str, detail: str) -> CameraChange:
        CAMERA_RECORDS.labels("rejected").inc()
        self.invalid[source] = f"{reason}: {detail}"
        return CameraChange(source, "rejected", f"{reason}: {detail}")

    def summary(self) -> str:
        return f"{len(self.cameras)} camera configuration(s)"

    @staticmethod
    def log_change(change: CameraChange) -> None:
        if change.kind == "rejected":
            log.warning("cameras: rejected record for %s: %s", change.source, change.detail)
        elif change.kind not in ("unknown-tombstone", "unchanged"):
            log.info("cameras: %s %s (zones: %s)", change.kind, change.source, change.detail or "-")


def encode_camera(config: CameraConfig) -> bytes:
    """Avro bytes of a configuration for the cameras topic."""
    return codec.encode("CameraConfig", config_to_record(config))


class CameraStore:
    """CLI- and API-side access to the cameras topic."""

    def __init__(self, settings: Settings, timeout_s: float = 10.0) -> None:
        self._topic = CompactedTopic(settings, "cameras", timeout_s)

    async def put(self, config: CameraConfig) -> None:
        """Store (add or replace) a camera's configuration; returns once the broker acknowledged it."""
        await self._topic.produce(config.source, encode_camera(config))

    async def delete(self, source: str) -> None:
        """Write the tombstone that removes ``source``'s configuration."""
        await self._topic.produce(source, None)

    async def read(self) -> CameraRegistry:
        """Every current configuration (and the records that did not validate)."""
        registry = CameraRegistry()
        await self._topic.read_into(registry)
        return registry


class CameraFeed(CompactedFeed):
    """Keeps a :class:`CameraRegistry` in step with the cameras topic (a worker task)."""

    def __init__(self, settings: Settings, registry: CameraRegistry, poll_ms: int = 200) -> None:
        super().__init__(settings, "cameras", registry, poll_ms)
