"""Unit tests of streams.store: URI parsing, the FileStore, and S3Store's retry policy (with a fake
client, so no network is needed). The real S3 protocol is covered in tests/integration."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from mugpos.core.settings import load_settings
from mugpos.storage.store import (
    BucketGuard,
    BucketNotAllowed,
    FileStore,
    InvalidKey,
    ObjectNotFound,
    ObjectStore,
    ObjectTooLarge,
    S3Store,
    StoreAccessDenied,
    StoreError,
    StoreLocation,
    StoreUnavailable,
    allowed_buckets,
    open_store,
    parse_uri,
    read_capped,
)

# -- parse_uri ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        pytest.param("s3://mugpos-images/a/b.jpg", ("s3", "mugpos-images", "a/b.jpg"), id="s3"),
        pytest.param("r2://mugpos-images/a.jpg", ("r2", "mugpos-images", "a.jpg"), id="r2"),
        pytest.param("S3://mugpos-images/a.jpg", ("s3", "mugpos-images", "a.jpg"), id="scheme-case-folded"),
        pytest.param("s3://my.bucket-1/k", ("s3", "my.bucket-1", "k"), id="dotted-bucket"),
        pytest.param("file:///data/images/a.jpg", ("file", "", "data/images/a.jpg"), id="file"),
        pytest.param("file://localhost/data/a.jpg", ("file", "", "data/a.jpg"), id="file-localhost"),
        pytest.param(
            "s3://bkt/caf\u00e9 2024/x y.jpg", ("s3", "bkt", "caf\u00e9 2024/x y.jpg"), id="unicode-and-spaces"
        ),
        pytest.param("s3://bkt/a%20b?c#d", ("s3", "bkt", "a%20b?c#d"), id="taken-literally-no-decoding"),
        pytest.param("s3://bkt/..a/b..", ("s3", "bkt", "..a/b.."), id="dots-inside-names-are-fine"),
    ],
)
def test_parse_uri_accepts(uri: str, expected: tuple[str, str, str]) -> None:
    loc = parse_uri(uri)
    assert (loc.scheme, loc.bucket, loc.key) == expected
    assert parse_uri(loc.uri) == loc


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        pytest.param("", "expected s3://", id="empty"),
        pytest.param("mugpos-images/a.jpg", "expected s3://", id="no-scheme"),
        pytest.param("http://host/a.jpg", "unsupported scheme", id="http-scheme"),
        pytest.param("s3://", "missing bucket", id="nothing-after-scheme"),
        pytest.param("s3:///a.jpg", "missing bucket", id="empty-bucket"),
        pytest.param("s3://mugpos-images", "missing key", id="no-key"),
        pytest.param("s3://mugpos-images/", "missing key", id="empty-key"),
        pytest.param("s3://Mugpos/a.jpg", "invalid bucket", id="uppercase-bucket"),
        pytest.param("s3://ab/a.jpg", "invalid bucket", id="bucket-too-short"),
        pytest.param("s3://bkt/../a.jpg", "'..'", id="dotdot-first"),
        pytest.param("s3://bkt/a/../../b.jpg", "'..'", id="dotdot-inside"),
        pytest.param("s3://bkt/a/..", "'..'", id="dotdot-last"),
        pytest.param("s3://bkt/./a.jpg", "'.'", id="dot-segment"),
        pytest.param("s3://bkt//a.jpg", "empty segment", id="leading-slash"),
        pytest.param("s3://bkt/a//b.jpg", "empty segment", id="double-slash"),
        pytest.param("s3://bkt/a/", "empty segment", id="trailing-slash"),
        pytest.param("s3://bkt/a\x00.jpg", "control characters", id="nul-byte"),
        pytest.param("s3://bkt/a\n.jpg", "control characters", id="newline"),
        pytest.param("s3://bkt/a\\..\\b.jpg", "backslashes", id="backslash"),
        pytest.param("s3://bkt/" + "k" * 1025, "longer than 1024", id="key-too-long"),
        pytest.param("file://relative/a.jpg", "absolute path", id="file-relative"),
        pytest.param("file:", "expected s3://", id="file-without-slashes"),
        pytest.param("file:///", "filesystem root", id="file-root"),
        pytest.param("file:///data/../etc/passwd", "'..'", id="file-dotdot"),
    ],
)
def test_parse_uri_rejects(uri: str, message: str) -> None:
    with pytest.raises(InvalidKey, match=message) as caught:
        parse_uri(uri)
    assert caught.value.reason == "invalid_uri"


@pytest.mark.parametrize(
    ("uri", "key"),
    [
        pytest.param("s3://mugpos-images", "", id="bare-bucket"),
        pytest.param("s3://mugpos-images/", "", id="bucket-slash"),
        pytest.param("s3://mugpos-images/in/", "in/", id="prefix-with-slash"),
        pytest.param("file:///srv/images/", "srv/images/", id="file-dir"),
    ],
)
def test_parse_uri_base_and_prefix_forms(uri: str, key: str) -> None:
    assert parse_uri(uri, allow_empty_key=True).key == key


def test_location_join() -> None:
    assert StoreLocation("s3", "bkt", "").join("a.jpg").uri == "s3://bkt/a.jpg"
    assert StoreLocation("s3", "bkt", "in/").join("a/b.jpg").uri == "s3://bkt/in/a/b.jpg"
    assert StoreLocation("file", "", "srv").join("a.jpg").uri == "file:///srv/a.jpg"
    assert StoreLocation("s3", "bkt", "in").join("day/", prefix=True).key == "in/day/"
    for bad in ("/abs.jpg", "../up.jpg", "s3://other/x.jpg", "dir/"):
        with pytest.raises(InvalidKey):
            StoreLocation("s3", "bkt", "in").join(bad)


# -- FileStore ---------------------------------------------------------------------------------


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "store"


@pytest.fixture
def store(root: Path) -> FileStore:
    return FileStore(f"file://{root}", max_object_bytes=1000)


@pytest.mark.asyncio
async def test_file_round_trip(store: FileStore, root: Path) -> None:
    uri = await store.put("in/a.jpg", b"jpeg bytes", "image/jpeg")
    assert uri == f"file://{root}/in/a.jpg"
    assert (root / "in" / "a.jpg").read_bytes() == b"jpeg bytes"
    assert await store.get(uri) == b"jpeg bytes"
    assert await store.get("in/a.jpg") == b"jpeg bytes"
    assert await store.exists(uri)
    assert await store.put(uri, b"new") == uri  # full URIs work too, and overwrite
    assert await store.get(uri) == b"new"
    await store.delete(uri)
    assert not await store.exists(uri)
    await store.delete(uri)  # idempotent, like S3
    assert not any(p.name.endswith(".mugpos-tmp") for p in root.rglob("*"))


@pytest.mark.asyncio
async def test_file_store_is_an_object_store(store: FileStore) -> None:
    assert isinstance(store, ObjectStore)
    async with store as entered:
        assert entered is store


@pytest.mark.asyncio
async def test_file_size_cap(store: FileStore) -> None:
    uri = await store.put("big.bin", b"x" * 1001)
    with pytest.raises(ObjectTooLarge, match=r"1,001 bytes, over the 1,000-byte limit") as caught:
        await store.get(uri)  # the store's default cap
    assert caught.value.reason == "object_too_large"
    assert caught.value.limit == 1000 and caught.value.size == 1001
    assert uri in str(caught.value)
    with pytest.raises(ObjectTooLarge, match="10-byte limit"):
        await store.get(uri, max_bytes=10)
    assert len(await store.get(uri, max_bytes=1001)) == 1001  # exactly at the cap is fine
    assert await store.get(await store.put("empty.bin", b"")) == b""


@pytest.mark.asyncio
async def test_file_missing_object(store: FileStore) -> None:
    await store.put("dir/a.jpg", b"a")
    for key in ("nope.jpg", "dir/nope.jpg", "nodir/a.jpg", "dir/a.jpg/below"):
        with pytest.raises(ObjectNotFound, match="does not exist") as caught:
            await store.get(key)
        assert caught.value.reason == "object_missing"
        assert key in str(caught.value)
    with pytest.raises(ObjectNotFound):
        await store.get("dir")  # a directory is not an object
    assert not await store.exists("dir")


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "key",
    [
        pytest.param("../escape.jpg", id="dotdot"),
        pytest.param("a/../../escape.jpg", id="dotdot-nested"),
        pytest.param("/etc/passwd", id="absolute-key"),
        pytest.param("a\\..\\..\\escape.jpg", id="backslashes"),
        pytest.param("file:///etc/passwd", id="uri-outside-root"),
        pytest.param("SIBLING", id="sibling-dir-sharing-the-name-prefix"),
        pytest.param("ROOT", id="the-root-itself"),
        pytest.param("s3://mugpos-images/a.jpg", id="other-scheme"),
        pytest.param("a\x00b", id="nul"),
    ],
)
async def test_file_key_cannot_escape_root(store: FileStore, root: Path, key: str) -> None:
    key = key.replace("SIBLING", f"file://{root}-sibling/a.jpg").replace("ROOT", f"file://{root}")
    for call in (store.put(key, b"x"), store.get(key), store.exists(key), store.delete(key)):
        with pytest.raises(InvalidKey):
            await call
    assert not (root.parent / "escape.jpg").exists()


@pytest.mark.asyncio
async def test_file_symlink_out_of_root_is_refused(store: FileStore, root: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_bytes(b"secret")
    root.mkdir()
    (root / "link").symlink_to(outside, target_is_directory=True)
    with pytest.raises(InvalidKey, match="outside the store root"):
        await store.get("link/secret.txt")
    with pytest.raises(InvalidKey):
        await store.put("link/new.txt", b"x")
    assert not (outside / "new.txt").exists()


@pytest.mark.asyncio
async def test_file_list(store: FileStore, root: Path) -> None:
    for key in ("img/b.jpg", "img/a1.jpg", "img/a/x.jpg", "img/a/y/z.jpg", "other.txt"):
        await store.put(key, key.encode())
    (root / "img" / ".c.jpg.1234.mugpos-tmp").write_bytes(b"half")  # an interrupted write
    sibling = root.parent / "store-sibling"
    sibling.mkdir()
    (sibling / "leak.jpg").write_bytes(b"no")

    base = f"file://{root}"
    assert [u async for u in store.list()] == [
        f"{base}/img/a/x.jpg",
        f"{base}/img/a/y/z.jpg",
        f"{base}/img/a1.jpg",
        f"{base}/img/b.jpg",
        f"{base}/other.txt",
    ]
    # a string prefix, as in S3: "img/a" matches img/a1.jpg and everything below img/a/
    assert [u async for u in store.list("img/a")] == [
        f"{base}/img/a/x.jpg",
        f"{base}/img/a/y/z.jpg",
        f"{base}/img/a1.jpg",
    ]
    assert [u async for u in store.list("img/a/")] == [f"{base}/img/a/x.jpg", f"{base}/img/a/y/z.jpg"]
    assert [u async for u in store.list(f"{base}/img/b")] == [f"{base}/img/b.jpg"]
    assert [u async for u in store.list("nothing/here")] == []
    with pytest.raises(InvalidKey):
        [u async for u in store.list("../store-sibling/")]


@pytest.mark.asyncio
async def test_file_put_over_a_file_component_is_a_store_error(store: FileStore) -> None:
    await store.put("a.jpg", b"x")
    with pytest.raises(StoreError, match="cannot write") as caught:
        await store.put("a.jpg/b.jpg", b"y")
    assert caught.value.reason == "store_error"


@pytest.mark.asyncio
async def test_file_writes_honour_umask(store: FileStore, root: Path) -> None:
    old = os.umask(0o022)
    try:
        await store.put("perm.jpg", b"x")
    finally:
        os.umask(old)
    assert (root / "perm.jpg").stat().st_mode & 0o777 == 0o644  # readable by other users' workers


@pytest.mark.asyncio
async def test_file_check_reachable(root: Path, tmp_path: Path) -> None:
    await FileStore(f"file://{root}/deep").check_reachable()
    assert (root / "deep").is_dir()
    (tmp_path / "plain").write_bytes(b"")
    with pytest.raises(StoreUnavailable, match="cannot use the directory"):
        await FileStore(f"file://{tmp_path}/plain/sub").check_reachable()


# -- factory and helpers -------------------------------------------------------------------------


def test_open_store_picks_backend_by_scheme(tmp_path: Path) -> None:
    settings = load_settings(env_file=None, store="s3://mugpos-images/in", max_object_bytes=123)
    s3 = open_store(settings)
    assert isinstance(s3, S3Store) and s3.base_uri == "s3://mugpos-images/in" and s3.max_object_bytes == 123
    r2 = open_store(settings, "r2://other-bucket")
    assert isinstance(r2, S3Store) and r2.base_uri == "r2://other-bucket"
    local = open_store(settings, f"file://{tmp_path}")
    assert isinstance(local, FileStore) and local.base_uri == f"file://{tmp_path}" and local.max_object_bytes == 123
    with pytest.raises(InvalidKey):
        open_store(settings, "gs://bucket")


@pytest.mark.asyncio
async def test_read_capped_stops_at_the_first_chunk_over_the_cap() -> None:
    reads = 0

    async def endless(size: int) -> bytes:
        nonlocal reads
        reads += 1
        return b"x" * size

    with pytest.raises(ObjectTooLarge):
        await read_capped(endless, 100_000, "s3://bkt/endless")
    assert reads == 2  # 64 KiB chunks: the second one crosses 100,000 bytes


# -- S3Store retry policy: botocore's standard mode for requests, tenacity for broken bodies ----------


def _client_error(code: str, status: int, retried: int = 0) -> ClientError:
    return ClientError(
        {
            "Error": {"Code": code, "Message": f"{code} message"},
            "ResponseMetadata": {"HTTPStatusCode": status, "RetryAttempts": retried},
        },
        "GetObject",
    )


class FakeClient:
    """Fails head_object with the queued errors, then succeeds (stands in for botocore after its retries)."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls = 0

    async def head_object(self, **_: Any) -> dict[str, Any]:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return {}


def _fake_store(client: FakeClient, retries: int = 3) -> S3Store:
    store = S3Store("s3://bkt", endpoint="http://fake:1", retries=retries, backoff_base=0.001, backoff_max=0.002)
    store._client = client  # skip aioboto3 entirely
    return store


@pytest.mark.asyncio
async def test_requests_are_retried_by_botocore_standard_mode() -> None:
    store = S3Store("s3://bkt", endpoint="http://127.0.0.1:9", access_key="k", secret_key="s", retries=3)
    async with store:
        retries = store._client.meta.config.retries
    assert retries["mode"] == "standard" and retries["total_max_attempts"] == 4


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("error", "attempts"),
    [
        pytest.param(EndpointConnectionError(endpoint_url="http://fake:1"), 4, id="connection-refused"),
        pytest.param(_client_error("InternalError", 500, retried=3), 4, id="500"),
        pytest.param(_client_error("SlowDown", 503, retried=3), 4, id="503-slowdown"),
        pytest.param(_client_error("TooManyRequestsException", 429, retried=3), 4, id="429"),
        pytest.param(TimeoutError(), 4, id="timeout"),
    ],
)
async def test_failures_left_after_botocore_retries_mean_unavailable(error: Exception, attempts: int) -> None:
    client = FakeClient(error)
    with pytest.raises(StoreUnavailable, match=f"after {attempts} attempts") as caught:
        await _fake_store(client).exists("a.jpg")
    assert caught.value.reason == "store_error"
    assert client.calls == 1  # botocore already retried; not again on top


@pytest.mark.asyncio
async def test_a_body_broken_off_mid_stream_is_retried_and_bounded() -> None:
    from botocore.exceptions import IncompleteReadError

    broken = IncompleteReadError(actual_bytes=10, expected_bytes=100)
    client = FakeClient(broken, broken)
    assert await _fake_store(client).exists("a.jpg")
    assert client.calls == 3
    endless = FakeClient(*[broken] * 10)
    with pytest.raises(StoreUnavailable, match="after 3 attempts"):
        await _fake_store(endless, retries=2).exists("a.jpg")
    assert endless.calls == 3


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("error", "expected", "message"),
    [
        pytest.param(_client_error("404", 404), None, "", id="404-means-absent"),
        pytest.param(_client_error("403", 403), StoreAccessDenied, "AWS_ACCESS_KEY_ID", id="403"),
        pytest.param(_client_error("InvalidAccessKeyId", 403), StoreAccessDenied, "InvalidAccessKeyId", id="bad-key"),
        pytest.param(_client_error("InvalidArgument", 400), StoreError, "InvalidArgument", id="400"),
    ],
)
async def test_permanent_errors_are_not_retried(
    error: Exception, expected: type[StoreError] | None, message: str
) -> None:
    client = FakeClient(error)
    store = _fake_store(client)
    if expected is None:
        assert not await store.exists("a.jpg")
    else:
        with pytest.raises(expected, match=message):
            await store.exists("a.jpg")
    assert client.calls == 1


# -- bucket allowlist --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("store_uri", "allowed", "expected"),
    [
        ("s3://mugpos-images", "", {"mugpos-images"}),  # the store's own bucket by default
        ("r2://cams/prefix", "", {"cams"}),
        ("s3://mugpos-images", "cams-a,cams-b", {"cams-a", "cams-b"}),
    ],
)
def test_allowed_buckets_default_to_the_store_bucket(store_uri: str, allowed: str, expected: set[str]) -> None:
    settings = load_settings(None, store=store_uri, allowed_buckets=allowed)
    assert allowed_buckets(settings) == expected


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("uri", "refused"),
    [
        ("s3://someone-else/photo.jpg", True),
        ("r2://someone-else/photo.jpg", True),
        ("s3://mugpos-images/in/a.jpg", False),
        ("in/a.jpg", False),  # relative to the store's own base
    ],
)
async def test_the_guard_refuses_other_buckets_before_any_request(uri: str, refused: bool) -> None:
    calls: list[str] = []

    class Recording:
        async def get(self, key_or_uri: str, max_bytes: int | None = None) -> bytes:
            calls.append(key_or_uri)
            return b"bytes"

    guard = BucketGuard(Recording(), frozenset({"mugpos-images"}))  # type: ignore[arg-type]
    if refused:
        with pytest.raises(BucketNotAllowed) as info:
            await guard.get(uri)
        assert info.value.reason == "bucket_not_allowed" and "MUGPOS_ALLOWED_BUCKETS" in str(info.value)
        assert calls == []
    else:
        assert await guard.get(uri) == b"bytes" and calls == [uri]
