"""The `mugpos` CLI as a user runs it: produce a folder, tail the topic, and the user mistakes."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from aiokafka import AIOKafkaProducer
from PIL import Image

from mugpos.core.codec import codec
from mugpos.core.settings import Settings
from mugpos.storage.store import open_store

pytestmark = pytest.mark.integration

MUGPOS = [sys.executable, "-m", "mugpos.cli"]


def run_cli(settings: Settings, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MUGPOS_", "AWS_"))}
    env.update(
        MUGPOS_BROKER=settings.broker,
        MUGPOS_TOPIC_PREFIX=settings.topic_prefix,
        MUGPOS_IMAGES_PARTITIONS=str(settings.images_partitions),
        MUGPOS_PARTITIONS=str(settings.partitions),
        MUGPOS_STORE=settings.store,
        MUGPOS_S3_ENDPOINT=settings.s3_endpoint,
        AWS_ACCESS_KEY_ID=settings.aws_access_key_id.get_secret_value() if settings.aws_access_key_id else "",
        AWS_SECRET_ACCESS_KEY=settings.aws_secret_access_key.get_secret_value()
        if settings.aws_secret_access_key
        else "",
        COLUMNS="200",
    )
    return subprocess.run([*MUGPOS, *args], env=env, capture_output=True, text=True, timeout=timeout, cwd="/")


def write_images(folder: Path, count: int) -> list[Path]:
    rng = np.random.default_rng(7)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        pixels = rng.integers(0, 255, size=(48 + i, 64 + 2 * i, 3), dtype=np.uint8)
        path = folder / (f"cam/{i:03d}.png" if i % 2 else f"{i:03d}.jpg")
        path.parent.mkdir(exist_ok=True)
        Image.fromarray(pixels).save(path)
        paths.append(path)
    return paths


def test_produce_a_folder_then_tail_shows_every_event_with_its_object(settings: Settings, tmp_path: Path) -> None:
    write_images(tmp_path / "photos", 20)
    produced = run_cli(settings, "produce", str(tmp_path / "photos"), "--source", "kitchen-1", "--meta", "px_per_cm=12")
    assert produced.returncode == 0, produced.stderr
    assert "produced 20 image(s)" in produced.stderr

    tailed = run_cli(settings, "tail", "images", "--count", "20", "--from-beginning", "--timeout", "20")
    assert tailed.returncode == 0, tailed.stderr
    events = [json.loads(line) for line in tailed.stdout.splitlines()]
    assert len(events) == 20
    assert len({e["image_id"] for e in events}) == 20
    assert {e["source"] for e in events} == {"kitchen-1"}
    assert all(e["metadata"] == {"px_per_cm": "12"} for e in events)
    assert {e["content_type"] for e in events} == {"image/png", "image/jpeg"}

    async def objects_exist() -> list[bool]:
        async with open_store(settings) as store:
            return [await store.exists(e["uri"]) for e in events]

    assert all(asyncio.run(objects_exist()))


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("missing_folder", "no such file or folder"),
        ("non_image", "not an image"),
        ("empty_file", "file is empty"),
        ("unreadable_file", "cannot read"),
    ],
)
def test_produce_user_mistakes_give_a_clear_error_and_no_traceback(
    settings: Settings, tmp_path: Path, case: str, expected: str
) -> None:
    target = tmp_path / "input.jpg"
    if case == "non_image":
        target.write_text("this is a text file")
    elif case == "empty_file":
        target.write_bytes(b"")
    elif case == "unreadable_file":
        write_images(tmp_path / "src", 1)
        (tmp_path / "src" / "000.jpg").rename(target)
        target.chmod(0)
        if os.access(target, os.R_OK):  # root reads anything: make it a folder-shaped path instead
            target.chmod(0o644)
            target.unlink()
            target.symlink_to(tmp_path / "dangling")
            expected = "no such file or folder"
    result = run_cli(settings, "produce", str(target))
    assert result.returncode != 0
    assert expected in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("command", ["produce", "tail"])
def test_unreachable_broker_is_reported_in_one_line(settings: Settings, tmp_path: Path, command: str) -> None:
    write_images(tmp_path, 1)
    unreachable = settings.model_copy(update={"broker": "kafka://127.0.0.1:9"})
    args = [str(tmp_path / "000.jpg")] if command == "produce" else ["images", "--count", "1"]
    result = run_cli(unreachable, command, *args)
    assert result.returncode == 2
    assert "cannot reach the Kafka broker at kafka://127.0.0.1:9" in result.stderr
    assert "Traceback" not in result.stderr


def test_tail_reports_undecodable_messages_and_keeps_going(settings: Settings) -> None:
    async def produce() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap)
        await producer.start()
        try:
            topic = settings.topic("detections")
            await producer.send_and_wait(topic, b"\xc3\x01garbage!", key=b"bad")
            good = codec.encode("ImageEvent", {"image_id": "x", "uri": "s3://b/k", "source": "s", "captured_at": 0})
            await producer.send_and_wait(topic, good, key=b"wrong-type")
        finally:
            await producer.stop()

    asyncio.run(produce())
    result = run_cli(settings, "tail", "detections", "--count", "2", "--from-beginning", "--timeout", "10")
    assert result.returncode == 0
    assert result.stdout == ""
    assert "undecodable" in result.stderr and "unknown_schema" in result.stderr
    assert "schema_mismatch" in result.stderr


def test_invalid_setting_names_the_variable(settings: Settings) -> None:
    result = run_cli(settings.model_copy(update={"broker": "nonsense"}), "topics", "list")
    assert result.returncode == 2
    assert "MUGPOS_BROKER" in result.stderr
