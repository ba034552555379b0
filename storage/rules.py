"""The compacted rules topic (the source of truth) and the in-memory registry every worker keeps.

Writers (``mugpos rules add/rm``) produce a ``RuleDefinition`` keyed by rule id, or a tombstone.
Every worker runs a :class:`RuleFeed`: a consumer *without* a consumer group that reads the topic
from the beginning and keeps tailing it. A group member (a Faust agent) would get the topic's one
partition on one worker only, leaving the others without rules; and Faust tables cannot be written
from inside the positions agent's ``take()`` batches anyway. The feed applies changes to a
:class:`RuleRegistry`, which swaps in a freshly compiled :class:`~rules.engine.RuleSet`; the
positions agent reads ``registry.ruleset`` per event, so changes apply without a restart.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError

from mugpos.core.codec import CodecError, codec
from mugpos.core.errors import BrokerUnavailable
from mugpos.core.settings import Settings
from mugpos.core.topics import ensure_topics
from mugpos.rules.engine import EMPTY, RuleSet
from mugpos.rules.errors import RuleValidationError
from mugpos.rules.metrics import RULES_LOADED, RULES_REJECTED
from mugpos.rules.model import RULE_ID, Rule, rule_from_record, rule_to_record

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


def encode_rule(rule: Rule) -> bytes:
    """Avro bytes of a rule for the rules topic."""
    return codec.encode("RuleDefinition", rule_to_record(rule))


async def _start_consumer(settings: Settings, timeout_s: float) -> tuple[AIOKafkaConsumer, list[TopicPartition]]:
    topic = settings.topic("rules")
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        request_timeout_ms=int(timeout_s * 1000),
    )
    try:
        await asyncio.wait_for(consumer.start(), timeout_s)
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            await asyncio.wait_for(consumer.topics(), timeout_s)  # refreshes the cluster metadata
            partitions = consumer.partitions_for_topic(topic) or {0}
    except (KafkaError, OSError, TimeoutError) as exc:
        await consumer.stop()
        raise BrokerUnavailable(f"cannot reach the Kafka broker at {settings.broker}: {exc!r}") from None
    tps = [TopicPartition(topic, p) for p in sorted(partitions)]
    consumer.assign(tps)
    return consumer, tps


async def _caught_up(
    consumer: AIOKafkaConsumer, tps: Sequence[TopicPartition], floor: dict[TopicPartition, int]
) -> bool:
    """At the end of every partition? ``floor`` (end offsets at start) is a lower bound: the test broker
    under-reports it; the high-water mark of fetch responses is exact once a fetch has returned."""
    for tp in tps:
        position = await consumer.position(tp)
        highwater = consumer.highwater(tp)
        if position < floor.get(tp, 0) or (highwater is not None and position < highwater):
            return False
    return True


class RuleStore:
    """CLI-side access to the rules topic: write rules and tombstones, read the current set."""

    def __init__(self, settings: Settings, timeout_s: float = 10.0) -> None:
        self.settings = settings
        self.timeout_s = timeout_s

    async def _produce(self, key: str, value: bytes | None) -> None:
        await ensure_topics(self.settings, timeout_s=self.timeout_s)
        producer = AIOKafkaProducer(
            bootstrap_servers=self.settings.bootstrap, acks="all", request_timeout_ms=int(self.timeout_s * 1000)
        )
        try:
            await asyncio.wait_for(producer.start(), self.timeout_s)
            await producer.send_and_wait(self.settings.topic("rules"), value, key=key.encode())
        except (KafkaError, OSError, TimeoutError) as exc:
            raise BrokerUnavailable(f"cannot write to the rules topic at {self.settings.broker}: {exc!r}") from None
        finally:
            await producer.stop()

    async def put(self, rule: Rule) -> None:
        """Store (add or replace) a rule; returns once the broker acknowledged it."""
        await self._produce(rule.rule_id, encode_rule(rule))

    async def delete(self, rule_id: str) -> None:
        """Write the tombstone that deletes ``rule_id``."""
        await self._produce(rule_id, None)

    async def read(self) -> RuleRegistry:
        """Read the topic from the beginning to its end: the current rules (and invalid records)."""
        await ensure_topics(self.settings, timeout_s=self.timeout_s)
        consumer, tps = await _start_consumer(self.settings, self.timeout_s)
        registry = RuleRegistry()
        try:
            await consumer.seek_to_beginning(*tps)
            floor = await consumer.end_offsets(tps)
            async with asyncio.timeout(self.timeout_s * 3):
                while not await _caught_up(consumer, tps, floor):
                    batch = await consumer.getmany(*tps, timeout_ms=500)
                    registry.apply((m.key, m.value) for msgs in batch.values() for m in msgs)
        except TimeoutError:
            raise BrokerUnavailable(f"timed out reading {self.settings.topic('rules')} to its end") from None
        except KafkaError as exc:
            raise BrokerUnavailable(f"cannot read the rules topic: {exc!r}") from None
        finally:
            await consumer.stop()
        return registry


class RuleFeed:
    """Keeps a registry in step with the rules topic for as long as :meth:`run` runs (a worker task)."""

    def __init__(self, settings: Settings, registry: RuleRegistry, poll_ms: int = 200) -> None:
        self.settings = settings
        self.registry = registry
        self.poll_ms = poll_ms
        self._next: dict[TopicPartition, int] = {}  # resume here after a reconnect, never replay old versions

    async def run(self) -> None:
        """Read everything, mark the registry ready, then follow new records; retries when the broker is away."""
        while True:
            try:
                await self._follow()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # broker gone: keep the rules we have, reconnect, reread (idempotent)
                log.warning("rules feed interrupted, retrying in 2 s: %r", exc)
                await asyncio.sleep(2)

    async def _follow(self) -> None:
        consumer, tps = await _start_consumer(self.settings, 10.0)
        try:
            for tp in tps:
                if tp in self._next:
                    consumer.seek(tp, self._next[tp])
                else:
                    await consumer.seek_to_beginning(tp)
            floor = await consumer.end_offsets(tps)
            while True:
                batch = await consumer.getmany(*tps, timeout_ms=self.poll_ms)
                records = [(m.key, m.value) for msgs in batch.values() for m in msgs]
                for tp, msgs in batch.items():
                    if msgs:
                        self._next[tp] = msgs[-1].offset + 1
                if records:
                    for change in self.registry.apply(records):
                        self._log(change)
                if not self.registry.ready.is_set() and await _caught_up(consumer, tps, floor):
                    self.registry.ready.set()
                    log.info(
                        "rules: registry ready with %d rule(s), %d enabled",
                        len(self.registry.rules),
                        len(self.registry.ruleset),
                    )
        finally:
            await consumer.stop()

    @staticmethod
    def _log(change: Change) -> None:
        if change.kind == "rejected":
            log.warning("rules: rejected record for %s: %s", change.rule_id, change.detail)
        elif change.kind not in ("unknown-tombstone", "unchanged"):
            log.info("rules: %s rule %s (%s)", change.kind, change.rule_id, change.detail or "-")
