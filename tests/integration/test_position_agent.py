"""The positioning agent end to end: a real `mugpos worker --role analyze` on the real broker.

Hand-made DetectionEvents go onto the detections topic (no detector needed); the test reads the
positions and dlq topics from the start and matches outputs by image id (tansu's end offsets are
unreliable, see the platform notes).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from mugpos.core.codec import codec
from mugpos.core.settings import Settings
from mugpos.core.topics import ensure_topics
from mugpos.streams.consumer import consume_events
from tests.integration.worker import running_worker
from tests.models.test_positioning import COASTER, CUSTOM, ON_COASTER, STOCK, TABLE, det, event, mug_at, right_edge_gap

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def named(image_id: str, detection: dict[str, Any], model_name: str = "custom") -> dict[str, Any]:
    return {**detection, "image_id": image_id, "model": {**detection["model"], "name": model_name}}


GOOD: dict[str, dict[str, Any]] = {
    "on-coaster": named(
        "on-coaster",
        event(det("mug", ON_COASTER), det("coaster", COASTER), det("surface", TABLE), labels=CUSTOM, metadata={}),
    ),
    "off-coaster-near-edge": named(
        "off-coaster-near-edge",
        event(det("mug", right_edge_gap(15)), det("coaster", COASTER), det("surface", TABLE), labels=CUSTOM),
    ),
    "several-mugs": named(
        "several-mugs",
        event(
            det("mug", mug_at(300, 600)),
            det("mug", mug_at(385, 600)),
            det("mug", mug_at(600, 600)),
            det("surface", TABLE),
            labels=STOCK,
        ),
        "yolo26n",
    ),
    "coco-no-coasters": named(
        "coco-no-coasters", event(det("mug", mug_at(500, 600)), det("surface", TABLE), labels=STOCK), "yolo26n"
    ),
}

EXPECTED: dict[str, tuple[str, list[str]]] = {
    "on-coaster": ("ok", []),
    "off-coaster-near-edge": (
        "violation",
        [
            "mug 0 is 1.5 cm (15 px) from the table edge (violation: closer than 2 cm)",
            "mug 0 is not on a coaster although 1 coaster is visible",
        ],
    ),
    "several-mugs": ("warning", ["mugs 0 and 1 are 0.5 cm (5 px) apart (warning: closer than 1 cm)"]),
    "coco-no-coasters": ("ok", []),
}

BAD_BOX = named("bad-box", event(det("mug", (10, 10, float("nan"), 50)), labels=STOCK))
IMAGE_EVENT = {
    "image_id": "wrong-schema",
    "uri": "s3://mugpos-images/x.jpg",
    "source": "cam",
    "captured_at": datetime.now(UTC),
}
LETTERS = {  # key: (reason) of the agent's dead letter, stage "position"
    "undecodable": "undecodable",
    "wrong-schema": "schema_mismatch",
    "bad-box": "invalid_box",
}


async def produce(settings: Settings) -> None:
    await ensure_topics(settings)
    payloads = {image_id: codec.encode("DetectionEvent", record) for image_id, record in GOOD.items()}
    payloads["bad-box"] = codec.encode("DetectionEvent", BAD_BOX)
    payloads["wrong-schema"] = codec.encode("ImageEvent", IMAGE_EVENT)
    payloads["undecodable"] = b"\x00\x01 neither Avro nor anything else"
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap)
    await producer.start()
    try:
        for key, value in payloads.items():
            await producer.send_and_wait(settings.topic("detections"), value, key=key.encode())
    finally:
        await producer.stop()


async def collect(settings: Settings, topic: str, want: set[str], deadline_s: float) -> None:
    """Wait until every wanted key has appeared on ``topic`` (or the deadline passes)."""
    keys: set[str] = set()
    try:
        async with asyncio.timeout(deadline_s):
            async for item in consume_events(settings, topic, from_beginning=True):
                key = (item.key or b"").decode()
                keys.add(str((item.event or {}).get("image_id")) if topic == "positions" else key)
                if want <= keys:
                    return
    except TimeoutError:
        pass


async def read_all(settings: Settings, topic: str) -> list[tuple[str, dict[str, Any]]]:
    out = []
    async for item in consume_events(settings, topic, from_beginning=True, timeout_s=3):
        assert item.error is None and item.event is not None, item.error
        out.append(((item.key or b"").decode(), item.event))
    return out


def test_positions_verdicts_and_dead_letters_from_a_real_worker(settings: Settings, tmp_path: Path) -> None:
    settings = settings.model_copy(update={"session_timeout_s": 4.0, "batch_wait_ms": 50})
    asyncio.run(produce(settings))
    log_path = tmp_path / "worker.log"
    with running_worker(settings, log_path, role="analyze") as proc:
        asyncio.run(collect(settings, "positions", set(GOOD), deadline_s=90))
        asyncio.run(collect(settings, "dlq", set(LETTERS), deadline_s=30))
        positions = asyncio.run(read_all(settings, "positions"))
        letters = asyncio.run(read_all(settings, "dlq"))
        assert proc.poll() is None, "the worker must keep running after bad input"
    log = log_path.read_text()[-3000:]

    assert sorted(event["image_id"] for _, event in positions) == sorted(GOOD), log  # exactly one per image id
    assert all(key == event["source"] for key, event in positions)  # keyed by camera: its frames stay in order
    by_id = {event["image_id"]: event for _, event in positions}
    for image_id, (verdict, reasons) in EXPECTED.items():
        assert (by_id[image_id]["verdict"], by_id[image_id]["reasons"]) == (verdict, reasons), image_id

    on = by_id["on-coaster"]
    assert (on["px_per_cm"], on["scale_source"]) == (12.0, "coaster")
    assert on["mugs"][0]["on_coaster"] is True and on["mugs"][0]["coaster_index"] == 1
    assert by_id["off-coaster-near-edge"]["mugs"][0]["on_coaster"] is False
    assert by_id["off-coaster-near-edge"]["mugs"][0]["edge_distance_cm"] == pytest.approx(1.5)
    several = by_id["several-mugs"]
    assert (several["mug_count"], several["coaster_count"], several["surface_count"]) == (3, 0, 1)
    assert [m["nearest_mug_px"] for m in several["mugs"]] == pytest.approx([5, 5, 135])
    coco = by_id["coco-no-coasters"]
    assert [m["on_coaster"] for m in coco["mugs"]] == [None]  # the model has no coaster class: never guessed
    assert coco["mugs"][0]["quality"] == 100.0

    mine = {key: letter for key, letter in letters if letter["stage"] == "position"}
    assert {key: letter["reason"] for key, letter in mine.items()} == LETTERS, log
    assert mine["undecodable"]["original_value"] == b"\x00\x01 neither Avro nor anything else"
    assert mine["bad-box"]["image_id"] == "bad-box"
    for letter in mine.values():
        assert letter["original_topic"] == settings.topic("detections") and letter["message"]
