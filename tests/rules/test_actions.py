"""ActionEvents and the per-source cooldown (in memory, and shared through the real Redis)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

import pytest

from mugpos.core.codec import codec
from mugpos.rules.actions import MemoryCooldown, RedisCooldown, action_id, build_action, event_millis
from mugpos.rules.engine import RuleSet
from mugpos.rules.language import compile_sentence
from mugpos.rules.processor import RuleProcessor
from mugpos.storage.rules import RuleRegistry
from tests.rules.conftest import T0, mug, position


def test_action_event_is_valid_avro_with_a_deterministic_id() -> None:
    rule = compile_sentence("warn if any mug is within 5 cm of the table edge", rule_id="edge")
    event = position(mug(0), mug(2, edge_distance_cm=3.0999999), image_id="cam1-0007")
    (match,) = RuleSet([rule]).evaluate(event).matches
    action = build_action(match, event)
    assert action["action_id"] == "edge:cam1-0007" == action_id("edge", "cam1-0007")
    assert action["rule_id"] == "edge" and action["rule_name"] == rule.name
    assert action["severity"] == "warning" and action["action_type"] == "publish"
    assert action["evidence"] == {"mug.index": "2", "mugs.matching": "2", "mug.edge_distance_cm": "3.1"}
    assert action["image_id"] == "cam1-0007" and action["source"] == "kitchen-1"
    assert action["captured_at"] == T0
    assert "mug 2 in kitchen-1" in action["message"] and "mug.edge_distance_cm=3.1" in action["message"]
    decoded = codec.decode(codec.encode("ActionEvent", action), "ActionEvent")
    assert decoded["action_id"] == action["action_id"] and decoded["evidence"] == action["evidence"]


def test_event_millis_accepts_datetimes_and_numbers() -> None:
    assert event_millis(T0) == int(T0.timestamp() * 1000)
    assert event_millis(1234) == 1234
    assert event_millis(None) > 1_700_000_000_000


def ms(seconds: float) -> int:
    return int((T0 + timedelta(seconds=seconds)).timestamp() * 1000)


async def run_gate(gate: Any) -> list[bool]:
    """One stuck scene on cam-a (frames 0, 1, 30, 61 s), one on cam-b, and a replay of frame 0."""
    out = [
        await gate.admit("r", "cam-a", ms(0), 60, "r:f0"),
        await gate.admit("r", "cam-a", ms(1), 60, "r:f1"),
        await gate.admit("r", "cam-b", ms(1), 60, "r:b1"),
        await gate.admit("r", "cam-a", ms(30), 60, "r:f30"),
        await gate.admit("r", "cam-a", ms(0), 60, "r:f0"),  # replay of the action that set the cooldown
        await gate.admit("other", "cam-a", ms(30), 60, "other:f30"),
        await gate.admit("r", "cam-a", ms(61), 60, "r:f61"),
        await gate.admit("r", "cam-a", ms(62), 0, "r:f62"),  # cooldown 0: every frame
        await gate.admit("r", "cam-a", ms(-100), 60, "r:old"),  # far out of order: its own window
    ]
    return out


#: f0 yes, f1 no (1 s later), cam-b yes (its own source), f30 no, replay of f0 yes (it set the
#: cooldown), another rule yes, f61 yes, cooldown 0 yes, an old frame 161 s before f61 yes.
EXPECTED = [True, False, True, False, True, True, True, True, True]


def test_memory_cooldown_runs_on_capture_time_per_rule_and_source() -> None:
    assert asyncio.run(run_gate(MemoryCooldown())) == EXPECTED


def test_late_frames_do_not_move_the_cooldown_back() -> None:
    async def go() -> list[bool]:
        gate = MemoryCooldown()
        return [
            await gate.admit("r", "s", ms(100), 60, "a"),
            await gate.admit("r", "s", ms(0), 60, "late"),  # 100 s before: fires, state stays at 100 s
            await gate.admit("r", "s", ms(110), 60, "b"),
        ]

    assert asyncio.run(go()) == [True, True, False]


def test_memory_cooldown_forgets_the_oldest_keys_beyond_its_bound() -> None:
    gate = MemoryCooldown(max_keys=2)

    async def go() -> list[bool]:
        for source in ("a", "b", "c"):
            await gate.admit("r", source, ms(0), 60, f"r:{source}")
        return [await gate.admit("r", "a", ms(1), 60, "r:a1"), await gate.admit("r", "c", ms(1), 60, "r:c1")]

    assert asyncio.run(go()) == [True, False]


@pytest.fixture
def redis_url(services: dict[str, str]) -> str:
    return services["MUGPOS_REDIS_URL"]


@pytest.mark.integration
def test_redis_cooldown_is_shared_by_workers(redis_url: str) -> None:
    namespace = f"test-{uuid.uuid4().hex[:8]}."

    async def go() -> tuple[list[bool], list[bool]]:
        one, two = RedisCooldown(redis_url, namespace), RedisCooldown(redis_url, namespace)
        try:
            same = await run_gate(one)
            # a second worker sees the first one's cooldown on cam-a: frame 70 s is within 60 s of 61 s
            shared = [
                await two.admit("r", "cam-a", ms(70), 60, "r:w2-70"),
                await two.admit("r", "cam-a", ms(130), 60, "r:w2-130"),
                await one.admit("r", "cam-a", ms(140), 60, "r:w1-140"),
            ]
            return same, shared
        finally:
            await one.close()
            await two.close()

    same, shared = asyncio.run(go())
    assert same == EXPECTED
    # worker two: 70 s is 9 s after f61 (set by worker one) -> no; 130 s -> yes; worker one at 140 s -> no
    assert shared == [False, True, False]


def test_redis_down_falls_back_to_memory() -> None:
    async def go() -> list[bool]:
        gate = RedisCooldown("redis://127.0.0.1:9/0", "x.", timeout_s=0.2)
        try:
            return [await gate.admit("r", "s", ms(0), 60, "a"), await gate.admit("r", "s", ms(1), 60, "b")]
        finally:
            await gate.close()

    assert asyncio.run(go()) == [True, False]


def test_processor_applies_cooldown_per_source() -> None:
    registry = RuleRegistry()
    rule = compile_sentence("alert when a mug is not on a coaster", rule_id="coaster")
    registry.rules[rule.rule_id] = rule
    registry.ruleset = RuleSet([rule])
    processor = RuleProcessor(registry, MemoryCooldown())

    async def go() -> list[int]:
        counts = []
        for i, (source, second) in enumerate([("a", 0), ("a", 10), ("b", 10), ("a", 70)]):
            event = position(
                mug(0, on_coaster=False), image_id=f"i{i}", source=source, captured_at=T0 + timedelta(seconds=second)
            )
            counts.append(len(await processor.actions_for(event)))
        return counts

    assert asyncio.run(go()) == [1, 0, 1, 1]


def test_skips_are_counted_by_reason_and_never_raise() -> None:
    from mugpos.rules.metrics import RULE_SKIPS

    registry = RuleRegistry()
    rule = compile_sentence("alert when a mug is not on a coaster", rule_id="coaster")
    registry.ruleset = RuleSet([rule])
    processor = RuleProcessor(registry, MemoryCooldown())
    before = {r: RULE_SKIPS.labels(r)._value.get() for r in ("missing_field", "wrong_type")}
    missing = position(mug(0))
    del missing["mugs"][0]["on_coaster"]
    assert asyncio.run(processor.actions_for(missing)) == []
    assert asyncio.run(processor.actions_for(position(mug(0, on_coaster="yes")))) == []
    after = {r: RULE_SKIPS.labels(r)._value.get() for r in ("missing_field", "wrong_type")}
    assert after == {"missing_field": before["missing_field"] + 1, "wrong_type": before["wrong_type"] + 1}
