"""Evaluation semantics (any mug, unknown never fires, skips) and the index against a naive reference."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mugpos.core.codec import codec
from mugpos.rules.engine import MISSING_FIELD, WRONG_TYPE, RuleSet, guard_clauses
from mugpos.rules.fields import lookup_field
from mugpos.rules.language import compile_sentence
from mugpos.rules.model import AllOf, AnyOf, Compare, Condition, Not, Rule, rule_from_obj
from tests.rules.conftest import mug, position


def fires(sentence: str, event: dict[str, Any]) -> list[str]:
    rule = compile_sentence(sentence, rule_id="r")
    return [m.rule.rule_id for m in RuleSet([rule]).evaluate(event).matches]


def test_the_four_examples_fire_on_violations_and_not_on_compliant_scenes() -> None:
    good = position(mug(0), mug(1, nearest_mug_cm=30.0))
    cases = {
        "alert when a mug is not on a coaster": position(mug(0), mug(1, on_coaster=False)),
        "warn if any mug is within 5 cm of the table edge": position(mug(0), mug(1, edge_distance_cm=4.9)),
        "notify me when more than 3 mugs are on the table in camera kitchen-1": position(*(mug(i) for i in range(4))),
        "critical if a mug is closer than 2 cm to another mug": position(mug(0, nearest_mug_cm=1.5), mug(1)),
    }
    for sentence, bad in cases.items():
        assert fires(sentence, bad) == ["r"], sentence
        assert fires(sentence, good) == [], sentence


def test_scope_limits_rules_to_their_sources() -> None:
    sentence = "notify me when more than 3 mugs are on the table in camera kitchen-1"
    four = [mug(i) for i in range(4)]
    assert fires(sentence, position(*four, source="kitchen-1")) == ["r"]
    assert fires(sentence, position(*four, source="hall")) == []


def test_null_and_nan_never_fire_even_under_not() -> None:
    unknown = position(mug(0, on_coaster=None, edge_distance_cm=None, nearest_mug_cm=math.nan))
    for sentence in (
        "alert when a mug is not on a coaster",
        "alert when a mug is on a coaster",
        "alert when a mug is not within 5 cm of the edge",
        "alert when a mug is within 5 cm of the edge",
        "alert when a mug is closer than 2 cm to another mug",
        "alert when a mug is not closer than 2 cm to another mug",
    ):
        assert fires(sentence, unknown) == [], sentence
    # an explicit not over an unknown comparison is unknown, not true
    rule = rule_from_obj(
        {
            "rule_id": "n",
            "condition": {
                "kind": "not",
                "children": [{"kind": "compare", "field": "mug.on_coaster", "op": "==", "value": True}],
            },
        }
    )
    assert RuleSet([rule]).evaluate(unknown).matches == ()
    # any(unknown, true) is true; all(unknown, true) is unknown
    either = compile_sentence("alert when a mug is not on a coaster or over the edge", rule_id="e")
    both = compile_sentence("alert when a mug is not on a coaster and over the edge", rule_id="b")
    over = position(mug(0, on_coaster=None, edge_distance_px=-3.0))
    assert [m.rule.rule_id for m in RuleSet([either, both]).evaluate(over).matches] == ["e"]


def test_mug_conditions_talk_about_one_mug_and_the_first_witness_is_reported() -> None:
    sentence = "alert when a mug is not on a coaster and within 5 cm of the edge"
    split = position(mug(0, on_coaster=False), mug(1, edge_distance_cm=2.0))
    assert fires(sentence, split) == []
    same = position(
        mug(0), mug(1, on_coaster=False, edge_distance_cm=2.0), mug(2, on_coaster=False, edge_distance_cm=1.0)
    )
    rule = compile_sentence(sentence)
    (match,) = RuleSet([rule]).evaluate(same).matches
    assert match.mug_index == 1
    assert match.evidence == {
        "mug.index": "1",
        "mugs.matching": "1,2",
        "mug.on_coaster": "false",
        "mug.edge_distance_cm": "2",
    }


def test_evidence_formats_float32_noise_and_image_fields() -> None:
    event = position(mug(0, edge_distance_cm=3.0999999046325684), verdict="violation")
    rule = compile_sentence("alert when a mug is within 5 cm of the edge and the verdict is violation")
    (match,) = RuleSet([rule]).evaluate(event).matches
    assert match.evidence["mug.edge_distance_cm"] == "3.1"
    assert match.evidence["image.verdict"] == "violation"


def test_image_only_rules_have_no_witness_mug() -> None:
    rule = compile_sentence("alert when there are no coasters")
    (match,) = RuleSet([rule]).evaluate(position(mug(0, on_coaster=False))).matches
    assert match.mug_index is None
    assert match.evidence == {"image.coaster_count": "0"}


def test_no_mugs_means_no_mug_rule_fires() -> None:
    assert fires("alert when a mug is not on a coaster", position()) == []
    assert fires("alert when there are no mugs", position()) == ["r"]


def test_disabled_rules_are_not_evaluated_unless_asked() -> None:
    rule = compile_sentence("alert when there are no mugs", enabled=False)
    assert RuleSet([rule]).evaluate(position()).matches == ()
    assert len(RuleSet([rule], include_disabled=True).evaluate(position()).matches) == 1


def test_map_fields_missing_keys_are_unknown_not_errors() -> None:
    rule = rule_from_obj(
        {
            "rule_id": "room",
            "condition": {"kind": "compare", "field": "image.metadata.room", "op": "in", "value": ["kitchen", "lab"]},
        }
    )
    assert RuleSet([rule]).evaluate(position(metadata={"room": "lab"})).matches
    evaluation = RuleSet([rule]).evaluate(position(metadata={}))
    assert evaluation.matches == () and evaluation.skips == ()
    red = compile_sentence("alert when a red mug is on a coaster")
    assert RuleSet([red]).evaluate(position(mug(0, attributes={}))).matches == ()


def test_missing_and_wrong_typed_fields_skip_only_the_rules_that_read_them() -> None:
    coaster = compile_sentence("alert when a mug is not on a coaster", rule_id="coaster")
    count = compile_sentence("alert when there are more than 1 mugs", rule_id="count")
    ruleset = RuleSet([coaster, count])
    missing = position(mug(0), mug(1))
    del missing["mugs"][1]["on_coaster"]
    evaluation = ruleset.evaluate(missing)
    assert [m.rule.rule_id for m in evaluation.matches] == ["count"]
    assert [(s.rule.rule_id, s.reason, s.field) for s in evaluation.skips] == [
        ("coaster", MISSING_FIELD, "mug.on_coaster")
    ]
    wrong = position(mug(0, on_coaster="no"), mug_count="2")
    evaluation = ruleset.evaluate(wrong)
    assert evaluation.matches == ()
    assert sorted((s.rule.rule_id, s.reason) for s in evaluation.skips) == [
        ("coaster", WRONG_TYPE),
        ("count", WRONG_TYPE),
    ]
    broken: Any
    for broken in ({"image_id": "x"}, {"mugs": "nope", "source": "a"}, {"mugs": [None]}, {"mugs": [1, 2]}, []):
        result = ruleset.evaluate(broken)
        assert result.matches == () and len(result.skips) >= 1


def test_bools_are_not_numbers() -> None:
    rule = compile_sentence("alert when a mug is within 5 cm of the edge")
    skips = RuleSet([rule]).evaluate(position(mug(0, edge_distance_cm=True))).skips
    assert [s.reason for s in skips] == [WRONG_TYPE]


def test_evaluates_avro_decoded_events() -> None:
    event = position(mug(0, on_coaster=False, edge_distance_cm=3.25), mug(1))
    decoded = codec.decode(codec.encode("PositionEvent", event), "PositionEvent")
    rules = [
        compile_sentence(s)
        for s in ("alert when a mug is not on a coaster", "warn if a mug is within 5 cm of the edge")
    ]
    assert len(RuleSet(rules).evaluate(decoded).matches) == 2


def test_guard_clauses_are_necessary_conditions() -> None:
    cond = compile_sentence("alert when a red mug has quality below 30 and is not on a coaster").condition
    clauses = guard_clauses(cond)
    assert len(clauses) == 3
    negated = guard_clauses(Not(AnyOf((Compare("mug.quality", "<", 3), Compare("image.mug_count", ">", 2)))))
    assert [[(a.field, a.op, a.value) for a in c] for c in negated] == [
        [("mug.quality", ">=", 3)],
        [("image.mug_count", "<=", 2)],
    ]
    assert guard_clauses(Not(Compare("image.source", "in", ("a",)))) == []


# -- the index agrees with a naive evaluator -------------------------------------------------------


def reference(rules: list[Rule], event: dict[str, Any]) -> set[str]:
    """Direct three-valued evaluation, one rule and one mug at a time (no guards, no grouping)."""

    def value(field: str, m: dict[str, Any]) -> Any:
        spec = lookup_field(field)
        assert spec is not None
        holder = m if spec.scope == "mug" else event
        v = holder[spec.attr]
        if spec.key is not None:
            v = v.get(spec.key)
        return None if v is None or (isinstance(v, float) and math.isnan(v)) else v

    def ev(node: Condition, m: dict[str, Any]) -> bool | None:
        if isinstance(node, Compare):
            v = value(node.field, m)
            if v is None:
                return None
            return {
                "==": lambda: v == node.value,
                "!=": lambda: v != node.value,
                "<": lambda: v < node.value,
                "<=": lambda: v <= node.value,
                ">": lambda: v > node.value,
                ">=": lambda: v >= node.value,
                "in": lambda: isinstance(node.value, tuple) and v in node.value,
            }[node.op]()
        if isinstance(node, Not):
            r = ev(node.child, m)
            return None if r is None else not r
        results = [ev(c, m) for c in node.children]
        if isinstance(node, AllOf):
            return False if False in results else (None if None in results else True)
        return True if True in results else (None if None in results else False)

    fired = set()
    for rule in rules:
        if not rule.enabled or (rule.sources and event["source"] not in rule.sources):
            continue
        uses_mugs = "mug." in repr(rule.condition)
        candidates = event["mugs"] if uses_mugs else [{}]
        if any(ev(rule.condition, m) is True for m in candidates):
            fired.add(rule.rule_id)
    return fired


def maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.none() | strategy


small = st.sampled_from([-1.0, 0.0, 0.5, 2.0, 4.999, 5.0, 5.0001, 20.0, math.nan, 3])
mugs = st.builds(
    lambda i, on, edge, near, q, colour: mug(
        i,
        on_coaster=on,
        edge_distance_cm=edge,
        edge_distance_px=edge,
        nearest_mug_cm=near,
        quality=q,
        attributes=colour,
    ),
    st.integers(0, 5),
    maybe(st.booleans()),
    maybe(small),
    maybe(small),
    small,
    st.sampled_from([{}, {"colour": "red"}, {"colour": "white"}]),
)
events = st.builds(
    lambda ms, src, verdict, n: position(*ms, source=src, verdict=verdict, coaster_count=n),
    st.lists(mugs, max_size=4),
    st.sampled_from(["a", "b", "c"]),
    st.sampled_from(["ok", "warning", "violation"]),
    st.integers(0, 3),
)
leaves = st.one_of(
    st.builds(
        Compare,
        st.sampled_from(["mug.edge_distance_cm", "mug.nearest_mug_cm", "mug.quality", "mug.edge_distance_px"]),
        st.sampled_from(["==", "!=", "<", "<=", ">", ">="]),
        st.sampled_from([0, 0.5, 2, 5, 5.0, 20]),
    ),
    st.builds(Compare, st.just("mug.on_coaster"), st.sampled_from(["==", "!="]), st.booleans()),
    st.builds(Compare, st.just("image.verdict"), st.sampled_from(["==", "!="]), st.sampled_from(["ok", "violation"])),
    st.builds(Compare, st.just("image.verdict"), st.just("in"), st.sampled_from([("ok",), ("warning", "violation")])),
    st.builds(
        Compare, st.just("mug.attributes.colour"), st.sampled_from(["==", "!=", "in"]).map(lambda o: o), st.just("red")
    ).map(lambda c: Compare(c.field, c.op, ("red",) if c.op == "in" else c.value)),
    st.builds(Compare, st.just("image.coaster_count"), st.sampled_from(["<", ">=", "=="]), st.integers(0, 3)),
)
conditions = st.recursive(
    leaves,
    lambda kids: (
        st.builds(AllOf, st.lists(kids, min_size=1, max_size=3).map(tuple))
        | st.builds(AnyOf, st.lists(kids, min_size=1, max_size=3).map(tuple))
        | st.builds(Not, kids)
    ),
    max_leaves=6,
)
rule_lists = st.lists(
    st.builds(
        lambda c, src, on: Rule(rule_id="x", name="x", condition=c, sources=src, enabled=on),
        conditions,
        st.sampled_from([(), ("a",), ("b", "c")]),
        st.booleans() | st.just(True),
    ),
    min_size=1,
    max_size=12,
).map(lambda rs: [Rule(f"r{i}", r.name, r.condition, r.enabled, None, r.sources) for i, r in enumerate(rs)])


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(rule_lists, st.lists(events, min_size=1, max_size=5))
def test_indexed_evaluation_matches_the_naive_reference(rules: list[Rule], batch: list[dict[str, Any]]) -> None:
    ruleset = RuleSet(rules)
    for event in batch:
        evaluation = ruleset.evaluate(event)
        assert evaluation.skips == ()
        assert {m.rule.rule_id for m in evaluation.matches} == reference(rules, event)
        for match in evaluation.matches:  # the witness really satisfies the rule on its own
            assert match.evidence
            if match.mug_index is not None:
                assert str(match.mug_index) in match.evidence["mugs.matching"].split(",")


@pytest.mark.parametrize("count", [1, 100])
def test_rule_ids_come_out_in_a_stable_order(count: int) -> None:
    rules = [
        compile_sentence(f"alert when a mug is within {i + 1} cm of the edge", rule_id=f"r{i:03d}")
        for i in range(count)
    ]
    out = RuleSet(rules).evaluate(position(mug(0, edge_distance_cm=0.5))).matches
    assert [m.rule.rule_id for m in out] == sorted(r.rule_id for r in rules)


junk = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda kids: (
        st.lists(kids, max_size=3)
        | st.dictionaries(st.sampled_from(["index", "on_coaster", "edge_distance_cm", "colour", "x"]), kids, max_size=3)
    ),
    max_leaves=10,
)
junk_events = st.fixed_dictionaries(
    {},
    optional={
        "source": st.sampled_from(["a", "b"]) | junk,
        "image_id": junk,
        "mugs": st.lists(
            st.dictionaries(
                st.sampled_from(["index", "on_coaster", "edge_distance_cm", "nearest_mug_cm", "attributes", "quality"]),
                junk,
                max_size=6,
            ),
            max_size=3,
        )
        | junk,
        "mug_count": junk,
        "verdict": junk,
        "coaster_count": junk,
        "metadata": junk,
    },
)
FUZZ_RULES = [
    compile_sentence(s, rule_id=f"f{i}", sources=src)
    for i, (s, src) in enumerate(
        [
            ("alert when a mug is not on a coaster", []),
            ("warn if any mug is within 5 cm of the table edge", ["a"]),
            ("notify me when more than 3 mugs are on the table", []),
            ("alert when a red mug has quality below 40 or the verdict is not ok", []),
            ("alert when a mug is closer than 2 cm to another mug and there are no coasters", ["b"]),
        ]
    )
]


@settings(max_examples=800, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(junk_events)
def test_fuzz_evaluation_of_malformed_events_never_raises(event: dict[str, Any]) -> None:
    evaluation = RuleSet(FUZZ_RULES).evaluate(event)
    for match in evaluation.matches:  # the lazy witness and evidence must not raise either
        assert all(isinstance(v, str) for v in match.evidence.values())
        assert match.mug_index is None or "mugs.matching" in match.evidence
    assert all(s.reason in (MISSING_FIELD, WRONG_TYPE) for s in evaluation.skips)
