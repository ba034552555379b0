"""Sink agent: detections, positions and actions -> MongoDB (idempotent upserts) and the web views.

Its own role (``mugpos worker --role sink``) and consumer group, so a MongoDB outage holds the
sink's offsets and nothing else: positioning, rules and alerts keep flowing. An event is
acknowledged only after MongoDB has stored it: while MongoDB is down the batch is held and retried
with backoff (``mugpos.streams.holding``), so everything arrives once MongoDB is back.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from typing import Any

from faust.types import EventT, StreamT

from mugpos.core.codec import CodecError, codec
from mugpos.core.errors import InfrastructureError
from mugpos.streams.app import MugposApp
from mugpos.streams.deadletter import send_dead_letter
from mugpos.streams.holding import delivered, hold, sent
from mugpos.streams.metrics import ANNOTATED_WRITES, SINK_WRITES

log = logging.getLogger(__name__)

#: Logical topic -> (kind, Avro record name).
SOURCES = {
    "detections": ("detection", "DetectionEvent"),
    "positions": ("position", "PositionEvent"),
    "actions": ("action", "ActionEvent"),
}


def register(app: MugposApp) -> None:
    """Attach the sink agent to ``app``."""
    settings = app.settings
    kinds = {settings.topic(logical): spec for logical, spec in SOURCES.items()}
    source = app.topic(*kinds, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")
    results = app.mugpos_results

    @app.agent(source, name="mugpos.sink")
    async def sink(stream: StreamT[bytes]) -> None:
        try:
            await results.ensure_indexes()
        except Exception as exc:  # MongoDB down at start: writes retry below; indexes come next start
            log.warning("results store: could not create indexes now: %r", exc)
        batches = stream.noack_take(256, within=0.5)  # type: ignore[attr-defined]
        async for events in batches:
            await handle_batch(app, kinds, events, stream)


async def handle_batch(
    app: MugposApp, kinds: dict[str, tuple[str, str]], events: list[EventT], stream: StreamT[Any]
) -> None:
    """Store one batch in MongoDB, holding it while MongoDB is down; returns when all is acknowledged."""

    async def run_round(pending: list[EventT]) -> list[tuple[EventT, InfrastructureError]]:
        return await sink_round(app, kinds, pending)

    await hold(app, stream, "sink", events, run_round)


async def sink_round(
    app: MugposApp, kinds: dict[str, tuple[str, str]], events: list[EventT]
) -> list[tuple[EventT, InfrastructureError]]:
    """Decode, store (raises InfrastructureError while MongoDB is down), remember for the web views,
    dead-letter what MongoDB refuses for good."""
    items: list[tuple[str, dict[str, Any]]] = []
    origins: list[EventT] = []
    sends: list[tuple[EventT, Awaitable[Any]]] = []
    for event in events:
        kind, record_name = kinds[event.message.topic]
        try:
            record = codec.decode(event.value, record_name)
        except CodecError as exc:
            sends.append(await sent(event, send_dead_letter(app, event, "sink", exc.reason, exc.message)))
            continue
        items.append((kind, record))
        origins.append(event)
    refused = await app.mugpos_results.store(items)
    if app.role == "sink":  # elsewhere the positioning and rules agents feed the views (feed_views)
        for kind, record in items:
            feed_views(app, kind, record)
    if app.settings.store_annotated:
        await _store_annotated(app, [record for kind, record in items if kind == "position"])
    for index in refused:
        dead = send_dead_letter(app, origins[index], "sink", "sink_refused", "MongoDB refused the document")
        sends.append(await sent(origins[index], dead))
    for kind, _ in items:
        SINK_WRITES.labels(kind).inc()
    return await delivered(sends)


def feed_views(app: MugposApp, kind: str, record: dict[str, Any]) -> None:
    """Feed the web views' recent results and the dashboard's gallery and rates.

    Called by the sink in its own role, and by the positioning and actions agents where they run,
    so the analyze worker's dashboard shows what it analyses without waiting for MongoDB."""
    app.mugpos_results.remember(kind, record)
    stats = app.mugpos_stats
    if kind == "detection":
        stats.remember(
            record["image_id"],
            source=record["source"],
            labels=[d["label"] for d in record["detections"]],
            processed_at=record["processed_at"],
            cached=record["cached"],
        )
    elif kind == "position":
        stats.positions.add()
        stats.remember(
            record["image_id"],
            verdict=record["verdict"],
            reasons=list(record["reasons"]),
            mug_count=record["mug_count"],
        )
    else:
        stats.actions.add()
        entry = stats.recent.get(record["image_id"])
        if entry is not None:
            entry.setdefault("rules", [])
            if record["rule_name"] not in entry["rules"]:
                entry["rules"].append(record["rule_name"])


async def _store_annotated(app: MugposApp, positions: list[dict[str, Any]]) -> None:
    """Write ``<original>.annotated.jpg`` beside each original (MUGPOS_STORE_ANNOTATED=1).

    Best effort: a failed write is counted and logged, never a reason to hold the batch."""
    results = app.mugpos_results
    for position in positions:
        stored = await results.get(position["image_id"])
        detection = (stored or {}).get("detection")
        if detection is None or results.object_store is None:
            ANNOTATED_WRITES.labels("no_detection").inc()
            continue
        try:
            jpeg = await results.annotated(position["image_id"])
            if jpeg is None:
                ANNOTATED_WRITES.labels("unreadable").inc()
                continue
            await results.object_store.put(annotated_uri(detection["uri"]), jpeg, "image/jpeg")
            ANNOTATED_WRITES.labels("written").inc()
        except Exception as exc:  # the store may refuse; the result itself is already stored
            ANNOTATED_WRITES.labels("error").inc()
            log.warning("annotated image of %s not written: %r", position["image_id"], exc)


def annotated_uri(uri: str) -> str:
    """``s3://b/images/ab/x.jpg`` -> ``s3://b/images/ab/x.annotated.jpg``."""
    head, _, tail = uri.rpartition("/")
    stem = tail.rsplit(".", 1)[0] if "." in tail else tail
    return f"{head}/{stem}.annotated.jpg"
