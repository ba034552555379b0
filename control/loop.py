"""The control loop, without Faust: read lag, decide, apply, report. One ``step`` per tick.

Nothing a broker or a scaler does can stop it: an unreadable lag skips the tick, a scaler error is
logged, counted and retried by ``GuardedScaler``, and the decision is still reported with
``applied=False``. The Faust control agent calls ``step`` from a timer and publishes the record.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from mugpos.control.cost import CostMeter, CostSummary
from mugpos.control.policy import Decision, ScalingPolicy
from mugpos.control.scalers import GuardedScaler, Scaler
from mugpos.control.signals import LagReading, LoadSnapshot
from mugpos.core.errors import MugposError

log = logging.getLogger(__name__)


class LagSource(Protocol):
    """Where lag readings come from (``LagReader`` in production)."""

    async def read(self) -> LagReading: ...


@dataclass(frozen=True)
class Step:
    """The outcome of one tick: the decision, whether the scaler applied it, and the record to publish."""

    decision: Decision
    snapshot: LoadSnapshot
    applied: bool
    record: dict[str, object]


class Controller:
    """Ties a lag source, the policy and a scaler together; keeps the counters the stats page shows."""

    def __init__(
        self,
        source: LagSource,
        policy: ScalingPolicy,
        scaler: Scaler,
        *,
        group: str,
        gpu_hour_cost: float = 0.0,
        attempts: int = 3,
        backoff_s: float = 0.5,
        extras: Callable[[], Awaitable[Mapping[str, Any]]] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.source = source
        self.policy = policy
        self.scaler = GuardedScaler(scaler, attempts=attempts, backoff_s=backoff_s)
        self.group = group
        self.cost = CostMeter(gpu_hour_cost)
        self.extras = extras
        self.clock = clock
        self.read_errors = 0
        self.decisions = 0
        self._prev: LoadSnapshot | None = None
        self._workers = 0

    @property
    def scaler_errors(self) -> int:
        return self.scaler.errors

    def stats(self) -> dict[str, object]:
        """Counters and costs for a stats page."""
        return {
            "decisions": self.decisions,
            "read_errors": self.read_errors,
            "scaler_errors": self.scaler.errors,
            "scaler_failures": self.scaler.failures,
            "scaler_last_error": self.scaler.last_error,
            "workers": self._workers,
            "rate_per_worker": round(self.policy.rate_per_worker, 3),
            **self.cost.summary().as_dict(),
        }

    def cost_summary(self) -> CostSummary:
        return self.cost.summary()

    async def step(self) -> Step | None:
        """One tick; ``None`` when the lag could not be read (logged and counted)."""
        try:
            reading = await self.source.read()
        except MugposError as exc:
            self.read_errors += 1
            log.warning("control: skipping a tick, lag unreadable: %s", exc)
            return None
        workers = await self.scaler.current()
        if workers is not None:
            self._workers = workers
        extra: dict[str, Any] = dict(await self.extras()) if self.extras is not None else {}
        snap = LoadSnapshot.from_reading(reading, workers=self._workers, previous=self._prev, **extra)
        if self._prev is not None and snap.process_rate is not None:
            self.cost.add_images(snap.process_rate * (snap.ts - self._prev.ts))
        self.cost.observe(snap.ts, self._workers)
        self._prev = snap
        decision = self.policy.decide(snap, snap.ts)
        self.decisions += 1
        applied = True
        if decision.desired != self._workers or workers is None:
            applied = await self.scaler.apply(decision.desired)
            if applied:
                self._workers = decision.desired
                self.cost.observe(snap.ts, self._workers)
        if decision.action != "hold":
            log.info("control: %s (applied=%s)", decision.reason, applied)
        record = decision.record(
            decision_id=uuid.uuid4().hex, group=self.group, scaler=self.scaler.name, applied=applied
        )
        return Step(decision, snap, applied, record)

    async def run(
        self,
        interval_s: float,
        stop: asyncio.Event,
        on_step: Callable[[Step], Awaitable[None]] | None = None,
    ) -> None:
        """Tick every ``interval_s`` until ``stop`` is set; a failing ``on_step`` is logged, not fatal."""
        while not stop.is_set():
            started = time.monotonic()
            step = await self.step()
            if step is not None and on_step is not None:
                try:
                    await on_step(step)
                except Exception as exc:  # publishing is best effort; the next tick publishes again
                    log.warning("control: publishing the decision failed: %r", exc)
            delay = max(0.0, interval_s - (time.monotonic() - started))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
