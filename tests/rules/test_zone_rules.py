"""``mug.zone.NAME``: true in the camera's zone, false outside it, unknown where the camera has none.

The cases pin the three-valued reading of the two ``zones`` lists (the mug's and the image's) for
rules that ask "in zone x" and "not in zone x", through the guard index and the full test alike,
for events from before zones and for overlapping zones; then the catalog and the decoder, the skip
and evidence output, Avro, and the changes and durations built on the field.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastavro import parse_schema

from mugpos.core.codec import codec
from mugpos.rules.actions import build_action, message_for
from mugpos.rules.engine import CompiledRule, RuleSet
from mugpos.rules.errors import RuleValidationError
from mugpos.rules.fields import FieldType, field_names, lookup_field, zone_field, zone_of
from mugpos.rules.language import compile_sentence
from mugpos.rules.manage import try_rule
from mugpos.rules.model import Rule, rule_from_obj
from tests.rules.conftest import mug, position

HISTORY = Path(__file__).resolve().parents[2] / "schemas" / "history"
MISSING = object()  # the key is not in the record at all (an event from before zones)

Json = dict[str, Any]


def zone(name: str, value: bool = True, op: str = "==") -> Json:
    return {"kind": "compare", "field": f"mug.zone.{name}", "op": op, "value": value}


def rule(rule_id: str, condition: Json, **extra: Any) -> Rule:
    return rule_from_obj({"rule_id": rule_id, "condition": condition, **extra})


IN_LAPTOP = rule("in-laptop", zone("laptop"))
OUT_LAPTOP = rule("out-laptop", zone("laptop", False))
# the same meaning as OUT_LAPTOP, written as JSON rules may: a negation, and "!= true"
NOT_IN_LAPTOP = rule("not-in-laptop", {"kind": "not", "children": [zone("laptop")]})
NE_LAPTOP = rule("ne-laptop", zone("laptop", True, "!="))
IN_DESK = rule("in-desk", zone("desk"))
ZONE_RULES = [IN_LAPTOP, OUT_LAPTOP, NOT_IN_LAPTOP, NE_LAPTOP, IN_DESK]


def event(mug_zones: Any, image_zones: Any, **fields: Any) -> dict[str, Any]:
    """One mug; ``MISSING`` leaves the key out, as events from before zones have it."""
    m = mug(0, **({} if mug_zones is MISSING else {"zones": mug_zones}))
    ev = position(m, **fields)
    if image_zones is not MISSING:
        ev["zones"] = image_zones
    return ev


def fired(rules: list[Rule], ev: dict[str, Any]) -> set[str]:
    evaluation = RuleSet(rules).evaluate(ev)
    assert evaluation.skips == ()
    return {m.rule.rule_id for m in evaluation.matches}


OUT = {"out-laptop", "not-in-laptop", "ne-laptop"}

# (case, the mug's zones, the image's zones, the rules that fire)
CASES: list[tuple[str, Any, Any, set[str]]] = [
    ("in zone", ["laptop"], ["laptop", "desk"], {"in-laptop"}),
    ("not in zone, in no zone at all", [], ["laptop", "desk"], OUT),
    ("not in zone, in another one", ["desk"], ["laptop", "desk"], OUT | {"in-desk"}),
    ("overlapping zones: in both", ["laptop", "desk"], ["laptop", "desk"], {"in-laptop", "in-desk"}),
    ("camera without that zone: unknown, neither fires", [], ["desk"], set()),
    ("camera without that zone, mug in another", ["desk"], ["desk"], {"in-desk"}),
    ("camera without any zone", [], [], set()),
    ("old event without either zones key", MISSING, MISSING, set()),
    ("old mug record on a camera with the zone: an empty list", MISSING, ["laptop"], OUT),
    ("image list missing, mug listed in the zone", ["laptop"], MISSING, {"in-laptop"}),
    ("null mug list: unknown", None, ["laptop", "desk"], set()),
    ("null image list, mug in no zone: unknown", [], None, set()),
    ("names are case-sensitive: Laptop is not laptop", ["Laptop"], ["Laptop"], set()),
    ("zones as a tuple (built in Python)", ("laptop",), ("laptop", "desk"), {"in-laptop"}),
]


@pytest.mark.parametrize(("mug_zones", "image_zones", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_zone_rules_fire_by_three_valued_membership(mug_zones: Any, image_zones: Any, expected: set[str]) -> None:
    ev = event(mug_zones, image_zones)
    assert fired(ZONE_RULES, ev) == expected
    # the guard index and the full closure agree, rule by rule
    for r in ZONE_RULES:
        assert (CompiledRule(r).match(ev) is not None) == (r.rule_id in expected), r.rule_id


@pytest.mark.parametrize(("mug_zones", "image_zones", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_the_field_value_read_for_evidence(mug_zones: Any, image_zones: Any, expected: set[str]) -> None:
    compiled = CompiledRule(IN_LAPTOP)
    ev = event(mug_zones, image_zones)
    value = compiled.evidence(ev, ev["mugs"][0], [])["mug.zone.laptop"]
    assert value == ("true" if "in-laptop" in expected else "false" if "out-laptop" in expected else "null")


def test_an_unknown_zone_is_neither_fired_nor_skipped() -> None:
    """A camera without the zone is not an error: the rule is judged unknown, so nothing is counted as a skip."""
    evaluation = RuleSet(ZONE_RULES).evaluate(event([], ["desk"]))
    assert evaluation.matches == () and evaluation.skips == ()
    assert try_rule(IN_LAPTOP, [event(MISSING, MISSING)]) == [
        {"event": 0, "image_id": "img-1", "rule_id": "in-laptop", "fires": False}
    ]


@pytest.mark.parametrize(
    ("mug_zones", "image_zones"),
    [("laptop", ["laptop"]), ({"laptop": 1}, ["laptop"]), (["laptop"], "laptop"), ([], {"laptop": True})],
    ids=["mug list is a string", "mug list is a map", "image list is a string", "image list is a map"],
)
def test_a_zones_list_of_the_wrong_type_skips_the_rule(mug_zones: Any, image_zones: Any) -> None:
    evaluation = RuleSet([IN_LAPTOP, OUT_LAPTOP]).evaluate(event(mug_zones, image_zones))
    assert evaluation.matches == ()
    assert sorted((s.rule.rule_id, s.reason, s.field) for s in evaluation.skips) == [
        ("in-laptop", "wrong_type", "mug.zone.laptop"),
        ("out-laptop", "wrong_type", "mug.zone.laptop"),
    ]
    results = try_rule(IN_LAPTOP, [event(mug_zones, image_zones)])
    assert results[0]["skipped"] == {"reason": "wrong_type", "field": "mug.zone.laptop"}


def test_the_witness_is_the_mug_in_the_zone_and_evidence_names_the_zone() -> None:
    ev = position(
        mug(0, zones=[]), mug(1, zones=["laptop"], on_coaster=False), mug(2, zones=["laptop", "desk"]), source="desk-1"
    )
    ev["zones"] = ["laptop", "desk"]
    (match,) = RuleSet([IN_LAPTOP]).evaluate(ev).matches
    assert match.mug_index == 1
    assert match.evidence == {"mug.index": "1", "mugs.matching": "1,2", "mug.zone.laptop": "true"}
    assert message_for(match, ev) == "in-laptop: mug 1 in desk-1 (image img-1): mug.zone.laptop=true"
    assert build_action(match, ev)["evidence"]["mug.zone.laptop"] == "true"
    (out,) = RuleSet([OUT_LAPTOP]).evaluate(ev).matches
    assert (out.mug_index, out.evidence["mug.zone.laptop"], out.evidence["mugs.matching"]) == (0, "false", "0")


def test_every_comparison_of_a_rule_is_about_the_same_mug() -> None:
    """ "a mug in zone laptop is off its coaster": one mug must be both, not one each."""
    both = compile_sentence("warn when a mug in zone laptop is off its coaster")
    ev = position(mug(0, zones=["laptop"], on_coaster=True), mug(1, zones=[], on_coaster=False))
    ev["zones"] = ["laptop"]
    assert fired([both], ev) == set()
    ev["mugs"][1]["zones"] = ["laptop"]
    assert fired([both], ev) == {both.rule_id}


def test_a_rule_about_a_zone_or_another_state_fires_on_the_other_where_the_zone_is_unknown() -> None:
    """Kleene "or": unknown or true is true; the evidence then shows the zone as null."""
    either = compile_sentence("alert when a mug is in zone laptop or it is not on a coaster")
    ev = event([], ["desk"])
    ev["mugs"][0]["on_coaster"] = False
    (match,) = RuleSet([either]).evaluate(ev).matches
    assert match.evidence["mug.zone.laptop"] == "null" and match.evidence["mug.on_coaster"] == "false"
    ev["mugs"][0]["on_coaster"] = True
    assert fired([either], ev) == set()


def test_many_zone_rules_share_the_index_and_agree_with_the_full_test() -> None:
    names = ["laptop", "desk", "keyboard", "Laptop", "2nd-shelf"]
    rules = [rule(f"{n}-{v}", zone(n, v)) for n in names for v in (True, False)]
    rules.append(rule("mixed", {"kind": "all", "children": [zone("desk", False), zone("laptop")]}))
    rules.append(
        rule("either", {"kind": "any", "children": [zone("keyboard"), {"kind": "not", "children": [zone("desk")]}]})
    )
    ruleset = RuleSet(rules)
    for mug_zones in ([], ["laptop"], ["desk", "laptop"], ["keyboard"], MISSING):
        for image_zones in ([], ["laptop", "desk"], ["keyboard", "2nd-shelf"], MISSING):
            ev = event(mug_zones, image_zones)
            indexed = {m.rule.rule_id for m in ruleset.evaluate(ev).matches}
            direct = {r.rule_id for r in rules if CompiledRule(r).match(ev) is not None}
            assert indexed == direct, (mug_zones, image_zones)


# -- the catalog and the decoder ----------------------------------------------------------------------


def test_the_zone_field_is_in_the_catalog() -> None:
    spec = lookup_field("mug.zone.laptop")
    assert spec is not None
    assert (spec.scope, spec.type, spec.operators, spec.key) == ("mug", FieldType.BOOL, ("==", "!="), "laptop")
    assert "mug.zone.NAME" in field_names()
    assert zone_field("desk-2") == "mug.zone.desk-2" and zone_of("mug.zone.desk-2") == "desk-2"
    assert zone_of("mug.on_coaster") is None


@pytest.mark.parametrize(
    "name",
    [
        "mug.zone.",
        "mug.zone.café",
        "mug.zone.a b",
        "mug.zone._x",
        "mug.zone.a.b",
        "mug.zone." + "a" * 65,
        "image.zone.x",
    ],
)
def test_no_field_for_a_name_that_is_not_a_zone_name(name: str) -> None:
    assert lookup_field(name) is None and zone_of(name) is None


@pytest.mark.parametrize(
    ("op", "value", "path", "words"),
    [
        ("in", ["laptop"], "condition.op", "does not fit boolean field mug.zone.laptop"),
        ("<", True, "condition.op", "use one of == !="),
        ("==", "yes", "condition.value", "is a boolean"),
        ("==", 1, "condition.value", "is a boolean"),
    ],
)
def test_the_decoder_takes_booleans_with_equality_only(op: str, value: Any, path: str, words: str) -> None:
    with pytest.raises(RuleValidationError) as info:
        rule("x", zone("laptop", value, op))
    assert info.value.path == path and words in str(info.value)
    assert rule("x", zone("laptop", False, "!=")).condition is not None


def test_the_decoder_names_a_bad_zone_name() -> None:
    with pytest.raises(RuleValidationError, match=r"names no zone: a zone name matches") as info:
        rule("x", {"kind": "compare", "field": "mug.zone.front door", "op": "==", "value": True})
    assert info.value.path == "condition.field"


# -- Avro: events written before and after zones -------------------------------------------------------


def test_a_zoned_event_survives_avro_and_fires() -> None:
    ev = event(["laptop"], ["laptop", "desk"], late=False)
    decoded = codec.decode(codec.encode("PositionEvent", ev), "PositionEvent")
    assert decoded["zones"] == ["laptop", "desk"] and decoded["mugs"][0]["zones"] == ["laptop"]
    assert fired(ZONE_RULES, decoded) == {"in-laptop"}


def test_an_event_written_before_zones_reads_as_unknown() -> None:
    old_schema = parse_schema(json.loads((HISTORY / "PositionEvent.2.avsc").read_text(encoding="utf-8")))
    old = event(MISSING, MISSING, late=False)
    old["mugs"][0]["track_id"] = None
    decoded = codec.decode(codec.encode("PositionEvent", old, old_schema), "PositionEvent")
    assert decoded["zones"] == [] and decoded["mugs"][0]["zones"] == []
    assert fired(ZONE_RULES, decoded) == set()


# -- changes and durations -------------------------------------------------------------------------------

T0 = 1_780_000_000_000


def frame(t_s: float, zones: list[str] | None, camera: list[str] | None = None) -> dict[str, Any]:
    """Track 1 at ``t_s``: in ``zones`` (None: the key is absent), on a camera with ``camera`` zones."""
    m: dict[str, Any] = {"index": 0, "track_id": 1, "on_coaster": True, "confidence": 0.9}
    if zones is not None:
        m["zones"] = zones
    ev: dict[str, Any] = {"image_id": f"f-{t_s:g}", "source": "desk-1", "captured_at": T0 + int(t_s * 1000)}
    ev.update(mug_count=1, mugs=[m], late=False)
    if camera is not None:
        ev["zones"] = camera
    return ev


def fires(sentence: str, frames: list[dict[str, Any]]) -> list[int]:
    """The frames at which the rule starts an episode or names a change."""
    return [r["event"] for r in try_rule(compile_sentence(sentence), frames) if r["fires"]]


CAM = ["laptop", "desk"]
# out, out, in, in, out, in: the mug enters at 2 and 5, leaves at 4
MOVES = [frame(t, z, CAM) for t, z in enumerate([[], [], ["laptop"], ["laptop"], [], ["laptop"]])]


@pytest.mark.parametrize(
    ("sentence", "frames", "expected"),
    [
        ("alert when a mug enters zone laptop with a cooldown of 0 seconds", MOVES, [2, 5]),
        ("alert when a mug leaves zone laptop with a cooldown of 0 seconds", MOVES, [4]),
        ("alert when a mug is put in zone laptop with a cooldown of 0 seconds", MOVES, [2, 5]),
        ("alert when a mug is no longer in zone laptop with a cooldown of 0 seconds", MOVES, [4]),
        ("alert when a mug enters zone desk", MOVES, []),
        # first seen inside: it has not entered
        ("alert when a mug enters zone laptop", [frame(t, ["laptop"], CAM) for t in range(3)], []),
        # a camera without the zone: never known, never entered nor left
        ("alert when a mug enters zone laptop", [frame(t, z, ["desk"]) for t, z in enumerate([[], ["desk"], []])], []),
        ("alert when a mug leaves zone laptop", [frame(t, [], ["desk"]) for t in range(3)], []),
        # frames from before zones between two known values: unknown, the last known value stands
        (
            "alert when a mug enters zone laptop",
            [frame(0, [], CAM), frame(1, None), frame(2, None), frame(3, ["laptop"], CAM)],
            [3],
        ),
        ("alert when a mug has been in zone laptop for at least 1 second", MOVES, [3]),
        ("alert when a mug has been in zone laptop for more than 1 second", MOVES, []),
        ("alert when a mug stays outside zone laptop for at least 2 frames", MOVES, [1]),
        ("alert when a mug appears in zone laptop", MOVES, []),
        ("alert when a mug appears in zone laptop", [frame(0, ["laptop"], CAM), frame(1, [], CAM)], [0]),
    ],
)
def test_changes_and_durations_of_zones(sentence: str, frames: list[dict[str, Any]], expected: list[int]) -> None:
    assert fires(sentence, frames) == expected


def test_an_entry_says_which_zone_in_its_evidence() -> None:
    results = try_rule(compile_sentence("alert when a mug enters zone laptop"), MOVES)
    (start,) = results[2]["episodes"]
    assert start["phase"] == "start" and start["track_id"] == 1
    assert start["evidence"]["mug.zone.laptop"] == "true"
