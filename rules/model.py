"""Rules as immutable values, and the one strict decoder every stored rule goes through.

A rule arrives as JSON (``mugpos rules add --file``), as an Avro ``RuleDefinition`` record (the
rules topic) or from the sentence compiler; all three meet in :func:`rule_from_obj`, so a rule that
the CLI would refuse can never be evaluated either. The decoder rejects unknown keys, wrong types,
operators that do not fit a field's type and values that do not fit the field, each with a message
that names the JSON path. Only :class:`~rules.errors.RuleValidationError` escapes it.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, TypeAlias, cast
from urllib.parse import urlsplit

from mugpos.core.cameras import ZONE_NAME
from mugpos.core.redact import redact_webhook
from mugpos.rules.errors import RuleValidationError
from mugpos.rules.fields import ALL_OPERATORS, ZONE_PREFIX, FieldType, field_names, lookup_field

Severity = Literal["info", "warning", "critical"]
ActionType = Literal["publish", "webhook", "log"]
SEVERITIES: tuple[Severity, ...] = ("info", "warning", "critical")
ACTION_TYPES: tuple[ActionType, ...] = ("publish", "webhook", "log")

Scalar: TypeAlias = bool | int | float | str
Value: TypeAlias = Scalar | tuple[str, ...]

# Limits: a rule is small; anything far beyond these is a mistake or an attack, never a use case.
MAX_JSON_BYTES = 64 * 1024
MAX_DEPTH = 16
MAX_NODES = 256
MAX_CHILDREN = 64
MAX_IN_ITEMS = 100
MAX_STRING_CHARS = 200
MAX_TEXT_CHARS = 500
MAX_SOURCES = 64
MAX_COOLDOWN_S = 7 * 24 * 3600
MAX_URL_CHARS = 2048
RULE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")  # no ':' (the action id separator)
TOPIC_NAME = re.compile(r"[A-Za-z0-9._-]{1,249}")
INT64 = 2**63


@dataclass(frozen=True, slots=True)
class Compare:
    """Leaf: ``field op value``; false (unknown) when the field's value is null."""

    field: str
    op: str
    value: Value


@dataclass(frozen=True, slots=True)
class AllOf:
    """True when every child is true."""

    children: tuple[Condition, ...]


@dataclass(frozen=True, slots=True)
class AnyOf:
    """True when some child is true."""

    children: tuple[Condition, ...]


@dataclass(frozen=True, slots=True)
class Not:
    """Negation; ``not unknown`` stays unknown, so a null never makes a rule fire."""

    child: Condition


Condition: TypeAlias = Compare | AllOf | AnyOf | Not


@dataclass(frozen=True, slots=True)
class Action:
    """What happens when a rule fires (besides the ActionEvent on the actions topic)."""

    type: ActionType = "publish"
    target: str | None = None


TemporalKind = Literal["lasts", "becomes", "appears", "disappears"]
TEMPORAL_KINDS: tuple[TemporalKind, ...] = ("lasts", "becomes", "appears", "disappears")
MAX_FOR_S = 7 * 24 * 3600.0
MAX_FOR_FRAMES = 1_000_000


@dataclass(frozen=True, slots=True)
class Temporal:
    """What makes a rule *stateful*: it judges a camera's frames in event-time order, not one image.

    ``lasts``: the condition has held without a break for ``for_s`` seconds of capture time (longer,
    when ``strict``) and/or ``for_frames`` consecutive frames; 0 and None mean "from the first frame".
    ``becomes``: the condition is true now and was false (known) in the mug's previous frame, e.g.
    "put on a coaster". ``appears``/``disappears``: a tracked mug that meets the condition is seen for
    the first time / is no longer seen. ``resolve``: deliver the end of each episode too, not only
    record it on the actions topic.
    """

    kind: TemporalKind = "lasts"
    for_s: float | None = None
    strict: bool = False
    for_frames: int | None = None
    resolve: bool = False


@dataclass(frozen=True, slots=True)
class Rule:
    """A validated rule. Build it with :func:`rule_from_obj` or the sentence compiler, not by hand."""

    rule_id: str
    name: str
    condition: Condition
    enabled: bool = True
    text: str | None = None
    sources: tuple[str, ...] = ()
    severity: Severity = "warning"
    action: Action = field(default_factory=Action)
    cooldown_s: int = 60
    updated_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    temporal: Temporal | None = None

    @property
    def stateful(self) -> bool:
        """True when the rule judges sequences of frames (durations, transitions, resolution)."""
        return self.temporal is not None


# -- encoding ------------------------------------------------------------------------------------


def condition_to_obj(node: Condition) -> dict[str, Any]:
    """Avro-shaped condition node (``kind``/``children``/``field``/``op``/``value``)."""
    if isinstance(node, Compare):
        value = list(node.value) if isinstance(node.value, tuple) else node.value
        return {"kind": "compare", "children": [], "field": node.field, "op": node.op, "value": value}
    if isinstance(node, Not):
        return {"kind": "not", "children": [condition_to_obj(node.child)], "field": None, "op": None, "value": None}
    kind = "all" if isinstance(node, AllOf) else "any"
    return {
        "kind": kind,
        "children": [condition_to_obj(c) for c in node.children],
        "field": None,
        "op": None,
        "value": None,
    }


def rule_to_record(rule: Rule) -> dict[str, Any]:
    """The Avro ``RuleDefinition`` record of a rule (what goes on the rules topic)."""
    return {
        "rule_id": rule.rule_id,
        "name": rule.name,
        "enabled": rule.enabled,
        "text": rule.text,
        "sources": list(rule.sources),
        "condition": condition_to_obj(rule.condition),
        "severity": rule.severity,
        "action": {"type": rule.action.type, "target": rule.action.target},
        "cooldown_s": rule.cooldown_s,
        "updated_at": rule.updated_at,
        "temporal": temporal_to_obj(rule.temporal),
    }


def temporal_to_obj(temporal: Temporal | None) -> dict[str, Any] | None:
    """Avro/JSON form of a rule's temporal clause (None for a rule about single images)."""
    if temporal is None:
        return None
    return {
        "kind": temporal.kind,
        "for_s": temporal.for_s,
        "strict": temporal.strict,
        "for_frames": temporal.for_frames,
        "resolve": temporal.resolve,
    }


def rule_to_json(rule: Rule) -> dict[str, Any]:
    """JSON form of a rule; :func:`rule_from_json` reads it back unchanged (``rules add --file``)."""
    record = rule_to_record(rule)
    record["condition"] = _compact(record["condition"])
    if record["temporal"] is None:
        del record["temporal"]  # the JSON of a rule about single images reads as before
    record["updated_at"] = rule.updated_at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return record


def rule_to_public_json(rule: Rule) -> dict[str, Any]:
    """:func:`rule_to_json` for reading over HTTP: a webhook's URL (the receiver's secret) redacted."""
    record = rule_to_json(rule)
    action = record.get("action") or {}
    if action.get("type") == "webhook" and action.get("target"):
        record["action"] = {**action, "target": redact_webhook(str(action["target"]))}
    return record


def _compact(node: dict[str, Any]) -> dict[str, Any]:
    """Drop the Avro defaults that do not apply to a node kind, for readable JSON."""
    if node["kind"] == "compare":
        return {"kind": "compare", "field": node["field"], "op": node["op"], "value": node["value"]}
    return {"kind": node["kind"], "children": [_compact(c) for c in node["children"]]}


def describe(node: Condition) -> str:
    """One-line infix form of a condition, for listings and messages."""
    if isinstance(node, Compare):
        return f"{node.field} {node.op} {_show(node.value)}"
    if isinstance(node, Not):
        return f"not ({describe(node.child)})"
    joiner = " and " if isinstance(node, AllOf) else " or "
    parts = [describe(c) if isinstance(c, Compare | Not) else f"({describe(c)})" for c in node.children]
    return joiner.join(parts)


def _show(value: Value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return "[" + ", ".join(json.dumps(v) for v in value) + "]"
    if isinstance(value, str):
        return json.dumps(value)
    return repr(value)


def describe_temporal(temporal: Temporal | None) -> str:
    """Infix form of a temporal clause (empty for rules about single images), after :func:`describe`."""
    if temporal is None:
        return ""
    parts: list[str] = [temporal.kind]
    if temporal.for_s:
        parts.append(f"for {'>' if temporal.strict else '>='} {temporal.for_s:g} s")
    if temporal.for_frames:
        parts.append(f"for >= {temporal.for_frames} frames")
    if temporal.resolve:
        parts.append("until resolved")
    return " ".join(parts)


def content_id(rule_fields: Mapping[str, Any]) -> str:
    """Deterministic id from what a rule does, so adding the same rule twice upserts one rule."""
    keys = ("condition", "sources", "severity", "action", "temporal")
    basis = {k: rule_fields.get(k) for k in keys if k != "temporal" or rule_fields.get(k) is not None}
    digest = hashlib.sha256(json.dumps(basis, sort_keys=True, default=str).encode()).hexdigest()
    return f"rule-{digest[:10]}"


# -- decoding ------------------------------------------------------------------------------------

_RULE_KEYS = frozenset(
    {
        "rule_id",
        "name",
        "enabled",
        "text",
        "sources",
        "condition",
        "severity",
        "action",
        "cooldown_s",
        "updated_at",
        "temporal",
    }
)
_TEMPORAL_KEYS = frozenset({"kind", "for_s", "strict", "for_frames", "resolve"})
_NODE_KEYS = frozenset({"kind", "children", "field", "op", "value"})
_ACTION_KEYS = frozenset({"type", "target"})


def rule_from_json(data: str | bytes, *, allowlist: tuple[str, ...] | None = None) -> Rule:
    """Parse and validate a JSON rule. ``allowlist`` (webhook hosts) is checked when given."""
    if isinstance(data, bytes):
        if len(data) > MAX_JSON_BYTES:
            raise RuleValidationError("", f"rule JSON is {len(data)} bytes; at most {MAX_JSON_BYTES}")
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise RuleValidationError("", f"rule JSON is not UTF-8: {exc}") from None
    if len(data) > MAX_JSON_BYTES:
        raise RuleValidationError("", f"rule JSON is {len(data)} characters; at most {MAX_JSON_BYTES}")
    try:
        obj = json.loads(data, parse_constant=_reject_constant)
    except RecursionError:
        raise RuleValidationError("", "rule JSON is nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, and our NaN/Infinity refusal
        raise RuleValidationError("", f"malformed JSON: {exc}") from None
    return rule_from_obj(obj, allowlist=allowlist)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def rule_from_record(record: Mapping[str, Any], *, allowlist: tuple[str, ...] | None = None) -> Rule:
    """Validate an Avro-decoded ``RuleDefinition`` (the rules topic may hold anything anyone produced)."""
    return rule_from_obj(record, allowlist=allowlist)


def rule_from_obj(obj: Any, *, allowlist: tuple[str, ...] | None = None, now: datetime | None = None) -> Rule:
    """Validate a rule given as plain data; fills defaults; derives ``rule_id`` and ``name`` when absent."""
    if not isinstance(obj, Mapping):
        raise RuleValidationError("", f"a rule must be a JSON object, got {_type(obj)}")
    _no_unknown(obj, _RULE_KEYS, "")
    if "condition" not in obj:
        raise RuleValidationError("condition", "is required")
    counter = [0]
    condition = _condition(obj["condition"], "condition", 0, counter)
    enabled = _opt(obj, "enabled", True)
    if not isinstance(enabled, bool):
        raise RuleValidationError("enabled", f"must be true or false, got {_type(enabled)}")
    text = _opt(obj, "text", None)
    if text is not None:
        text = _string(text, "text", MAX_TEXT_CHARS)
    sources = _sources(_opt(obj, "sources", []))
    severity = _opt(obj, "severity", "warning")
    if severity not in SEVERITIES:
        raise RuleValidationError("severity", f"must be one of {', '.join(SEVERITIES)}, got {_brief(severity)}")
    action = _action(_opt(obj, "action", {"type": "publish", "target": None}), allowlist)
    cooldown = _opt(obj, "cooldown_s", 60)
    if isinstance(cooldown, bool) or not isinstance(cooldown, int):
        raise RuleValidationError("cooldown_s", f"must be a whole number of seconds, got {_type(cooldown)}")
    if not 0 <= cooldown <= MAX_COOLDOWN_S:
        raise RuleValidationError("cooldown_s", f"must be between 0 and {MAX_COOLDOWN_S}, got {cooldown}")
    updated_at = _timestamp(_opt(obj, "updated_at", None), now)
    temporal = _temporal(obj.get("temporal"))
    rule_id = _opt(obj, "rule_id", None)
    canonical = {
        "condition": condition_to_obj(condition),
        "sources": list(sources),
        "severity": severity,
        "action": {"type": action.type, "target": action.target},
        "temporal": temporal_to_obj(temporal),
    }
    if rule_id is None:
        rule_id = content_id(canonical)
    elif not isinstance(rule_id, str) or not RULE_ID.fullmatch(rule_id):
        raise RuleValidationError(
            "rule_id", f"must be 1-128 letters, digits, '.', '_' or '-' (starting alphanumeric), got {_brief(rule_id)}"
        )
    name = _opt(obj, "name", None)
    name = _string(name, "name", MAX_STRING_CHARS, single_line=True) if name is not None else (text or rule_id)[:120]
    if not name.strip():
        raise RuleValidationError("name", "must not be blank")
    return Rule(
        rule_id=rule_id,
        name=name,
        condition=condition,
        enabled=enabled,
        text=text,
        sources=sources,
        severity=cast(Severity, severity),
        action=action,
        cooldown_s=cooldown,
        updated_at=updated_at,
        temporal=temporal,
    )


def _temporal(obj: Any) -> Temporal | None:
    if obj is None:
        return None
    if not isinstance(obj, Mapping):
        raise RuleValidationError("temporal", f"must be an object or null, got {_type(obj)}")
    _no_unknown(obj, _TEMPORAL_KEYS, "temporal")
    kind = _opt(obj, "kind", "lasts")
    if kind not in TEMPORAL_KINDS:
        raise RuleValidationError("temporal.kind", f"must be one of {', '.join(TEMPORAL_KINDS)}, got {_brief(kind)}")
    for_s = obj.get("for_s")
    if for_s is not None:
        if isinstance(for_s, bool) or not isinstance(for_s, int | float) or not math.isfinite(for_s):
            raise RuleValidationError("temporal.for_s", f"must be a number of seconds, got {_type(for_s)}")
        if not 0 <= for_s <= MAX_FOR_S:
            raise RuleValidationError("temporal.for_s", f"must be between 0 and {MAX_FOR_S:g} seconds, got {for_s}")
        for_s = float(for_s)
    for_frames = obj.get("for_frames")
    if for_frames is not None:
        if isinstance(for_frames, bool) or not isinstance(for_frames, int):
            raise RuleValidationError(
                "temporal.for_frames", f"must be a whole number of frames, got {_type(for_frames)}"
            )
        if not 1 <= for_frames <= MAX_FOR_FRAMES:
            raise RuleValidationError(
                "temporal.for_frames", f"must be between 1 and {MAX_FOR_FRAMES}, got {for_frames}"
            )
    strict, resolve = _opt(obj, "strict", False), _opt(obj, "resolve", False)
    for key, value in (("strict", strict), ("resolve", resolve)):
        if not isinstance(value, bool):
            raise RuleValidationError(f"temporal.{key}", f"must be true or false, got {_type(value)}")
    if kind != "lasts" and (for_s or for_frames):
        raise RuleValidationError("temporal", f"a duration belongs to 'lasts', not to {kind!r}")
    if kind != "lasts" and resolve:
        raise RuleValidationError("temporal.resolve", f"{kind!r} is a moment, it has no end to report")
    return Temporal(cast(TemporalKind, kind), for_s, strict, for_frames, resolve)


def _condition(node: Any, path: str, depth: int, counter: list[int]) -> Condition:
    if depth > MAX_DEPTH:
        raise RuleValidationError(path, f"conditions nest at most {MAX_DEPTH} levels deep")
    counter[0] += 1
    if counter[0] > MAX_NODES:
        raise RuleValidationError(path, f"a condition has at most {MAX_NODES} nodes")
    if not isinstance(node, Mapping):
        raise RuleValidationError(path, f"must be an object with a 'kind', got {_type(node)}")
    _no_unknown(node, _NODE_KEYS, path)
    kind = node.get("kind")
    children = _opt(node, "children", [])
    if not isinstance(children, list):
        raise RuleValidationError(f"{path}.children", f"must be a list, got {_type(children)}")
    if kind == "compare":
        if children:
            raise RuleValidationError(f"{path}.children", "a compare node has no children")
        return _compare(node, path)
    if kind not in ("all", "any", "not"):
        raise RuleValidationError(f"{path}.kind", f"must be all, any, not or compare, got {_brief(kind)}")
    for key in ("field", "op", "value"):
        if node.get(key) is not None:
            raise RuleValidationError(f"{path}.{key}", f"only compare nodes have a {key}; this is a {kind!r} node")
    if kind == "not":
        if len(children) != 1:
            raise RuleValidationError(f"{path}.children", f"'not' takes exactly one child, got {len(children)}")
        return Not(_condition(children[0], f"{path}.children[0]", depth + 1, counter))
    if not 1 <= len(children) <= MAX_CHILDREN:
        raise RuleValidationError(
            f"{path}.children", f"{kind!r} takes 1 to {MAX_CHILDREN} children, got {len(children)}"
        )
    parsed = tuple(_condition(c, f"{path}.children[{i}]", depth + 1, counter) for i, c in enumerate(children))
    return AllOf(parsed) if kind == "all" else AnyOf(parsed)


def _compare(node: Mapping[str, Any], path: str) -> Compare:
    name = node.get("field")
    if not isinstance(name, str):
        raise RuleValidationError(f"{path}.field", f"is required (a field name), got {_type(name)}")
    spec = lookup_field(name)
    if spec is None and name.startswith(ZONE_PREFIX):
        raise RuleValidationError(
            f"{path}.field", f"{_brief(name)} names no zone: a zone name matches {ZONE_NAME.pattern}"
        )
    if spec is None:
        known = ", ".join(field_names())
        raise RuleValidationError(f"{path}.field", f"unknown field {_brief(name)}; known fields: {known}")
    op = node.get("op")
    if op not in ALL_OPERATORS:
        raise RuleValidationError(f"{path}.op", f"must be one of {' '.join(ALL_OPERATORS)}, got {_brief(op)}")
    if op not in spec.operators:
        raise RuleValidationError(
            f"{path}.op", f"{op!r} does not fit {spec.type.value} field {name}; use one of {' '.join(spec.operators)}"
        )
    value = node.get("value")
    vpath = f"{path}.value"
    if value is None:
        raise RuleValidationError(vpath, f"is required (comparisons with null never hold), for {name}")
    if op == "in":
        if not isinstance(value, list) or not value:
            raise RuleValidationError(vpath, f"'in' takes a non-empty list of strings, got {_type(value)}")
        if len(value) > MAX_IN_ITEMS:
            raise RuleValidationError(vpath, f"'in' takes at most {MAX_IN_ITEMS} items, got {len(value)}")
        items = tuple(_string(v, f"{vpath}[{i}]", MAX_STRING_CHARS) for i, v in enumerate(value))
        for item in items:
            _check_choice(spec.choices, item, vpath, name)
        return Compare(name, op, tuple(dict.fromkeys(items)))
    if spec.type is FieldType.BOOL:
        if not isinstance(value, bool):
            raise RuleValidationError(vpath, f"{name} is a boolean; compare it with true or false, got {_type(value)}")
    elif spec.type is FieldType.NUMBER:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise RuleValidationError(vpath, f"{name} is a number; got {_type(value)}")
        if isinstance(value, float) and not math.isfinite(value):
            raise RuleValidationError(vpath, f"must be a finite number, got {value}")
        if isinstance(value, int) and not -INT64 <= value < INT64:
            raise RuleValidationError(vpath, "number out of range (64-bit)")
    else:
        value = _string(value, vpath, MAX_STRING_CHARS, what=f"{name} is a string; got")
        _check_choice(spec.choices, value, vpath, name)
    return Compare(name, op, value)


def _check_choice(choices: tuple[str, ...] | None, value: str, path: str, name: str) -> None:
    if choices is not None and value not in choices:
        raise RuleValidationError(path, f"{name} is one of {', '.join(choices)}; got {value!r}")


def _action(obj: Any, allowlist: tuple[str, ...] | None) -> Action:
    if not isinstance(obj, Mapping):
        raise RuleValidationError("action", f"must be an object with a 'type', got {_type(obj)}")
    _no_unknown(obj, _ACTION_KEYS, "action")
    kind = _opt(obj, "type", "publish")
    if kind not in ACTION_TYPES:
        raise RuleValidationError("action.type", f"must be one of {', '.join(ACTION_TYPES)}, got {_brief(kind)}")
    target = _opt(obj, "target", None)
    if target is not None and not isinstance(target, str):
        raise RuleValidationError("action.target", f"must be a string or null, got {_type(target)}")
    if kind == "webhook":
        if not target:
            raise RuleValidationError("action.target", "a webhook needs the URL to call")
        check_webhook_url(target, allowlist)
    elif kind == "publish":
        if target is not None and not TOPIC_NAME.fullmatch(target):
            raise RuleValidationError("action.target", f"must be a Kafka topic name, got {_brief(target)}")
    elif target is not None:
        raise RuleValidationError("action.target", "a log action takes no target")
    return Action(cast(ActionType, kind), target)


def check_webhook_url(url: str, allowlist: tuple[str, ...] | None) -> None:
    """Reject URLs that are not plain http(s), carry credentials, or (with ``allowlist``) leave it."""
    path = "action.target"
    if len(url) > MAX_URL_CHARS or any(ord(c) < 33 or c == "\x7f" for c in url):
        raise RuleValidationError(path, f"not a usable URL: {_brief(url)}")
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        port = parts.port
    except ValueError as exc:
        raise RuleValidationError(path, f"not a valid URL ({exc}): {_brief(url)}") from None
    if parts.scheme not in ("http", "https") or not host:
        raise RuleValidationError(path, f"a webhook URL must be http:// or https:// with a host, got {_brief(url)}")
    if parts.username is not None or parts.password is not None:
        raise RuleValidationError(path, "a webhook URL must not carry credentials (user:password@)")
    if allowlist is not None and not host_allowed(host, port, allowlist):
        shown = ", ".join(allowlist) if allowlist else "(empty: set MUGPOS_WEBHOOK_ALLOWLIST)"
        raise RuleValidationError(path, f"webhook host {host!r} is not in the allowlist: {shown}")


def host_allowed(host: str, port: int | None, allowlist: tuple[str, ...]) -> bool:
    """``host`` matches an entry ``host``, ``host:port`` or ``*.domain`` (subdomains only)."""
    host = host.lower().rstrip(".")
    for entry in allowlist:
        entry = entry.lower().strip()
        name, sep, entry_port = entry.rpartition(":") if entry.count(":") == 1 else (entry, "", "")
        if sep and entry_port != str(port):
            continue
        if name.startswith("*."):
            if host.endswith(name[1:]) and host != name[2:]:
                return True
        elif host == name:
            return True
    return False


def _sources(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise RuleValidationError("sources", f"must be a list of source names, got {_type(value)}")
    if len(value) > MAX_SOURCES:
        raise RuleValidationError("sources", f"at most {MAX_SOURCES} sources, got {len(value)}")
    names = [_string(v, f"sources[{i}]", 128, single_line=True) for i, v in enumerate(value)]
    for i, name in enumerate(names):
        if not name.strip():
            raise RuleValidationError(f"sources[{i}]", "must not be blank")
    return tuple(dict.fromkeys(names))


def _timestamp(value: Any, now: datetime | None) -> datetime:
    """Aware UTC time at millisecond precision (what Avro timestamp-millis and the JSON form keep)."""
    parsed = _parse_time(value, now)
    try:
        utc = parsed.astimezone(UTC)
    except (OverflowError, ValueError):
        raise RuleValidationError("updated_at", f"time out of range: {_brief(value)}") from None
    return utc.replace(microsecond=utc.microsecond // 1000 * 1000)


def _parse_time(value: Any, now: datetime | None) -> datetime:
    if value is None:
        return now or datetime.now(UTC)
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    try:
        if isinstance(value, int) and not isinstance(value, bool):
            return datetime.fromtimestamp(value / 1000, UTC)
        if isinstance(value, str) and len(value) <= 64:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    except (ValueError, OverflowError, OSError):
        pass
    raise RuleValidationError("updated_at", f"must be epoch milliseconds or an ISO-8601 time, got {_brief(value)}")


def _string(
    value: Any, path: str, limit: int, *, single_line: bool = False, what: str = "must be a string, got"
) -> str:
    if not isinstance(value, str):
        raise RuleValidationError(path, f"{what} {_type(value)}")
    if len(value) > limit:
        raise RuleValidationError(path, f"at most {limit} characters, got {len(value)}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise RuleValidationError(path, "must be valid Unicode (lone surrogate)") from None
    bad = [c for c in value if ord(c) < 32 and (single_line or c not in "\t\n")] + [c for c in value if c == "\x7f"]
    if bad:
        raise RuleValidationError(path, "must not contain control characters")
    return value


def _opt(obj: Mapping[str, Any], key: str, default: Any) -> Any:
    value = obj.get(key, default)
    return default if value is None and default is not None else value


def _no_unknown(obj: Mapping[str, Any], allowed: frozenset[str], path: str) -> None:
    unknown = [k for k in obj if k not in allowed]
    if unknown:
        where = f"{path}." if path else ""
        names = ", ".join(_brief(k) for k in unknown[:5])
        raise RuleValidationError(
            path, f"unknown field(s) {names}; allowed: {', '.join(f'{where}{k}' for k in sorted(allowed))}"
        )


def _type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, int | float):
        return f"number {value!r}"[:60]
    if isinstance(value, str):
        return f"string {_brief(value)}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, Mapping):
        return "an object"
    return type(value).__name__


def _brief(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
