"""The detection agent end to end: real broker, real S3, real Redis, real YOLO26n weights."""

from __future__ import annotations

import asyncio
import io
import struct
import subprocess
import time
import zlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from aiokafka import AIOKafkaProducer
from PIL import Image

from mugpos.core.settings import Settings
from mugpos.core.topics import ensure_topics
from mugpos.streams.consumer import consume_events
from mugpos.streams.producer import ImageProducer
from tests.integration.worker import running_worker
from tests.models.drawing import draw_mug_scene

pytestmark = [pytest.mark.integration, pytest.mark.slow]

WEIGHTS = Path(__file__).resolve().parents[2] / "models" / "weights" / "yolo26n.pt"


def encode(pixels: np.ndarray, fmt: str, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format=fmt, **({"quality": quality} if fmt == "JPEG" else {}))
    return buf.getvalue()


def png_bomb(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims a huge image (a decompression bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    rows = zlib.compress(b"\x00" * (width // 8 + 1) * 16)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")


async def collect(settings: Settings, topic: str, want: set[str], deadline_s: float) -> list[dict[str, Any]]:
    """Read ``topic`` from the start until every wanted key is seen, then read what else is there."""
    seen: list[dict[str, Any]] = []
    keys: set[str] = set()
    try:
        async with asyncio.timeout(deadline_s):
            async for item in consume_events(settings, topic, from_beginning=True):
                assert item.error is None, item.error
                assert item.event is not None
                seen.append(item.event)
                keys.add(str(item.event["image_id"]) if topic == "detections" else (item.key or b"").decode())
                if want <= keys:
                    break
    except TimeoutError:
        pass
    return seen


async def read_all(settings: Settings, topic: str) -> list[dict[str, Any]]:
    out = []
    async for item in consume_events(settings, topic, from_beginning=True, timeout_s=3):
        assert item.event is not None
        out.append(item.event)
    return out


@pytest.fixture
def detect_settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={"model": str(WEIGHTS), "session_timeout_s": 4.0, "batch_max": 16, "batch_wait_ms": 50}
    )


def test_200_images_give_one_detection_each_duplicates_from_cache_and_the_drawn_mug_is_a_mug(
    detect_settings: Settings, tmp_path: Path
) -> None:
    settings = detect_settings
    rng = np.random.default_rng()  # fresh content every run: the shared Redis cache must not know it yet
    payloads: dict[str, bytes] = {}
    mugs = []
    for i, (w, h, colour) in enumerate(
        [
            (640, 480, (200, 30, 30)),
            (800, 600, (30, 60, 200)),
            (500, 500, (240, 240, 235)),
            (1024, 768, (40, 160, 60)),
            (480, 640, (210, 120, 30)),
        ]
    ):
        scene, _ = draw_mug_scene(w, h, mug_colour=colour, seed=i)
        scene[0, :8] = rng.integers(0, 255, size=(8, 3), dtype=np.uint8)
        payloads[f"mug-{i}"] = encode(scene, "JPEG")
        mugs.append(f"mug-{i}")
    for i in range(150):
        size = (int(rng.integers(48, 400)), int(rng.integers(48, 400)), 3)
        pixels = rng.integers(0, 255, size=size, dtype=np.uint8)
        payloads[f"img-{i}"] = encode(pixels, "PNG" if i % 2 else "JPEG")
    originals = list(payloads)
    for i in range(45):
        payloads[f"dup-{i}"] = payloads[originals[(i * 7) % len(originals)]]
    assert len(payloads) == 200

    async def produce() -> None:
        await ensure_topics(settings)
        async with ImageProducer(settings) as producer:
            for image_id, data in payloads.items():
                await producer.produce_image(data, image_id=image_id, source="cam-test")

    asyncio.run(produce())
    with running_worker(settings, tmp_path / "worker.log"):
        events = asyncio.run(collect(settings, "detections", set(payloads), deadline_s=240))
        assert {e["image_id"] for e in events} == set(payloads), (tmp_path / "worker.log").read_text()[-3000:]
        events = asyncio.run(read_all(settings, "detections"))
    by_id = {e["image_id"]: e for e in events}
    assert len(events) == 200 and len(by_id) == 200  # exactly one each: no loss, no duplicate output
    assert sum(e["cached"] for e in events) == 45  # every repeated content came from the cache
    assert max(e["batch_size"] for e in events) > 1  # inference really ran in micro-batches
    for image_id in mugs:
        labels = [d["label"] for d in by_id[image_id]["detections"]]
        assert "mug" in labels, (image_id, by_id[image_id]["detections"])
    for image_id, data in payloads.items():
        with Image.open(io.BytesIO(data)) as img:
            assert (by_id[image_id]["image_width"], by_id[image_id]["image_height"]) == img.size
    # the service default: the stock COCO trunk and head, plus the coaster head
    assert {e["model"]["name"] for e in events} == {"yolo26n+mugpos-coaster-head"}
    assert "coaster" in events[0]["model"]["labels"] and "person" in events[0]["model"]["labels"]
    assert asyncio.run(read_all(settings, "dlq")) == []


BAD_INPUTS = {
    # image id: (expected stage, expected reason)
    "undecodable-payload": ("decode", "undecodable"),
    "json-missing-image-id": ("decode", "missing_field"),
    "missing-object": ("fetch", "object_missing"),
    "other-bucket": ("fetch", "bucket_not_allowed"),  # MUGPOS_ALLOWED_BUCKETS: the store's bucket only
    "zero-bytes": ("fetch", "empty_object"),
    "over-byte-cap": ("fetch", "object_too_large"),
    "truncated-jpeg": ("image", "image_corrupt"),
    "corrupt-png": ("image", "image_corrupt"),
    "non-image": ("image", "not_an_image"),
    "pixel-bomb": ("image", "image_too_large"),
}


def test_each_bad_input_becomes_a_dead_letter_with_its_reason_and_good_batch_mates_pass(
    detect_settings: Settings, tmp_path: Path
) -> None:
    settings = detect_settings.model_copy(update={"max_object_bytes": 1_000_000, "max_image_pixels": 4_000_000})
    good_jpeg = encode(draw_mug_scene(640, 480)[0], "JPEG")
    good_png = encode(np.full((64, 64, 3), 128, np.uint8), "PNG")
    corrupt_png = bytearray(good_png)
    corrupt_png[60:90] = b"\xff" * 30
    objects = {
        "zero-bytes": b"",
        "over-byte-cap": b"\xff\xd8" + b"\x00" * 1_500_000,
        "truncated-jpeg": good_jpeg[: len(good_jpeg) // 2],
        "corrupt-png": bytes(corrupt_png),
        "non-image": b"just some text, not pixels\n" * 10,
        "pixel-bomb": png_bomb(30_000, 30_000),
        "good-1": good_jpeg,
        "good-2": good_png,
    }
    raw_values: dict[str, bytes] = {
        "undecodable-payload": b"\x00\x01not avro, not json",
        "json-missing-image-id": b'{"uri": "s3://mugpos-images/x.jpg", "source": "cam"}',
    }

    async def produce() -> None:
        await ensure_topics(settings)
        async with ImageProducer(settings) as producer:
            for image_id, data in objects.items():
                uri = await producer.store.put(f"bad-inputs/{settings.topic_prefix}{image_id}", data)
                await producer.send_event(
                    {"image_id": image_id, "uri": uri, "source": "cam-bad", "captured_at": datetime.now(UTC)}
                )
            missing = f"{producer.store.base_uri}/bad-inputs/{settings.topic_prefix}does-not-exist.jpg"
            await producer.send_event(
                {"image_id": "missing-object", "uri": missing, "source": "cam-bad", "captured_at": datetime.now(UTC)}
            )
            await producer.send_event(
                {
                    "image_id": "other-bucket",
                    "uri": "s3://someone-elses-bucket/private/photo.jpg",
                    "source": "cam-bad",
                    "captured_at": datetime.now(UTC),
                }
            )
        raw = AIOKafkaProducer(bootstrap_servers=settings.bootstrap)
        await raw.start()
        try:
            for key, value in raw_values.items():
                await raw.send_and_wait(settings.topic("images"), value, key=key.encode())
        finally:
            await raw.stop()

    asyncio.run(produce())
    with running_worker(settings, tmp_path / "worker.log") as proc:
        letters = asyncio.run(collect(settings, "dlq", set(BAD_INPUTS), deadline_s=180))
        detections = asyncio.run(collect(settings, "detections", {"good-1", "good-2"}, deadline_s=60))
        assert proc.poll() is None, "the agent must keep running after bad input"
    log = (tmp_path / "worker.log").read_text()
    by_key = {(d["original_key"] or b"").decode(): d for d in letters}
    assert set(by_key) == set(BAD_INPUTS), log[-3000:]
    for key, (stage, reason) in BAD_INPUTS.items():
        letter = by_key[key]
        assert (letter["stage"], letter["reason"]) == (stage, reason), (key, letter["message"])
        assert letter["message"]
        assert letter["original_topic"] == settings.topic("images")
        assert letter["original_offset"] >= 0
    assert by_key["undecodable-payload"]["original_value"] == raw_values["undecodable-payload"]
    assert {d["image_id"] for d in detections} == {"good-1", "good-2"}


def test_a_store_outage_holds_the_image_unacknowledged_and_a_later_worker_delivers_it(
    detect_settings: Settings, tmp_path: Path
) -> None:
    """Infrastructure trouble is never a dead letter: the image waits, and nothing is committed."""
    settings = detect_settings

    async def produce() -> None:
        await ensure_topics(settings)
        async with ImageProducer(settings) as producer:
            image = draw_mug_scene(320, 240, mug_colour=(30, 160, 60), seed=74)[0]  # drawn by no other test
            await producer.produce_image(encode(image, "JPEG"), image_id="store-down")

    asyncio.run(produce())
    # The store unreachable, and Redis down too: the agent must carry on without its cache.
    env = {
        "MUGPOS_S3_ENDPOINT": "http://127.0.0.1:9",
        "MUGPOS_STORE_RETRIES": "1",
        "MUGPOS_REDIS_URL": "redis://127.0.0.1:9/0",
        "MUGPOS_HOLD_MAX_S": "1",
    }
    down_log = tmp_path / "store-down.log"
    with running_worker(settings, down_log, **env) as proc:
        deadline = time.monotonic() + 120
        while "holding 1 event(s)" not in down_log.read_text() and time.monotonic() < deadline:
            time.sleep(0.5)
        time.sleep(3)  # several retries
        assert proc.poll() is None, down_log.read_text()[-3000:]
    log = down_log.read_text()
    assert "holding 1 event(s), retrying with backoff" in log, log[-3000:]
    assert asyncio.run(read_all(settings, "dlq")) == []
    assert asyncio.run(read_all(settings, "detections")) == []

    with running_worker(settings, tmp_path / "store-up.log"):  # the same group, the store reachable
        detections = asyncio.run(collect(settings, "detections", {"store-down"}, deadline_s=120))
    assert [d["image_id"] for d in detections] == ["store-down"], (tmp_path / "store-up.log").read_text()[-3000:]
    assert asyncio.run(read_all(settings, "dlq")) == []


def test_a_worker_that_holds_past_the_give_up_time_exits_75_unacknowledged(
    detect_settings: Settings, tmp_path: Path
) -> None:
    """After MUGPOS_GIVE_UP_S the worker exits non-zero, so its restart resumes from the last commit."""
    settings = detect_settings

    async def produce() -> None:
        await ensure_topics(settings)
        async with ImageProducer(settings) as producer:
            # A scene no other test draws: a cached result would skip the fetch (and the outage) entirely.
            image = draw_mug_scene(320, 240, mug_colour=(40, 90, 200), seed=75)[0]
            await producer.produce_image(encode(image, "JPEG"), image_id="given-up")

    asyncio.run(produce())
    env = {
        "MUGPOS_S3_ENDPOINT": "http://127.0.0.1:9",
        "MUGPOS_STORE_RETRIES": "0",
        "MUGPOS_REDIS_URL": "redis://127.0.0.1:9/0",
        "MUGPOS_GIVE_UP_S": "5",
    }
    log_path = tmp_path / "give-up.log"
    with running_worker(settings, log_path, **env) as proc:
        try:
            code = proc.wait(timeout=180)
        except subprocess.TimeoutExpired:
            code = None
    log = log_path.read_text()
    assert code == 75, log[-3000:]
    assert "giving up; exiting with status 75, unacknowledged" in log, log[-3000:]
    assert asyncio.run(read_all(settings, "dlq")) == []

    with running_worker(settings, tmp_path / "after.log"):  # restarted, the store reachable again
        detections = asyncio.run(collect(settings, "detections", {"given-up"}, deadline_s=120))
    assert [d["image_id"] for d in detections] == ["given-up"]
