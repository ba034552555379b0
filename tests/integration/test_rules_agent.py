"""The rules agents end to end: a real `mugpos worker --role analyze`, the real broker and Redis,
rules added and removed with the real CLI, PositionEvents produced straight to the positions topic
(so the test does not depend on the positioning model), and a real aiohttp webhook receiver."""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiokafka import AIOKafkaProducer

from mugpos.core.codec import codec
from mugpos.core.settings import Settings, settings_env
from mugpos.core.topics import ensure_topics
from mugpos.rules.senders import ACTION_ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, verify_signature
from mugpos.streams.consumer import consume_events
from tests.integration.worker import rules_cli, running_worker
from tests.rules.conftest import T0, mug, position

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SECRET = "integration-secret"


class Receiver:
    """A real aiohttp server on 127.0.0.1 in its own thread: /hook answers 200, /reject 400."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def handle(request: web.Request) -> web.Response:
            self.requests.append({"path": request.path, "headers": dict(request.headers), "body": await request.read()})
            return web.Response(status=200 if request.path == "/hook" else 400, text="ok")

        async def start() -> web.AppRunner:
            app = web.Application()
            app.router.add_post("/{name}", handle)
            runner = web.AppRunner(app)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            return runner

        self._runner = self._loop.run_until_complete(start())
        self._ready.set()
        self._loop.run_forever()

    def __enter__(self) -> Receiver:
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


async def produce(settings: Settings, events: list[dict[str, Any]], partition: int | None = None) -> None:
    """PositionEvents keyed by image id (``partition`` pins frames whose order the test relies on)."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap, acks="all")
    await producer.start()
    try:
        for event in events:
            value = codec.encode("PositionEvent", event)
            await producer.send_and_wait(
                settings.topic("positions"), value, key=event["image_id"].encode(), partition=partition
            )
    finally:
        await producer.stop()


async def produce_raw(settings: Settings, key: bytes, value: bytes) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(settings.topic("positions"), value, key=key)
    finally:
        await producer.stop()


async def read_topic(
    settings: Settings, topic: str, want: set[str], deadline_s: float, settle_s: float = 3.0
) -> list[tuple[str, dict[str, Any]]]:
    """(key, event) of ``topic`` from the start; reread until every wanted key is there (or the
    deadline passes). Each pass ends after ``settle_s`` without messages, so extras show up too."""
    deadline = time.monotonic() + deadline_s
    while True:
        items = []
        async for item in consume_events(settings, topic, from_beginning=True, timeout_s=settle_s):
            assert item.error is None, item.error
            assert item.event is not None
            items.append(((item.key or b"").decode(), item.event))
        if want <= {key for key, _ in items} or time.monotonic() > deadline:
            return items
        await asyncio.sleep(0.5)


def wait_for_log(path: Path, pattern: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    regex = re.compile(pattern)
    while time.monotonic() < deadline:
        if regex.search(path.read_text(errors="replace")):
            return
        time.sleep(0.1)
    raise AssertionError(f"worker log never said {pattern!r}:\n" + path.read_text(errors="replace")[-4000:])


def at(seconds: float) -> Any:
    return T0 + timedelta(seconds=seconds)


GOOD = [mug(0, nearest_mug_cm=30.0), mug(1, nearest_mug_cm=30.0)]
FOUR = [mug(i, nearest_mug_cm=30.0) for i in range(4)]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as server:
        yield server


def test_rules_fire_on_violations_follow_live_changes_cool_down_and_deliver_webhooks(
    settings: Settings, tmp_path: Path, receiver: Receiver
) -> None:
    settings = settings.model_copy(update={"session_timeout_s": 4.0})
    hook_env = {
        "MUGPOS_WEBHOOK_SECRET": SECRET,
        "MUGPOS_WEBHOOK_ALLOWLIST": f"127.0.0.1:{receiver.port}",
        "MUGPOS_WEBHOOK_ALLOW_NETWORKS": "127.0.0.1",  # the receiver listens on loopback
        "MUGPOS_WEBHOOK_RETRIES": "1",
        "MUGPOS_WEBHOOK_BACKOFF_S": "0.05",
    }
    env = settings_env(settings) | hook_env
    asyncio.run(ensure_topics(settings))

    # the four rules of the issue, through the CLI, before the worker starts
    for rule_id, sentence in [
        ("coaster", "alert when a mug is not on a coaster"),
        ("edge", "warn if any mug is within 5 cm of the table edge"),
        ("crowd", "notify me when more than 3 mugs are on the table in camera kitchen-1"),
        ("close", "critical if a mug is closer than 2 cm to another mug"),
    ]:
        added = rules_cli(env, "add", sentence, "--id", rule_id)
        assert json.loads(added.stdout)["rule_id"] == rule_id
    hooked = rules_cli(
        env, "add", "page me if a mug is over the edge", "--id", "hook", "--action", "webhook",
        "--target", f"http://127.0.0.1:{receiver.port}/hook",
    )  # fmt: skip
    assert json.loads(hooked.stdout)["action"]["type"] == "webhook"
    rules_cli(
        env, "add", "alert when there are more than 9 mugs", "--id", "rejected-hook", "--action", "webhook",
        "--target", f"http://127.0.0.1:{receiver.port}/reject",
    )  # fmt: skip

    log_path = tmp_path / "worker.log"
    with running_worker(settings, log_path, role="analyze", **hook_env) as proc:
        wait_for_log(log_path, r"rules: registry ready with 6 rule\(s\), 6 enabled")

        # -- scenes that break exactly one rule each, and compliant ones -------------------------
        scenes = [
            position(GOOD[0], mug(1, on_coaster=False), image_id="b-coaster", source="cam-a"),
            position(mug(0, edge_distance_cm=3.0), image_id="b-edge", source="cam-b"),
            position(*FOUR, image_id="b-crowd", source="kitchen-1"),
            position(mug(0, nearest_mug_cm=1.5), mug(1, nearest_mug_cm=1.5), image_id="b-close", source="cam-c"),
            position(mug(0, edge_distance_px=-12.0, edge_distance_cm=None), image_id="b-hook", source="cam-h"),
            position(*FOUR, *FOUR[:3], *FOUR[:3], image_id="b-reject", source="cam-r"),
            position(*GOOD, image_id="ok-good", source="cam-a"),
            position(*FOUR, image_id="ok-crowd-elsewhere", source="hall"),  # out of the crowd rule's scope
            position(
                mug(0, on_coaster=None, edge_distance_cm=None, edge_distance_px=None, nearest_mug_cm=None),
                image_id="ok-unknown",
                source="cam-d",
            ),  # a model that sees no coasters and no scale: unknown never fires
            position(image_id="ok-empty", source="cam-a"),
        ]
        for i, scene in enumerate(scenes):
            scene["mug_count"] = len(scene["mugs"])
            scene["captured_at"] = at(i)
        # a stuck mug on "desk": frames 0, 5, 30 and 70 s; the coaster rule cools down for 60 s per source
        desk = [
            position(mug(0, on_coaster=False), image_id=f"desk-{s}", source="desk", captured_at=at(s))
            for s in (0, 5, 30, 70)
        ]
        desk2 = [position(mug(0, on_coaster=False), image_id="desk2-5", source="desk-2", captured_at=at(5))]
        asyncio.run(produce(settings, scenes + desk2))
        asyncio.run(produce(settings, desk, partition=0))  # one partition: the frames arrive in capture order
        asyncio.run(produce_raw(settings, b"garbage", b"\x00 not a position event"))

        expected = {
            "coaster:b-coaster",
            "edge:b-edge",
            "crowd:b-crowd",
            "close:b-close",
            "hook:b-hook",
            "rejected-hook:b-reject",
            "coaster:desk-0",
            "coaster:desk-70",
            "coaster:desk2-5",
        }
        actions = dict(asyncio.run(read_topic(settings, "actions", expected, deadline_s=120)))
        assert set(actions) == expected, log_path.read_text()[-4000:]
        edge = actions["edge:b-edge"]
        assert (edge["rule_id"], edge["severity"], edge["image_id"], edge["source"]) == (
            "edge",
            "warning",
            "b-edge",
            "cam-b",
        )
        assert edge["evidence"] == {"mug.index": "0", "mugs.matching": "0", "mug.edge_distance_cm": "3"}
        assert actions["coaster:b-coaster"]["evidence"]["mug.index"] == "1"
        assert actions["crowd:b-crowd"]["severity"] == "info"
        assert actions["close:b-close"]["severity"] == "critical"
        assert actions["close:b-close"]["evidence"]["mugs.matching"] == "0,1"
        assert actions["hook:b-hook"]["action_type"] == "webhook"

        # -- the webhook receiver got a signed POST; the rejected one is a dead letter -----------
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(receiver.requests) < 2:
            time.sleep(0.1)
        by_path = {r["path"]: r for r in receiver.requests}
        hook = by_path["/hook"]
        assert hook["headers"][ACTION_ID_HEADER] == "hook:b-hook"
        assert verify_signature(
            SECRET, hook["headers"][TIMESTAMP_HEADER], hook["body"], hook["headers"][SIGNATURE_HEADER]
        )
        assert json.loads(hook["body"])["evidence"]["mug.edge_distance_px"] == "-12"
        dlq = asyncio.run(read_topic(settings, "dlq", {"garbage", "rejected-hook:b-reject"}, deadline_s=60, settle_s=1))
        ours = {(key, e["stage"]): e for key, e in dlq if e["stage"] in ("rules", "action")}  # the sink letters its own
        assert set(ours) == {("garbage", "rules"), ("rejected-hook:b-reject", "action")}, dlq
        assert ours[("garbage", "rules")]["reason"] == "undecodable"
        rejected = ours[("rejected-hook:b-reject", "action")]
        assert rejected["reason"] == "webhook_rejected"
        assert "HTTP 400" in rejected["message"]
        assert codec.decode(rejected["original_value"], "ActionEvent")["action_id"] == "rejected-hook:b-reject"

        # -- a rule added while the worker runs applies to the next events -----------------------
        rules_cli(env, "add", "alert when the verdict is violation", "--id", "verdict")
        wait_for_log(log_path, r"rules: added rule verdict")
        asyncio.run(produce(settings, [position(*GOOD, image_id="v-1", source="cam-v", verdict="violation")]))
        # -- a deleted rule stops firing: e-2 breaks "edge" and "verdict"; only "verdict" remains ----
        rules_cli(env, "rm", "edge")
        wait_for_log(log_path, r"rules: removed rule edge")
        asyncio.run(
            produce(
                settings, [position(mug(0, edge_distance_cm=1.0), image_id="e-2", source="cam-e", verdict="violation")]
            )
        )
        final = expected | {"verdict:v-1", "verdict:e-2"}
        after = asyncio.run(read_topic(settings, "actions", final, deadline_s=60))
        assert sorted(key for key, _ in after) == sorted(final), log_path.read_text()[-4000:]  # each exactly once
        assert proc.poll() is None, "the worker must survive bad input"

    log = log_path.read_text()
    assert "Traceback" not in log, log[-4000:]
