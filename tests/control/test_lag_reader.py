"""LagReader against the real broker (tansu at 127.0.0.1:19092): per-partition lag from the fetch
high-water mark and the committed offsets of a consumer group, on a fresh topic per test."""

from __future__ import annotations

import uuid

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from mugpos.control.signals import LagReader, LoadSnapshot
from mugpos.core.errors import BrokerUnavailable
from mugpos.core.settings import Settings
from tests.control.broker import create_images_topic, produce_counts

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

PRODUCED = {0: 10, 1: 25, 2: 7, 3: 0}
COMMITTED = {0: 4, 1: 25}  # partition 2 never committed, partition 3 empty


async def _commit(settings: Settings, topic: str, group: str, offsets: dict[int, int]) -> None:
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = {TopicPartition(topic, p): o for p, o in offsets.items()}
        consumer.assign(list(tps))
        await consumer.commit(tps)
    finally:
        await consumer.stop()


async def test_lag_per_partition_from_fetch_high_water_and_committed_offsets(settings: Settings) -> None:
    topic = await create_images_topic(settings, 4)
    await produce_counts(settings, topic, PRODUCED, age_s=30.0)
    group = f"g-{uuid.uuid4().hex[:8]}"
    await _commit(settings, topic, group, COMMITTED)

    async with LagReader(settings.bootstrap, topic, group) as reader:
        reading = await reader.read()

    by = {p.partition: p for p in reading.partitions}
    assert sorted(by) == [0, 1, 2, 3]
    assert {p: by[p].high_water for p in by} == PRODUCED  # tansu's end_offsets would say 1, 1, 1, 0
    assert {p: by[p].committed for p in by} == {0: 4, 1: 25, 2: None, 3: None}
    assert {p: by[p].lag for p in by} == {0: 6, 1: 0, 2: 7, 3: 0}
    assert reading.total_lag == 13
    # the oldest waiting message was produced 30 s ago: that is its time in the queue
    wait = reading.oldest_wait_s()
    assert wait is not None and 29.0 <= wait <= 45.0
    assert by[1].oldest_ts is None and by[3].oldest_ts is None


async def test_successive_readings_give_arrival_and_process_rates(settings: Settings) -> None:
    topic = await create_images_topic(settings, 2)
    group = f"g-{uuid.uuid4().hex[:8]}"
    await produce_counts(settings, topic, {0: 5, 1: 5})
    async with LagReader(settings.bootstrap, topic, group) as reader:
        first = await reader.read()
        await produce_counts(settings, topic, {0: 10, 1: 20})
        await _commit(settings, topic, group, {0: 15, 1: 5})
        second = await reader.read()

    assert first.total_lag == 10
    assert second.total_lag == 20  # partition 0 drained, partition 1 holds 20
    snap = LoadSnapshot.from_reading(second, workers=2, previous=first)
    dt = second.ts - first.ts
    assert snap.arrival_rate == pytest.approx(30 / dt)
    assert snap.process_rate == pytest.approx(20 / dt)  # positions moved 0 -> 15 and 0 -> 5


async def test_missing_topic_fails_with_a_clear_message(settings: Settings) -> None:
    reader = LagReader(settings.bootstrap, f"{settings.topic_prefix}nope", "g", timeout_s=5)
    with pytest.raises(BrokerUnavailable, match="does not exist"):
        await reader.start()


async def test_unreachable_broker_is_broker_unavailable() -> None:
    reader = LagReader(["127.0.0.1:1"], "t", "g", timeout_s=2)
    with pytest.raises(BrokerUnavailable, match="cannot read lag"):
        await reader.start()
