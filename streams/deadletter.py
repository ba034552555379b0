"""Dead letters: a message that could not be processed, with the reason and everything to replay it."""

from __future__ import annotations

import os
import socket
from datetime import UTC, datetime
from typing import Any

from streams.codec import Record, codec
from streams.metrics import DEAD_LETTERS

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
