"""The compacted cameras topic: each camera's configuration, keyed by source, and the registry workers keep.

``mugpos cameras set/rm`` and ``PUT/DELETE /mugpos/cameras/{source}`` write a ``CameraConfig`` or a
tombstone; every positioning worker tails the topic with a :class:`CameraFeed` (see
``storage.compacted``) into a :class:`CameraRegistry`, which keeps each camera's polygons ready for
the point tests, so a new zone applies to the next frame without a restart.
"""

from __future__ import annotations

from mugpos.core.cameras import SOURCE_ID, CameraConfig, CameraConfigError, config_from_obj, config_to_record
from mugpos.core.codec import CodecError, codec
from mugpos.core.settings import Settings
from mugpos.models.zones import CameraGeometry
from mugpos.storage.compacted import CompactedFeed, CompactedTopic, KeyedRegistry, Rejected
from mugpos.storage.metrics import CAMERA_RECORDS


class CameraRegistry(KeyedRegistry[CameraGeometry]):
    """Current configuration per source, with its geometry built once."""

    topic, noun = "cameras", "camera"
    key_pattern, key_name = SOURCE_ID, "source id"

    def get(self, source: str) -> CameraGeometry | None:
        return self.items.get(source)

    @property
    def configs(self) -> list[CameraConfig]:
        return [g.config for g in self.items.values()]

    def parse(self, key: str, value: bytes) -> CameraGeometry:
        try:
            return CameraGeometry.of(config_from_obj(codec.decode(value, "CameraConfig"), source=key))
        except CodecError as exc:
            raise Rejected(exc.reason, exc.message) from None
        except CameraConfigError as exc:
            raise Rejected("invalid_camera", str(exc)) from None

    def describe(self, item: CameraGeometry) -> str:
        return "zones: " + (", ".join(item.config.zone_names) or "none")

    def counted(self, kind: str, reason: str = "") -> None:
        CAMERA_RECORDS.labels("rejected" if kind == "rejected" else "applied").inc()

    def summary(self) -> str:
        return f"{len(self.items)} camera configuration(s)"


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
