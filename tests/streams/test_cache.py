"""The two-layer result cache against the real Redis, and without it."""

from __future__ import annotations

import logging
import uuid

import pytest

from mugpos.core.settings import Settings
from mugpos.storage.cache import ResultCache
from mugpos.storage.metrics import CACHE_ERRORS, CACHE_REQUESTS

pytestmark = pytest.mark.asyncio


def _count(counter: object, *labels: str) -> float:
    return float(counter.labels(*labels)._value.get())  # type: ignore[attr-defined]


@pytest.mark.integration
async def test_a_value_written_by_one_worker_is_a_redis_hit_for_another(settings: Settings) -> None:
    key = f"test:{uuid.uuid4().hex}"
    writer, reader = ResultCache(settings.redis_url, ttl_s=60), ResultCache(settings.redis_url, ttl_s=60)
    try:
        assert await reader.get_many([key]) == {}
        await writer.put_many({key: b"result"})
        hits_before = _count(CACHE_REQUESTS, "redis", "hit")
        assert await reader.get_many([key]) == {key: b"result"}
        assert _count(CACHE_REQUESTS, "redis", "hit") == hits_before + 1
        memory_before = _count(CACHE_REQUESTS, "memory", "hit")
        assert await reader.get_many([key]) == {key: b"result"}  # now served from the process LRU
        assert _count(CACHE_REQUESTS, "memory", "hit") == memory_before + 1
    finally:
        await writer.close()
        await reader.close()


async def test_redis_down_keeps_working_in_memory_counts_errors_and_logs_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    cache = ResultCache("redis://127.0.0.1:9/0", ttl_s=60, timeout_s=0.2)
    errors_before = _count(CACHE_ERRORS, "get") + _count(CACHE_ERRORS, "set")
    try:
        with caplog.at_level(logging.WARNING, logger="mugpos.storage.cache"):
            for i in range(5):
                assert await cache.get_many([f"k{i}"]) == {}
                await cache.put_many({f"k{i}": b"v"})
            assert await cache.get_many(["k3"]) == {"k3": b"v"}  # the in-process layer still serves
        assert not cache.redis_available
        assert _count(CACHE_ERRORS, "get") + _count(CACHE_ERRORS, "set") - errors_before == 10
        warnings = [r for r in caplog.records if "Redis unavailable" in r.getMessage()]
        assert len(warnings) == 1
    finally:
        await cache.close()


async def test_lru_evicts_the_least_recently_used_within_its_byte_budget() -> None:
    cache = ResultCache("", memory_bytes=2)
    await cache.put_many({"a": b"1", "b": b"2"})
    assert await cache.get_many(["a"]) == {"a": b"1"}  # a is now the most recent
    await cache.put_many({"c": b"3"})
    assert await cache.get_many(["a", "b", "c"]) == {"a": b"1", "c": b"3"}


async def test_an_entry_larger_than_the_memory_budget_goes_to_redis_only() -> None:
    cache = ResultCache("", memory_bytes=4)
    await cache.put_many({"big": b"12345", "small": b"1"})
    assert await cache.get_many(["big", "small"]) == {"small": b"1"}
