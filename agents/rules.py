"""Rules agents: positions -> ActionEvents on the actions topic; actions -> webhooks, logs, topics.

Thin like the detection agent: values arrive as raw bytes and are decoded here, bad input becomes
a dead letter, and an event is acknowledged only after everything it produced was delivered; a
webhook receiver or broker that is down holds its actions (retried with backoff, never dead-lettered). A
background task keeps the rule registry in step with the compacted rules topic (see
``mugpos.storage.rules``), so rule changes apply to the running worker without a restart.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Sequence
from typing import Any

from faust import web
from faust.types import EventT, StreamT

from mugpos.agents.sink import feed_views
from mugpos.core.codec import CodecError, codec
from mugpos.core.errors import InfrastructureError
from mugpos.core.metrics import INTERNAL_ERRORS
from mugpos.core.topics import TOPIC_RECORDS
from mugpos.rules.config import load_config
from mugpos.rules.model import rule_to_public_json
from mugpos.rules.processor import RuleProcessor, make_cooldown
from mugpos.rules.senders import Dispatcher, LogSender, WebhookSender
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
    processor = RuleProcessor(registry, make_cooldown(settings))
    app.mugpos_rules = registry  # type: ignore[attr-defined]
    own_topics = frozenset(settings.topic(name) for name in TOPIC_RECORDS)
    extra_topics: dict[str, Any] = {}

    @app.task
    async def rules_feed() -> None:
        await RuleFeed(settings, registry).run()

    @app.agent(topics.positions, name="mugpos.rules")
    async def evaluate(stream: StreamT[bytes]) -> None:
        try:
            await asyncio.wait_for(registry.ready.wait(), config.rules_ready_timeout_s)
        except TimeoutError:
            log.warning(
                "rules topic not read within %.0f s; evaluating with the rules loaded so far",
                config.rules_ready_timeout_s,
            )
        try:
            async for events in stream.noack_take(POSITIONS_BATCH, within=0.05):  # type: ignore[attr-defined]
                await handle_positions(app, processor, events, stream)
        finally:
            await processor.cooldown.close()

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


async def handle_positions(
    app: MugposApp, processor: RuleProcessor, events: Sequence[EventT], stream: StreamT[Any]
) -> None:
    """Decode, evaluate and publish one batch; returns only when every output is delivered and acknowledged."""

    async def run_round(pending: list[EventT]) -> list[tuple[EventT, InfrastructureError]]:
        return await positions_round(app, processor, pending)

    await hold(app, stream, "rules", events, run_round, timed="rules")


async def positions_round(
    app: MugposApp, processor: RuleProcessor, events: Sequence[EventT]
) -> list[tuple[EventT, InfrastructureError]]:
    """One attempt: evaluate and publish; returns the events whose actions the broker did not take.

    Evaluating again is safe: action ids are deterministic and the cooldown admits the same action twice."""
    sends: list[tuple[EventT, Awaitable[Any]]] = []
    for event in events:
        try:
            record = codec.decode(event.value, "PositionEvent")
        except CodecError as exc:
            sends.append(await sent(event, send_dead_letter(app, event, "rules", exc.reason, exc.message)))
            continue
        image_id = str(record.get("image_id"))
        try:
            actions = await processor.actions_for(record)
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
