"""Object store: one async interface over S3-compatible stores (AWS S3, Cloudflare R2, SeaweedFS)
and a local directory.

Images travel through Kafka as URIs, never as bytes, so every stage needs the same small set of
operations with the same failure vocabulary: each error carries a ``reason`` code that the
pipeline writes into dead letters, and a message that tells a user what to fix.

URIs
    ``s3://bucket/key`` and ``r2://bucket/key`` name an object on the configured S3 endpoint (R2
    speaks the S3 API, so both schemes share one backend); ``file:///abs/path`` names a file.
    Keys are taken literally: no percent-decoding, and ``?`` and ``#`` are ordinary characters.
    Rejected (``InvalidKey``), so that a key means the same object on every backend and can never
    climb out of a ``file://`` root:

    * empty bucket or key, and bucket names S3 would refuse;
    * ``.`` and ``..`` segments, empty segments (``a//b``) and a leading or trailing ``/``
      (SeaweedFS silently folds ``//`` into ``/`` and refuses dot segments, a filesystem resolves
      them, so the object read back would not be the one written);
    * NUL and other control characters, and backslashes (a path separator on Windows and a
      classic traversal trick);
    * keys longer than 1024 UTF-8 bytes (the S3 limit).
"""

from __future__ import annotations

import asyncio
import contextlib
import mimetypes
import os
import re
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol, Self, TypeVar, cast, runtime_checkable

import aiohttp
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_random_exponential

from mugpos.core.errors import InfrastructureError, MugposError

if TYPE_CHECKING:
    from mugpos.core.settings import Settings

Scheme = Literal["s3", "r2", "file"]
T = TypeVar("T")

_SCHEMES: tuple[Scheme, ...] = ("s3", "r2", "file")
_BUCKET_RE = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_MAX_KEY_BYTES = 1024
_CHUNK = 64 * 1024
_TMP_SUFFIX = ".mugpos-tmp"
_DEFAULT_MAX_BYTES = 32 * 1024 * 1024


# -- errors ----------------------------------------------------------------------------------


class StoreError(MugposError):
    """Any object-store failure; ``reason`` is the stable code written into dead letters."""

    reason: ClassVar[str] = "store_error"

    def __init__(self, message: str, *, uri: str | None = None) -> None:
        super().__init__(message)
        self.uri = uri


class ObjectNotFound(StoreError):
    """The object (or its bucket) does not exist: retrying will not help."""

    reason = "object_missing"

    def __init__(self, uri: str, detail: str = "") -> None:
        super().__init__(f"object {uri} does not exist{': ' + detail if detail else ''}", uri=uri)


class ObjectTooLarge(StoreError):
    """The object exceeds the byte cap; raised before or while reading, never after buffering it all."""

    reason = "object_too_large"

    def __init__(self, uri: str, limit: int, size: int | None = None) -> None:
        actual = f" is {size:,} bytes," if size is not None else " is"
        super().__init__(f"object {uri}{actual} over the {limit:,}-byte limit (see MUGPOS_MAX_OBJECT_BYTES)", uri=uri)
        self.limit = limit
        self.size = size


class InvalidKey(StoreError):
    """The URI or key is malformed or unsafe (see the module docstring for the rules)."""

    reason = "invalid_uri"


class StoreAccessDenied(StoreError):
    """The store refused our credentials or permissions: a configuration problem, never retried."""


class BucketNotAllowed(StoreError):
    """The URI names a bucket outside ``MUGPOS_ALLOWED_BUCKETS``: refused before any request."""

    reason = "bucket_not_allowed"


class StoreUnavailable(StoreError, InfrastructureError):
    """The store could not be reached, or kept failing (5xx, throttling), after all retries: hold, never dead-letter."""

    service = "store"


# -- URIs ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StoreLocation:
    """A parsed store URI. For ``file`` the bucket is empty and the key is the absolute path
    without its leading ``/``, so ``key`` is always relative to the namespace's root."""

    scheme: Scheme
    bucket: str
    key: str

    @property
    def uri(self) -> str:
        """The canonical URI string."""
        if self.scheme == "file":
            return f"file:///{self.key}"
        return f"{self.scheme}://{self.bucket}/{self.key}" if self.key else f"{self.scheme}://{self.bucket}"

    def join(self, relative: str, *, prefix: bool = False) -> StoreLocation:
        """The location of ``relative`` (a key, not a URI) under this location; ``prefix`` allows
        a trailing ``/``."""
        if "://" in relative:
            raise InvalidKey(f"expected a relative key, got the URI {relative!r}")
        _check_key(relative, what="key", allow_empty=False, allow_trailing_slash=prefix)
        key = f"{self.key.rstrip('/')}/{relative}" if self.key else relative
        _check_length(key)
        return StoreLocation(self.scheme, self.bucket, key)

    def __str__(self) -> str:
        return self.uri


def parse_uri(uri: str, *, allow_empty_key: bool = False) -> StoreLocation:
    """Parse ``s3://bucket/key``, ``r2://bucket/key`` or ``file:///abs/path``.

    ``allow_empty_key`` accepts a bare bucket and a trailing ``/``: the form of a store base or a
    listing prefix rather than an object.
    """
    if not isinstance(uri, str) or "://" not in uri:
        raise InvalidKey(f"expected s3://bucket/key, r2://bucket/key or file:///path, got {uri!r}")
    raw_scheme, _, rest = uri.partition("://")
    scheme = raw_scheme.lower()
    if scheme not in _SCHEMES:
        raise InvalidKey(f"unsupported scheme {raw_scheme!r} in {uri!r}: use s3://, r2:// or file://")
    if scheme == "file":
        host, slash, path = rest.partition("/")
        if host not in ("", "localhost") or not slash:
            raise InvalidKey(f"file URIs need an absolute path, as in file:///data/images; got {uri!r}")
        if not path.strip("/"):
            raise InvalidKey(f"{uri!r} names the filesystem root, not a file or directory")
        _check_key(path, what="path", allow_empty=False, allow_trailing_slash=allow_empty_key, uri=uri)
        return StoreLocation("file", "", path)
    bucket, _, key = rest.partition("/")
    if not bucket:
        raise InvalidKey(f"missing bucket in {uri!r}: expected {scheme}://bucket/key")
    if not _BUCKET_RE.fullmatch(bucket) or ".." in bucket:
        raise InvalidKey(f"invalid bucket name {bucket!r} in {uri!r}: 3-63 lowercase letters, digits, '.' or '-'")
    _check_key(key, what="key", allow_empty=allow_empty_key, allow_trailing_slash=allow_empty_key, uri=uri)
    return StoreLocation(cast(Scheme, scheme), bucket, key)


def _check_key(key: str, *, what: str, allow_empty: bool, allow_trailing_slash: bool, uri: str = "") -> None:
    where = f" in {uri!r}" if uri else ""
    if not key:
        if allow_empty:
            return
        raise InvalidKey(f"missing {what}{where}: expected scheme://bucket/key")
    if any(ord(c) < 0x20 or c == "\x7f" for c in key):
        raise InvalidKey(f"control characters (NUL included) are not allowed in the {what} {key!r}{where}")
    if "\\" in key:
        raise InvalidKey(f"backslashes are not allowed in the {what} {key!r}{where}")
    body = key[:-1] if allow_trailing_slash and key.endswith("/") else key
    for segment in body.split("/"):
        if segment in ("", ".", ".."):
            shown = repr(segment) if segment else "an empty segment (leading, trailing or double '/')"
            raise InvalidKey(f"{shown} is not allowed in the {what} {key!r}{where}")
    _check_length(key)


def _check_length(key: str) -> None:
    if len(key.encode("utf-8")) > _MAX_KEY_BYTES:
        raise InvalidKey(f"key longer than {_MAX_KEY_BYTES} bytes: {key[:60]!r}...")


# -- interface -------------------------------------------------------------------------------


@runtime_checkable
class ObjectStore(Protocol):
    """What every stage needs from storage. ``key_or_uri`` is a full URI or a key relative to
    ``base_uri``; reads without ``max_bytes`` use the store's own cap, so no fetch is unbounded."""

    @property
    def base_uri(self) -> str: ...

    async def put(self, key_or_uri: str, data: bytes, content_type: str | None = None) -> str: ...

    async def get(self, key_or_uri: str, max_bytes: int | None = None) -> bytes: ...

    async def exists(self, key_or_uri: str) -> bool: ...

    def list(self, prefix: str | None = None) -> AsyncIterator[str]: ...

    async def delete(self, key_or_uri: str) -> None: ...

    async def check_reachable(self, timeout: float = 5.0) -> None: ...

    async def close(self) -> None: ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...


def open_store(settings: Settings, uri: str | None = None, *, guarded: bool = False) -> ObjectStore:
    """The store for ``uri`` (default ``settings.store``), chosen by its scheme; ``guarded`` wraps
    it in a :class:`BucketGuard` of ``allowed_buckets(settings)`` (for URIs that come from events)."""
    base = parse_uri(uri or settings.store, allow_empty_key=True)
    store: ObjectStore
    if base.scheme == "file":
        store = FileStore(base.uri, max_object_bytes=settings.max_object_bytes)
    else:
        store = S3Store.from_settings(settings, base.uri)
    return BucketGuard(store, allowed_buckets(settings)) if guarded else store


def allowed_buckets(settings: Settings) -> frozenset[str]:
    """``MUGPOS_ALLOWED_BUCKETS``, or the configured store's own bucket when that is empty."""
    if settings.allowed_buckets:
        return frozenset(settings.allowed_buckets)
    return frozenset({parse_uri(settings.store, allow_empty_key=True).bucket})


async def check_reachable(settings: Settings, uri: str | None = None, timeout: float = 5.0) -> None:
    """Fail fast (``StoreUnavailable``, ``StoreAccessDenied``, ``StoreError``) before a command
    starts work, instead of dead-lettering every message later."""
    async with open_store(settings, uri) as store:
        await store.check_reachable(timeout)


async def read_capped(read: Callable[[int], Awaitable[bytes]], limit: int, uri: str) -> bytes:
    """Read a stream to its end, stopping as soon as it passes ``limit`` bytes, so an oversized
    (or lying) object never costs more than ``limit`` plus one chunk of memory."""
    buffer = bytearray()
    while chunk := await read(_CHUNK):
        buffer += chunk
        if len(buffer) > limit:
            raise ObjectTooLarge(uri, limit)
    return bytes(buffer)


def _content_type(key: str, given: str | None) -> str:
    return given or mimetypes.guess_type(key)[0] or "application/octet-stream"


class _StoreBase:
    """Shared context-manager plumbing."""

    async def close(self) -> None:
        """Release connections; idempotent."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()


# -- S3 / R2 ---------------------------------------------------------------------------------

_THROTTLING = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "BandwidthLimitExceeded",
        "SlowDown",
        "RequestTimeout",
        "InternalError",
        "ServiceUnavailable",
    }
)
_DENIED = frozenset(
    {"403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "RequestTimeTooSkewed", "AllAccessDisabled"}
)
_MISSING = frozenset({"404", "NoSuchKey", "NotFound", "NoSuchBucket"})

Op = Literal["get", "head", "put", "list", "delete", "check"]


class S3Store(_StoreBase):
    """An S3-compatible bucket (AWS, Cloudflare R2, SeaweedFS, MinIO) via one long-lived aioboto3
    client, so connections are pooled across calls.

    Retries are botocore's standard mode (``retries`` + 1 attempts in all): connection errors,
    timeouts, 5xx and throttling are retried with capped exponential backoff and jitter, while 4xx
    answers (missing object, denied credentials) fail at once. A body cut off mid-download is
    retried here (tenacity), since botocore's retries end with the response headers. A semaphore
    bounds in-flight requests to the connection pool size.
    """

    def __init__(
        self,
        base_uri: str,
        *,
        endpoint: str = "",
        access_key: str | None = None,
        secret_key: str | None = None,
        region: str = "us-east-1",
        concurrency: int = 16,
        retries: int = 4,
        max_object_bytes: int = _DEFAULT_MAX_BYTES,
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
        backoff_base: float = 0.2,
        backoff_max: float = 5.0,
    ) -> None:
        base = parse_uri(base_uri, allow_empty_key=True)
        if base.scheme == "file":
            raise InvalidKey(f"S3Store needs an s3:// or r2:// URI, got {base_uri!r}")
        self._base = StoreLocation(base.scheme, base.bucket, base.key.rstrip("/"))
        self.endpoint = endpoint.rstrip("/")
        self._access_key = access_key
        self._secret_key = secret_key
        self._region = region
        self._concurrency = concurrency
        self._retries = retries
        self.max_object_bytes = max_object_bytes
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._backoff_base = backoff_base
        self._backoff_max = backoff_max
        self._semaphore = asyncio.Semaphore(concurrency)
        self._client: Any = None
        self._stack: contextlib.AsyncExitStack | None = None
        self._client_lock = asyncio.Lock()

    @classmethod
    def from_settings(cls, settings: Settings, uri: str | None = None) -> S3Store:
        """A store configured from ``MUGPOS_*`` / ``AWS_*`` settings; no keys means boto's usual chain."""
        key_id, secret = settings.aws_access_key_id, settings.aws_secret_access_key
        return cls(
            uri or settings.store,
            endpoint=settings.s3_endpoint,
            access_key=key_id.get_secret_value() if key_id else None,
            secret_key=secret.get_secret_value() if secret else None,
            region=settings.aws_region,
            concurrency=settings.store_concurrency,
            retries=settings.store_retries,
            max_object_bytes=settings.max_object_bytes,
        )

    @property
    def base_uri(self) -> str:
        return self._base.uri

    @property
    def _where(self) -> str:
        return self.endpoint or "AWS"

    # -- lifecycle -------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        await self._ensure_client()
        return self

    async def _ensure_client(self) -> Any:
        if self._client is not None:
            return self._client
        async with self._client_lock:
            if self._client is None:
                import aioboto3
                from botocore.config import Config

                config = Config(
                    # Custom endpoints (SeaweedFS, MinIO, R2) serve buckets as paths; AWS prefers hosts.
                    s3={"addressing_style": "path" if self.endpoint else "auto"},
                    # botocore's standard mode retries what is worth retrying (connection errors, timeouts,
                    # 5xx, throttling) with capped exponential backoff and jitter; 4xx answers are final.
                    retries={"mode": "standard", "total_max_attempts": self._retries + 1},
                    connect_timeout=self._connect_timeout,
                    read_timeout=self._read_timeout,
                    max_pool_connections=self._concurrency,
                    # botocore >= 1.36 adds CRC32 trailers by default; several S3-compatible stores
                    # reject them. Send and demand checksums only where the API requires them.
                    request_checksum_calculation="when_required",
                    response_checksum_validation="when_required",
                )
                session = aioboto3.Session(
                    aws_access_key_id=self._access_key,
                    aws_secret_access_key=self._secret_key,
                    region_name=self._region,
                )
                stack = contextlib.AsyncExitStack()
                self._client = await stack.enter_async_context(
                    session.client("s3", endpoint_url=self.endpoint or None, config=config)
                )
                self._stack = stack
        return self._client

    async def close(self) -> None:
        stack, self._stack, self._client = self._stack, None, None
        if stack is not None:
            await stack.aclose()

    # -- operations ------------------------------------------------------------------------

    def _locate(self, key_or_uri: str) -> StoreLocation:
        if "://" not in key_or_uri:
            return self._base.join(key_or_uri)
        loc = parse_uri(key_or_uri)
        if loc.scheme == "file":
            raise InvalidKey(f"{key_or_uri!r} is a file:// URI, but this store is {self.base_uri}")
        return loc

    async def put(self, key_or_uri: str, data: bytes, content_type: str | None = None) -> str:
        """Upload ``data`` and return the object's full URI."""
        loc = self._locate(key_or_uri)
        ctype = _content_type(loc.key, content_type)
        await self._run(
            "put", loc, lambda c: c.put_object(Bucket=loc.bucket, Key=loc.key, Body=data, ContentType=ctype)
        )
        return loc.uri

    async def get(self, key_or_uri: str, max_bytes: int | None = None) -> bytes:
        """Download an object, refusing it from its Content-Length or mid-stream once over the cap."""
        loc = self._locate(key_or_uri)
        limit = self.max_object_bytes if max_bytes is None else max_bytes

        async def fetch(client: Any) -> bytes:
            response = await client.get_object(Bucket=loc.bucket, Key=loc.key)
            body = response["Body"]
            async with body:  # releases (or drops, if unread) the pooled connection
                size = response.get("ContentLength")
                if size is not None and size > limit:
                    raise ObjectTooLarge(loc.uri, limit, size)
                return await read_capped(body.read, limit, loc.uri)

        result: bytes = await self._run("get", loc, fetch)
        return result

    async def exists(self, key_or_uri: str) -> bool:
        loc = self._locate(key_or_uri)
        try:
            await self._run("head", loc, lambda c: c.head_object(Bucket=loc.bucket, Key=loc.key))
        except ObjectNotFound:
            return False
        return True

    async def list(self, prefix: str | None = None) -> AsyncIterator[str]:
        """URIs of the objects whose key starts with ``prefix`` (a plain string prefix, not a
        directory), in key order. Default: everything under ``base_uri``."""
        if not prefix:
            loc = StoreLocation(self._base.scheme, self._base.bucket, self._base.key + "/" if self._base.key else "")
        elif "://" in prefix:
            loc = parse_uri(prefix, allow_empty_key=True)
            if loc.scheme == "file":
                raise InvalidKey(f"{prefix!r} is a file:// URI, but this store is {self.base_uri}")
        else:
            loc = self._base.join(prefix, prefix=True)
        token: str | None = None
        while True:
            request: dict[str, Any] = {"Bucket": loc.bucket, "Prefix": loc.key}
            if token:
                request["ContinuationToken"] = token

            def list_page(client: Any, request: dict[str, Any] = request) -> Any:
                return client.list_objects_v2(**request)

            page = await self._run("list", loc, list_page)
            for item in page.get("Contents", ()):
                if not item["Key"].endswith("/"):  # skip "directory" placeholder objects
                    yield StoreLocation(loc.scheme, loc.bucket, item["Key"]).uri
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                return

    async def delete(self, key_or_uri: str) -> None:
        """Delete an object; deleting a missing object is not an error (as in S3)."""
        loc = self._locate(key_or_uri)
        await self._run("delete", loc, lambda c: c.delete_object(Bucket=loc.bucket, Key=loc.key))

    async def check_reachable(self, timeout: float = 5.0) -> None:
        """HEAD the base bucket within ``timeout`` seconds: proves endpoint, credentials and bucket."""
        bucket = StoreLocation(self._base.scheme, self._base.bucket, "")
        try:
            await asyncio.wait_for(self._run("check", bucket, lambda c: c.head_bucket(Bucket=bucket.bucket)), timeout)
        except TimeoutError:
            raise StoreUnavailable(
                f"cannot reach S3 at {self._where}: no answer within {timeout:g}s "
                "(is the store running? check MUGPOS_S3_ENDPOINT)",
                uri=bucket.uri,
            ) from None

    # -- retries and error mapping ---------------------------------------------------------

    async def _run(self, op: Op, loc: StoreLocation, call: Callable[[Any], Awaitable[T]]) -> T:
        """One store call: botocore retries the request; failures are mapped to typed store errors.

        tenacity retries only a body that breaks off mid-stream: botocore's retries end when the
        response headers arrive, so a download cut short after that would otherwise fail at once.
        """
        from botocore.exceptions import BotoCoreError, ClientError

        retrying = AsyncRetrying(
            retry=retry_if_exception(_is_broken_body),
            stop=stop_after_attempt(self._retries + 1),
            wait=wait_random_exponential(multiplier=self._backoff_base, max=self._backoff_max),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    async with self._semaphore:
                        return await call(await self._ensure_client())
        except StoreError:
            raise
        except ClientError as exc:
            permanent = self._client_error(exc, op, loc)
            if permanent is not None:
                raise permanent from exc
            tries = int(exc.response.get("ResponseMetadata", {}).get("RetryAttempts") or 0) + 1
            raise self._unavailable(op, loc, exc, tries) from exc
        except (BotoCoreError, OSError, TimeoutError) as exc:
            if not _is_transient(exc):
                raise StoreError(
                    f"S3 client error on {op} {loc.uri} at {self._where}: {exc}"
                    + (" (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)" if "credentials" in str(exc) else ""),
                    uri=loc.uri,
                ) from exc
            raise self._unavailable(op, loc, exc, self._retries + 1) from exc
        except Exception as exc:  # aiohttp payload errors and the like surface unwrapped
            if not _is_transient(exc):
                raise
            raise self._unavailable(op, loc, exc, self._retries + 1) from exc
        raise AssertionError("unreachable: tenacity returns or raises")  # pragma: no cover

    def _client_error(self, exc: Any, op: Op, loc: StoreLocation) -> StoreError | None:
        """The error to raise at once for a 4xx answer, or None when the failure is transient."""
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        message = error.get("Message", "")
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        if status >= 500 or status == 429 or code in _THROTTLING:
            return None
        detail = f"{code}: {message}" if message and message != code else code
        if status == 403 or code in _DENIED:
            return StoreAccessDenied(
                f"S3 at {self._where} denied {op} {loc.uri} ({detail}): check AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY, the bucket's permissions and the system clock",
                uri=loc.uri,
            )
        if status == 404 or code in _MISSING:
            if op in ("get", "head"):  # the image a message points to is gone: a per-message failure
                no_bucket = code == "NoSuchBucket"
                return ObjectNotFound(loc.uri, f"no bucket {loc.bucket!r} at {self._where}" if no_bucket else "")
            return StoreError(  # only a bucket can be missing for these: a configuration problem
                f"bucket {loc.bucket!r} does not exist at {self._where}: create it or fix MUGPOS_STORE",
                uri=loc.uri,
            )
        return StoreError(f"S3 at {self._where} rejected {op} {loc.uri}: {detail} (HTTP {status})", uri=loc.uri)

    def _unavailable(self, op: Op, loc: StoreLocation, exc: Exception, attempts: int) -> StoreUnavailable:
        tries = f"{attempts} attempt{'s' if attempts != 1 else ''}"
        if hasattr(exc, "response"):
            error = exc.response.get("Error", {})
            what = f"{error.get('Code', '?')}: {error.get('Message', '')}".rstrip(": ")
            return StoreUnavailable(
                f"S3 at {self._where} kept failing {op} {loc.uri} after {tries}: {what}", uri=loc.uri
            )
        return StoreUnavailable(f"cannot reach S3 at {self._where} ({op} {loc.uri}) after {tries}: {exc}", uri=loc.uri)


def _is_broken_body(exc: BaseException) -> bool:
    """A response body that broke off mid-stream (after botocore's own retries were over)."""
    from botocore import exceptions as boto

    streaming = getattr(boto, "ResponseStreamingError", boto.IncompleteReadError)
    return isinstance(exc, (boto.IncompleteReadError, streaming, aiohttp.ClientPayloadError))


def _is_transient(exc: BaseException) -> bool:
    """Connection trouble and timeouts: worth another attempt."""
    from botocore.exceptions import ConnectionError as BotoConnectionError
    from botocore.exceptions import HTTPClientError, IncompleteReadError

    transient = (BotoConnectionError, HTTPClientError, IncompleteReadError, TimeoutError, ConnectionError)
    return isinstance(exc, (*transient, aiohttp.ClientError))


# -- local directory -------------------------------------------------------------------------


class FileStore(_StoreBase):
    """A directory as a bucket, for development and tests: same URIs, caps and errors as S3.

    Paths are resolved (symlinks included) and must stay inside the root. Writes go to a
    temporary file that is renamed into place, so readers never see half an image. All file I/O
    runs in a worker thread, off the event loop.
    """

    def __init__(self, base_uri: str, *, max_object_bytes: int = _DEFAULT_MAX_BYTES) -> None:
        base = parse_uri(base_uri, allow_empty_key=True)
        if base.scheme != "file":
            raise InvalidKey(f"FileStore needs a file:/// URI, got {base_uri!r}")
        self._base = StoreLocation("file", "", base.key.rstrip("/"))
        self.root = Path("/" + self._base.key)
        self._real_root = self.root.resolve()
        self.max_object_bytes = max_object_bytes

    @property
    def base_uri(self) -> str:
        return self._base.uri

    def _path(self, key_or_uri: str, *, prefix: bool = False) -> tuple[Path, StoreLocation]:
        """Resolve to a path inside the root, or raise ``InvalidKey``."""
        if "://" in key_or_uri:
            loc = parse_uri(key_or_uri, allow_empty_key=prefix)
            if loc.scheme != "file":
                raise InvalidKey(f"{key_or_uri!r} is not a file:// URI; this store is {self.base_uri}")
        else:
            loc = self._base.join(key_or_uri, prefix=prefix)
        path = Path("/" + loc.key).resolve()
        if not path.is_relative_to(self._real_root) or (path == self._real_root and not prefix):
            raise InvalidKey(f"{loc.uri} is outside the store root {self.base_uri}", uri=loc.uri)
        return path, loc

    async def put(self, key_or_uri: str, data: bytes, content_type: str | None = None) -> str:
        """Write ``data`` atomically; ``content_type`` is accepted for symmetry and not stored."""
        path, loc = self._path(key_or_uri)
        try:
            await asyncio.to_thread(_write_atomic, path, data)
        except OSError as exc:
            raise StoreError(f"cannot write {loc.uri}: {exc.strerror or exc}", uri=loc.uri) from exc
        return loc.uri

    async def get(self, key_or_uri: str, max_bytes: int | None = None) -> bytes:
        path, loc = self._path(key_or_uri)
        limit = self.max_object_bytes if max_bytes is None else max_bytes
        try:
            return await asyncio.to_thread(_read_capped_file, path, limit, loc.uri)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError) as exc:
            raise ObjectNotFound(loc.uri) from exc
        except OSError as exc:
            raise StoreError(f"cannot read {loc.uri}: {exc.strerror or exc}", uri=loc.uri) from exc

    async def exists(self, key_or_uri: str) -> bool:
        path, _ = self._path(key_or_uri)
        return await asyncio.to_thread(path.is_file)

    async def list(self, prefix: str | None = None) -> AsyncIterator[str]:
        """URIs of the files whose key starts with ``prefix`` (a string prefix, as in S3), in order."""
        if not prefix:
            path, loc = self._real_root, self._base
        else:
            path, loc = self._path(prefix, prefix=True)
        wanted = str(path) + ("/" if path == self._real_root or loc.key.endswith("/") else "")
        for found in await asyncio.to_thread(_walk_prefix, wanted, self._real_root):
            yield StoreLocation("file", "", f"{self._base.key}/{found}").uri

    async def delete(self, key_or_uri: str) -> None:
        """Delete a file; a missing one is not an error (as in S3)."""
        path, loc = self._path(key_or_uri)
        try:
            await asyncio.to_thread(path.unlink, missing_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot delete {loc.uri}: {exc.strerror or exc}", uri=loc.uri) from exc

    async def check_reachable(self, timeout: float = 5.0) -> None:
        """The root must be (or become) a writable directory."""

        def check() -> None:
            self._real_root.mkdir(parents=True, exist_ok=True)
            if not os.access(self._real_root, os.W_OK | os.X_OK):
                raise PermissionError(13, "not writable")

        try:
            await asyncio.wait_for(asyncio.to_thread(check), timeout)
        except (OSError, TimeoutError) as exc:
            raise StoreUnavailable(
                f"cannot use the directory {self.root} as a store: {exc}", uri=self.base_uri
            ) from exc


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}{_TMP_SUFFIX}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # umask applies, unlike mkstemp's 0600
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _read_capped_file(path: Path, limit: int, uri: str) -> bytes:
    with path.open("rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        if size > limit:
            raise ObjectTooLarge(uri, limit, size)
        data = handle.read(limit + 1)  # the file may have grown since fstat
    if len(data) > limit:
        raise ObjectTooLarge(uri, limit)
    return data


def _walk_prefix(wanted: str, root: Path) -> list[str]:
    """Keys (relative to ``root``) of regular files whose absolute path starts with ``wanted``."""
    top = wanted if wanted.endswith("/") else os.path.dirname(wanted)
    found: list[str] = []
    for directory, dirs, files in os.walk(top):
        dirs.sort()
        for name in files:
            full = os.path.join(directory, name)
            if full.startswith(wanted) and not name.endswith(_TMP_SUFFIX) and os.path.isfile(full):
                found.append(Path(full).relative_to(root).as_posix())
    return sorted(found)


# -- bucket allowlist ------------------------------------------------------------------------


class BucketGuard(_StoreBase):
    """Reads and writes only objects in allowed buckets.

    Without it a worker would read, and write annotated images into, any bucket its credentials
    reach, for anyone who can produce an event. A ``file://`` URI has no bucket; the file store
    itself keeps it inside its root."""

    def __init__(self, store: ObjectStore, buckets: frozenset[str]) -> None:
        self.store = store
        self.buckets = buckets

    def check(self, key_or_uri: str) -> None:
        """Raise ``BucketNotAllowed`` for an ``s3://``/``r2://`` URI naming another bucket."""
        if "://" not in key_or_uri:
            return  # a key relative to the store's own base
        loc = parse_uri(key_or_uri)
        if loc.scheme != "file" and loc.bucket not in self.buckets:
            allowed = ", ".join(sorted(self.buckets)) or "none"
            raise BucketNotAllowed(
                f"bucket {loc.bucket!r} of {key_or_uri} is not allowed (MUGPOS_ALLOWED_BUCKETS: {allowed})",
                uri=key_or_uri,
            )

    async def get(self, key_or_uri: str, max_bytes: int | None = None) -> bytes:
        self.check(key_or_uri)
        return await self.store.get(key_or_uri, max_bytes=max_bytes)

    async def put(self, key_or_uri: str, data: bytes, content_type: str | None = None) -> str:
        self.check(key_or_uri)
        return await self.store.put(key_or_uri, data, content_type)

    @property
    def base_uri(self) -> str:
        return self.store.base_uri

    async def exists(self, key_or_uri: str) -> bool:
        self.check(key_or_uri)
        return await self.store.exists(key_or_uri)

    def list(self, prefix: str | None = None) -> AsyncIterator[str]:
        if prefix is not None:
            self.check(prefix)
        return self.store.list(prefix)

    async def delete(self, key_or_uri: str) -> None:
        self.check(key_or_uri)
        await self.store.delete(key_or_uri)

    async def check_reachable(self, timeout: float = 5.0) -> None:
        await self.store.check_reachable(timeout)

    async def close(self) -> None:
        await self.store.close()
