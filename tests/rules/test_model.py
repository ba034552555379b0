"""The rule decoder: every malformed rule is refused with a message naming the path; nothing else escapes."""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mugpos.core.codec import codec
from mugpos.rules.errors import RuleValidationError
from mugpos.rules.model import (
    AllOf,
    AnyOf,
    Compare,
    Not,
    check_webhook_url,
    host_allowed,
    rule_from_json,
    rule_from_obj,
    rule_from_record,
    rule_to_json,
    rule_to_record,
)

NOW = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


def compare(field: str = "mug.edge_distance_cm", op: str = "<=", value: Any = 5) -> dict[str, Any]:
    return {"kind": "compare", "field": field, "op": op, "value": value}


def rule(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"rule_id": "edge-5", "name": "near the edge", "condition": compare()}
    base.update(overrides)
    return base


def test_minimal_rule_gets_defaults() -> None:
    parsed = rule_from_obj({"condition": compare()}, now=NOW)
    assert parsed.rule_id.startswith("rule-")
    assert parsed.name == parsed.rule_id
    assert parsed.enabled and parsed.severity == "warning" and parsed.cooldown_s == 60
    assert parsed.action.type == "publish" and parsed.action.target is None
    assert parsed.sources == () and parsed.updated_at == NOW


def test_full_rule_round_trips_through_json_and_avro() -> None:
    obj = rule(
        enabled=False,
        text="warn when ...",
        sources=["kitchen-1", "hall"],
        condition={
            "kind": "all",
            "children": [
                compare(),
                {"kind": "not", "children": [compare("mug.on_coaster", "==", True)]},
                {
                    "kind": "any",
                    "children": [
                        compare("image.verdict", "in", ["warning", "violation"]),
                        compare("image.mug_count", ">", 2),
                    ],
                },
                compare("mug.attributes.colour", "!=", "red"),
                compare("mug.quality", "<", 40.5),
            ],
        },
        severity="critical",
        action={"type": "log"},
        cooldown_s=0,
        updated_at="2026-11-22T10:00:00.123Z",
    )
    parsed = rule_from_obj(obj)
    assert isinstance(parsed.condition, AllOf)
    assert isinstance(parsed.condition.children[1], Not)
    assert isinstance(parsed.condition.children[2], AnyOf)
    assert parsed.condition.children[2].children[0] == Compare("image.verdict", "in", ("warning", "violation"))
    assert rule_from_json(json.dumps(rule_to_json(parsed))) == parsed
    avro = codec.decode(codec.encode("RuleDefinition", rule_to_record(parsed)), "RuleDefinition")
    assert rule_from_record(avro) == parsed
    assert avro["condition"]["children"][0]["value"] == 5 and avro["condition"]["children"][4]["value"] == 40.5
    assert avro["condition"]["children"][1]["children"][0]["value"] is True  # a boolean, not the long 1


@pytest.mark.parametrize(
    ("data", "path", "words"),
    [
        ("{not json", "", "malformed JSON"),
        ("[1, 2]", "", "must be a JSON object"),
        ('{"condition": {"kind": "compare", "field": "mug.quality", "op": "<", "value": NaN}}', "", "NaN"),
        (json.dumps(rule(colour="red")), "", "unknown field(s) 'colour'"),
        (json.dumps(rule(condition={**compare(), "weight": 2})), "condition", "unknown field(s) 'weight'"),
        (json.dumps(rule(action={"type": "webhook", "url": "x"})), "action", "unknown field(s) 'url'"),
        (json.dumps({"rule_id": "x"}), "condition", "is required"),
        (json.dumps(rule(enabled="yes")), "enabled", "true or false"),
        (json.dumps(rule(cooldown_s="60")), "cooldown_s", "whole number"),
        (json.dumps(rule(cooldown_s=1.5)), "cooldown_s", "whole number"),
        (json.dumps(rule(cooldown_s=-1)), "cooldown_s", "between 0"),
        (json.dumps(rule(severity="urgent")), "severity", "info, warning, critical"),
        (json.dumps(rule(sources="kitchen")), "sources", "list"),
        (json.dumps(rule(sources=[""])), "sources[0]", "blank"),
        (json.dumps(rule(sources=[3])), "sources[0]", "string"),
        (json.dumps(rule(rule_id="has space")), "rule_id", "letters, digits"),
        (json.dumps(rule(rule_id="a:b")), "rule_id", "letters, digits"),
        (json.dumps(rule(name="")), "name", "blank"),
        (json.dumps(rule(name="two\nlines")), "name", "control"),
        (json.dumps(rule(updated_at="yesterday")), "updated_at", "ISO-8601"),
        (json.dumps(rule(condition=compare("mug.colour"))), "condition.field", "unknown field 'mug.colour'"),
        (json.dumps(rule(condition=compare(op="=~"))), "condition.op", "one of"),
        (json.dumps(rule(condition=compare(op="in", value=["1"]))), "condition.op", "does not fit number field"),
        (json.dumps(rule(condition=compare("mug.on_coaster", "<", True))), "condition.op", "does not fit boolean"),
        (json.dumps(rule(condition=compare("image.verdict", ">", "ok"))), "condition.op", "does not fit string"),
        (json.dumps(rule(condition=compare(value="5"))), "condition.value", "is a number"),
        (json.dumps(rule(condition=compare(value=True))), "condition.value", "is a number"),
        (json.dumps(rule(condition=compare(value=None))), "condition.value", "is required"),
        (json.dumps(rule(condition=compare(value=2**70))), "condition.value", "out of range"),
        (json.dumps(rule(condition=compare("mug.on_coaster", "==", 0))), "condition.value", "boolean"),
        (json.dumps(rule(condition=compare("image.verdict", "==", "bad"))), "condition.value", "one of ok"),
        (json.dumps(rule(condition=compare("image.verdict", "in", []))), "condition.value", "non-empty list"),
        (json.dumps(rule(condition=compare("image.source", "in", "a"))), "condition.value", "non-empty list"),
        (json.dumps(rule(condition=compare("image.source", "in", ["a", 1]))), "condition.value[1]", "string"),
        (json.dumps(rule(condition={"kind": "all", "children": []})), "condition.children", "1 to 64"),
        (
            json.dumps(rule(condition={"kind": "not", "children": [compare(), compare()]})),
            "condition.children",
            "exactly one",
        ),
        (
            json.dumps(rule(condition={"kind": "any", "children": [compare()], "op": "<"})),
            "condition.op",
            "only compare",
        ),
        (json.dumps(rule(condition={**compare(), "children": [compare()]})), "condition.children", "no children"),
        (json.dumps(rule(condition={"kind": "maybe"})), "condition.kind", "all, any, not or compare"),
        (json.dumps(rule(condition=[compare()])), "condition", "object"),
        (json.dumps(rule(action={"type": "email"})), "action.type", "publish, webhook, log"),
        (json.dumps(rule(action={"type": "webhook"})), "action.target", "needs the URL"),
        (json.dumps(rule(action={"type": "log", "target": "x"})), "action.target", "no target"),
        (json.dumps(rule(action={"type": "publish", "target": "bad topic"})), "action.target", "topic name"),
    ],
)
def test_bad_rules_are_refused_with_the_path(data: str, path: str, words: str) -> None:
    with pytest.raises(RuleValidationError) as info:
        rule_from_json(data, allowlist=("hooks.example.com",))
    assert info.value.path == path
    assert words in str(info.value)


def test_depth_and_size_bombs_are_refused() -> None:
    deep: dict[str, Any] = compare()
    for _ in range(40):
        deep = {"kind": "not", "children": [deep]}
    with pytest.raises(RuleValidationError, match="16 levels"):
        rule_from_obj(rule(condition=deep))
    with pytest.raises(RuleValidationError, match=r"nested too deeply|malformed"):
        rule_from_json("[" * 30_000 + "]" * 30_000)
    with pytest.raises(RuleValidationError, match="at most 65536"):
        rule_from_json(json.dumps(rule(text="x" * 70_000)))
    wide = {"kind": "any", "children": [{"kind": "all", "children": [compare()] * 60}] * 60}
    with pytest.raises(RuleValidationError, match="256 nodes"):
        rule_from_obj(rule(condition=wide))
    with pytest.raises(RuleValidationError, match="not UTF-8"):
        rule_from_json(b"\xff\xfe{}")


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://hooks.example.com/mugs", True),
        ("http://hooks.example.com:8080/x", True),
        ("https://HOOKS.example.com/x", True),
        ("https://evil.com/x", False),
        ("https://hooks.example.com.evil.com/x", False),
        ("https://a.team.example.org/x", True),
        ("https://team.example.org/x", False),
        ("http://127.0.0.1:9000/hook", True),
        ("http://127.0.0.1:9001/hook", False),
    ],
)
def test_webhook_allowlist(url: str, allowed: bool) -> None:
    allowlist = ("hooks.example.com", "*.team.example.org", "127.0.0.1:9000")
    if allowed:
        check_webhook_url(url, allowlist)
    else:
        with pytest.raises(RuleValidationError, match="not in the allowlist"):
            check_webhook_url(url, allowlist)


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("ftp://hooks.example.com/x", "http:// or https://"),
        ("https://user:pw@hooks.example.com/x", "credentials"),
        ("https:///nohost", "with a host"),
        ("https://hooks.example.com/a b", "not a usable URL"),
        ("http://[::1/x", "not a valid URL"),
        ("https://hooks.example.com:99999/x", "not a valid URL"),
    ],
)
def test_webhook_url_shapes(url: str, words: str) -> None:
    with pytest.raises(RuleValidationError, match=words):
        check_webhook_url(url, ("hooks.example.com",))


def test_webhook_rule_outside_the_allowlist_is_refused_but_accepted_without_one() -> None:
    obj = rule(action={"type": "webhook", "target": "https://evil.com/x"})
    with pytest.raises(RuleValidationError, match="not in the allowlist"):
        rule_from_obj(obj, allowlist=("hooks.example.com",))
    with pytest.raises(RuleValidationError, match="MUGPOS_WEBHOOK_ALLOWLIST"):
        rule_from_obj(obj, allowlist=())
    assert rule_from_obj(obj).action.target == "https://evil.com/x"  # workers re-check at send time


def test_host_allowed_ignores_trailing_dot_and_case() -> None:
    assert host_allowed("Hooks.Example.COM.", None, ("hooks.example.com",))
    assert not host_allowed("example.com", 443, ("*.example.com",))


def test_content_id_is_stable_and_ignores_name() -> None:
    a = rule_from_obj({"condition": compare(), "name": "a"})
    b = rule_from_obj({"condition": compare(), "name": "b", "text": "other"})
    c = rule_from_obj({"condition": compare(value=6)})
    assert a.rule_id == b.rule_id != c.rule_id


# -- fuzzing: only RuleValidationError may escape --------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)
FIELDS = ["mug.edge_distance_cm", "mug.on_coaster", "image.verdict", "image.source", "mug.attributes.colour", "x.y"]
OPS = ["==", "!=", "<", "<=", ">", ">=", "in", "~"]
nodes = st.recursive(
    st.fixed_dictionaries(
        {"kind": st.just("compare"), "field": st.sampled_from(FIELDS), "op": st.sampled_from(OPS), "value": json_values}
    ),
    lambda children: st.fixed_dictionaries(
        {"kind": st.sampled_from(["all", "any", "not", "compare", "xor"]), "children": st.lists(children, max_size=3)}
    ),
    max_leaves=8,
)
rules_like = st.fixed_dictionaries(
    {"condition": nodes},
    optional={
        "rule_id": json_values | st.text(alphabet="abc-_.:1 ", max_size=8),
        "name": json_values,
        "enabled": json_values,
        "text": json_values,
        "sources": json_values,
        "severity": st.sampled_from(["info", "warning", "critical", "x"]) | json_values,
        "action": st.fixed_dictionaries(
            {
                "type": st.sampled_from(["publish", "webhook", "log", 3]),
                "target": json_values | st.just("https://hooks.example.com/x"),
            }
        )
        | json_values,
        "cooldown_s": json_values,
        "updated_at": json_values,
    },
)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rules_like)
def test_fuzz_structured_rules(obj: dict[str, Any]) -> None:
    try:
        parsed = rule_from_json(json.dumps(obj), allowlist=("hooks.example.com",))
    except RuleValidationError as exc:
        assert str(exc)
        return
    assert rule_from_json(json.dumps(rule_to_json(parsed))) == parsed
    codec.encode("RuleDefinition", rule_to_record(parsed))  # anything accepted can go on the topic


@settings(max_examples=800, deadline=None)
@given(json_values)
def test_fuzz_any_json_value(value: Any) -> None:
    with contextlib.suppress(RuleValidationError):
        rule_from_json(json.dumps(value))


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=300))
def test_fuzz_bytes(data: bytes) -> None:
    with contextlib.suppress(RuleValidationError):
        rule_from_json(data)
