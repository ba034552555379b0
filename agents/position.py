"""Positioning agent: detections topic -> one PositionEvent per image on positions (failures -> dlq).

Thin by design: decode with the codec (raw bytes in, so a bad payload becomes a dead letter instead
of stopping the agent), call the pure ``models.positioning``, encode, produce. As in the detection
agent, an event is acknowledged only once its output is delivered, and outputs the broker did not
take are held and sent again (at-least-once); outputs are keyed by image id, so a replay after a
crash overwrites rather than adds.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Sequence
from datetime import UTC, datetime
from typing import Any

from faust.types import EventT, StreamT

from mugpos.agents.sink import feed_views
from mugpos.core.codec import CodecError, codec
from mugpos.core.errors import InfrastructureError
from mugpos.core.metrics import INTERNAL_ERRORS
from mugpos.models.positioning import DEFAULT_CONFIG, PositioningConfig, PositioningError, position_event
from mugpos.streams.app import MugposApp
from mugpos.streams.deadletter import send_dead_letter
from mugpos.streams.holding import delivered, hold, sent

log = logging.getLogger(__name__)

STAGE = "position"


def register(app: MugposApp, config: PositioningConfig = DEFAULT_CONFIG) -> None:
    """Attach the positioning agent to ``app``."""
    settings = app.settings

    @app.agent(app.mugpos_topics.detections, name="mugpos.position")
    async def position(stream: StreamT[bytes]) -> None:
        batches = stream.noack_take(settings.batch_max, within=settings.batch_wait_ms / 1000)  # type: ignore[attr-defined]
        async for events in batches:
            await handle_batch(app, events, stream, config)


async def handle_batch(
    app: MugposApp, events: Sequence[EventT], stream: StreamT[Any], config: PositioningConfig = DEFAULT_CONFIG
) -> None:
    """Position every event of one batch; returns only when every output is delivered and acknowledged."""

    async def run_round(pending: list[EventT]) -> list[tuple[EventT, InfrastructureError]]:
        return await position_round(app, pending, config)

    await hold(app, stream, STAGE, events, run_round, timed=STAGE)


async def position_round(
    app: MugposApp, events: Sequence[EventT], config: PositioningConfig
) -> list[tuple[EventT, InfrastructureError]]:
    """One attempt at a batch: returns the events whose output the broker did not take."""
    sends: list[tuple[EventT, Awaitable[Any]]] = []
    shown: list[tuple[dict[str, Any], dict[str, Any]]] = []
    for event in events:
        image_id: str | None = None
        try:
            detection = codec.decode(event.value, "DetectionEvent")
            image_id = str(detection["image_id"])
            record = position_event(detection, processed_at=datetime.now(UTC), config=config)
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
        sends.append(await sent(event, app.mugpos_topics.positions.send(key=image_id.encode(), value=value)))
        shown.append((detection, record))
    held = await delivered(sends)  # delivered before hold acknowledges them
    for detection, record in shown:
        feed_views(app, "detection", detection)
        feed_views(app, "position", record)
    return held
