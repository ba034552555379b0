"""Results in MongoDB (idempotent, outage-proof) and the worker's web views, on the real services."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from prometheus_client.parser import text_string_to_metric_families
from pymongo import MongoClient

from mugpos.core.codec import codec
from mugpos.core.settings import Settings
from mugpos.core.topics import ensure_topics
from tests.integration.worker import free_port, running_worker

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]


def detection(image_id: str, n_mugs: int = 1) -> dict[str, Any]:
    box = {"x1": 10.0, "y1": 20.0, "x2": 110.0, "y2": 140.0}
    norm = {"x1": 0.016, "y1": 0.04, "x2": 0.17, "y2": 0.29}
    return {
        "image_id": image_id,
        "source": "cam-sink",
        "uri": f"s3://mugpos-images/none/{image_id}.jpg",
        "captured_at": datetime(2026, 11, 22, 10, 0, tzinfo=UTC),
        "processed_at": datetime.now(UTC),
        "sha256": None,
        "model": {
            "model_id": "m-1",
            "name": "m",
            "version": "1",
            "weights_sha256": "0" * 64,
            "device": "cpu",
            "labels": ["mug", "surface"],
        },
        "image_width": 640,
        "image_height": 480,
        "detections": [
            {"label": "mug", "class_id": 41, "class_name": "cup", "confidence": 0.9, "box": box, "box_norm": norm}
            for _ in range(n_mugs)
        ],
        "timings": {"fetch_ms": 1.0, "decode_ms": 1.0, "inference_ms": 10.0, "total_ms": 12.0},
        "batch_size": 1,
    }


def action(image_id: str) -> dict[str, Any]:
    return {
        "action_id": f"rule-1:{image_id}",
        "rule_id": "rule-1",
        "rule_name": "no mug near the edge",
        "severity": "warning",
        "action_type": "publish",
        "message": "a mug is close to the edge",
        "evidence": {"mug.edge_distance_cm": "3.0"},
        "image_id": image_id,
        "source": "cam-sink",
        "captured_at": datetime(2026, 11, 22, 10, 0, tzinfo=UTC),
        "fired_at": datetime.now(UTC),
    }


async def produce(settings: Settings, items: list[tuple[str, str, dict[str, Any]]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap)
    await producer.start()
    try:
        for topic, record_name, record in items:
            key = record.get("action_id") or record["image_id"]
            await producer.send_and_wait(settings.topic(topic), codec.encode(record_name, record), key=key.encode())
    finally:
        await producer.stop()


def wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


class PrivateMongo:
    """A MongoDB wire server of this test's own, started and stopped with the project's script."""

    def __init__(self, run_dir: Path) -> None:
        self.port = free_port()
        self.env = {
            **os.environ,
            "MUGPOS_SERVICES": "mongo",
            "MUGPOS_RUN_DIR": str(run_dir),
            "MUGPOS_MONGO_PORT": str(self.port),
        }
        self.uri = f"mongodb://127.0.0.1:{self.port}"

    def _run(self, command: str) -> None:
        subprocess.run(
            ["bash", str(REPO / "scripts" / "services.sh"), command],
            env=self.env,
            check=True,
            capture_output=True,
            timeout=60,
        )

    def up(self) -> None:
        self._run("up")

    def down(self) -> None:
        self._run("down")


@pytest.fixture
def private_mongo(tmp_path: Path) -> Iterator[PrivateMongo]:
    mongo = PrivateMongo(tmp_path / "run")
    mongo.up()
    try:
        yield mongo
    finally:
        mongo.down()


def count(uri: str, db: str, collection: str) -> int:
    with MongoClient(uri, serverSelectionTimeoutMS=2000) as client:
        return int(client[db][collection].count_documents({}))


def test_sink_upserts_once_per_image_even_when_events_are_replayed(settings: Settings, tmp_path: Path) -> None:
    db = f"t{settings.topic_prefix.strip('.').replace('-', '')}"
    settings = settings.model_copy(update={"mongodb_db": db, "session_timeout_s": 4.0})
    asyncio.run(ensure_topics(settings))
    items = [("detections", "DetectionEvent", detection(f"img-{i}")) for i in range(10)]
    items += [("actions", "ActionEvent", action(f"img-{i}")) for i in range(3)]
    asyncio.run(produce(settings, items))
    asyncio.run(produce(settings, items))  # a replay: every event a second time
    with running_worker(settings, tmp_path / "worker.log", role="sink"):
        wait_for(
            lambda: (
                count(settings.mongodb_uri, db, "analysis_results") >= 10
                and count(settings.mongodb_uri, db, "actions") >= 3
            ),
            60,
            "documents in MongoDB",
        )
        time.sleep(2)  # let the replayed half land too
    assert count(settings.mongodb_uri, db, "analysis_results") == 10
    assert count(settings.mongodb_uri, db, "actions") == 3
    with MongoClient(settings.mongodb_uri) as client:
        doc = client[db]["analysis_results"].find_one({"_id": "img-3"})
        indexes = {tuple(ix["key"]) for ix in client[db]["analysis_results"].list_indexes()}
        client.drop_database(db)
    assert doc is not None and doc["source"] == "cam-sink"
    assert doc["detection"]["detections"][0]["label"] == "mug"
    assert {("image_id",), ("source", "captured_at")} <= indexes


def test_mongodb_outage_holds_the_offsets_and_everything_arrives_once_when_it_returns(
    settings: Settings, tmp_path: Path, private_mongo: PrivateMongo
) -> None:
    settings = settings.model_copy(update={"mongodb_uri": private_mongo.uri, "session_timeout_s": 4.0})
    asyncio.run(ensure_topics(settings))
    first = [("detections", "DetectionEvent", detection(f"a-{i}")) for i in range(20)]
    second = [("detections", "DetectionEvent", detection(f"b-{i}")) for i in range(20)]
    with running_worker(settings, tmp_path / "worker.log", role="sink") as proc:
        asyncio.run(produce(settings, first))
        wait_for(lambda: count(private_mongo.uri, "mugpos", "analysis_results") == 20, 60, "the first 20")
        private_mongo.down()
        asyncio.run(produce(settings, second))
        time.sleep(4)  # the sink is now retrying with backoff
        assert proc.poll() is None
        private_mongo.up()
        wait_for(lambda: count(private_mongo.uri, "mugpos", "analysis_results") == 40, 90, "all 40 after the outage")
    with MongoClient(private_mongo.uri) as client:
        ids = sorted(d["_id"] for d in client["mugpos"]["analysis_results"].find({}, {"_id": 1}))
    assert ids == sorted(f"{p}-{i}" for p in "ab" for i in range(20))
    assert "retrying with backoff" in (tmp_path / "worker.log").read_text()


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes, str]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status, resp.read(), resp.headers.get("Content-Type", "")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), exc.headers.get("Content-Type", "")
    except urllib.error.URLError:  # the worker's web server is not listening yet
        return 0, b"", ""


def test_web_views_stats_results_metrics_health_and_bad_requests(settings: Settings, tmp_path: Path) -> None:
    settings = settings.model_copy(update={"mongodb_uri": "", "session_timeout_s": 4.0})
    asyncio.run(ensure_topics(settings))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with running_worker(settings, tmp_path / "worker.log", role="analyze", MUGPOS_WEB_PORT=str(port)):
        asyncio.run(produce(settings, [("detections", "DetectionEvent", detection("web-1", n_mugs=2))]))
        wait_for(lambda: get(f"{base}/mugpos/images/web-1")[0] == 200, 60, "the result to be served")

        status, body, ctype = get(f"{base}/mugpos/images/web-1")
        result = json.loads(body)
        assert ctype.startswith("application/json")
        assert len(result["detection"]["detections"]) == 2

        status, body, _ = get(f"{base}/mugpos/stats")
        stats = json.loads(body)
        assert status == 200
        assert {"throughput", "batch_sizes", "latency_ms", "cache", "dead_letters", "lag", "gpu", "model"} <= set(stats)

        status, body, _ = get(f"{base}/mugpos/latest")
        assert [i["image_id"] for i in json.loads(body)["images"]] == ["web-1"]

        status, body, ctype = get(f"{base}/metrics")
        families = {f.name for f in text_string_to_metric_families(body.decode())}
        assert status == 200 and ctype.startswith("text/plain")
        assert "mugpos_sink_documents" in families or "mugpos_sink_documents_total" in families

        assert json.loads(get(f"{base}/healthz")[1])["status"] == "ok"
        ready_status, ready_body, _ = get(f"{base}/readyz")
        assert ready_status == 200 and json.loads(ready_body)["checks"]["broker"] is True

        for path, expected in [
            ("/mugpos/images/does-not-exist", 404),
            ("/mugpos/images/%00bad", 400),
            ("/mugpos/images/does-not-exist/annotated.jpg", 404),
            ("/no/such/page", 404),
        ]:
            status, body, ctype = get(base + path)
            assert status == expected, path
            assert b"Traceback" not in body
            if status != 404 or path.startswith("/mugpos"):
                assert "error" in json.loads(body), path


def test_store_annotated_writes_the_annotated_image_next_to_the_original(settings: Settings, tmp_path: Path) -> None:
    import io

    import numpy as np
    from PIL import Image

    from mugpos.agents.sink import annotated_uri
    from mugpos.storage.store import open_store

    settings = settings.model_copy(update={"mongodb_uri": "", "session_timeout_s": 4.0, "store_annotated": True})
    asyncio.run(ensure_topics(settings))
    buf = io.BytesIO()
    Image.fromarray(np.full((480, 640, 3), 180, np.uint8)).save(buf, format="JPEG")

    async def upload() -> str:
        async with open_store(settings) as store:
            return await store.put(f"annotated-test/{settings.topic_prefix}original.jpg", buf.getvalue(), "image/jpeg")

    uri = asyncio.run(upload())
    event = detection("annotate-1")
    event["uri"] = uri

    async def annotated_exists() -> bytes | None:
        async with open_store(settings) as store:
            target = annotated_uri(uri)
            return await store.get(target) if await store.exists(target) else None

    with (
        running_worker(settings, tmp_path / "analyze.log", role="analyze"),
        running_worker(settings, tmp_path / "sink.log", role="sink"),
    ):
        asyncio.run(produce(settings, [("detections", "DetectionEvent", event)]))
        wait_for(lambda: asyncio.run(annotated_exists()) is not None, 60, "the annotated image in the store")
    jpeg = asyncio.run(annotated_exists())
    assert jpeg is not None
    with Image.open(io.BytesIO(jpeg)) as img:
        assert img.format == "JPEG" and img.size == (640, 480)
