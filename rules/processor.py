"""Position event in, admitted ActionEvent records out: evaluation, skip counting and cooldown.

Kept apart from the Faust agent so it can be driven directly in tests and by ``rules test``.
"""

from __future__ import annotations

from typing import Any, Protocol

from mugpos.core.settings import Settings
from mugpos.rules.actions import Cooldown, MemoryCooldown, RedisCooldown, action_id, build_action, event_millis
from mugpos.rules.engine import Evaluation, Record, RuleSet
from mugpos.rules.metrics import ACTIONS_SUPPRESSED, RULE_FIRES, RULE_SKIPS


class RuleSource(Protocol):
    """Where the current rules come from (``mugpos.storage.rules.RuleRegistry`` in the service)."""

    @property
    def ruleset(self) -> RuleSet: ...


def make_cooldown(settings: Settings) -> Cooldown:
    """Redis-backed (shared by all workers) when a Redis URL is set, else this process's memory."""
    if settings.redis_url:
        return RedisCooldown(settings.redis_url, settings.topic_prefix)
    return MemoryCooldown()


class RuleProcessor:
    """Evaluates the registry's current rules on decoded PositionEvents."""

    def __init__(self, registry: RuleSource, cooldown: Cooldown) -> None:
        self.registry = registry
        self.cooldown = cooldown

    def evaluate(self, event: Record) -> Evaluation:
        """Matches and skips of the current rule set (skips are counted by reason)."""
        evaluation = self.registry.ruleset.evaluate(event)
        for skip in evaluation.skips:
            RULE_SKIPS.labels(skip.reason).inc()
        return evaluation

    async def actions_for(self, event: Record) -> list[dict[str, Any]]:
        """ActionEvent records to publish for ``event``, after each rule's per-source cooldown."""
        evaluation = self.evaluate(event)
        if not evaluation.matches:
            return []
        at_ms = event_millis(event.get("captured_at"))
        source = str(event.get("source", ""))
        image_id = str(event["image_id"])
        actions = []
        for match in evaluation.matches:
            rule = match.rule
            RULE_FIRES.labels(rule.severity).inc()
            aid = action_id(rule.rule_id, image_id)
            if not await self.cooldown.admit(rule.rule_id, source, at_ms, rule.cooldown_s, aid):
                ACTIONS_SUPPRESSED.inc()
                continue
            actions.append(build_action(match, event))
        return actions
