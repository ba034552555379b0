"""Stateful rules, frame by frame: episodes start once, end once, survive a restart and a replay."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from mugpos.core.codec import codec
from mugpos.rules.actions import MemoryCooldown
from mugpos.rules.engine import RuleSet
from mugpos.rules.episodes import SourceState
from mugpos.rules.model import Rule, rule_from_obj
from mugpos.rules.processor import RuleProcessor

T0 = 1_780_000_000_000
OFF = {"kind": "compare", "field": "mug.on_coaster", "op": "==", "value": False}
ON = {"kind": "compare", "field": "mug.on_coaster", "op": "==", "value": True}


class Registry:
    def __init__(self, *rules: Rule) -> None:
        self.ruleset = RuleSet(rules)


def rule(rule_id: str, condition: dict[str, Any], cooldown_s: int = 60, **temporal: Any) -> Rule:
    return rule_from_obj({"rule_id": rule_id, "condition": condition, "temporal": temporal, "cooldown_s": cooldown_s})


def frame(source: str, t_s: float, mugs: list[tuple[int | None, bool | None]], **extra: Any) -> dict[str, Any]:
    """A decoded PositionEvent: mugs as (track id, on_coaster)."""
    return {
        "image_id": f"{source}-{t_s:g}",
        "source": source,
        "captured_at": T0 + int(t_s * 1000),
        "mug_count": len(mugs),
        "mugs": [
            {"index": i, "track_id": track, "on_coaster": on, "confidence": 0.9, "edge_distance_cm": 20.0}
            for i, (track, on) in enumerate(mugs)
        ],
        "late": False,
        **extra,
    }


def camera_a() -> list[dict[str, Any]]:
    """Off its coaster 45 s, on it 20 s, off 45 s; a frame every 5 s (the issue's scenario)."""
    off1 = [frame("cam-a", t, [(1, False)]) for t in range(0, 45, 5)]
    on = [frame("cam-a", t, [(1, True)]) for t in range(45, 65, 5)]
    off2 = [frame("cam-a", t, [(1, False)]) for t in range(65, 110, 5)]
    return off1 + on + off2


def run(processor: RuleProcessor, frames: list[dict[str, Any]], states: dict[str, SourceState]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for ev in frames:
        state = states.setdefault(ev["source"], SourceState())
        out += asyncio.run(processor.actions_for(ev, state))
    return out


def summary(actions: list[dict[str, Any]]) -> list[tuple[str, str, float]]:
    return [(a["source"], a["phase"], (a["captured_at"].timestamp() * 1000 - T0) / 1000) for a in actions]


OFF_30S = rule("off-30", OFF, for_s=30, strict=True)


def test_off_its_coaster_for_more_than_30_seconds_fires_once_per_episode_and_ends_each() -> None:
    processor = RuleProcessor(Registry(OFF_30S), MemoryCooldown())
    states: dict[str, SourceState] = {}
    b = [frame("cam-b", t, [(7, False)]) for t in range(0, 20, 5)]
    actions = run(processor, camera_a() + b, states)
    actions += processor.expire(states["cam-a"], "cam-a") + processor.expire(states["cam-b"], "cam-b")
    assert summary(actions) == [
        ("cam-a", "start", 35),  # first frame where more than 30 s have passed
        ("cam-a", "end", 45),  # back on its coaster
        ("cam-a", "start", 100),
        ("cam-a", "end", 105),  # the camera went quiet: ended at its last frame
    ]
    starts = [a for a in actions if a["phase"] == "start"]
    ends = [a for a in actions if a["phase"] == "end"]
    assert [a["episode_id"] for a in starts] == [a["episode_id"] for a in ends]
    assert len({a["episode_id"] for a in starts}) == 2
    assert all(a["track_id"] == 1 for a in actions)
    assert [a["notify"] for a in ends] == [False, False]  # not asked to hear of resolution
    assert starts[0]["evidence"]["episode.duration_s"] == "35"
    for a in actions:  # every action is a valid ActionEvent
        assert codec.decode(codec.encode("ActionEvent", a), "ActionEvent")["phase"] == a["phase"]


def test_a_restart_after_every_frame_gives_the_same_actions_with_the_same_ids() -> None:
    once = run(RuleProcessor(Registry(OFF_30S), MemoryCooldown()), camera_a(), {})
    restarted: list[dict[str, Any]] = []
    blob = SourceState().dumps()
    for ev in camera_a():  # a new worker for every frame, state read back from its bytes
        state = SourceState.loads(blob)
        restarted += asyncio.run(RuleProcessor(Registry(OFF_30S), MemoryCooldown()).actions_for(ev, state))
        blob = state.dumps()
    assert [a["action_id"] for a in restarted] == [a["action_id"] for a in once]
    assert len(once) == 3


def test_a_redelivered_frame_sends_its_actions_again_and_moves_nothing() -> None:
    processor = RuleProcessor(Registry(OFF_30S), MemoryCooldown())
    states: dict[str, SourceState] = {}
    frames = camera_a()
    first = run(processor, frames[:8], states)  # up to t=35: the start
    again = run(processor, frames[5:8], states)  # t=25..35 redelivered (crash before commit)
    assert [a["action_id"] for a in again] == [a["action_id"] for a in first]
    rest = run(processor, frames[8:], states)
    assert summary(first + rest) == [("cam-a", "start", 35), ("cam-a", "end", 45), ("cam-a", "start", 100)]


def test_unknown_neither_extends_nor_breaks_and_a_late_frame_moves_nothing() -> None:
    processor = RuleProcessor(Registry(rule("off-3f", OFF, for_frames=3)), MemoryCooldown())
    states: dict[str, SourceState] = {}
    frames = [
        frame("c", 0, [(1, False)]),
        frame("c", 5, [(1, None)]),  # the model cannot tell: not a break, not a frame of the episode
        frame("c", 10, [(1, False)]),
        frame("c", 3, [(1, True)]),  # older than one already taken in: late, ignored
        frame("c", 15, [(1, False)]),  # the third frame off its coaster
    ]
    assert summary(run(processor, frames, states)) == [("c", "start", 15)]


@pytest.mark.parametrize(
    ("sequence", "expected"),
    [
        pytest.param([False, True], [5], id="put-on"),
        pytest.param([True, True, False, True], [15], id="taken-off-then-put-back"),
        pytest.param([None, True], [], id="unknown-before-is-not-a-change"),
        pytest.param([True, True], [], id="always-on"),
        pytest.param([False, None, True], [10], id="unknown-between-keeps-the-earlier-value"),
    ],
)
def test_becomes_fires_on_the_change_only(sequence: list[bool | None], expected: list[int]) -> None:
    processor = RuleProcessor(Registry(rule("put-on", ON, cooldown_s=0, kind="becomes")), MemoryCooldown())
    frames = [frame("c", 5 * i, [(4, value)]) for i, value in enumerate(sequence)]
    assert [t for _, _, t in summary(run(processor, frames, {}))] == expected


def test_appears_and_disappears_per_tracked_mug() -> None:
    tracked = {"kind": "compare", "field": "mug.track_id", "op": ">=", "value": 0}
    rules = Registry(rule("in", tracked, 0, kind="appears"), rule("out", tracked, 0, kind="disappears"))
    processor = RuleProcessor(rules, MemoryCooldown(), lost_s=10)
    frames = [
        frame("c", 0, [(None, True)]),  # not confirmed by the tracker yet: not a mug that appeared
        frame("c", 5, [(1, True)]),
        frame("c", 10, [(1, True), (2, True)]),
        frame("c", 15, [(2, True)]),
        frame("c", 30, [(2, True)]),  # track 1 unseen for 15 s > 10 s: gone
    ]
    actions = run(processor, frames, {})
    got = [(a["rule_id"], a["track_id"], t) for a, (_, _, t) in zip(actions, summary(actions), strict=True)]
    assert got == [("in", 1, 5), ("in", 2, 10), ("out", 1, 30)]


def test_the_cooldown_applies_between_episodes() -> None:
    processor = RuleProcessor(Registry(rule("off", OFF, cooldown_s=120, for_s=10)), MemoryCooldown())
    actions = run(processor, camera_a(), {})
    # the second episode would start 65 s after the first: suppressed, and so it has no end either
    assert summary(actions) == [("cam-a", "start", 10), ("cam-a", "end", 45)]


def test_image_conditions_are_one_episode_per_camera_and_resolution_is_notified() -> None:
    crowded = {"kind": "compare", "field": "image.mug_count", "op": ">", "value": 2}
    processor = RuleProcessor(Registry(rule("crowd", crowded, for_s=10, resolve=True)), MemoryCooldown())
    frames = [frame("c", t, [(1, True)] * n) for t, n in ((0, 3), (5, 3), (10, 4), (15, 1))]
    actions = run(processor, frames, {})
    assert summary(actions) == [("c", "start", 10), ("c", "end", 15)]
    assert [a["track_id"] for a in actions] == [None, None]
    assert [a["notify"] for a in actions] == [True, True]


def test_per_image_rules_are_untouched_by_state() -> None:
    plain = rule_from_obj({"rule_id": "plain", "condition": OFF, "cooldown_s": 0})
    processor = RuleProcessor(Registry(plain, OFF_30S), MemoryCooldown())
    actions = run(processor, camera_a()[:3], {})
    assert [(a["rule_id"], a.get("phase", "start")) for a in actions] == [("plain", "start")] * 3
    assert asyncio.run(processor.actions_for(camera_a()[0])) and not SourceState().active


def test_rules_test_steps_a_stateful_rule_over_json_events_in_order() -> None:
    from mugpos.rules.language import compile_sentence
    from mugpos.rules.manage import try_rule

    sentence = "alert when a mug has been off its coaster for more than 30 seconds"
    events = [  # as `mugpos rules test` reads them: JSON, ISO-8601 times
        {**ev, "captured_at": f"2026-06-01T10:00:{(ev['captured_at'] - T0) // 1000:02d}Z"} for ev in camera_a()[:10]
    ]
    results = try_rule(compile_sentence(sentence), events)
    assert [r["event"] for r in results if r["fires"]] == [7]  # 35 s after the first frame
    assert [e["phase"] for r in results for e in r["episodes"]] == ["start", "end"]  # back on at 45 s
