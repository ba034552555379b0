"""Positioning agent: detections (keyed by camera) -> one PositionEvent per image on positions.

Thin by design: decode with the codec (raw bytes in, so a bad payload becomes a dead letter instead
of stopping the agent), call the pure ``models.positioning``, encode, produce. It is also where a
camera's frames get back into capture order (``streams.ordering``, within ``MUGPOS_LATENESS_S``) and
where mugs get their track ids (``models.tracking``); each camera's tracker lives in the
changelogged ``tracks`` table keyed by source, so a restarted or rebalanced worker keeps the ids.
Each camera's configuration (scale, table outline, zones) comes from the compacted cameras topic,
tailed by a background task (``storage.cameras``); frames wait for it to be read once at start.
As in the detection agent, an event is acknowledged only once its output is delivered (frames
waiting to be ordered stay unacknowledged: a crash redelivers them), outputs the broker did not
take are held and sent again, and the positions topic is keyed by source with the image id inside.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Sequence
from datetime import UTC, datetime
from typing import Any

from faust.types import TP, EventT, StreamT

from mugpos.agents.sink import feed_views
from mugpos.core.codec import CodecError, codec
from mugpos.core.errors import InfrastructureError
from mugpos.core.metrics import INTERNAL_ERRORS
from mugpos.models.positioning import DEFAULT_CONFIG, PositioningConfig, PositioningError, position_event
from mugpos.models.tracking import CameraTracker, TrackerStateError, load_tracker
from mugpos.rules.actions import event_millis
from mugpos.rules.metrics import LATE_FRAMES
from mugpos.storage.cameras import CameraFeed, CameraRegistry
from mugpos.storage.compacted import wait_ready
from mugpos.streams.app import MugposApp
from mugpos.streams.deadletter import send_dead_letter
from mugpos.streams.holding import delivered, hold, sent
from mugpos.streams.ordering import Reorderer

log = logging.getLogger(__name__)

STAGE = "position"
TRACKS_TABLE = "tracks"
#: How often frames waiting for order are checked for being due when no new frame arrives.
FLUSH_INTERVAL_S = 0.5


class PositionStage:
    """The agent's state: frames waiting for order, and a cache of each camera's tracker."""

    def __init__(
        self, app: MugposApp, tracks: Any, config: PositioningConfig, cameras: CameraRegistry | None = None
    ) -> None:
        self.app = app
        self.tracks = tracks
        self.config = config
        self.cameras = cameras if cameras is not None else CameraRegistry()
        settings = app.settings
        self.tracking = settings.tracking
        self.lost_s = settings.track_lost_s
        self.waiting: Reorderer[tuple[EventT, dict[str, Any]]] = Reorderer(settings.lateness_s)
        self.lock = asyncio.Lock()
        self.stream: StreamT[Any] | None = None
        self._trackers: dict[bytes, tuple[Any, CameraTracker]] = {}

    async def take(self, events: Sequence[EventT], stream: StreamT[Any]) -> None:
        """Decode a batch; bad input is dead-lettered now, good frames wait for their turn."""
        self.stream = stream
        async with self.lock:
            now = time.monotonic()
            bad: list[EventT] = []
            for event in events:
                try:
                    detection = codec.decode(event.value, "DetectionEvent")
                except CodecError:
                    bad.append(event)
                    continue
                source = str(detection["source"]).encode()
                self.waiting.add(source, event_millis(detection["captured_at"]), (event, detection), now)
            await self._run(bad, {})
            await self._release(time.monotonic())

    async def flush(self) -> None:
        """Release frames that waited their lateness out (a camera that went quiet)."""
        if self.stream is None or not len(self.waiting):
            return
        async with self.lock:
            await self._release(time.monotonic())

    def revoked(self, partitions: set[TP]) -> None:
        """Frames of partitions this worker lost are the new owner's: forget them, unacknowledged."""
        dropped = self.waiting.drop(lambda item: item[0].message.tp in partitions)
        if dropped:
            log.info("rebalance: %d frame(s) waiting for order handed to the new owner", len(dropped))
        self._trackers.clear()

    async def _release(self, now: float) -> None:
        due = self.waiting.due(now)
        if due:
            await self._run([e for e, _ in due], {id(e): d for e, d in due})

    async def _run(self, events: list[EventT], decoded: dict[int, dict[str, Any]]) -> None:
        if not events or self.stream is None:
            return

        async def run_round(pending: list[EventT]) -> list[tuple[EventT, InfrastructureError]]:
            return await position_round(self.app, pending, self.config, decoded, self)

        await hold(self.app, self.stream, STAGE, events, run_round, timed=STAGE)

    def track(self, record: dict[str, Any]) -> None:
        """Give the mugs of a positioned frame their track ids (in capture order), or flag it late."""
        key = str(record["source"]).encode()
        stored = self.tracks.get(key)
        cached = self._trackers.get(key)
        if cached is not None and cached[0] is stored:
            tracker = cached[1]
        else:
            tracker = CameraTracker(self.lost_s)
            if stored is not None:
                try:
                    tracker = load_tracker(stored)
                except TrackerStateError as exc:
                    log.warning("tracker state of %s unreadable, starting afresh: %s", record["source"], exc)
        captured = event_millis(record["captured_at"])
        image_id = str(record["image_id"])
        if tracker.is_late(captured) and image_id not in tracker.recent:
            record["late"] = True
            LATE_FRAMES.labels(STAGE).inc()
            return
        ids = tracker.update(image_id, captured, record["mugs"])
        for mug, track in zip(record["mugs"], ids, strict=True):
            mug["track_id"] = track
        blob = tracker.dumps()
        self.tracks[key] = blob  # changelogged; flushed before the frame's offset is committed
        self._trackers[key] = (blob, tracker)


def register(app: MugposApp, config: PositioningConfig = DEFAULT_CONFIG) -> None:
    """Attach the positioning agent, its tracks table and its ordering timer to ``app``."""
    settings = app.settings
    tracks = app.Table(
        TRACKS_TABLE,
        partitions=settings.partitions,
        key_type=bytes,  # raw bytes both ways (the app's serializers): JSON would be Faust's default
        value_type=bytes,
        use_partitioner=True,  # written from the batch loop and the timer alike, by source key
        help="ByteTrack state per camera (key: source).",
    )
    cameras = CameraRegistry()
    stage = PositionStage(app, tracks, config, cameras)
    app.mugpos_position_stage = stage  # type: ignore[attr-defined]
    app.mugpos_cameras = cameras  # type: ignore[attr-defined]

    @app.task
    async def cameras_feed() -> None:
        await CameraFeed(settings, cameras).run()

    @app.agent(app.mugpos_topics.detections, name="mugpos.position")
    async def position(stream: StreamT[bytes]) -> None:
        fallback = "positioning with the configurations read so far"
        await wait_ready(cameras.ready, settings.cameras_ready_timeout_s, "cameras", fallback)
        batches = stream.noack_take(settings.batch_max, within=settings.batch_wait_ms / 1000)  # type: ignore[attr-defined]
        async for events in batches:
            await stage.take(events, stream)

    @app.timer(FLUSH_INTERVAL_S)
    async def release_waiting() -> None:
        await stage.flush()

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]
    async def on_revoked(sender: Any, revoked: set[TP], **kwargs: Any) -> None:
        stage.revoked(revoked)


async def position_round(
    app: MugposApp,
    events: Sequence[EventT],
    config: PositioningConfig,
    decoded: dict[int, dict[str, Any]] | None = None,
    stage: PositionStage | None = None,
) -> list[tuple[EventT, InfrastructureError]]:
    """One attempt at frames in capture order: returns the events whose output the broker did not take."""
    sends: list[tuple[EventT, Awaitable[Any]]] = []
    shown: list[tuple[dict[str, Any], dict[str, Any]]] = []
    for event in events:
        image_id: str | None = None
        try:
            detection = (decoded or {}).get(id(event)) or codec.decode(event.value, "DetectionEvent")
            image_id = str(detection["image_id"])
            camera = stage.cameras.get(str(detection["source"])) if stage is not None else None
            record = position_event(detection, processed_at=datetime.now(UTC), config=config, camera=camera)
            if stage is not None and stage.tracking:
                stage.track(record)
            value = codec.encode("PositionEvent", record)
        except (CodecError, PositioningError) as exc:
            reason = "encode_error" if image_id is not None and isinstance(exc, CodecError) else exc.reason
            sends.append(await sent(event, send_dead_letter(app, event, STAGE, reason, exc.message, image_id)))
            continue
        except Exception as exc:  # a bug on one odd event must not stop the stream (Faust would stall)
            log.exception("positioning failed for %s", image_id)
            INTERNAL_ERRORS.labels(STAGE).inc()
            dead = send_dead_letter(app, event, STAGE, "internal_error", repr(exc)[:500], image_id)
            sends.append(await sent(event, dead))
            continue
        sends.append(
            await sent(event, app.mugpos_topics.positions.send(key=str(record["source"]).encode(), value=value))
        )
        shown.append((detection, record))
    held = await delivered(sends)  # delivered before hold acknowledges them
    for detection, record in shown:
        feed_views(app, "detection", detection)
        feed_views(app, "position", record)
    return held


async def handle_batch(
    app: MugposApp, events: Sequence[EventT], stream: StreamT[Any], config: PositioningConfig = DEFAULT_CONFIG
) -> None:
    """Position one batch as it comes, without ordering or tracking (tests drive the round this way)."""

    async def run_round(pending: list[EventT]) -> list[tuple[EventT, InfrastructureError]]:
        return await position_round(app, pending, config)

    await hold(app, stream, STAGE, events, run_round, timed=STAGE)
