"""The rules topic on the real broker: write, read back, tombstones, invalid records, and a live feed."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaProducer

from mugpos.core.codec import codec
from mugpos.core.settings import Settings
from mugpos.core.topics import ensure_topics
from mugpos.rules.language import compile_sentence
from mugpos.rules.model import Rule, rule_to_record
from mugpos.storage.rules import RuleFeed, RuleRegistry, RuleStore, encode_rule

pytestmark = pytest.mark.integration


async def produce_raw(settings: Settings, *records: tuple[bytes | None, bytes | None]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap)
    await producer.start()
    try:
        for key, value in records:
            await producer.send_and_wait(settings.topic("rules"), value, key=key)
    finally:
        await producer.stop()


def test_put_read_update_delete(settings: Settings) -> None:
    store = RuleStore(settings)
    edge = compile_sentence("warn if any mug is within 5 cm of the table edge", rule_id="edge")
    coaster = compile_sentence("alert when a mug is not on a coaster", rule_id="coaster")
    edge2 = compile_sentence("warn if any mug is within 3 cm of the table edge", rule_id="edge")

    async def go() -> list[dict[str, Rule]]:
        snapshots = []
        assert (await store.read()).rules == {}  # an empty (new) topic reads as no rules, quickly
        await store.put(edge)
        await store.put(coaster)
        snapshots.append(dict((await store.read()).rules))
        await store.put(edge2)
        await store.delete("coaster")
        snapshots.append(dict((await store.read()).rules))
        return snapshots

    first, second = asyncio.run(go())
    assert first == {"edge": edge, "coaster": coaster}
    assert second == {"edge": edge2}


def test_invalid_records_are_reported_and_never_loaded(settings: Settings) -> None:
    good = compile_sentence("alert when a mug is not on a coaster", rule_id="good")
    bypass = rule_to_record(compile_sentence("alert when a mug is on a coaster", rule_id="bypass"))
    bypass["condition"]["field"] = "mug.colour"  # valid Avro, invalid rule (written by some other tool)
    records = [
        (b"good", encode_rule(good)),
        (b"garbage", b"\x00\x01 not avro"),
        (b"bypass", codec.encode("RuleDefinition", bypass)),
        (b"other-key", encode_rule(good)),  # key and rule_id disagree
        (b"bad key!", encode_rule(good)),
        (None, encode_rule(good)),
        (b"never-existed", None),  # a tombstone for an unknown id is harmless
    ]

    async def go() -> RuleRegistry:
        await ensure_topics(settings)
        await produce_raw(settings, *records)
        return await RuleStore(settings).read()

    registry = asyncio.run(go())
    assert registry.rules == {"good": good}
    assert set(registry.invalid) == {"garbage", "bypass", "other-key", "bad key!", "None"}
    assert "unknown field 'mug.colour'" in registry.invalid["bypass"]
    assert "key_mismatch" in registry.invalid["other-key"]
    assert len(registry.ruleset) == 1


def test_feed_reads_everything_before_ready_then_follows_changes(settings: Settings) -> None:
    store = RuleStore(settings)
    first = compile_sentence("alert when a mug is not on a coaster", rule_id="first")
    later = compile_sentence("alert when there are no coasters", rule_id="later", enabled=False)

    async def go() -> list[tuple[bool, list[str], int]]:
        await store.put(first)
        registry = RuleRegistry()
        task = asyncio.create_task(RuleFeed(settings, registry, poll_ms=50).run())
        states = []
        try:
            await asyncio.wait_for(registry.ready.wait(), 20)
            states.append((registry.ready.is_set(), sorted(registry.rules), len(registry.ruleset)))
            await store.put(later)
            await _until(lambda: "later" in registry.rules)
            states.append((True, sorted(registry.rules), len(registry.ruleset)))
            await store.delete("first")
            await _until(lambda: "first" not in registry.rules)
            states.append((True, sorted(registry.rules), len(registry.ruleset)))
        finally:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        return states

    assert asyncio.run(go()) == [(True, ["first"], 1), (True, ["first", "later"], 1), (True, ["later"], 0)]


def test_feed_on_an_empty_topic_is_ready_at_once(settings: Settings) -> None:
    async def go() -> float:
        await ensure_topics(settings)
        registry = RuleRegistry()
        task = asyncio.create_task(RuleFeed(settings, registry).run())
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            await asyncio.wait_for(registry.ready.wait(), 20)
            return loop.time() - started
        finally:
            task.cancel()

    assert asyncio.run(go()) < 10


async def _until(predicate: object, timeout: float = 15) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():  # type: ignore[operator]
            await asyncio.sleep(0.05)
