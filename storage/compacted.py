"""Compacted topics read as tables: the rules and the camera configurations.

Writers produce a value keyed by id, or a tombstone. Every worker runs a :class:`CompactedFeed`: a
consumer *without* a consumer group that reads the topic from the beginning and keeps tailing it.
A group member (a Faust agent) would get the topic's one partition on one worker only, leaving the
others without it; and Faust tables cannot be written from inside another agent's ``take()``
batches anyway. The feed hands records to a :class:`Registry`, which keeps the current values and
swaps in whatever it derives from them, so changes apply without a restart.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, Protocol, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError

from mugpos.core.errors import BrokerUnavailable
from mugpos.core.settings import Settings
from mugpos.core.topics import ensure_topics

log = logging.getLogger(__name__)

Records = Iterable[tuple[bytes | None, bytes | None]]
T = TypeVar("T")


class Registry(Protocol):
    """What a feed keeps up to date."""

    ready: asyncio.Event

    def apply(self, records: Records) -> Sequence[Any]:
        """Apply (key, value) records in order; returns what each did, for the log."""
        ...

    def log_change(self, change: Any) -> None: ...

    def summary(self) -> str:
        """One line for the log once the topic was read to its end."""
        ...


class Rejected(Exception):
    """A record that does not validate: a bounded ``reason`` (a metric label) and a ``detail`` for people."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass
class Change:
    """What one record did to a registry (for logs and tests)."""

    key: str
    kind: str  # added, updated, unchanged, removed, rejected, unknown-tombstone
    detail: str = ""


class KeyedRegistry(Generic[T]):
    """The current value per key of a compacted topic: a tombstone deletes, a record that does not
    validate is set apart in ``invalid`` (the last good value stays), an equal one changes nothing.
    Subclasses say how a value is parsed and what follows a change."""

    #: Topic (for log lines) and what one value is called ("rule", "camera").
    topic: ClassVar[str]
    noun: ClassVar[str]
    #: What a record key must match, and how it is called in the refusal.
    key_pattern: ClassVar[re.Pattern[str]]
    key_name: ClassVar[str]

    def __init__(self) -> None:
        self.items: dict[str, T] = {}
        self.invalid: dict[str, str] = {}
        self.version = 0
        self.ready = asyncio.Event()

    def parse(self, key: str, value: bytes) -> T:
        """The value of a record; raises :class:`Rejected` for one that does not validate."""
        raise NotImplementedError

    def describe(self, item: T) -> str:
        """A few words on a value for the log line of its change."""
        return ""

    def counted(self, kind: str, reason: str = "") -> None:
        """Count a record that was applied (``added``/``updated``) or ``rejected`` (with its reason)."""

    def changed(self) -> None:
        """Called once after a batch of records that added, updated or removed anything."""

    def apply(self, records: Records) -> list[Change]:
        """Apply (key, value) records in order, then :meth:`changed` once."""
        changes = [self._apply_one(key, value) for key, value in records]
        if any(c.kind in ("added", "updated", "removed") for c in changes):
            self.version += 1
            self.changed()
        return changes

    def _apply_one(self, raw_key: bytes | None, value: bytes | None) -> Change:
        try:
            key = raw_key.decode("utf-8") if raw_key is not None else ""
        except UnicodeDecodeError:
            key = ""
        if not self.key_pattern.fullmatch(key):
            return self._reject(key or repr(raw_key), Rejected("bad_key", f"record key is not a {self.key_name}"))
        if value is None:
            self.invalid.pop(key, None)
            if self.items.pop(key, None) is None:
                return Change(key, "unknown-tombstone")
            return Change(key, "removed")
        try:
            item = self.parse(key, value)
        except Rejected as exc:
            return self._reject(key, exc)
        if self.items.get(key) == item:
            return Change(key, "unchanged")
        kind = "updated" if key in self.items else "added"
        self.items[key] = item
        self.invalid.pop(key, None)
        self.counted(kind)
        return Change(key, kind, self.describe(item))

    def _reject(self, key: str, exc: Rejected) -> Change:
        self.counted("rejected", exc.reason)
        self.invalid[key] = str(exc)
        return Change(key, "rejected", str(exc))

    def log_change(self, change: Change) -> None:
        if change.kind == "rejected":
            log.warning("%s: rejected record for %s: %s", self.topic, change.key, change.detail)
        elif change.kind not in ("unknown-tombstone", "unchanged"):
            log.info("%s: %s %s %s (%s)", self.topic, change.kind, self.noun, change.key, change.detail or "-")


async def wait_ready(ready: asyncio.Event, timeout_s: float, topic: str, fallback: str) -> None:
    """Wait until a registry has read its topic to the end, at most ``timeout_s``; then go on with
    what it holds (``fallback`` says how, in the warning): a worker must not stall on a slow topic."""
    try:
        await asyncio.wait_for(ready.wait(), timeout_s)
    except TimeoutError:
        log.warning("%s topic not read within %.0f s; %s", topic, timeout_s, fallback)


async def start_consumer(
    settings: Settings, logical: str, timeout_s: float
) -> tuple[AIOKafkaConsumer, list[TopicPartition]]:
    """A group-less consumer assigned every partition of topic ``logical``."""
    topic = settings.topic(logical)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        request_timeout_ms=int(timeout_s * 1000),
    )
    try:
        await asyncio.wait_for(consumer.start(), timeout_s)
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            await asyncio.wait_for(consumer.topics(), timeout_s)  # refreshes the cluster metadata
            partitions = consumer.partitions_for_topic(topic) or {0}
    except (KafkaError, OSError, TimeoutError) as exc:
        await consumer.stop()
        raise BrokerUnavailable(f"cannot reach the Kafka broker at {settings.broker}: {exc!r}") from None
    tps = [TopicPartition(topic, p) for p in sorted(partitions)]
    consumer.assign(tps)
    return consumer, tps


async def caught_up(
    consumer: AIOKafkaConsumer, tps: Sequence[TopicPartition], floor: dict[TopicPartition, int]
) -> bool:
    """At the end of every partition? ``floor`` (end offsets at start) is a lower bound: the test broker
    under-reports it; the high-water mark of fetch responses is exact once a fetch has returned."""
    for tp in tps:
        position = await consumer.position(tp)
        highwater = consumer.highwater(tp)
        if position < floor.get(tp, 0) or (highwater is not None and position < highwater):
            return False
    return True


class CompactedTopic:
    """CLI- and API-side access to a compacted topic: write values and tombstones, read it whole."""

    def __init__(self, settings: Settings, logical: str, timeout_s: float = 10.0) -> None:
        self.settings = settings
        self.logical = logical
        self.timeout_s = timeout_s

    async def produce(self, key: str, value: bytes | None) -> None:
        """Write ``value`` (None: a tombstone) under ``key``; returns once the broker acknowledged it."""
        await ensure_topics(self.settings, timeout_s=self.timeout_s)
        producer = AIOKafkaProducer(
            bootstrap_servers=self.settings.bootstrap, acks="all", request_timeout_ms=int(self.timeout_s * 1000)
        )
        topic = self.settings.topic(self.logical)
        try:
            await asyncio.wait_for(producer.start(), self.timeout_s)
            await producer.send_and_wait(topic, value, key=key.encode())
        except (KafkaError, OSError, TimeoutError) as exc:
            raise BrokerUnavailable(f"cannot write to {topic} at {self.settings.broker}: {exc!r}") from None
        finally:
            await producer.stop()

    async def read_into(self, registry: Registry) -> None:
        """Read the topic from the beginning to its end into ``registry``."""
        await ensure_topics(self.settings, timeout_s=self.timeout_s)
        consumer, tps = await start_consumer(self.settings, self.logical, self.timeout_s)
        topic = self.settings.topic(self.logical)
        try:
            await consumer.seek_to_beginning(*tps)
            floor = await consumer.end_offsets(tps)
            async with asyncio.timeout(self.timeout_s * 3):
                while not await caught_up(consumer, tps, floor):
                    batch = await consumer.getmany(*tps, timeout_ms=500)
                    registry.apply((m.key, m.value) for msgs in batch.values() for m in msgs)
        except TimeoutError:
            raise BrokerUnavailable(f"timed out reading {topic} to its end") from None
        except KafkaError as exc:
            raise BrokerUnavailable(f"cannot read {topic}: {exc!r}") from None
        finally:
            await consumer.stop()


class CompactedFeed:
    """Keeps a registry in step with a compacted topic for as long as :meth:`run` runs (a worker task)."""

    def __init__(self, settings: Settings, logical: str, registry: Registry, poll_ms: int = 200) -> None:
        self.settings = settings
        self.logical = logical
        self.registry = registry
        self.poll_ms = poll_ms
        self._next: dict[TopicPartition, int] = {}  # resume here after a reconnect, never replay old versions

    async def run(self) -> None:
        """Read everything, mark the registry ready, then follow new records; retries when the broker is away."""
        while True:
            try:
                await self._follow()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # broker gone: keep what we have, reconnect, reread (idempotent)
                log.warning("%s feed interrupted, retrying in 2 s: %r", self.logical, exc)
                await asyncio.sleep(2)

    async def _follow(self) -> None:
        consumer, tps = await start_consumer(self.settings, self.logical, 10.0)
        try:
            for tp in tps:
                if tp in self._next:
                    consumer.seek(tp, self._next[tp])
                else:
                    await consumer.seek_to_beginning(tp)
            floor = await consumer.end_offsets(tps)
            while True:
                batch = await consumer.getmany(*tps, timeout_ms=self.poll_ms)
                records = [(m.key, m.value) for msgs in batch.values() for m in msgs]
                for tp, msgs in batch.items():
                    if msgs:
                        self._next[tp] = msgs[-1].offset + 1
                if records:
                    for change in self.registry.apply(records):
                        self.registry.log_change(change)
                if not self.registry.ready.is_set() and await caught_up(consumer, tps, floor):
                    self.registry.ready.set()
                    log.info("%s: registry ready with %s", self.logical, self.registry.summary())
        finally:
            await consumer.stop()
