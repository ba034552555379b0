"""Dead letters for operators: list, count and replay them once the cause is fixed, by CLI and HTTP.

The story a user lives: a camera's event names an image that is not uploaded yet, so it becomes a
dead letter ``fetch/object_missing``; the image is uploaded; ``mugpos dlq replay`` brings it back,
and replaying it a second time still leaves one result for the image in MongoDB.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient

from mugpos.core.settings import Settings, settings_env
from mugpos.core.topics import ensure_topics
from mugpos.streams.producer import ImageProducer
from tests.integration.test_detect_agent import WEIGHTS, collect, encode, read_all
from tests.integration.test_sink_and_web import count, wait_for
from tests.integration.worker import free_port, running_worker
from tests.models.drawing import draw_mug_scene

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
TOKEN, READ_TOKEN = "dlq-write-token", "dlq-read-token"


def dlq_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mugpos.cli", "dlq", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )


def call(method: str, url: str, token: str | None = None, body: Any = None) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json"} if body is not None else {}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def test_missing_images_are_dead_letters_until_replayed_and_a_second_replay_adds_nothing(
    settings: Settings, tmp_path: Path
) -> None:
    db = f"t{settings.topic_prefix.strip('.').replace('-', '')}"
    settings = settings.model_copy(
        update={"model": str(WEIGHTS), "session_timeout_s": 4.0, "batch_max": 8, "mongodb_db": db}
    )
    env = settings_env(settings)
    jpeg = encode(draw_mug_scene(320, 240)[0], "JPEG")
    keys = {f"late-{i}": f"dlq/{settings.topic_prefix}late-{i}.jpg" for i in range(3)}

    async def produce_events() -> dict[str, str]:
        await ensure_topics(settings)
        uris = {}
        async with ImageProducer(settings) as producer:
            for image_id, key in keys.items():
                uris[image_id] = f"{producer.store.base_uri}/{key}"
                source = "cam-dock" if image_id != "late-2" else "cam-yard"
                await producer.send_event(
                    {"image_id": image_id, "uri": uris[image_id], "source": source, "captured_at": datetime.now(UTC)}
                )
        return uris

    async def upload() -> None:
        async with ImageProducer(settings) as producer:
            for key in keys.values():
                await producer.store.put(key, jpeg, "image/jpeg")

    asyncio.run(produce_events())
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    web_env = {"MUGPOS_WEB_PORT": str(port), "MUGPOS_API_TOKEN": TOKEN, "MUGPOS_API_READ_TOKEN": READ_TOKEN}
    with (
        running_worker(settings, tmp_path / "detect.log", role="detect", **web_env),
        running_worker(settings, tmp_path / "sink.log", role="sink"),
    ):
        letters = asyncio.run(collect(settings, "dlq", set(keys), deadline_s=180))
        assert {(d["stage"], d["reason"]) for d in letters} == {("fetch", "object_missing")}

        # -- the CLI: list with filters, stats, a dry run that produces nothing ---------------------
        listed = dlq_cli(env, "list", "--reason", "object_missing", "--source", "cam-dock", "--json")
        assert listed.returncode == 0, listed.stderr
        rows = [json.loads(line) for line in listed.stdout.splitlines()]
        assert sorted(r["image_id"] for r in rows) == ["late-0", "late-1"]
        assert all(r["replayable"] and r["original_topic"] == settings.topic("images") for r in rows)
        assert dlq_cli(env, "list", "--stage", "image", "--json").stdout == ""
        stats = json.loads(dlq_cli(env, "stats", "--json").stdout)
        assert stats == {"total": 3, "by_reason": [{"stage": "fetch", "reason": "object_missing", "count": 3}]}
        dry = dlq_cli(env, "replay", "--reason", "object_missing", "--dry-run")
        assert dry.returncode == 0, dry.stderr
        assert json.loads(dry.stdout.splitlines()[-1])["replayed"] == 3
        assert len(asyncio.run(read_all(settings, "images"))) == 3  # nothing produced

        # -- the cause fixed: replay by CLI, then once more over HTTP --------------------------------
        asyncio.run(upload())
        done = dlq_cli(env, "replay", "--reason", "object_missing")
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout.splitlines()[-1])["topics"] == {settings.topic("images"): 3}
        wait_for(lambda: count(settings.mongodb_uri, db, "analysis_results") == 3, 120, "three results")

        assert call("GET", f"{base}/mugpos/dlq")[0] == 401
        assert call("GET", f"{base}/mugpos/dlq", READ_TOKEN)[0] == 403
        assert call("POST", f"{base}/mugpos/dlq/replay", READ_TOKEN, {})[0] == 403
        status, listing = call("GET", f"{base}/mugpos/dlq?reason=object_missing&source=cam-yard", TOKEN)
        assert status == 200 and [x["image_id"] for x in listing["letters"]] == ["late-2"]
        assert call("GET", f"{base}/mugpos/dlq?since=yesterday", TOKEN)[0] == 422
        status, report = call("POST", f"{base}/mugpos/dlq/replay", TOKEN, {"reason": "object_missing"})
        assert status == 200 and report["replayed"] == 3, report

        detections = asyncio.run(collect(settings, "detections", set(keys), deadline_s=120))
        wait_for(lambda: len(asyncio.run(read_all(settings, "detections"))) >= 6, 120, "the second replay's detections")

    assert {d["image_id"] for d in detections} == set(keys)
    assert count(settings.mongodb_uri, db, "analysis_results") == 3  # twice replayed, one result per image
    assert len(asyncio.run(read_all(settings, "dlq"))) == 3  # no new dead letter: the images were there
    with MongoClient(settings.mongodb_uri) as client:
        client.drop_database(db)
