"""Detection agent: images topic -> micro-batches -> detections topic (bad input -> dlq).

Values arrive as raw bytes and are decoded here, so a bad payload becomes a dead letter instead of
stopping the agent. Events are read unacknowledged (``noack_take``); each is acknowledged only once
its detection event or dead letter is on the broker. Images the store or the device could not
serve, and outputs the broker did not take, are held and retried (``mugpos.streams.holding``):
at-least-once end to end, and never a dead letter for infrastructure trouble.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Sequence
from datetime import UTC, datetime
from typing import Any

from faust.types import EventT, StreamT

from mugpos.core.codec import CodecError, Record, codec
from mugpos.core.errors import InfrastructureError
from mugpos.models.batching import BatchProcessor, Failure
from mugpos.streams.app import MugposApp
from mugpos.streams.deadletter import send_dead_letter
from mugpos.streams.holding import delivered, hold, sent
from mugpos.streams.metrics import BATCH_SIZE, END_TO_END_SECONDS, IMAGES_PROCESSED, STAGE_SECONDS
from mugpos.streams.pipeline import build_processor

log = logging.getLogger(__name__)

STAGE = "detect"


def register(app: MugposApp) -> None:
    """Attach the detection agent to ``app``."""
    settings = app.settings
    topics = app.mugpos_topics

    @app.agent(topics.images, name="mugpos.detect")
    async def detect(stream: StreamT[bytes]) -> None:
        processor = await asyncio.to_thread(build_processor, settings)
        app.mugpos_stats.model = processor.detector.info
        app.mugpos_processor = processor  # type: ignore[attr-defined]
        try:
            batches = stream.noack_take(settings.batch_max, within=settings.batch_wait_ms / 1000)  # type: ignore[attr-defined]
            async for events in batches:
                await handle_batch(app, processor, events, stream)
        finally:
            await processor.aclose()


async def handle_batch(
    app: MugposApp, processor: BatchProcessor, events: Sequence[EventT], stream: StreamT[Any]
) -> None:
    """Process and deliver one batch, holding what infrastructure trouble kept back; returns when every
    event is delivered and acknowledged."""

    async def run_round(pending: list[EventT]) -> list[tuple[EventT, InfrastructureError]]:
        return await detect_round(app, processor, pending)

    await hold(app, stream, STAGE, events, run_round, timed="batch")


async def detect_round(
    app: MugposApp, processor: BatchProcessor, events: Sequence[EventT]
) -> list[tuple[EventT, InfrastructureError]]:
    """One attempt at a batch: returns the events held back (store, device or broker trouble)."""
    topics = app.mugpos_topics
    decoded: list[tuple[EventT, Record]] = []
    sends: list[tuple[EventT, Awaitable[Any]]] = []
    held: list[tuple[EventT, InfrastructureError]] = []
    produced: list[tuple[EventT, Record]] = []
    for event in events:
        try:
            decoded.append((event, codec.decode_image_event(event.value)))
        except CodecError as exc:
            sends.append(await sent(event, send_dead_letter(app, event, "decode", exc.reason, exc.message)))
    outcomes = await processor.process([record for _, record in decoded]) if decoded else []
    BATCH_SIZE.observe(len(decoded))
    stats = app.mugpos_stats
    stats.record_batch(len(decoded))
    now = datetime.now(UTC)
    for (event, record), outcome in zip(decoded, outcomes, strict=True):
        image_id = str(record["image_id"])
        if isinstance(outcome, InfrastructureError):
            held.append((event, outcome))
            continue
        if isinstance(outcome, Failure):
            dead = send_dead_letter(app, event, outcome.stage, outcome.reason, outcome.message, image_id)
            sends.append(await sent(event, dead))
            continue
        try:
            value = codec.encode("DetectionEvent", outcome)
        except CodecError as exc:
            dead = send_dead_letter(app, event, "detect", "encode_error", exc.message, image_id)
            sends.append(await sent(event, dead))
            continue
        sends.append(await sent(event, topics.detections.send(key=str(outcome["source"]).encode(), value=value)))
        produced.append((event, outcome))
    held += await delivered(sends)  # delivered before hold acknowledges them
    held_ids = {id(event) for event, _ in held}
    for event, outcome in produced:  # counted once delivered, so a round sent again is not counted twice
        if id(event) not in held_ids:
            _count(stats, outcome, now)
    return held


def _count(stats: Any, outcome: Record, now: datetime) -> None:
    """Metrics and dashboard figures of one delivered detection event."""
    IMAGES_PROCESSED.labels(str(outcome["cached"]).lower()).inc()
    stats.images.add()
    stats.cache["hit" if outcome["cached"] else "miss"] += 1
    captured = outcome["captured_at"]
    if isinstance(captured, datetime):
        age = max((now - captured).total_seconds(), 0.0)
        END_TO_END_SECONDS.observe(age)
        stats.record_stage("end_to_end", age * 1000)
    if not outcome["cached"]:
        for stage in ("fetch", "decode", "inference"):
            ms = outcome["timings"][f"{stage}_ms"]
            STAGE_SECONDS.labels(stage).observe(ms / 1000)
            stats.record_stage(stage, ms)
