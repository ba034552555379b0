"""Per-camera memory end to end: frames replayed through a real `mugpos worker --role analyze`.

DetectionEvents (hand-made, so no detector is needed) go onto the detections topic keyed by camera,
5 s apart in capture time. The worker orders them, tracks the mug, positions it and judges the
stateful rule "alert when a mug has been off its coaster for more than 30 seconds". The worker is
SIGKILLed in the middle of an episode and a new one carries on from the changelogged tables; a
second pair of cameras sends its frames out of order within the lateness.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from mugpos.core.codec import codec
from mugpos.core.settings import Settings, settings_env
from mugpos.core.topics import ensure_topics
from mugpos.streams.consumer import consume_events
from tests.integration.worker import rules_cli, running_worker
from tests.models.test_positioning import COASTER, CUSTOM, NOW, ON_COASTER, TABLE, det, event

pytestmark = [pytest.mark.integration, pytest.mark.slow]

RULE = {
    "rule_id": "off-30",
    "name": "off its coaster for more than 30 s",
    "condition": {"kind": "compare", "field": "mug.on_coaster", "op": "==", "value": False},
    "temporal": {"kind": "lasts", "for_s": 30, "strict": True},
    "cooldown_s": 0,
}
ELSEWHERE = (700, 560, 820, 600)  # the coaster moved away from under the mug
LATENESS_S = 6  # frames are 5 s apart: neighbours may swap


def captured(source: str, t_s: int, *detections: dict[str, Any]) -> dict[str, Any]:
    """A DetectionEvent of ``source`` captured ``t_s`` seconds after NOW, from a domain-trained model."""
    record = event(*detections, labels=CUSTOM)
    return {
        **record,
        "image_id": f"{source}-{t_s:03d}",
        "source": source,
        "captured_at": NOW + timedelta(seconds=t_s),
        "model": {**record["model"], "name": "custom"},
    }


def frame(source: str, t_s: int, on: bool) -> dict[str, Any]:
    coaster = COASTER if on else ELSEWHERE
    return captured(source, t_s, det("mug", ON_COASTER), det("coaster", coaster), det("surface", TABLE))


def scene_a(source: str) -> list[dict[str, Any]]:
    """Off its coaster for 45 s, on it for 20 s, off for 45 s (frames at 0, 5, ... 105 s)."""
    return [frame(source, t, on=45 <= t < 65) for t in range(0, 110, 5)]


def scene_b(source: str) -> list[dict[str, Any]]:
    """Off for 20 s."""
    return [frame(source, t, on=False) for t in range(0, 20, 5)]


async def produce(settings: Settings, frames: list[dict[str, Any]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap)
    await producer.start()
    try:
        for f in frames:
            value = codec.encode("DetectionEvent", f)
            await producer.send_and_wait(settings.topic("detections"), value, key=f["source"].encode())
    finally:
        await producer.stop()


async def read(settings: Settings, topic: str, settle_s: float = 1.5) -> list[dict[str, Any]]:
    out = []
    async for item in consume_events(settings, topic, from_beginning=True, timeout_s=settle_s):
        assert item.error is None and item.event is not None, item.error
        out.append(item.event)
    return out


def wait_until(check: Any, timeout_s: float, what: str, log: Path) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(1.0)
    raise AssertionError(f"{what} did not happen within {timeout_s:.0f} s:\n" + log.read_text(errors="replace")[-4000:])


def shuffled_within(frames: list[dict[str, Any]], lateness_s: int, seed: int = 5) -> list[dict[str, Any]]:
    """Out of order, but no frame arrives more than ``lateness_s`` of capture time after a later one."""
    rng = random.Random(seed)
    for _ in range(1000):
        delays = [timedelta(seconds=rng.uniform(0, lateness_s)) for _ in frames]
        arrival = sorted(range(len(frames)), key=lambda i: (frames[i]["captured_at"] + delays[i], i))
        out = [frames[i] for i in arrival]
        if out != frames:
            return out
    raise AssertionError("frames this far apart cannot swap within the lateness")


def by_camera(actions: list[dict[str, Any]]) -> dict[str, list[tuple[str, int]]]:
    """source -> [(phase, capture second)] in order, each action id once (replays may repeat one)."""
    seen: dict[str, dict[str, Any]] = {}
    for a in actions:
        seen.setdefault(a["action_id"], a)
    out: dict[str, list[tuple[str, int]]] = {}
    for a in sorted(seen.values(), key=lambda a: (a["source"], a["captured_at"], a["phase"] == "start")):
        out.setdefault(a["source"], []).append((a["phase"], round((a["captured_at"] - NOW).total_seconds())))
    return out


def test_an_alert_per_episode_and_an_end_each_through_a_kill_and_out_of_order_frames(
    settings: Settings, tmp_path: Path
) -> None:
    settings = settings.model_copy(update={"session_timeout_s": 4.0})
    env = settings_env(settings)
    extra = {"MUGPOS_LATENESS_S": str(LATENESS_S), "MUGPOS_EPISODE_IDLE_S": "9", "MUGPOS_TRACK_LOST_S": "30"}
    asyncio.run(ensure_topics(settings))
    rule_file = tmp_path / "rule.json"
    rule_file.write_text(json.dumps(RULE))
    rules_cli(env, "add", "--file", str(rule_file))

    a, b = scene_a("cam-a"), scene_b("cam-b")
    c, d = shuffled_within(scene_a("cam-c"), LATENESS_S), shuffled_within(scene_b("cam-d"), LATENESS_S, seed=6)
    first_log, second_log = tmp_path / "worker-1.log", tmp_path / "worker-2.log"
    with running_worker(settings, first_log, role="analyze", **extra) as proc:
        # up to 25 s: the first episode is pending (since the mug's first tracked frame), not yet fired
        # cam-b's frames too, so both partitions have committed offsets before the kill (on the test
        # broker a partition first written while a new member seeks to its unset offset can be skipped)
        asyncio.run(produce(settings, a[:6] + b))
        wanted = {f["image_id"] for f in a[:5] + b}
        wait_until(
            lambda: wanted <= {p["image_id"] for p in asyncio.run(read(settings, "positions"))},
            120,
            "positions of the first frames",
            first_log,
        )
        time.sleep(2.0)  # past the commit interval: the kill loses nothing but uncommitted work
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    # let the broker drop the dead member first: the new worker then owns every partition (a takeover
    # while the group still lists the dead member is the group protocol's business, not this test's)
    time.sleep(settings.session_timeout_s * 2)
    assert not [x for x in asyncio.run(read(settings, "actions")) if x["source"] == "cam-a"]

    with running_worker(settings, second_log, role="analyze", **extra):
        asyncio.run(produce(settings, a[6:] + c + d))

        def ended() -> list[dict[str, Any]]:
            actions = asyncio.run(read(settings, "actions"))
            cams = by_camera(actions)
            return actions if len(cams.get("cam-a", [])) >= 4 and len(cams.get("cam-c", [])) >= 4 else []

        actions = wait_until(ended, 150, "both episodes of cam-a and cam-c ending", second_log)
        time.sleep(3.0)
        actions = asyncio.run(read(settings, "actions"))

    expected = [("start", 40), ("end", 45), ("start", 100), ("end", 105)]
    cams = by_camera(actions)
    assert cams.get("cam-a") == expected, (cams, second_log.read_text()[-3000:])
    assert cams.get("cam-c") == expected, cams  # out of order within the lateness: the same episodes
    assert "cam-b" not in cams and "cam-d" not in cams  # off for 20 s only
    mine = [x for x in actions if x["source"] == "cam-a"]
    starts = {x["episode_id"] for x in mine if x["phase"] == "start"}
    ends = {x["episode_id"] for x in mine if x["phase"] == "end"}
    assert len(starts) == 2 and starts == ends
    assert all(x["track_id"] is not None for x in mine)
    assert {x["notify"] for x in mine if x["phase"] == "end"} == {False}  # resolution was not asked for

    positions = [p for p in asyncio.run(read(settings, "positions")) if p["source"] == "cam-a"]
    tracks = {m["track_id"] for p in positions for m in p["mugs"]} - {None}
    assert len(tracks) == 1, tracks  # one mug, one id, across the kill
    assert not any(p["late"] for p in positions)
