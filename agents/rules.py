"""Rules agents: positions -> ActionEvents on the actions topic; actions -> webhooks, logs, topics.

Thin like the detection agent: values arrive as raw bytes and are decoded here, bad input becomes
a dead letter, and an event is acknowledged only after everything it produced was delivered; a
webhook receiver or broker that is down holds its actions (retried with backoff, never dead-lettered). A
background task keeps the rule registry in step with the compacted rules topic (see
``mugpos.storage.rules``), so rule changes apply to the running worker without a restart.

Positions are keyed by camera, so one worker sees a camera's frames in capture order; the episodes
of stateful rules (``rules.episodes``) live in the changelogged ``episodes`` table keyed by source,
written before a frame's offset is committed, so a worker that replaces a dead one carries on with
the same episodes. A timer ends the open episodes of cameras silent for ``MUGPOS_EPISODE_IDLE_S``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Sequence
from typing import Any

from aiokafka.partitioner import DefaultPartitioner
from faust import web
from faust.types import TP, EventT, StreamT

from mugpos.agents.sink import feed_views
from mugpos.core.codec import CodecError, codec
from mugpos.core.errors import InfrastructureError
from mugpos.core.metrics import INTERNAL_ERRORS
from mugpos.core.topics import TOPIC_RECORDS
from mugpos.rules.config import load_config
from mugpos.rules.episodes import SourceState
from mugpos.rules.model import rule_to_public_json
from mugpos.rules.processor import RuleProcessor, make_cooldown
from mugpos.rules.senders import Dispatcher, LogSender, WebhookSender
from mugpos.storage.compacted import wait_ready
from mugpos.storage.rules import RuleFeed, RuleRegistry
from mugpos.streams.app import MugposApp
from mugpos.streams.deadletter import send_dead_letter
from mugpos.streams.holding import delivered, hold, sent

log = logging.getLogger(__name__)

POSITIONS_BATCH = 256
ACTIONS_BATCH = 64


def register(app: MugposApp) -> None:
    """Attach the rule feed, the rules agent, the actions agent and the ``/mugpos/rules`` page to ``app``."""
    settings = app.settings
    topics = app.mugpos_topics
    config = load_config()
    registry = RuleRegistry()
    processor = RuleProcessor(registry, make_cooldown(settings), lost_s=settings.track_lost_s)
    episodes = Episodes(
        app,
        app.Table(
            EPISODES_TABLE,
            partitions=settings.partitions,
            key_type=bytes,  # raw bytes both ways (the app's serializers): JSON would be Faust's default
            value_type=bytes,
            use_partitioner=True,  # written from the batch loop and the idle timer alike, by source key
            help="Episodes of stateful rules per camera (key: source).",
        ),
    )
    app.mugpos_episodes = episodes  # type: ignore[attr-defined]
    app.mugpos_rules = registry  # type: ignore[attr-defined]
    own_topics = frozenset(settings.topic(name) for name in TOPIC_RECORDS)
    extra_topics: dict[str, Any] = {}

    @app.task
    async def rules_feed() -> None:
        await RuleFeed(settings, registry).run()

    @app.agent(topics.positions, name="mugpos.rules")
    async def evaluate(stream: StreamT[bytes]) -> None:
        fallback = "evaluating with the rules loaded so far"
        await wait_ready(registry.ready, config.rules_ready_timeout_s, "rules", fallback)
        try:
            async for events in stream.noack_take(POSITIONS_BATCH, within=0.05):  # type: ignore[attr-defined]
                async with episodes.lock:
                    episodes.adopt()
                    await handle_positions(app, processor, events, stream, episodes)
        finally:
            await processor.cooldown.close()

    @app.timer(min(5.0, settings.episode_idle_s / 4))
    async def end_idle_episodes() -> None:
        async with episodes.lock:
            await episodes.expire_idle(processor)

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]
    async def on_revoked(sender: Any, revoked: set[TP], **kwargs: Any) -> None:
        episodes.revoked()

    async def publish(topic: str, key: bytes, value: bytes) -> None:
        if topic not in extra_topics:
            extra_topics[topic] = app.topic(
                topic, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
            )
        await (await extra_topics[topic].send(key=key, value=value))

    @app.agent(topics.actions, name="mugpos.actions")
    async def deliver(stream: StreamT[bytes]) -> None:
        webhook = WebhookSender(config)
        dispatcher = Dispatcher(
            webhook, LogSender(), publish, own_topics, settings.topic_prefix, config.publish_allowlist
        )
        try:
            async for events in stream.noack_take(ACTIONS_BATCH, within=0.05):  # type: ignore[attr-defined]
                await handle_actions(app, dispatcher, events, stream)
        finally:
            await webhook.close()

    @app.page("/mugpos/rules")
    async def rules_page(self: web.View, request: web.Request) -> web.Response:
        """The rules this worker evaluates, as loaded here (``mugpos rules list`` reads the topic)."""
        return self.json(
            {
                "ready": registry.ready.is_set(),
                "version": registry.version,
                "enabled": len(registry.ruleset),
                "rules": [rule_to_public_json(r) for r in registry.rules.values()],
                "invalid": registry.invalid,
            }
        )


EPISODES_TABLE = "episodes"


class Episodes:
    """Each camera's :class:`SourceState` in the ``episodes`` table, with a decoded cache and the wall
    time of its latest frame (for the idle sweep). Everything runs under ``lock``: the agent's batches
    and the timer take turns."""

    def __init__(self, app: MugposApp, table: Any) -> None:
        self.app = app
        self.table = table
        self.lock = asyncio.Lock()
        self.idle_s = app.settings.episode_idle_s
        self._cache: dict[bytes, tuple[Any, SourceState]] = {}
        self.seen: dict[bytes, float] = {}
        self._adopted = False
        self._partitioner = DefaultPartitioner()

    def state(self, source: str) -> SourceState:
        key = source.encode()
        stored = self.table.get(key)
        cached = self._cache.get(key)
        if cached is not None and cached[0] is stored:
            return cached[1]
        state = SourceState.loads(stored) if stored is not None else SourceState()
        self._cache[key] = (stored, state)
        return state

    def save(self, source: str, state: SourceState) -> None:
        """Write a camera's state if it changed (to the changelog, flushed before the commit)."""
        key = source.encode()
        blob = state.dumps()
        stored = self.table.get(key)
        if blob != stored:
            self.table[key] = blob
            stored = self.table.get(key)
        self._cache[key] = (stored, state)
        self.seen[key] = time.monotonic()

    def revoked(self) -> None:
        """After a rebalance the table holds other partitions: decode afresh, re-adopt the sources."""
        self._cache.clear()
        self.seen.clear()
        self._adopted = False

    def adopt(self) -> None:
        """Once the agent runs (its tables recovered), start the idle clock of every camera whose state
        this worker now owns, so an episode left open by a dead worker still ends if its camera is gone."""
        if self._adopted:
            return
        self._adopted = True
        topic = self.app.settings.topic("positions")
        assigned = {tp.partition for tp in self.app.consumer.assignment() if tp.topic == topic}
        partitions = list(range(self.app.settings.partitions))
        now = time.monotonic()
        for key in list(self.table.keys()):
            if self._partitioner(key, partitions, partitions) in assigned:
                self.seen.setdefault(key, now)

    async def expire_idle(self, processor: RuleProcessor) -> None:
        """End the open episodes of cameras that sent nothing for ``idle_s`` (held if the broker is down)."""
        now = time.monotonic()
        for key, seen in list(self.seen.items()):
            if now - seen < self.idle_s:
                continue
            source = key.decode()
            state = self.state(source)
            if not state.started:
                del self.seen[key]
                continue
            actions = processor.expire(state, source)
            try:
                for action in actions:
                    value = codec.encode("ActionEvent", action)
                    await (await self.app.mugpos_topics.actions.send(key=action["action_id"].encode(), value=value))
            except Exception as exc:  # broker trouble: the state is not saved, so the next sweep tries again
                log.warning("ending idle episodes of %s held: %r", source, exc)
                self._cache.pop(key, None)
                return
            self.save(source, state)
            del self.seen[key]
            if actions:
                log.info("camera %s idle for %.0f s: ended %d episode(s)", source, now - seen, len(actions))


async def handle_positions(
    app: MugposApp,
    processor: RuleProcessor,
    events: Sequence[EventT],
    stream: StreamT[Any],
    episodes: Episodes | None = None,
) -> None:
    """Decode, evaluate and publish one batch; returns only when every output is delivered and acknowledged."""

    async def run_round(pending: list[EventT]) -> list[tuple[EventT, InfrastructureError]]:
        return await positions_round(app, processor, pending, episodes)

    await hold(app, stream, "rules", events, run_round, timed="rules")


async def positions_round(
    app: MugposApp, processor: RuleProcessor, events: Sequence[EventT], episodes: Episodes | None = None
) -> list[tuple[EventT, InfrastructureError]]:
    """One attempt: evaluate and publish; returns the events whose actions the broker did not take.

    Evaluating again is safe: action ids are deterministic, the cooldown admits the same action twice,
    and a frame the episodes have taken in gets the actions it produced then."""
    sends: list[tuple[EventT, Awaitable[Any]]] = []
    stateful = episodes is not None and processor.registry.ruleset.has_stateful
    for event in events:
        try:
            record = codec.decode(event.value, "PositionEvent")
        except CodecError as exc:
            sends.append(await sent(event, send_dead_letter(app, event, "rules", exc.reason, exc.message)))
            continue
        image_id = str(record.get("image_id"))
        try:
            source = str(record.get("source", ""))
            state = episodes.state(source) if stateful and episodes is not None else None
            actions = await processor.actions_for(record, state)
            if state is not None and episodes is not None:
                episodes.save(source, state)
            encoded = [(a["action_id"], codec.encode("ActionEvent", a)) for a in actions]
        except CodecError as exc:
            dead = send_dead_letter(app, event, "rules", "encode_error", exc.message, image_id)
            sends.append(await sent(event, dead))
            continue
        except Exception as exc:  # a bug must cost one event (dead-lettered), never the agent
            log.exception("rule evaluation failed for %s", image_id)
            INTERNAL_ERRORS.labels("rules").inc()
            dead = send_dead_letter(app, event, "rules", "internal_error", repr(exc)[:500], image_id)
            sends.append(await sent(event, dead))
            continue
        for key, value in encoded:
            sends.append(await sent(event, app.mugpos_topics.actions.send(key=key.encode(), value=value)))
    return await delivered(sends)  # delivered before hold acknowledges them


#: Delivery outcomes that are the receiver's or the broker's trouble, not the action's: held, retried.
HELD_DELIVERIES = {"webhook_failed": "webhook", "publish_failed": "broker"}


async def handle_actions(
    app: MugposApp, dispatcher: Dispatcher, events: Sequence[EventT], stream: StreamT[Any]
) -> None:
    """Deliver one batch of ActionEvents concurrently, holding those whose receiver is down."""

    async def run_round(pending: list[EventT]) -> list[tuple[EventT, InfrastructureError]]:
        return await actions_round(app, dispatcher, pending)

    await hold(app, stream, "action", events, run_round)


async def actions_round(
    app: MugposApp, dispatcher: Dispatcher, events: Sequence[EventT]
) -> list[tuple[EventT, InfrastructureError]]:
    """One attempt: deliver each action; a refused action is dead-lettered, an unreachable receiver held."""

    async def one(event: EventT) -> tuple[EventT, Awaitable[Any]] | InfrastructureError | None:
        try:
            action = codec.decode(event.value, "ActionEvent")
        except CodecError as exc:
            return await sent(event, send_dead_letter(app, event, "action", exc.reason, exc.message))
        try:
            delivery = await dispatcher.deliver(action, event.value)
        except Exception as exc:  # a sender bug must not stop deliveries
            log.exception("delivery of %s failed", action.get("action_id"))
            INTERNAL_ERRORS.labels("action").inc()
            dead = send_dead_letter(app, event, "action", "internal_error", repr(exc)[:500], action.get("image_id"))
            return await sent(event, dead)
        if delivery.ok:
            feed_views(app, "action", action)
            return None
        message = f"{delivery.message} (after {delivery.attempts} attempt(s))"
        if delivery.reason in HELD_DELIVERIES:
            return InfrastructureError(
                f"action {action.get('action_id')}: {message}", service=HELD_DELIVERIES[delivery.reason]
            )
        log.warning("action %s not delivered: %s: %s", action.get("action_id"), delivery.reason, delivery.message)
        return await sent(
            event, send_dead_letter(app, event, "action", delivery.reason, message, action.get("image_id"))
        )

    results = await asyncio.gather(*(one(e) for e in events))
    held = [(event, r) for event, r in zip(events, results, strict=True) if isinstance(r, InfrastructureError)]
    sends = [r for r in results if isinstance(r, tuple)]
    return held + await delivered(sends)
