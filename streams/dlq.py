"""Reading, counting and replaying the dead-letter topic (``mugpos dlq`` and ``/mugpos/dlq``).

A dead letter carries the original message (key, value, topic), so replaying one re-produces it
exactly where it came from, once its cause is fixed. Replay is idempotent end to end: every output
is keyed by image id (results) or action id (actions), so replaying twice still leaves one result
per image. A dead letter may name only this deployment's own topics (``MUGPOS_TOPIC_PREFIX``): a
crafted letter cannot make a replay write anywhere else.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from mugpos.core.codec import CodecError, Record, codec
from mugpos.core.errors import BrokerUnavailable, MugposError
from mugpos.core.settings import Settings
from mugpos.core.topics import TOPIC_RECORDS
from mugpos.streams.consumer import consume_events

#: Header a replayed message carries: the dead letter it came from (``partition:offset``).
REPLAYED_FROM = "mugpos-replayed-from"


#: Logical topics a replay may write to: the pipeline's inputs. Never the rules, control or dlq topics.
REPLAYABLE = ("images", "detections", "positions", "actions")


class ReplayError(MugposError):
    """A dead letter that cannot be replayed (no original value, or a topic outside this deployment)."""


@dataclass(frozen=True)
class DeadLetterFilter:
    """Which dead letters to show or replay; ``None`` matches anything."""

    stage: str | None = None
    reason: str | None = None
    source: str | None = None
    since: datetime | None = None
    image_id: str | None = None

    def matches(self, letter: Letter) -> bool:
        record = letter.record
        return (
            (self.stage is None or record["stage"] == self.stage)
            and (self.reason is None or record["reason"] == self.reason)
            and (self.source is None or letter.source == self.source)
            and (self.image_id is None or record.get("image_id") == self.image_id)
            and (self.since is None or _aware(record["failed_at"]) >= self.since)
        )


@dataclass(frozen=True)
class Letter:
    """One dead letter as read from the topic, with the camera (source) of its original message."""

    partition: int
    offset: int
    record: Record
    source: str | None

    def summary(self) -> dict[str, Any]:
        """The letter for people and JSON: everything but the original bytes."""
        r = self.record
        return {
            "partition": self.partition,
            "offset": self.offset,
            "stage": r["stage"],
            "reason": r["reason"],
            "message": r["message"],
            "image_id": r.get("image_id"),
            "source": self.source,
            "original_topic": r["original_topic"],
            "original_partition": r["original_partition"],
            "original_offset": r["original_offset"],
            "failed_at": _aware(r["failed_at"]).isoformat(),
            "worker": r.get("worker"),
            "replayable": r.get("original_value") is not None,
        }


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """``30m``, ``2h``, ``1d``, ``90s`` ago, or an ISO 8601 time (UTC when it names no zone)."""
    now = now or datetime.now(UTC)
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    text = text.strip()
    if text[:-1].isdigit() and text[-1:] in units:
        return now - timedelta(seconds=int(text[:-1]) * units[text[-1]])
    try:
        return _aware(datetime.fromisoformat(text))
    except ValueError:
        raise ValueError(f"expected a duration such as 30m, 2h, 1d or an ISO time, got {text!r}") from None


async def read_dead_letters(
    settings: Settings, where: DeadLetterFilter = DeadLetterFilter(), *, idle_s: float = 2.0
) -> list[Letter]:
    """Every matching dead letter, read from the start of the topic until it is idle for ``idle_s``.

    Nothing is committed: reading is a tap, never a consumer that moves anyone's offsets."""
    letters = []
    async for item in consume_events(settings, "dlq", from_beginning=True, timeout_s=idle_s):
        if item.event is None:  # an undecodable dead letter: nothing to show or replay
            continue
        letter = Letter(item.partition, item.offset, item.event, _source_of(item.event, settings.topic_prefix))
        if where.matches(letter):
            letters.append(letter)
    return letters


def stats(letters: Iterable[Letter]) -> list[dict[str, Any]]:
    """Counts by stage and reason, most frequent first."""
    counts = Counter((letter.record["stage"], letter.record["reason"]) for letter in letters)
    return [{"stage": s, "reason": r, "count": n} for (s, r), n in counts.most_common()]


def check_replayable(settings: Settings, letter: Letter) -> tuple[str, bytes | None, bytes]:
    """``(topic, key, value)`` of the original message, or ``ReplayError``."""
    record = letter.record
    topic = str(record["original_topic"])
    if topic not in {settings.topic(name) for name in REPLAYABLE}:
        raise ReplayError(
            f"dead letter {letter.partition}:{letter.offset} names topic {topic!r}, not one of this deployment's "
            f"{', '.join(REPLAYABLE)} topics"
        )
    value = record.get("original_value")
    if value is None:
        raise ReplayError(f"dead letter {letter.partition}:{letter.offset} has no original value to replay")
    return topic, record.get("original_key"), value


async def replay(settings: Settings, letters: Iterable[Letter], *, dry_run: bool = False) -> dict[str, Any]:
    """Re-produce each letter's original message to its original topic (all of them or none checked first).

    Returns ``{"replayed": n, "skipped": [{"letter": "p:o", "why": ...}], "topics": {topic: n}}``;
    with ``dry_run`` nothing is produced and ``replayed`` counts what would be."""
    plan: list[tuple[Letter, str, bytes | None, bytes]] = []
    skipped: list[dict[str, str]] = []
    for letter in letters:
        try:
            plan.append((letter, *check_replayable(settings, letter)))
        except ReplayError as exc:
            skipped.append({"letter": f"{letter.partition}:{letter.offset}", "why": str(exc)})
    topics = Counter(topic for _, topic, _, _ in plan)
    if not dry_run and plan:
        producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap, acks="all", request_timeout_ms=15_000)
        try:
            await producer.start()
        except (KafkaError, OSError) as exc:
            await producer.stop()
            raise BrokerUnavailable(f"cannot reach the Kafka broker at {settings.broker}: {exc!r}") from None
        try:
            futures = [
                await producer.send(
                    topic,
                    value=value,
                    key=key,
                    headers=[(REPLAYED_FROM, f"{letter.partition}:{letter.offset}".encode())],
                )
                for letter, topic, key, value in plan
            ]
            for future in futures:
                await future
        except KafkaError as exc:
            raise BrokerUnavailable(f"replay stopped, the broker refused a message: {exc!r}") from None
        finally:
            await producer.stop()
    return {"replayed": len(plan), "skipped": skipped, "topics": dict(topics), "dry_run": dry_run}


def _source_of(record: Record, prefix: str) -> str | None:
    """The camera of the original message, when it decodes (images, detections and positions carry one)."""
    value = record.get("original_value")
    logical = str(record.get("original_topic", "")).removeprefix(prefix)
    if value is None or logical not in TOPIC_RECORDS:
        return None
    try:
        if TOPIC_RECORDS[logical] == "ImageEvent":
            original = codec.decode_image_event(value)
        else:
            original = codec.decode(value, TOPIC_RECORDS[logical])
    except CodecError:
        return None
    source = original.get("source")
    return str(source) if source is not None else None


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
