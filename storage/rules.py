"""The compacted rules topic (the source of truth) and the in-memory registry every worker keeps.

Writers (``mugpos rules add/rm``) produce a ``RuleDefinition`` keyed by rule id, or a tombstone.
Every worker runs a :class:`RuleFeed` (``storage.compacted``: a group-less consumer tailing the
topic) that applies changes to a :class:`RuleRegistry`, which swaps in a freshly compiled
:class:`~rules.engine.RuleSet`; the rules agent reads ``registry.ruleset`` per event, so changes
apply without a restart.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

from mugpos.core.codec import CodecError, codec
from mugpos.core.settings import Settings
from mugpos.rules.engine import EMPTY, RuleSet
from mugpos.rules.errors import RuleValidationError
from mugpos.rules.metrics import RULES_LOADED, RULES_REJECTED
from mugpos.rules.model import RULE_ID, Rule, rule_from_record, rule_to_record
from mugpos.storage.compacted import CompactedFeed, CompactedTopic

log = logging.getLogger(__name__)


@dataclass
class Change:
    """What one record on the rules topic did to the registry (for logs and tests)."""

    rule_id: str
    kind: str  # added, updated, unchanged, removed, rejected, unknown-tombstone
    detail: str = ""


@dataclass
class RuleRegistry:
    """Current rules by id, plus the compiled rule set of the enabled ones."""

    rules: dict[str, Rule] = field(default_factory=dict)
    invalid: dict[str, str] = field(default_factory=dict)
    ruleset: RuleSet = EMPTY
    version: int = 0
    ready: asyncio.Event = field(default_factory=asyncio.Event)

    def apply(self, records: Iterable[tuple[bytes | None, bytes | None]]) -> list[Change]:
        """Apply (key, value) records in order, then recompile once."""
        changes = [self._apply_one(key, value) for key, value in records]
        if any(c.kind in ("added", "updated", "removed") for c in changes):
            self.ruleset = RuleSet(self.rules.values())
            self.version += 1
            RULES_LOADED.labels("enabled").set(len(self.ruleset))
            RULES_LOADED.labels("disabled").set(len(self.rules) - len(self.ruleset))
        return changes

    def _apply_one(self, key: bytes | None, value: bytes | None) -> Change:
        try:
            rule_id = key.decode("utf-8") if key is not None else ""
        except UnicodeDecodeError:
            rule_id = ""
        if not RULE_ID.fullmatch(rule_id):
            return self._reject(rule_id or repr(key), "bad_key", "record key is not a rule id")
        if value is None:
            if self.rules.pop(rule_id, None) is None:
                self.invalid.pop(rule_id, None)
                return Change(rule_id, "unknown-tombstone")
            self.invalid.pop(rule_id, None)
            return Change(rule_id, "removed")
        try:
            rule = rule_from_record(codec.decode(value, "RuleDefinition"))
        except CodecError as exc:
            return self._reject(rule_id, exc.reason, exc.message)
        except RuleValidationError as exc:
            return self._reject(rule_id, "invalid_rule", str(exc))
        if rule.rule_id != rule_id:
            return self._reject(rule_id, "key_mismatch", f"record key {rule_id!r} but rule_id {rule.rule_id!r}")
        if self.rules.get(rule_id) == rule:
            return Change(rule_id, "unchanged")
        kind = "updated" if rule_id in self.rules else "added"
        self.rules[rule_id] = rule
        self.invalid.pop(rule_id, None)
        return Change(rule_id, kind, rule.name)

    def _reject(self, rule_id: str, reason: str, detail: str) -> Change:
        RULES_REJECTED.labels(reason).inc()
        self.invalid[rule_id] = f"{reason}: {detail}"
        return Change(rule_id, "rejected", f"{reason}: {detail}")

    def summary(self) -> str:
        return f"{len(self.rules)} rule(s), {len(self.ruleset)} enabled"

    @staticmethod
    def log_change(change: Change) -> None:
        if change.kind == "rejected":
            log.warning("rules: rejected record for %s: %s", change.rule_id, change.detail)
        elif change.kind not in ("unknown-tombstone", "unchanged"):
            log.info("rules: %s rule %s (%s)", change.kind, change.rule_id, change.detail or "-")


def encode_rule(rule: Rule) -> bytes:
    """Avro bytes of a rule for the rules topic."""
    return codec.encode("RuleDefinition", rule_to_record(rule))


class RuleStore:
    """CLI-side access to the rules topic: write rules and tombstones, read the current set."""

    def __init__(self, settings: Settings, timeout_s: float = 10.0) -> None:
        self.settings = settings
        self.timeout_s = timeout_s
        self._topic = CompactedTopic(settings, "rules", timeout_s)

    async def put(self, rule: Rule) -> None:
        """Store (add or replace) a rule; returns once the broker acknowledged it."""
        await self._topic.produce(rule.rule_id, encode_rule(rule))

    async def delete(self, rule_id: str) -> None:
        """Write the tombstone that deletes ``rule_id``."""
        await self._topic.produce(rule_id, None)

    async def read(self) -> RuleRegistry:
        """Read the topic from the beginning to its end: the current rules (and invalid records)."""
        registry = RuleRegistry()
        await self._topic.read_into(registry)
        return registry


class RuleFeed(CompactedFeed):
    """Keeps a :class:`RuleRegistry` in step with the rules topic (a worker task)."""

    def __init__(self, settings: Settings, registry: RuleRegistry, poll_ms: int = 200) -> None:
        super().__init__(settings, "rules", registry, poll_ms)
