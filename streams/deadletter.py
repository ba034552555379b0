"""Dead letters: a message that could not be processed, with the reason and everything to replay it."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Awaitable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from mugpos.core.codec import Record, codec
from mugpos.streams.metrics import DEAD_LETTERS

if TYPE_CHECKING:
    from faust.types import EventT

    from mugpos.streams.app import MugposApp

log = logging.getLogger(__name__)

_WORKER = f"{socket.gethostname()}:{os.getpid()}"


def dead_letter(
    *,
    stage: str,
    reason: str,
    message: str,
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    value: bytes | None,
    image_id: str | None = None,
) -> Record:
    """Build a ``DeadLetter`` record and count it (metric labels are the bounded stage and reason codes)."""
    DEAD_LETTERS.labels(stage, reason).inc()
    return {
        "stage": stage,
        "reason": reason,
        "message": message,
        "image_id": image_id,
        "original_key": key,
        "original_value": value,
        "original_topic": topic,
        "original_partition": partition,
        "original_offset": offset,
        "failed_at": datetime.now(UTC),
        "worker": _WORKER,
    }


def encode_dead_letter(record: dict[str, Any]) -> bytes:
    """Avro bytes of a dead letter."""
    return codec.encode("DeadLetter", record)


async def send_dead_letter(
    app: MugposApp, event: EventT, stage: str, reason: str, message: str, image_id: str | None = None
) -> Awaitable[Any]:
    """Dead-letter a consumed Faust event; returns the delivery future (await it before acking)."""
    msg = event.message
    log.info("dead letter %s/%s for %s: %s", stage, reason, image_id or msg.key, message)
    app.mugpos_stats.record_dead_letter(stage, reason)
    record = dead_letter(
        stage=stage,
        reason=reason,
        message=message,
        topic=msg.topic,
        partition=msg.partition,
        offset=msg.offset,
        key=msg.key if isinstance(msg.key, bytes) else None,
        value=msg.value if isinstance(msg.value, bytes) else None,
        image_id=image_id,
    )
    return await app.mugpos_topics.dlq.send(key=msg.key, value=encode_dead_letter(record))
