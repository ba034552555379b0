"""Consumer helper: yields decoded result events from any mugpos topic."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError

from mugpos.core.codec import CodecError, Record, codec
from mugpos.core.errors import BrokerUnavailable
from mugpos.core.settings import Settings
from mugpos.core.topics import resolve_topic


@dataclass
class Received:
    """One consumed message: its position, key, and the decoded event or the decoding error."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    event: Record | None
    error: CodecError | None = None


def decode_value(record_name: str, value: bytes | None) -> Record | None:
    """Decode a topic value; ``None`` stays ``None`` (a tombstone on the rules topic)."""
    if value is None:
        return None
    if record_name == "ImageEvent":
        return codec.decode_image_event(value)
    return codec.decode(value, record_name)


async def consume_events(
    settings: Settings,
    topic: str,
    *,
    from_beginning: bool = False,
    group_id: str | None = None,
    count: int | None = None,
    timeout_s: float | None = None,
    connect_timeout_s: float = 10.0,
) -> AsyncIterator[Received]:
    """Yield decoded messages of ``topic`` (logical or full name) until ``count`` or ``timeout_s`` idle.

    Without ``group_id`` nothing is committed (a read-only tap); with one, offsets are committed
    after each yielded message has been handed over, giving at-least-once delivery to the caller.
    Undecodable messages are yielded with ``error`` set rather than dropped.
    """
    spec = resolve_topic(settings, topic)
    consumer = AIOKafkaConsumer(
        spec.name,
        bootstrap_servers=settings.bootstrap,
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest" if from_beginning else "latest",
        request_timeout_ms=int(connect_timeout_s * 1000),
        session_timeout_ms=10_000,
        heartbeat_interval_ms=1_000,
    )
    try:
        await asyncio.wait_for(consumer.start(), connect_timeout_s)
    except (KafkaError, OSError, TimeoutError) as exc:
        await consumer.stop()
        raise BrokerUnavailable(f"cannot reach the Kafka broker at {settings.broker}: {exc!r}") from None
    seen = 0
    last = time.monotonic()
    try:
        while count is None or seen < count:
            batch: dict[Any, list[Any]] = await consumer.getmany(timeout_ms=200, max_records=500)
            if not batch:
                if timeout_s is not None and time.monotonic() - last > timeout_s:
                    return
                continue
            last = time.monotonic()
            handed: dict[Any, int] = {}
            for tp, messages in sorted(batch.items(), key=lambda kv: kv[0].partition):
                for msg in messages:
                    try:
                        item = Received(
                            msg.topic, msg.partition, msg.offset, msg.key, decode_value(spec.record, msg.value)
                        )
                    except CodecError as exc:
                        item = Received(msg.topic, msg.partition, msg.offset, msg.key, None, exc)
                    yield item
                    handed[tp] = msg.offset + 1
                    seen += 1
                    if count is not None and seen >= count:
                        break
                if count is not None and seen >= count:
                    break
            if group_id is not None and handed:
                await consumer.commit(handed)  # only what was handed over, never the unread rest
    finally:
        await consumer.stop()
