"""Position event in, admitted ActionEvent records out: evaluation, skip counting and cooldown.

Kept apart from the Faust agent so it can be driven directly in tests and by ``rules test``.
"""

from __future__ import annotations

from typing import Any, Protocol

from mugpos.core.settings import Settings
from mugpos.rules.actions import (
    Cooldown,
    MemoryCooldown,
    RedisCooldown,
    action_from_json,
    action_id,
    action_to_json,
    build_action,
    build_episode_action,
    event_millis,
)
from mugpos.rules.engine import Evaluation, Record, RuleSet
from mugpos.rules.episodes import EpisodeTracker, SourceState, Transition
from mugpos.rules.metrics import ACTIONS_SUPPRESSED, EPISODES, LATE_FRAMES, RULE_FIRES, RULE_SKIPS


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
    """Evaluates the registry's current rules on decoded PositionEvents.

    Rules about single images fire per image, behind their per-source cooldown. Stateful rules
    need the camera's :class:`~rules.episodes.SourceState` (kept by the caller, e.g. in a Faust
    table keyed by source) and frames in capture order; without a state they are not judged.
    """

    def __init__(self, registry: RuleSource, cooldown: Cooldown, lost_s: float = 30.0) -> None:
        self.registry = registry
        self.cooldown = cooldown
        self.episodes = EpisodeTracker(lost_s)

    def evaluate(self, event: Record, ruleset: RuleSet | None = None) -> Evaluation:
        """Matches and skips of the current rule set (skips are counted by reason)."""
        evaluation = (ruleset or self.registry.ruleset).evaluate(event)
        for skip in evaluation.skips:
            RULE_SKIPS.labels(skip.reason).inc()
        return evaluation

    async def actions_for(self, event: Record, state: SourceState | None = None) -> list[dict[str, Any]]:
        """ActionEvent records to publish for ``event``: per-image rules after each rule's per-source
        cooldown, then (given the camera's ``state``) the starts and ends of stateful rules' episodes."""
        ruleset = self.registry.ruleset
        evaluation = self.evaluate(event, ruleset)
        actions = []
        if evaluation.matches:
            at_ms = event_millis(event.get("captured_at"))
            source = str(event.get("source", ""))
            image_id = str(event["image_id"])
            for match in evaluation.matches:
                rule = match.rule
                if rule.temporal is not None:
                    continue
                RULE_FIRES.labels(rule.severity).inc()
                aid = action_id(rule.rule_id, image_id)
                if not await self.cooldown.admit(rule.rule_id, source, at_ms, rule.cooldown_s, aid):
                    ACTIONS_SUPPRESSED.inc()
                    continue
                actions.append(build_action(match, event))
        if state is not None and ruleset.has_stateful:
            actions += self.episode_actions(ruleset, event, evaluation, state)
        return actions

    def episode_actions(
        self, ruleset: RuleSet, event: Record, evaluation: Evaluation, state: SourceState
    ) -> list[dict[str, Any]]:
        """Step the camera's episodes by one frame. A redelivered frame gets the actions it produced
        the first time (same ids); a late one (older than the newest taken in) moves nothing."""
        image_id = str(event["image_id"])
        at_ms = event_millis(event.get("captured_at"))
        if state.is_replay(image_id):
            return [action_from_json(a) for a in state.outbox.get(image_id, [])]
        if event.get("late") or state.is_late(at_ms):
            LATE_FRAMES.labels("rules").inc()
            return []
        records = self.record(self.episodes.step(ruleset, event, evaluation, state), event)
        state.remember(image_id, at_ms, [action_to_json(r) for r in records])
        return records

    def expire(self, state: SourceState, source: str) -> list[dict[str, Any]]:
        """End the open episodes of a camera that went quiet (at the capture time of its last frame)."""
        at_ms = state.last_ms or 0
        transitions = self.episodes.expire(state, self.registry.ruleset, source, at_ms)
        last = {"image_id": state.last_id or "", "source": source, "captured_at": at_ms}
        return self.record(transitions, last)

    @staticmethod
    def record(transitions: list[Transition], event: Record) -> list[dict[str, Any]]:
        for transition in transitions:
            EPISODES.labels(transition.phase).inc()
            if transition.phase == "start":
                RULE_FIRES.labels(transition.rule.severity).inc()
        return [build_episode_action(t, event) for t in transitions]
