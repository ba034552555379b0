"""The scaling policy of the detection workers: pure, deterministic, fed one snapshot at a time.

Goal: the backlog drains within ``target_lag_s`` at the measured per-worker rate, i.e. capacity >=
backlog / target, and capacity keeps up with arrivals. Demand (images/s) is the larger of
``smoothed arrivals * (1 + headroom)`` and ``projected backlog / target_lag_s``, where the backlog
is projected over the start-up time of a new worker (a GPU worker needs ~20 s to load its model,
and the queue keeps growing meanwhile). The worker count is the smallest one whose *usable*
capacity covers the demand: with P partitions and n consumers the busiest consumer owns ceil(P/n)
partitions, so n consumers give only ``P / ceil(P/n)`` workers' worth of throughput (12
partitions: 5 workers are no better than 4). Scale-up is immediate but needs real pressure
(arrivals above capacity, or a backlog that would miss the target), so noise around a steady load
does not buy a GPU; scale-down waits for a whole window in which every sample asked for fewer
workers, and their average must fit with a hysteresis margin, so workers do not flap (each change
costs a rebalance and, for a new GPU worker, a model load). A partition whose committed offset
stops moving while it has lag (a poison message, a hung consumer) is reported and left out of the
demand: more workers cannot drain it, they would only burn GPU-hours. The per-worker rate is the
workers' own report when present, else learnt from committed offsets over intervals when every
partition had work, else the configured prior.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Literal, Protocol

from mugpos.control.signals import LoadSnapshot, PartitionLag
from mugpos.core.errors import MugposError

Action = Literal["up", "down", "hold", "wake", "sleep"]


class ConfigError(MugposError, ValueError):
    """An impossible control configuration; the message names the setting and the fix."""


class ControlSettings(Protocol):
    """The settings fields the policy reads (``mugpos.core.settings.Settings`` provides them)."""

    images_partitions: int
    target_lag_s: float
    idle_s: float
    min_workers: int
    max_workers: int
    worker_rate: float
    worker_startup_s: float
    scale_down_s: float
    control_interval_s: float


def usable_workers(n: int, partitions: int) -> float:
    """Workers' worth of throughput that ``n`` consumers give on ``partitions`` evenly loaded partitions."""
    if n <= 0 or partitions <= 0:
        return 0.0
    n = min(n, partitions)
    return partitions / math.ceil(partitions / n)


def workers_for(demand: float, rate: float, partitions: int, margin: float = 0.0) -> int:
    """Fewest consumers whose usable capacity, less ``margin``, covers ``demand`` (capped at partitions)."""
    if demand <= 0:
        return 0
    for n in range(1, partitions + 1):
        if rate * usable_workers(n, partitions) * (1.0 - margin) >= demand:
            return n
    return partitions


@dataclass(frozen=True)
class PolicyConfig:
    """Knobs of the policy, validated at construction: an impossible value fails at start.

    ``worker_rate`` is the images/s one worker sustains, used until the policy measures it.
    """

    partitions: int
    target_lag_s: float = 10.0
    min_workers: int = 0
    max_workers: int = 12
    idle_s: float = 300.0
    worker_rate: float = 20.0
    startup_s: float = 20.0
    scale_down_window_s: float = 60.0
    hysteresis: float = 0.05
    headroom: float = 0.05
    stuck_after_s: float = 60.0
    rate_smoothing: float = 0.3
    interval_s: float = 5.0

    def __post_init__(self) -> None:
        problems: list[str] = []

        def number(name: str, *, low: float, strict: bool = False, high: float | None = None) -> None:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                problems.append(f"{name}={value!r} must be a finite number")
            elif value < low or (strict and value == low) or (high is not None and value >= high):
                bound = f"> {low}" if strict else f">= {low}"
                problems.append(f"{name}={value!r} must be {bound}" + (f" and < {high}" if high is not None else ""))

        for name in ("partitions", "min_workers", "max_workers"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                problems.append(f"{name}={value!r} must be an integer")
        if problems:
            raise ConfigError("invalid control settings: " + "; ".join(problems))
        number("partitions", low=1)
        if self.partitions < 1:
            problems[-1] = f"partitions={self.partitions} must be >= 1: the images topic needs a partition to consume"
        number("target_lag_s", low=0, strict=True)
        number("min_workers", low=0)
        number("max_workers", low=1)
        number("idle_s", low=0)
        number("worker_rate", low=0, strict=True)
        number("startup_s", low=0)
        number("scale_down_window_s", low=0)
        number("hysteresis", low=0, high=1)
        number("headroom", low=0)
        number("stuck_after_s", low=0, strict=True)
        number("rate_smoothing", low=0, strict=True, high=1.000001)
        number("interval_s", low=0, strict=True)
        if not problems and self.min_workers > self.max_workers:
            problems.append(
                f"min_workers={self.min_workers} is above max_workers={self.max_workers} "
                "(MUGPOS_MIN_WORKERS must be <= MUGPOS_MAX_WORKERS)"
            )
        if not problems and self.min_workers > self.partitions:
            problems.append(
                f"min_workers={self.min_workers} is above the {self.partitions} images partitions: "
                "extra consumers would sit idle (lower MUGPOS_MIN_WORKERS or raise MUGPOS_IMAGES_PARTITIONS)"
            )
        if problems:
            raise ConfigError("invalid control settings: " + "; ".join(problems))

    @property
    def ceiling(self) -> int:
        """Most workers ever asked for: max_workers, capped by the images partitions."""
        return min(self.max_workers, self.partitions)

    @property
    def scale_to_zero(self) -> bool:
        return self.min_workers == 0

    @classmethod
    def from_settings(cls, settings: ControlSettings, **overrides: float) -> PolicyConfig:
        """The policy configuration of a settings object; ``overrides`` set the tuning knobs."""
        values: dict[str, float] = {
            "partitions": settings.images_partitions,
            "target_lag_s": settings.target_lag_s,
            "min_workers": settings.min_workers,
            "max_workers": settings.max_workers,
            "idle_s": settings.idle_s,
            "worker_rate": settings.worker_rate,
            "startup_s": settings.worker_startup_s,
            "scale_down_window_s": settings.scale_down_s,
            "interval_s": settings.control_interval_s,
        }
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Decision:
    """One scaling decision and the evidence behind it (maps onto the ``ScalingDecision`` schema)."""

    at: float
    current: int
    desired: int
    action: Action
    reason: str
    total_lag: int
    lag_by_partition: dict[int, int]
    target_lag_s: float
    rate_per_worker: float | None = None
    arrival_rate: float | None = None
    demand: float | None = None
    stuck_partitions: tuple[int, ...] = ()

    def record(self, *, decision_id: str, group: str, scaler: str, applied: bool) -> dict[str, object]:
        """The ``ScalingDecision`` record (Avro field names; ``decided_at`` in epoch milliseconds)."""
        return {
            "decision_id": decision_id,
            "decided_at": int(self.at * 1000),
            "group": group,
            "current_replicas": self.current,
            "desired_replicas": self.desired,
            "reason": self.reason,
            "total_lag": self.total_lag,
            "lag_by_partition": {str(p): lag for p, lag in sorted(self.lag_by_partition.items())},
            "rate_per_worker": self.rate_per_worker,
            "target_lag_s": self.target_lag_s,
            "scaler": scaler,
            "applied": applied,
        }


@dataclass
class _State:
    prev: LoadSnapshot | None = None
    rate: float | None = None  # measured images/s per worker (EWMA)
    arrivals: float | None = None  # EWMA of the arrival rate on healthy partitions
    progress_at: dict[int, float] = field(default_factory=dict)  # partition -> last time it moved or was empty
    idle_since: float | None = None
    last_up_at: float | None = None
    changed_at: float | None = None  # last time the decision changed the worker count
    window: deque[tuple[float, float]] = field(default_factory=deque)  # (time, demand) since then


class ScalingPolicy:
    """Decides how many detection workers should run. ``decide`` is pure apart from its own memory."""

    def __init__(self, config: PolicyConfig) -> None:
        self.config = config
        self._s = _State()

    @property
    def rate_per_worker(self) -> float:
        """Current estimate of one worker's throughput (images/s): measured, else the configured prior."""
        return self._s.rate if self._s.rate is not None else self.config.worker_rate

    def reset(self) -> None:
        """Forget everything measured (e.g. after the topic was re-created)."""
        self._s = _State()

    def decide(self, snap: LoadSnapshot, now: float | None = None) -> Decision:
        """The worker count for ``snap``; ``now`` defaults to the snapshot time."""
        cfg, st = self.config, self._s
        now = snap.ts if now is None else now
        current = snap.workers
        prev = st.prev if st.prev is not None and snap.ts > st.prev.ts else None
        dt = snap.ts - prev.ts if prev is not None else 0.0
        before = {p.partition: p for p in prev.partitions} if prev is not None else {}

        # -- stuck partitions: lag, consumers running, and no progress for stuck_after_s ---------
        stuck: list[int] = []
        for p in snap.partitions:
            old = before.get(p.partition)
            moved = old is None or p.position > old.position
            if p.lag == 0 or snap.ready == 0 or moved or p.partition not in st.progress_at:
                st.progress_at[p.partition] = now
            elif now - st.progress_at[p.partition] >= cfg.stuck_after_s:
                stuck.append(p.partition)
        healthy = [p for p in snap.partitions if p.partition not in stuck]
        backlog = sum(p.lag for p in healthy)

        # -- arrival and per-worker rates ------------------------------------------------------------
        raw_arrivals: float | None = None
        if prev is not None and dt > 0:
            grown = sum(max(0, p.high_water - before[p.partition].high_water) for p in healthy if p.partition in before)
            raw_arrivals = grown / dt
            alpha = cfg.rate_smoothing
            st.arrivals = raw_arrivals if st.arrivals is None else alpha * raw_arrivals + (1 - alpha) * st.arrivals
            self._learn_rate(snap, prev, healthy, dt)
        elif snap.arrival_rate is not None:
            raw_arrivals = snap.arrival_rate
        if snap.rate_per_worker is not None and snap.rate_per_worker > 0:
            alpha = cfg.rate_smoothing
            st.rate = snap.rate_per_worker if st.rate is None else alpha * snap.rate_per_worker + (1 - alpha) * st.rate
        # Headroom follows the smoothed arrivals (a noisy 5 s sample must not buy a GPU); a real surge
        # shows at once in the projected backlog, which uses the raw rate.
        arrivals = st.arrivals if st.arrivals is not None else raw_arrivals or 0.0
        surge = max(raw_arrivals or 0.0, arrivals)
        rate = self.rate_per_worker

        # -- demand ------------------------------------------------------------------------------
        parts = min(len(snap.partitions) or cfg.partitions, cfg.partitions)
        # The queue keeps growing while workers load: until the pending ones are ready at the ready
        # capacity, then until a worker started now is ready at the capacity of all current ones.
        ready_capacity = rate * usable_workers(snap.ready, parts)
        remaining = 0.0
        if current > snap.ready and st.last_up_at is not None:
            remaining = min(cfg.startup_s, max(0.0, st.last_up_at + cfg.startup_s - now))
        growth = max(0.0, surge - ready_capacity) * remaining
        growth += max(0.0, surge - rate * usable_workers(current, parts)) * (cfg.startup_s - remaining)
        projected = backlog + growth
        # Sizing keeps ``headroom``; the trigger to add workers is real pressure (arrivals above capacity
        # or a backlog that would miss the target), so noise around a steady load cannot buy a GPU.
        pressure = max(arrivals, projected / cfg.target_lag_s)
        demand = max(arrivals * (1.0 + cfg.headroom), projected / cfg.target_lag_s)
        need = workers_for(demand, rate, parts)
        pressed = workers_for(pressure, rate, parts) > current

        # -- idle / scale to zero --------------------------------------------------------------------
        quiet = snap.total_lag == 0 and (raw_arrivals or 0.0) == 0.0
        if quiet:
            st.idle_since = now if st.idle_since is None else st.idle_since
        else:
            st.idle_since = None
        idle_for = now - st.idle_since if st.idle_since is not None else 0.0
        asleep = cfg.scale_to_zero and quiet and (current == 0 or idle_for >= cfg.idle_s)
        floor = 0 if asleep else max(cfg.min_workers, 1)
        ceiling = cfg.ceiling

        def clamp(n: int) -> int:
            return max(floor, min(ceiling, n))

        # -- scale-down stabilisation: every sample of a whole window asked for fewer workers, and ------
        # -- their average fits the lower count with the hysteresis margin ----------------------------
        st.window.append((now, demand))
        while st.window and st.window[0][0] < now - cfg.scale_down_window_s:
            st.window.popleft()
        mean_demand = sum(d for _, d in st.window) / len(st.window)
        if st.changed_at is None:
            st.changed_at = now  # a fresh controller watches a whole window before it scales down
        settled = now - st.changed_at >= cfg.scale_down_window_s
        lower = all(workers_for(d, rate, parts) < current for _, d in st.window)
        if settled and lower:
            held = clamp(max(need, workers_for(mean_demand, rate, parts, margin=cfg.hysteresis)))
        else:
            held = current

        if asleep:
            target = 0
        elif pressed or current == 0:
            target = clamp(need)
        else:
            target = min(current, clamp(need))
        note = f"backlog {backlog} + arrivals {arrivals:.1f}/s need {demand:.1f}/s at {rate:.1f}/s per worker"
        if current == 0 and target > 0:
            action: Action = "wake"
            desired = target
            reason = f"wake 0→{desired}: {snap.total_lag} waiting, {arrivals:.1f}/s arriving"
        elif target > current:
            action, desired = "up", target
            reason = f"up {current}→{desired}: {note} to drain within {cfg.target_lag_s:g} s"
        elif current > ceiling:
            action, desired = "down", ceiling
            reason = f"down {current}→{desired}: above the ceiling (max {cfg.max_workers}, {cfg.partitions} partitions)"
        elif asleep and current > 0:
            action, desired = "sleep", 0
            reason = f"sleep {current}→0: no lag and no arrivals for {idle_for:.0f} s (idle after {cfg.idle_s:g} s)"
        elif current == 0:
            action, desired = "hold", 0
            reason = "hold 0: no lag and no arrivals; the first message wakes a worker"
        elif current < floor:
            action, desired = "up", floor
            reason = f"up {current}→{desired}: below the minimum of {floor}"
        elif held < current:
            action, desired = "down", held
            reason = (
                f"down {current}→{desired}: {note}; the {mean_demand:.1f}/s averaged over "
                f"{cfg.scale_down_window_s:g} s fits {desired} with a {cfg.hysteresis:.0%} margin"
            )
        else:
            action, desired = "hold", current
            if target < current:
                reason = f"hold {current}: {note}; waiting {cfg.scale_down_window_s:g} s of lower demand to scale down"
            else:
                reason = f"hold {current}: {note}"
        if stuck:
            stuck_lag = sum(p.lag for p in snap.partitions if p.partition in stuck)
            reason += (
                f"; partition(s) {','.join(map(str, stuck))} stuck for >= {cfg.stuck_after_s:g} s "
                f"(lag {stuck_lag}), left out of the demand"
            )
        if action in ("up", "wake"):
            st.last_up_at = now
        if desired != current:
            st.changed_at = now
            st.window.clear()
        st.prev = snap
        return Decision(
            at=now,
            current=current,
            desired=desired,
            action=action,
            reason=reason,
            total_lag=snap.total_lag,
            lag_by_partition=snap.lag_by_partition,
            target_lag_s=cfg.target_lag_s,
            rate_per_worker=rate,
            arrival_rate=arrivals,
            demand=demand,
            stuck_partitions=tuple(stuck),
        )

    def _learn_rate(self, snap: LoadSnapshot, prev: LoadSnapshot, healthy: list[PartitionLag], dt: float) -> None:
        """Update the per-worker rate from committed progress, only over intervals when every worker was busy.

        A worker with nothing to do processes less than it could; learning from those intervals would
        shrink the estimate and inflate the worker count, so an interval counts only when every healthy
        partition held at least a second of its share of work at both ends, with a stable membership.
        """
        ready = snap.ready
        if ready == 0 or prev.ready != ready or prev.workers != snap.workers or not healthy:
            return
        before = {p.partition: p for p in prev.partitions}
        per_partition = self.rate_per_worker / math.ceil(len(snap.partitions) / min(ready, len(snap.partitions)))
        busy = max(1.0, per_partition)
        for p in healthy:
            old = before.get(p.partition)
            if old is None or p.lag < busy or old.lag < busy:
                return
        done = sum(p.position - before[p.partition].position for p in healthy)
        if done <= 0:
            return
        sample = done / dt / usable_workers(ready, len(healthy))
        alpha = self.config.rate_smoothing
        self._s.rate = sample if self._s.rate is None else alpha * sample + (1 - alpha) * self._s.rate
