"""S3Store against the real SeaweedFS S3 started by `make services` (it stands in for Cloudflare R2).

Endpoint, credentials and bucket come from MUGPOS_S3_ENDPOINT, AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY and MUGPOS_STORE, with the dev defaults. Every test writes under a unique
prefix and removes what it wrote.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import pytest
import pytest_asyncio

from mugpos.core.settings import load_settings
from mugpos.storage.store import (
    ObjectNotFound,
    ObjectTooLarge,
    S3Store,
    StoreAccessDenied,
    StoreError,
    StoreUnavailable,
    check_reachable,
    open_store,
    parse_uri,
)

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]


@dataclass(frozen=True)
class S3Env:
    endpoint: str
    access_key: str
    secret_key: str
    bucket: str


@pytest.fixture(scope="module")
def s3env() -> S3Env:
    """The dev S3 service; fails loudly (never skips) when it is down, like tests/conftest.py."""
    env = S3Env(
        endpoint=os.environ.get("MUGPOS_S3_ENDPOINT", "http://127.0.0.1:8333"),
        access_key=os.environ.get("AWS_ACCESS_KEY_ID", "mugpos-dev"),
        secret_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "mugpos-dev-secret"),
        bucket=parse_uri(os.environ.get("MUGPOS_STORE", "s3://mugpos-images"), allow_empty_key=True).bucket,
    )
    parts = urlsplit(env.endpoint)
    try:
        socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 80), timeout=1).close()
    except OSError:
        pytest.fail(f"S3 not running at {env.endpoint} (start it with `make services`)")
    return env


def make_store(env: S3Env, prefix: str = "", **options: object) -> S3Store:
    settings: dict[str, object] = {
        "endpoint": env.endpoint,
        "access_key": env.access_key,
        "secret_key": env.secret_key,
        "retries": 1,
        "backoff_base": 0.01,
    }
    settings.update(options)
    return S3Store(f"s3://{env.bucket}/{prefix}".rstrip("/"), **settings)  # type: ignore[arg-type]


@pytest_asyncio.fixture
async def store(s3env: S3Env) -> AsyncIterator[S3Store]:
    """A store rooted at a unique prefix, emptied afterwards."""
    async with make_store(s3env, f"tests/{uuid.uuid4().hex[:12]}") as s3:
        yield s3
        async for uri in s3.list():
            await s3.delete(uri)


async def test_round_trip(store: S3Store, s3env: S3Env) -> None:
    data = os.urandom(300_000)  # several read chunks
    uri = await store.put("in/mug.jpg", data, "image/jpeg")
    assert uri == f"{store.base_uri}/in/mug.jpg"
    assert uri.startswith(f"s3://{s3env.bucket}/tests/")
    assert await store.exists(uri)
    assert await store.get(uri) == data
    assert await store.get("in/mug.jpg") == data
    assert [u async for u in store.list()] == [uri]
    await store.delete(uri)
    assert not await store.exists(uri)
    assert [u async for u in store.list()] == []
    await store.delete(uri)  # deleting twice is fine
    with pytest.raises(ObjectNotFound):
        await store.get(uri)


async def test_keys_survive_the_trip_literally(store: S3Store) -> None:
    key = "caf\u00e9 2024/mug 1+1=2 %20 ?#.jpg"
    uri = await store.put(key, b"odd")
    assert await store.get(uri) == b"odd"
    assert [u async for u in store.list()] == [uri]


async def test_list_is_a_string_prefix_in_key_order(store: S3Store) -> None:
    keys = ["img/b.jpg", "img/a1.jpg", "img/a/x.jpg", "img/a/y/z.jpg", "other.txt"]
    await asyncio.gather(*(store.put(k, k.encode()) for k in keys))
    base = store.base_uri
    assert [u async for u in store.list("img/a")] == [
        f"{base}/img/a/x.jpg",
        f"{base}/img/a/y/z.jpg",
        f"{base}/img/a1.jpg",
    ]
    assert [u async for u in store.list("img/a/")] == [f"{base}/img/a/x.jpg", f"{base}/img/a/y/z.jpg"]
    assert len([u async for u in store.list()]) == 5


async def test_r2_and_s3_uris_name_the_same_object(store: S3Store) -> None:
    uri = await store.put("alias.jpg", b"same")
    assert await store.get(uri.replace("s3://", "r2://", 1)) == b"same"


async def test_size_cap_refuses_before_reading(store: S3Store) -> None:
    uri = await store.put("big.bin", b"x" * (4 * 1024 * 1024))
    started = time.monotonic()
    with pytest.raises(ObjectTooLarge, match=r"4,194,304 bytes, over the 1,000-byte limit") as caught:
        await store.get(uri, max_bytes=1000)
    assert time.monotonic() - started < 1
    assert caught.value.reason == "object_too_large" and caught.value.size == 4 * 1024 * 1024
    # the aborted response leaves the client healthy; exactly at the cap is accepted
    assert len(await store.get(uri, max_bytes=4 * 1024 * 1024)) == 4 * 1024 * 1024


async def test_default_cap_comes_from_the_store(s3env: S3Env) -> None:
    async with make_store(s3env, f"tests/{uuid.uuid4().hex[:12]}", max_object_bytes=10) as small:
        uri = await small.put("eleven.bin", b"x" * 11)
        try:
            with pytest.raises(ObjectTooLarge):
                await small.get(uri)
        finally:
            await small.delete(uri)


async def test_missing_object(store: S3Store, s3env: S3Env) -> None:
    with pytest.raises(ObjectNotFound, match="does not exist") as caught:
        await store.get("nope.jpg")
    assert caught.value.reason == "object_missing"
    assert f"{store.base_uri}/nope.jpg" in str(caught.value)
    assert not await store.exists("nope.jpg")
    with pytest.raises(ObjectNotFound, match="no bucket"):
        await store.get(f"s3://absent-{uuid.uuid4().hex[:12]}/a.jpg")


async def test_missing_bucket_is_a_configuration_error(s3env: S3Env) -> None:
    # Not tested through put: SeaweedFS creates a missing bucket on PutObject (AWS and R2 answer NoSuchBucket).
    absent = f"absent-{uuid.uuid4().hex[:12]}"
    async with make_store(s3env) as s3:
        with pytest.raises(StoreError, match=f"bucket '{absent}' does not exist") as caught:
            [u async for u in s3.list(f"s3://{absent}/")]
        assert caught.value.reason == "store_error"
        with pytest.raises(StoreError, match="does not exist"):
            await s3.delete(f"s3://{absent}/a.jpg")
    async with S3Store(f"s3://{absent}", endpoint=s3env.endpoint,
                       access_key=s3env.access_key, secret_key=s3env.secret_key) as s3:  # fmt: skip
        with pytest.raises(StoreError, match=f"bucket '{absent}' does not exist"):
            await s3.check_reachable()


async def test_wrong_credentials_fail_at_once_with_a_clear_message(s3env: S3Env) -> None:
    # retries would take seconds with this backoff: a 403 must not be retried
    async with make_store(s3env, secret_key="wrong-secret", retries=5, backoff_base=1.0) as s3:
        started = time.monotonic()
        with pytest.raises(StoreAccessDenied, match="check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY") as caught:
            await s3.get("anything.jpg")
        assert caught.value.reason == "store_error"
        with pytest.raises(StoreAccessDenied, match=f"S3 at {s3env.endpoint} denied"):
            await s3.check_reachable()
        with pytest.raises(StoreAccessDenied):
            await s3.put("x.jpg", b"x")
        assert time.monotonic() - started < 1


async def test_unreachable_endpoint_fails_fast_after_bounded_retries() -> None:
    s3 = S3Store("s3://mugpos-images", endpoint="http://127.0.0.1:9", access_key="k", secret_key="s",
                 retries=2, backoff_base=0.05, connect_timeout=1)  # fmt: skip
    async with s3:
        started = time.monotonic()
        with pytest.raises(
            StoreUnavailable, match=r"cannot reach S3 at http://127\.0\.0\.1:9 .*after 3 attempts"
        ) as caught:
            await s3.get("a.jpg")
        assert time.monotonic() - started < 5
        assert caught.value.reason == "store_error"
        with pytest.raises(StoreUnavailable, match=r"cannot reach S3 at http://127\.0\.0\.1:9"):
            await s3.check_reachable(timeout=2)


async def test_check_reachable_and_open_store_from_settings(s3env: S3Env, clean_env: None) -> None:
    settings = load_settings(
        env_file=None,
        store=f"s3://{s3env.bucket}/tests/{uuid.uuid4().hex[:12]}",
        s3_endpoint=s3env.endpoint,
        AWS_ACCESS_KEY_ID=s3env.access_key,
        AWS_SECRET_ACCESS_KEY=s3env.secret_key,
        store_concurrency=4,
    )
    await check_reachable(settings)
    async with open_store(settings) as s3:
        assert isinstance(s3, S3Store)
        # many more requests than pooled connections: the semaphore queues them
        uris = await asyncio.gather(*(s3.put(f"c/{i}.bin", bytes([i]) * 1000) for i in range(40)))
        blobs = await asyncio.gather(*(s3.get(u) for u in uris))
        assert blobs == [bytes([i]) * 1000 for i in range(40)]
        await asyncio.gather(*(s3.delete(u) for u in uris))
        assert [u async for u in s3.list()] == []
