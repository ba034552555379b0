"""Positioning agent: detections topic -> one PositionEvent per image on positions (failures -> dlq).

Thin by design: decode with the codec (raw bytes in, so a bad payload becomes a dead letter instead
of stopping the agent), call the pure ``models.positioning``, encode, produce. As in the detection
agent, a batch is acknowledged only after every output of it has been delivered (at-least-once);
outputs are keyed by image id, so a replay after a crash overwrites rather than adds.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Sequence
from datetime import UTC, datetime
from typing import Any

from faust.types import EventT, StreamT

from mugpos.core.codec import CodecError, codec
from mugpos.models.positioning import DEFAULT_CONFIG, PositioningConfig, PositioningError, position_event
from mugpos.streams.app import MugposApp
from mugpos.streams.deadletter import send_dead_letter
from mugpos.streams.metrics import STAGE_SECONDS

log = logging.getLogger(__name__)

STAGE = "position"


def register(app: MugposApp, config: PositioningConfig = DEFAULT_CONFIG) -> None:
    """Attach the positioning agent to ``app``."""
    settings = app.settings

    @app.agent(app.mugpos_topics.detections, name="mugpos.position")
    async def position(stream: StreamT[bytes]) -> None:
        batches = stream.take_events(settings.batch_max, within=settings.batch_wait_ms / 1000)  # type: ignore[attr-defined]
        async for events in batches:
            await handle_batch(app, events, config)


async def handle_batch(app: MugposApp, events: Sequence[EventT], config: PositioningConfig = DEFAULT_CONFIG) -> None:
    """Position every event of one batch; returns only when every output is acknowledged."""
    started = time.perf_counter()
    sends: list[Awaitable[Any]] = []
    for event in events:
        image_id: str | None = None
        try:
            detection = codec.decode(event.value, "DetectionEvent")
            image_id = str(detection["image_id"])
            record = position_event(detection, processed_at=datetime.now(UTC), config=config)
            value = codec.encode("PositionEvent", record)
        except (CodecError, PositioningError) as exc:
            reason = "encode_error" if image_id is not None and isinstance(exc, CodecError) else exc.reason
            sends.append(await send_dead_letter(app, event, STAGE, reason, exc.message, image_id))
            continue
        except Exception as exc:  # a bug on one odd event must not stop the stream (Faust would stall)
            log.exception("positioning failed for %s", image_id)
            sends.append(await send_dead_letter(app, event, STAGE, "position_error", repr(exc), image_id))
            continue
        sends.append(await app.mugpos_topics.positions.send(key=image_id.encode(), value=value))
    await asyncio.gather(*sends)  # delivered before take_events acks the batch
    elapsed = time.perf_counter() - started
    STAGE_SECONDS.labels(STAGE).observe(elapsed)
    app.mugpos_stats.record_stage(STAGE, elapsed * 1000)
