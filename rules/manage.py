"""Rule management shared by ``mugpos rules`` and the HTTP API (``mugpos.web.rules``).

Both front ends build rules, guard publish targets and try rules on events through these functions,
so a rule the CLI refuses is refused over HTTP too, with the same message. Only
:class:`~rules.errors.RuleError` subclasses escape: :class:`~rules.errors.RuleSyntaxError` for a
sentence the grammar cannot read, :class:`~rules.errors.RuleValidationError` (naming the JSON path)
for anything else that does not validate.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from mugpos.rules.engine import RuleSet
from mugpos.rules.errors import RuleError, RuleValidationError
from mugpos.rules.language import compile_sentence
from mugpos.rules.model import Rule, rule_from_obj, rule_to_json

if TYPE_CHECKING:
    from mugpos.core.settings import Settings

#: What may accompany a sentence and override what it says (the ``rules add`` options).
SENTENCE_OPTIONS: tuple[str, ...] = (
    "rule_id",
    "name",
    "severity",
    "action",
    "target",
    "sources",
    "cooldown_s",
    "enabled",
)


def rule_from_sentence(
    text: str, options: Mapping[str, Any] | None = None, *, allowlist: tuple[str, ...] | None = None
) -> Rule:
    """A sentence plus options (see :data:`SENTENCE_OPTIONS`; ``None`` means "as the sentence says").

    The sentence is compiled on its own first, so its mistakes are syntax errors with a caret; the
    options are then laid over its JSON and validated like a JSON rule, so a bad option is a
    validation error that names it. ``sources`` adds to the cameras the sentence names.
    """
    options = {k: v for k, v in (options or {}).items() if v is not None}
    unknown = [k for k in options if k not in SENTENCE_OPTIONS]
    if unknown:
        raise RuleValidationError(
            unknown[0], f"not an option of a sentence rule; allowed: text, {', '.join(SENTENCE_OPTIONS)}"
        )
    base = compile_sentence(text)
    obj = rule_to_json(base)
    del obj["rule_id"], obj["updated_at"]  # the id follows what the rule does, after the options
    for key in ("rule_id", "name", "severity", "cooldown_s", "enabled"):
        if key in options:
            obj[key] = options[key]
    if "action" in options or "target" in options:
        obj["action"] = {"type": options.get("action", base.action.type), "target": options.get("target")}
    if "sources" in options:
        extra = options["sources"]
        obj["sources"] = [*base.sources, *extra] if isinstance(extra, list | tuple) else extra
    return rule_from_obj(obj, allowlist=allowlist)


def rule_from_spec(spec: Any, *, allowlist: tuple[str, ...] | None = None) -> Rule:
    """A rule from a JSON object: a full rule (it has a ``condition``) or ``{"text": SENTENCE, options...}``."""
    if not isinstance(spec, Mapping):
        return rule_from_obj(spec, allowlist=allowlist)  # refuses it, naming the type
    if "condition" in spec or "text" not in spec:
        return rule_from_obj(spec, allowlist=allowlist)
    text = spec["text"]
    if not isinstance(text, str):
        raise RuleValidationError("text", f"must be a sentence (a string), got {type(text).__name__}")
    return rule_from_sentence(text, {k: v for k, v in spec.items() if k != "text"}, allowlist=allowlist)


def check_publish_target(rule: Rule, settings: Settings, allowlist: tuple[str, ...] = ()) -> None:
    """Refuse a publish action aimed at one of mugpos's own topics (the rule would feed itself), or
    at a topic outside ``MUGPOS_TOPIC_PREFIX`` and ``MUGPOS_PUBLISH_ALLOWLIST``."""
    from mugpos.core.topics import TOPIC_RECORDS
    from mugpos.rules.senders import publish_refusal

    if rule.action.type != "publish" or not rule.action.target:
        return
    own = frozenset({settings.topic(name) for name in TOPIC_RECORDS} | set(TOPIC_RECORDS))
    refusal = publish_refusal(rule.action.target, own, settings.topic_prefix, allowlist)
    if refusal is not None:
        raise RuleValidationError("action.target", refusal[1])


def parse_events(text: str) -> list[dict[str, Any]]:
    """Position events from JSON text: one object, a list of objects, or one object per line."""
    stripped = text.strip()
    if not stripped:
        raise RuleError("no events")
    try:
        data = json.loads(stripped)
    except RecursionError:
        raise RuleError("JSON nested too deeply") from None
    except ValueError:
        try:
            data = [json.loads(line) for line in stripped.splitlines() if line.strip()]
        except (ValueError, RecursionError) as exc:
            raise RuleError(f"not JSON or JSON lines: {exc}") from None
    return check_events(data if isinstance(data, list) else [data])


def check_events(events: list[Any]) -> list[dict[str, Any]]:
    """``events`` itself when every item is a JSON object; otherwise names the first that is not."""
    for i, item in enumerate(events):
        if not isinstance(item, dict):
            raise RuleError(f"event {i} is not a JSON object")
    return events


def try_rule(rule: Rule, events: Iterable[Mapping[str, Any]], lost_s: float = 30.0) -> list[dict[str, Any]]:
    """Evaluate ``rule`` (even when disabled) on each event: fires, evidence, skips.

    A rule about single images is judged per event, its cooldown not applied. A stateful rule is
    stepped over the events in the order given, one fresh episode state per source (as the rules
    agent does, cooldown included): ``fires`` says an episode or transition started on that event
    and ``episodes`` lists the starts and ends it produced."""
    from mugpos.rules.actions import message_for
    from mugpos.rules.episodes import EpisodeTracker, SourceState

    ruleset = RuleSet([rule], include_disabled=True)
    tracker = EpisodeTracker(lost_s)
    states: dict[str, SourceState] = {}
    results: list[dict[str, Any]] = []
    for index, record in enumerate(events):
        evaluation = ruleset.evaluate(record)
        result: dict[str, Any] = {"event": index, "image_id": record.get("image_id"), "rule_id": rule.rule_id}
        if rule.temporal is not None:
            state = states.setdefault(str(record.get("source", "")), SourceState())
            transitions = tracker.step(ruleset, record, evaluation, state)
            result["fires"] = any(t.phase == "start" for t in transitions)
            result["episodes"] = [
                {"phase": t.phase, "episode_id": t.episode_id, "track_id": t.track_id, "evidence": t.evidence}
                for t in transitions
            ]
            results.append(result)
            continue
        result["fires"] = bool(evaluation.matches)
        if evaluation.matches:
            match = evaluation.matches[0]
            result.update(mug_index=match.mug_index, evidence=match.evidence, message=message_for(match, record))
        if evaluation.skips:
            skip = evaluation.skips[0]
            result["skipped"] = {"reason": skip.reason, "field": skip.field}
        results.append(result)
    return results
