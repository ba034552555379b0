"""Two-layer result cache: an in-process LRU in front of Redis, keyed by content sha256 + model id.

Identical bytes analysed by the same model give the same detections, so a hit skips fetch, decode
and inference. Redis is an optimisation, never a dependency: when it is down the cache carries on
with the LRU alone, counts every failed call, and logs once per outage rather than per message.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping

from cachetools import LRUCache
from redis.asyncio import Redis
from redis.exceptions import RedisError

from mugpos.storage.metrics import CACHE_ERRORS, CACHE_REQUESTS

log = logging.getLogger(__name__)


class ResultCache:
    """In-process LRU (bounded by bytes) + Redis cache of serialized results (bytes)."""

    def __init__(
        self, redis_url: str = "", ttl_s: int = 86_400, memory_bytes: int = 64 * 1024 * 1024, timeout_s: float = 0.5
    ) -> None:
        self.ttl_s = ttl_s
        self.memory_bytes = memory_bytes
        self._lru: LRUCache[str, bytes] = LRUCache(maxsize=memory_bytes, getsizeof=len)
        self._redis: Redis | None = (
            Redis.from_url(redis_url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s) if redis_url else None
        )
        self._redis_down = False

    async def get_many(self, keys: Iterable[str]) -> dict[str, bytes]:
        """Look keys up, LRU first, then one Redis MGET for the rest; returns the hits."""
        hits: dict[str, bytes] = {}
        missing: list[str] = []
        for key in dict.fromkeys(keys):
            value = self._lru.get(key)  # a hit makes the entry the most recently used
            if value is None:
                missing.append(key)
                continue
            hits[key] = value
            CACHE_REQUESTS.labels("memory", "hit").inc()
        if missing:
            CACHE_REQUESTS.labels("memory", "miss").inc(len(missing))
            found = await self._redis_mget(missing)
            for key, value in zip(missing, found, strict=True):
                CACHE_REQUESTS.labels("redis", "hit" if value is not None else "miss").inc()
                if value is not None:
                    hits[key] = value
                    self._remember(key, value)
        return hits

    async def put_many(self, items: Mapping[str, bytes]) -> None:
        """Store results in both layers (Redis with the TTL, in one pipeline)."""
        for key, value in items.items():
            self._remember(key, value)
        if self._redis is None or not items:
            return
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for key, value in items.items():
                    pipe.set(key, value, ex=self.ttl_s)
                await pipe.execute()
            self._up()
        except (RedisError, OSError) as exc:
            self._down("set", exc, len(items))

    async def close(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()

    @property
    def redis_available(self) -> bool:
        """False while the last Redis call failed."""
        return self._redis is not None and not self._redis_down

    def _remember(self, key: str, value: bytes) -> None:
        if len(value) <= self.memory_bytes:  # cachetools refuses (ValueError) an entry larger than the whole cache
            self._lru[key] = value

    async def _redis_mget(self, keys: list[str]) -> list[bytes | None]:
        if self._redis is None:
            return [None] * len(keys)
        try:
            values = await self._redis.mget(keys)
            self._up()
            return list(values)
        except (RedisError, OSError) as exc:
            self._down("get", exc, len(keys))
            return [None] * len(keys)

    def _down(self, operation: str, exc: BaseException, count: int) -> None:
        CACHE_ERRORS.labels(operation).inc(count)
        if not self._redis_down:
            self._redis_down = True
            log.warning("result cache: Redis unavailable (%r); carrying on with the in-process cache only", exc)

    def _up(self) -> None:
        if self._redis_down:
            self._redis_down = False
            log.warning("result cache: Redis is back")
