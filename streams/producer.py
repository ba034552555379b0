"""Python producer API: upload image bytes to the object store and announce them on the images topic.

The object is written before the event is produced, so a consumer never sees an event whose
object is not there yet. The image id defaults to the content's sha256, which makes re-uploads
of the same bytes idempotent (same key, same object, same cache entry).
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import mimetypes
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from PIL import Image, UnidentifiedImageError

from mugpos.core.codec import Record, codec
from mugpos.core.errors import BrokerUnavailable, InputError
from mugpos.core.settings import Settings
from mugpos.core.topics import ensure_topics
from mugpos.storage.store import ObjectStore, open_store

#: File suffixes `produce` picks up when given a folder.
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif"})
_FORMAT_TYPES = {
    "JPEG": "image/jpeg",
    "PNG": "image/png",
    "WEBP": "image/webp",
    "BMP": "image/bmp",
    "TIFF": "image/tiff",
    "GIF": "image/gif",
    "MPO": "image/jpeg",
}


def probe_image(data: bytes, name: str = "image") -> tuple[str, int, int]:
    """Content type, width and height from the image header, without decoding pixels."""
    if not data:
        raise InputError(f"{name}: file is empty")
    try:
        with Image.open(io.BytesIO(data)) as img:
            fmt, (width, height) = img.format or "", img.size
    except UnidentifiedImageError:
        raise InputError(f"{name}: not an image (unrecognised format)") from None
    except (OSError, ValueError) as exc:
        raise InputError(f"{name}: not a readable image ({exc})") from None
    content_type = _FORMAT_TYPES.get(fmt) or mimetypes.guess_type(name)[0] or "application/octet-stream"
    return content_type, width, height


def collect_images(paths: Iterable[str | Path]) -> list[Path]:
    """Expand files and folders (recursively) into image files, sorted; clear errors for bad paths."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise InputError(f"{path}: no such file or folder")
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES))
        elif path.is_file():
            found.append(path)
        else:
            raise InputError(f"{path}: not a regular file or folder")
    return found


def object_key(image_id: str, content_type: str) -> str:
    """Store key of an image: fanned out by id prefix so no single prefix gets hot."""
    ext = mimetypes.guess_extension(content_type) or ".bin"
    ext = ".jpg" if ext in (".jpe", ".jpeg") else ext
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in image_id)
    return f"images/{safe[:2]}/{safe}{ext}"


class ImageProducer:
    """Uploads images and produces their ``ImageEvent``s. Use as an async context manager."""

    def __init__(
        self,
        settings: Settings,
        store: ObjectStore | None = None,
        connect_timeout_s: float = 10.0,
        create_topics: bool = True,
    ) -> None:
        self.settings = settings
        self.topic = settings.topic("images")
        self._store = store
        self._own_store = store is None
        self._timeout = connect_timeout_s
        self._create_topics = create_topics
        self._producer: AIOKafkaProducer | None = None

    async def __aenter__(self) -> ImageProducer:
        await self.start()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        """Connect to the broker and the store; fail fast with a clear message when either is down."""
        if self._create_topics:
            await ensure_topics(self.settings, timeout_s=self._timeout)
        producer = AIOKafkaProducer(
            bootstrap_servers=self.settings.bootstrap,
            acks="all",
            linger_ms=5,
            request_timeout_ms=int(self._timeout * 1000),
        )
        try:
            await asyncio.wait_for(producer.start(), self._timeout)
        except (KafkaError, OSError, TimeoutError) as exc:
            await producer.stop()
            raise BrokerUnavailable(f"cannot reach the Kafka broker at {self.settings.broker}: {exc!r}") from None
        self._producer = producer
        if self._store is None:
            self._store = open_store(self.settings)
        try:
            await self._store.__aenter__()
            await self._store.check_reachable()
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None
        if self._store is not None and self._own_store:
            await self._store.close()

    @property
    def store(self) -> ObjectStore:
        if self._store is None:
            raise RuntimeError("ImageProducer is not started")
        return self._store

    async def produce_image(
        self,
        data: bytes,
        *,
        source: str = "unknown",
        image_id: str | None = None,
        name: str = "image",
        captured_at: datetime | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> Record:
        """Upload ``data`` and produce its event; returns the event. Waits for the broker's ack."""
        content_type, width, height = probe_image(data, name)
        sha = hashlib.sha256(data).hexdigest()
        image_id = image_id or sha
        uri = await self.store.put(object_key(image_id, content_type), data, content_type)
        event: Record = {
            "image_id": image_id,
            "uri": uri,
            "source": source,
            "captured_at": captured_at or datetime.now(UTC),
            "content_type": content_type,
            "sha256": sha,
            "width": width,
            "height": height,
            "metadata": dict(metadata or {}),
        }
        await self.send_event(event)
        return event

    async def produce_file(self, path: str | Path, **kwargs: Any) -> Record:
        """Read a file and produce it; unreadable files raise :class:`InputError`."""
        path = Path(path)
        try:
            data = await asyncio.to_thread(path.read_bytes)
        except OSError as exc:
            raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from None
        return await self.produce_image(data, name=str(path), **kwargs)

    async def send_event(self, event: Mapping[str, Any]) -> None:
        """Produce an already-built ImageEvent (its object must exist), keyed by image id."""
        if self._producer is None:
            raise RuntimeError("ImageProducer is not started")
        value = codec.encode("ImageEvent", event)
        try:
            await self._producer.send_and_wait(self.topic, value, key=str(event["image_id"]).encode())
        except KafkaError as exc:
            raise BrokerUnavailable(f"broker refused the event for {event['image_id']}: {exc!r}") from None
