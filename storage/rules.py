"""The compacted rules topic (the source of truth) and the in-memory registry every worker keeps.

Writers (``mugpos rules add/rm``) produce a ``RuleDefinition`` keyed by rule id, or a tombstone.
Every worker runs a :class:`RuleFeed` (``storage.compacted``: a group-less consumer tailing the
topic) that applies changes to a :class:`RuleRegistry`, which swaps in a freshly compiled
:class:`~rules.engine.RuleSet`; the rules agent reads ``registry.ruleset`` per event, so changes
apply without a restart.
"""

from __future__ import annotations

from mugpos.core.codec import CodecError, codec
from mugpos.core.settings import Settings
from mugpos.rules.engine import EMPTY, RuleSet
from mugpos.rules.errors import RuleValidationError
from mugpos.rules.metrics import RULES_LOADED, RULES_REJECTED
from mugpos.rules.model import RULE_ID, Rule, rule_from_record, rule_to_record
from mugpos.storage.compacted import CompactedFeed, CompactedTopic, KeyedRegistry, Rejected


class RuleRegistry(KeyedRegistry[Rule]):
    """Current rules by id, plus the compiled rule set of the enabled ones."""

    topic, noun = "rules", "rule"
    key_pattern, key_name = RULE_ID, "rule id"

    def __init__(self) -> None:
        super().__init__()
        self.ruleset: RuleSet = EMPTY

    @property
    def rules(self) -> dict[str, Rule]:
        return self.items

    def parse(self, key: str, value: bytes) -> Rule:
        try:
            rule = rule_from_record(codec.decode(value, "RuleDefinition"))
        except CodecError as exc:
            raise Rejected(exc.reason, exc.message) from None
        except RuleValidationError as exc:
            raise Rejected("invalid_rule", str(exc)) from None
        if rule.rule_id != key:
            raise Rejected("key_mismatch", f"record key {key!r} but rule_id {rule.rule_id!r}")
        return rule

    def describe(self, item: Rule) -> str:
        return item.name

    def counted(self, kind: str, reason: str = "") -> None:
        if kind == "rejected":
            RULES_REJECTED.labels(reason).inc()

    def changed(self) -> None:
        """Recompile once per batch of changes."""
        self.ruleset = RuleSet(self.rules.values())
        RULES_LOADED.labels("enabled").set(len(self.ruleset))
        RULES_LOADED.labels("disabled").set(len(self.rules) - len(self.ruleset))

    def summary(self) -> str:
        return f"{len(self.rules)} rule(s), {len(self.ruleset)} enabled"


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
