"""The four real services answer the clients the project uses (broker, Redis, MongoDB wire server)."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from pymongo import AsyncMongoClient
from redis.asyncio import Redis

from mugpos.core.settings import Settings
from mugpos.core.topics import ensure_topics, state_topic_specs, topic_specs

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]


async def test_broker_round_trip_with_a_consumer_group(settings: Settings) -> None:
    topic = f"{settings.topic_prefix}roundtrip"
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, 3, 1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap)
    await producer.start()
    try:
        for i in range(30):
            await producer.send_and_wait(topic, f"v{i}".encode(), key=f"k{i}".encode())
    finally:
        await producer.stop()

    group = f"g-{uuid.uuid4().hex[:8]}"
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=settings.bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        session_timeout_ms=8000,
        heartbeat_interval_ms=1000,
    )
    await consumer.start()
    got: set[bytes] = set()
    try:
        async with asyncio.timeout(30):
            while len(got) < 30:
                batch = await consumer.getmany(timeout_ms=500)
                for messages in batch.values():
                    got.update(m.value for m in messages)
        await consumer.commit()
        partitions = consumer.assignment()
        committed = {tp.partition: await consumer.committed(tp) for tp in partitions}
    finally:
        await consumer.stop()
    assert got == {f"v{i}".encode() for i in range(30)}
    assert len(partitions) == 3
    assert sum(v or 0 for v in committed.values()) == 30  # the group's offsets cover every message


async def test_ensure_topics_creates_each_topic_once_with_its_partitions(settings: Settings) -> None:
    created = await ensure_topics(settings)
    changelogs = [s.name for s in state_topic_specs(settings)]
    assert sorted(created) == sorted([s.name for s in topic_specs(settings)] + changelogs)
    assert f"{settings.app_id}-analyze-episodes-changelog" in changelogs
    assert await ensure_topics(settings) == []  # idempotent
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics([settings.topic("images"), settings.topic("rules"), changelogs[0]])
    finally:
        await admin.close()
    counts = {d["topic"]: len(d["partitions"]) for d in described}
    # a table's changelog has the partitions of the topic its table is keyed like
    expected = {settings.topic("images"): settings.images_partitions, settings.topic("rules"): 1}
    assert counts == expected | {changelogs[0]: settings.partitions}


async def test_redis_set_get_with_ttl(settings: Settings) -> None:
    redis = Redis.from_url(settings.redis_url)
    key = f"test:{uuid.uuid4().hex}"
    try:
        await redis.set(key, b"payload", ex=30)
        assert await redis.get(key) == b"payload"
        assert 0 < await redis.ttl(key) <= 30
    finally:
        await redis.delete(key)
        await redis.aclose()


async def test_mongodb_wire_server_insert_find_and_unique_index(settings: Settings) -> None:
    client: AsyncMongoClient = AsyncMongoClient(settings.mongodb_uri, serverSelectionTimeoutMS=5000)
    coll = client[settings.mongodb_db][f"test_{uuid.uuid4().hex[:8]}"]
    try:
        await coll.create_index("image_id", unique=True)
        await coll.insert_many([{"image_id": f"img-{i}", "n": i} for i in range(5)])
        docs = [d async for d in coll.find({"n": {"$gte": 3}}).sort("n", 1)]
        assert [d["image_id"] for d in docs] == ["img-3", "img-4"]
        await coll.update_one({"image_id": "img-1"}, {"$set": {"n": 10}}, upsert=True)
        assert await coll.count_documents({}) == 5  # upsert by key did not duplicate
    finally:
        await coll.drop()
        await client.close()
