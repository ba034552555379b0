"""Broker helpers shared by the control tests: a fresh topic per test, and messages in it."""

from __future__ import annotations

import time

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from mugpos.core.settings import Settings


async def create_images_topic(settings: Settings, partitions: int) -> str:
    """The test's own images topic (its prefix is unique per test), with ``partitions`` partitions."""
    topic = f"{settings.topic_prefix}images"
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, partitions, 1)])
    finally:
        await admin.close()
    return topic


async def produce_counts(settings: Settings, topic: str, counts: dict[int, int], age_s: float = 0.0) -> None:
    """``counts[p]`` small messages into partition ``p``, time-stamped ``age_s`` seconds ago."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap)
    await producer.start()
    try:
        stamp = int((time.time() - age_s) * 1000)
        for partition, n in counts.items():
            for i in range(n):
                await producer.send(topic, f"m{i}".encode(), partition=partition, timestamp_ms=stamp)
        await producer.flush()
    finally:
        await producer.stop()
