"""Holding a batch through infrastructure trouble, and acknowledging only what was delivered.

Agents read with ``stream.noack_take``, which yields events without acknowledging them (Faust's
``take_events`` acknowledges in a ``finally``, so a batch whose body raised was committed without
its outputs). :func:`hold` runs one *round* of a batch's work, acknowledges each event whose
outputs were delivered, and retries the rest with capped exponential backoff and jitter while the
agent's partitions are paused (backpressure). A dead letter is a delivered output: bad input is
acknowledged once its dead letter is on the broker. After ``MUGPOS_GIVE_UP_S`` of holding, the
worker exits non-zero without acknowledging, so the group (or the restarted process) resumes
from the last commit.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_delay, wait_exponential_jitter

from mugpos.core.errors import InfrastructureError
from mugpos.streams.metrics import HELD_BATCHES, HOLD_RETRIES, STAGE_SECONDS

if TYPE_CHECKING:
    from faust.types import EventT, StreamT

    from mugpos.streams.app import MugposApp

log = logging.getLogger(__name__)

#: Exit status of a worker that gave up holding (``EX_TEMPFAIL``: try again later).
EXIT_GAVE_UP = 75

#: One round of a batch: deliver what can be delivered; return the events still held, with why.
Round = Callable[[list["EventT"]], Awaitable[list[tuple["EventT", InfrastructureError]]]]


class StillHeld(InfrastructureError):
    """Some events of a batch are still held after a round (carries the first cause)."""

    def __init__(self, stage: str, held: Sequence[tuple[EventT, InfrastructureError]]) -> None:
        cause = held[0][1]
        super().__init__(f"{len(held)} event(s) of a {stage} batch held: {cause}", service=cause.service)
        self.held = list(held)


def infrastructure(exc: BaseException, service: str) -> InfrastructureError:
    """Wrap a client library's error (broker, MongoDB) as infrastructure trouble, kept as the cause."""
    if isinstance(exc, InfrastructureError):
        return exc
    wrapped = InfrastructureError(f"{service}: {exc!r}", service=service)
    wrapped.__cause__ = exc
    return wrapped


async def sent(event: EventT, send: Awaitable[Awaitable[Any]]) -> tuple[EventT, Awaitable[Any]]:
    """Start one send (a topic's ``send`` or ``send_dead_letter``): its delivery future, paired with
    the event it answers. A send that fails at once is an undelivered output, like a failed future."""
    try:
        return event, await send
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        failed: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        failed.set_exception(exc)
        return event, failed


async def delivered(
    sends: Iterable[tuple[EventT, Awaitable[Any]]], service: str = "broker"
) -> list[tuple[EventT, InfrastructureError]]:
    """Await the delivery futures of a round; the events whose delivery failed are returned as held.

    An event with several outputs is held when any of them failed (all are sent again next round;
    every output is keyed, so a duplicate overwrites downstream)."""
    pairs = list(sends)
    results = await asyncio.gather(*(future for _, future in pairs), return_exceptions=True)
    held: dict[int, tuple[EventT, InfrastructureError]] = {}
    for (event, _), result in zip(pairs, results, strict=True):
        if isinstance(result, asyncio.CancelledError):
            raise result
        if isinstance(result, BaseException) and id(event) not in held:
            held[id(event)] = (event, infrastructure(result, service))
    return list(held.values())


async def hold(
    app: MugposApp,
    stream: StreamT[Any],
    stage: str,
    events: Sequence[EventT],
    run_round: Round,
    on_give_up: Callable[[str, int, float, BaseException], None] | None = None,
    timed: str | None = None,
) -> None:
    """Run ``run_round`` until every event is delivered, acknowledging each as soon as it is.

    ``run_round`` raises :class:`InfrastructureError` when the whole round failed (nothing was
    delivered); it returns the events it could not deliver otherwise. Cancellation (shutdown)
    leaves the held events unacknowledged. ``timed`` names the stage whose duration (holding
    included) goes to ``mugpos_stage_duration_seconds`` and the dashboard."""
    settings = app.settings
    pending = list(events)
    paused: set[Any] = set()
    was_held = False
    started = time.monotonic()

    def note(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        service = getattr(exc, "service", "unknown")
        HOLD_RETRIES.labels(stage, service).inc()
        nonlocal was_held
        if not was_held:
            was_held = True
            HELD_BATCHES.labels(stage).inc()
            paused.update(_pause(app, stream))
            log.warning("%s: holding %d event(s), retrying with backoff: %s", stage, len(pending), exc)
        elif state.attempt_number % 10 == 0:
            held_for = time.monotonic() - started
            log.warning("%s: still holding %d event(s) after %.0f s: %s", stage, len(pending), held_for, exc)

    async def one_round() -> None:
        nonlocal pending
        held = await run_round(pending)
        held_ids = {id(event) for event, _ in held}
        for event in pending:
            if id(event) not in held_ids:
                await stream.ack(event)
        pending = [event for event, _ in held]
        if held:
            raise StillHeld(stage, held)

    retrying = AsyncRetrying(
        retry=retry_if_exception_type(InfrastructureError),
        wait=wait_exponential_jitter(initial=settings.hold_initial_s, max=settings.hold_max_s),
        stop=stop_after_delay(settings.give_up_s),
        before_sleep=note,
        reraise=True,
    )
    try:
        async for attempt in retrying:
            with attempt:
                await one_round()
    except InfrastructureError as exc:
        (on_give_up or give_up)(stage, len(pending), time.monotonic() - started, exc)
        raise
    finally:
        if was_held:
            HELD_BATCHES.labels(stage).dec()
            _resume(app, paused)
        if was_held and not pending:
            log.warning("%s: held batch delivered after %.1f s; consuming again", stage, time.monotonic() - started)
    if timed is not None:
        elapsed = time.monotonic() - started
        STAGE_SECONDS.labels(timed).observe(elapsed)
        app.mugpos_stats.record_stage(timed, elapsed * 1000)


def give_up(stage: str, count: int, seconds: float, exc: BaseException) -> None:
    """Exit the worker without acknowledging: the restarted process resumes from the last commit."""
    log.critical(
        "%s: %d event(s) held for %.0f s (MUGPOS_GIVE_UP_S): giving up; exiting with status %d, "
        "unacknowledged, so they are delivered again: %s",
        stage,
        count,
        seconds,
        EXIT_GAVE_UP,
        exc,
    )
    logging.shutdown()
    sys.stderr.flush()
    os._exit(EXIT_GAVE_UP)  # no graceful stop: it would run Faust's final commit


def _pause(app: MugposApp, stream: StreamT[Any]) -> set[Any]:
    """Pause fetching from the partitions of the stream's topics (Faust's own flow control)."""
    consumer = getattr(app, "consumer", None)
    topics = set(getattr(getattr(stream, "channel", None), "topics", ()) or ())
    if consumer is None or not topics:
        return set()
    try:
        tps = {tp for tp in consumer.assignment() if tp.topic in topics}
        consumer.pause_partitions(tps)
    except Exception as exc:  # no consumer yet (tests without a broker); backpressure then comes from the buffer
        log.warning("could not pause partitions (the stream's buffer bounds consumption instead): %r", exc)
        return set()
    return tps


def _resume(app: MugposApp, tps: set[Any]) -> None:
    try:
        app.consumer.resume_partitions(tps)
    except Exception as exc:  # revoked meanwhile: the new owner fetches them
        log.warning("could not resume partitions %s: %r", sorted(map(str, tps)), exc)
