"""Load signals of the detection group: per-partition lag, rates, queue time, GPU use.

Lag is "committed offset vs high-water mark". The high-water mark is taken from a fetch response,
never from ``end_offsets``/ListOffsets, because the test broker (tansu) answers ListOffsets(latest)
with the first offset of the last batch + 1; the fetch high-water mark is right on every broker.
Committed offsets are read with an explicit partition list, which tansu requires.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from mugpos.core.errors import BrokerUnavailable

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PartitionLag:
    """Offsets of one partition: what the group committed and what the broker holds.

    ``committed`` is ``None`` when the group never committed on this partition; the backlog then
    counts from ``log_start`` (where a consumer with ``auto_offset_reset=earliest`` begins).
    ``oldest_ts`` is the broker timestamp (epoch seconds) of the first message not yet committed,
    when known: it gives the time the oldest waiting image has spent in the queue.
    """

    partition: int
    committed: int | None
    high_water: int
    log_start: int = 0
    oldest_ts: float | None = None

    @property
    def position(self) -> int:
        """Next offset the group will process."""
        return self.log_start if self.committed is None else max(self.committed, self.log_start)

    @property
    def lag(self) -> int:
        """Messages waiting on this partition (never negative)."""
        return max(0, self.high_water - self.position)


@dataclass(frozen=True)
class LagReading:
    """One reading of a group's offsets on a topic, taken at ``ts`` (epoch seconds)."""

    ts: float
    topic: str
    group: str
    partitions: tuple[PartitionLag, ...]

    @property
    def total_lag(self) -> int:
        return sum(p.lag for p in self.partitions)

    def oldest_wait_s(self, now: float | None = None) -> float | None:
        """Age of the oldest waiting message across partitions, or ``None`` when nothing waits."""
        ages = [(self.ts if now is None else now) - p.oldest_ts for p in self.partitions if p.lag and p.oldest_ts]
        return max(0.0, max(ages)) if ages else None


@dataclass(frozen=True)
class LoadSnapshot:
    """Everything the policy sees at one instant. Offsets are required; the rest is optional.

    ``workers`` are the consumers the scaler runs (starting ones included); ``ready_workers`` are
    the ones consuming (group members), when known. Rates are messages per second: ``arrival_rate``
    is the growth of the high-water marks, ``process_rate`` the growth of the committed offsets.
    ``rate_per_worker`` is a throughput the workers report themselves (images/s while busy, e.g.
    batch size / batch latency); the policy prefers it to its own inference when present. Batch
    latency, queue time and GPU use are carried for the decision record and the stats page; the
    policy does not scale on them: a busy GPU says nothing about how long the queue will take.
    """

    ts: float
    partitions: tuple[PartitionLag, ...]
    workers: int
    ready_workers: int | None = None
    arrival_rate: float | None = None
    process_rate: float | None = None
    rate_per_worker: float | None = None
    batch_latency_s: float | None = None
    queue_time_p95_s: float | None = None
    oldest_wait_s: float | None = None
    gpu_util: float | None = None
    gpu_mem_frac: float | None = None

    def __post_init__(self) -> None:
        if self.workers < 0:
            raise ValueError(f"workers must be >= 0, got {self.workers}")
        if self.ready_workers is not None and self.ready_workers < 0:
            raise ValueError(f"ready_workers must be >= 0, got {self.ready_workers}")
        numbers = [self.ts, self.arrival_rate, self.process_rate, self.rate_per_worker]
        if any(v is not None and not math.isfinite(v) for v in numbers):
            raise ValueError("snapshot times and rates must be finite numbers")

    @property
    def ready(self) -> int:
        """Consumers actually consuming: ``ready_workers`` when known, else ``workers``."""
        return self.workers if self.ready_workers is None else min(self.ready_workers, self.workers)

    @property
    def total_lag(self) -> int:
        return sum(p.lag for p in self.partitions)

    @property
    def lag_by_partition(self) -> dict[int, int]:
        return {p.partition: p.lag for p in self.partitions}

    @classmethod
    def from_reading(
        cls,
        reading: LagReading,
        *,
        workers: int,
        previous: LoadSnapshot | LagReading | None = None,
        **extra: Any,
    ) -> LoadSnapshot:
        """Build a snapshot from a lag reading, deriving the rates from the ``previous`` one."""
        arrival, processed = rates_between(previous, reading) if previous is not None else (None, None)
        extra.setdefault("arrival_rate", arrival)
        extra.setdefault("process_rate", processed)
        extra.setdefault("oldest_wait_s", reading.oldest_wait_s())
        return cls(ts=reading.ts, partitions=reading.partitions, workers=workers, **extra)


def rates_between(
    before: LoadSnapshot | LagReading, after: LoadSnapshot | LagReading
) -> tuple[float | None, float | None]:
    """(arrival, process) rates in messages/s between two readings; ``None`` when undefined.

    Partitions present in only one reading are ignored, and counters that went backwards (a topic
    re-created, a group reset) count as zero rather than as negative throughput.
    """
    dt = after.ts - before.ts
    if dt <= 0:
        return None, None
    old = {p.partition: p for p in before.partitions}
    arrived = processed = 0
    for p in after.partitions:
        q = old.get(p.partition)
        if q is None:
            continue
        arrived += max(0, p.high_water - q.high_water)
        processed += max(0, p.position - q.position)
    return arrived / dt, processed / dt


class LagReader:
    """Reads the per-partition lag of ``group`` on ``topic`` from a live broker.

    Keeps one group-less consumer (it never joins or commits anything) and one admin client.
    Each ``read`` asks for the committed offsets, seeks every partition to its committed offset and
    waits for one fetch response per partition: that gives the high-water mark and the timestamp
    of the oldest waiting message. Partitions stay paused between reads so the reader costs nothing
    while idle. ``use_list_offsets=True`` takes the high-water marks from ListOffsets instead
    (cheaper, and right on Apache Kafka, but wrong on tansu).
    """

    def __init__(
        self,
        bootstrap: Sequence[str],
        topic: str,
        group: str,
        *,
        timeout_s: float = 10.0,
        use_list_offsets: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
        self.bootstrap = list(bootstrap)
        self.topic = topic
        self.group = group
        self.timeout_s = timeout_s
        self.use_list_offsets = use_list_offsets
        self._clock = clock
        self._admin: AIOKafkaAdminClient | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._tps: list[TopicPartition] = []

    async def __aenter__(self) -> LagReader:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def start(self) -> None:
        """Connect; raises ``BrokerUnavailable`` when the broker or the topic is missing."""
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=int(self.timeout_s * 1000))
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            # Only the first waiting message matters; a larger first batch still comes whole (KIP-74).
            max_partition_fetch_bytes=64 * 1024,
            fetch_max_wait_ms=100,
            request_timeout_ms=int(self.timeout_s * 1000),
        )
        self._admin, self._consumer = admin, consumer
        try:
            await asyncio.wait_for(admin.start(), self.timeout_s)
            await asyncio.wait_for(consumer.start(), self.timeout_s)
            parts = await asyncio.wait_for(self._partitions(consumer), self.timeout_s)
        except (KafkaError, OSError, TimeoutError) as exc:
            await self.close()
            raise BrokerUnavailable(
                f"cannot read lag of {self.topic} from {','.join(self.bootstrap)}: {exc!r}"
            ) from None
        if not parts:
            await self.close()
            raise BrokerUnavailable(f"topic {self.topic} does not exist (create it with `mugpos topics create`)")
        self._tps = [TopicPartition(self.topic, p) for p in sorted(parts)]
        consumer.assign(self._tps)
        consumer.pause(*self._tps)

    async def _partitions(self, consumer: AIOKafkaConsumer) -> set[int]:
        parts = consumer.partitions_for_topic(self.topic)
        if not parts:
            await consumer._client.force_metadata_update()
            parts = consumer.partitions_for_topic(self.topic)
        return set(parts or ())

    async def close(self) -> None:
        """Disconnect; safe to call twice."""
        for client in (self._consumer, self._admin):
            if client is None:
                continue
            try:
                await (client.stop() if isinstance(client, AIOKafkaConsumer) else client.close())
            except Exception as exc:  # closing a half-started client can raise; nothing to recover
                log.debug("closing %s failed: %r", type(client).__name__, exc)
        self._consumer = self._admin = None

    async def read(self) -> LagReading:
        """One reading of every partition; raises ``BrokerUnavailable`` when the broker does not answer.

        Connects on first use (and again after a failed start), so a control loop started while the
        broker is down recovers by itself."""
        if self._consumer is None or self._admin is None:
            await self.start()
        if self._consumer is None or self._admin is None:
            raise BrokerUnavailable(f"cannot read lag of {self.topic}: not connected")
        try:
            return await asyncio.wait_for(self._read(self._consumer, self._admin), self.timeout_s)
        except (KafkaError, OSError, TimeoutError) as exc:
            raise BrokerUnavailable(f"cannot read lag of group {self.group} on {self.topic}: {exc!r}") from None

    async def _read(self, consumer: AIOKafkaConsumer, admin: AIOKafkaAdminClient) -> LagReading:
        offsets = await admin.list_consumer_group_offsets(self.group, partitions=self._tps)
        committed: dict[TopicPartition, int | None] = {}
        for tp in self._tps:
            meta = offsets.get(tp)
            committed[tp] = meta.offset if meta is not None and meta.offset >= 0 else None
        starts = await consumer.beginning_offsets(self._tps)
        high: dict[TopicPartition, int] = {}
        oldest: dict[TopicPartition, float] = {}
        if self.use_list_offsets:
            high = dict(await consumer.end_offsets(self._tps))
        else:
            high, oldest = await self._fetch_high_water(consumer, committed, starts)
        now = self._clock()
        parts = tuple(
            PartitionLag(
                partition=tp.partition,
                committed=committed[tp],
                high_water=high[tp],
                log_start=starts.get(tp, 0),
                oldest_ts=oldest.get(tp),
            )
            for tp in self._tps
        )
        return LagReading(ts=now, topic=self.topic, group=self.group, partitions=parts)

    async def _fetch_high_water(
        self,
        consumer: AIOKafkaConsumer,
        committed: Mapping[TopicPartition, int | None],
        starts: Mapping[TopicPartition, int],
    ) -> tuple[dict[TopicPartition, int], dict[TopicPartition, float]]:
        positions = {tp: max(committed[tp] or 0, starts.get(tp, 0)) for tp in self._tps}
        asked_ms = int(time.time() * 1000)  # aiokafka stamps fetch responses with wall-clock ms
        for tp, pos in positions.items():
            consumer.seek(tp, pos)
        consumer.resume(*self._tps)
        high: dict[TopicPartition, int] = {}
        oldest: dict[TopicPartition, float] = {}
        loop = asyncio.get_running_loop()
        oldest_deadline: float | None = None
        try:
            while True:
                for tp in self._tps:
                    polled = consumer.last_poll_timestamp(tp)
                    hw = consumer.highwater(tp)
                    if tp not in high and polled is not None and polled >= asked_ms and hw is not None:
                        high[tp] = hw
                missing_hw = [tp for tp in self._tps if tp not in high]
                missing_ts = [tp for tp in high if high[tp] > positions[tp] and tp not in oldest]
                if not missing_hw:
                    # The oldest timestamps are a bonus: wait for them briefly, never for long.
                    oldest_deadline = oldest_deadline or loop.time() + min(1.0, self.timeout_s / 4)
                    if not missing_ts or loop.time() >= oldest_deadline:
                        return high, oldest
                batch = await consumer.getmany(*(missing_hw + missing_ts), timeout_ms=100, max_records=1000)
                for tp, records in batch.items():
                    first = next((r for r in records if r.offset >= positions[tp]), None)
                    if first is not None and tp not in oldest:
                        oldest[tp] = first.timestamp / 1000.0
        finally:
            consumer.pause(*self._tps)
