"""Discrete-time replay of load traces through an autoscaler: seconds over the lag target, GPU-seconds.

The model keeps what matters for GPU consumers of a partitioned topic: messages queue per partition
in arrival order (so queue time is measured, not estimated); a started worker is billed at once but
consumes only after ``startup_s`` (model load, group join); every change in the set of consuming
workers pauses the whole group for ``rebalance_s`` (an eager rebalance); partitions are split
between consumers like Kafka's range assignor, and a consumer spreads its throughput over its own
partitions only, so uneven splits waste capacity; a stuck partition keeps receiving messages and
never drains. Arrivals carry seeded noise, so a run is deterministic.

A second counts as "over target" when the oldest waiting message of any partition that is not stuck
has waited longer than ``target_lag_s``. A stuck partition's backlog is reported apart: no number of
workers changes it, so it would add the same seconds to every controller.
"""

from __future__ import annotations

import math
import random
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from mugpos.control.baseline import KedaBaseline, KedaConfig
from mugpos.control.cost import CostSummary, cost_summary
from mugpos.control.policy import Decision, PolicyConfig, ScalingPolicy, workers_for
from mugpos.control.signals import LoadSnapshot, PartitionLag

_EPS = 1e-9


class Autoscaler(Protocol):
    """What the simulator drives: ``ScalingPolicy`` and ``KedaBaseline`` both fit."""

    def decide(self, snap: LoadSnapshot, now: float | None = None) -> Decision: ...


@dataclass(frozen=True)
class Trace:
    """Arrival rate (images/s, whole topic) for each second, and partitions that get stuck (from t)."""

    name: str
    rates: tuple[float, ...]
    description: str = ""
    stuck: Mapping[int, float] = field(default_factory=dict)

    @property
    def duration_s(self) -> int:
        return len(self.rates)

    @classmethod
    def from_function(
        cls, name: str, duration_s: int, rate: Callable[[float], float], description: str = "", **kw: object
    ) -> Trace:
        return cls(name, tuple(max(0.0, rate(float(t))) for t in range(duration_s)), description, **kw)  # type: ignore[arg-type]


def standard_traces(worker_rate: float = 20.0, partitions: int = 12, duration_s: int = 1800) -> list[Trace]:
    """The traces of the benchmark, scaled to the cluster's capacity (``worker_rate`` x partitions).

    Levels are fractions of full capacity, fixed before any tuning: steady, a step up, short bursts,
    a compressed day, a stuck partition, and sparse batches separated by idle time (scale to zero).
    """
    full = worker_rate * partitions
    period = duration_s

    def diurnal(t: float) -> float:
        return full * (0.08 + 0.37 * (1 - math.cos(2 * math.pi * t / period)))

    def burst(t: float) -> float:
        in_burst = any(start <= t < start + 60 for start in (300, 1200))
        return full * (0.9 if in_burst else 0.15)

    return [
        Trace.from_function("steady", duration_s, lambda t: full * 0.42, "42 % of full capacity, constant"),
        Trace.from_function(
            "step", duration_s, lambda t: full * (0.15 if t < 300 else 0.65), "15 % then 65 % from t=300 s"
        ),
        Trace.from_function("burst", duration_s, burst, "15 %, with 60 s bursts of 90 % at t=300 s and t=1200 s"),
        Trace.from_function("diurnal", duration_s, diurnal, "8 % to 82 % and back over a compressed day"),
        Trace.from_function(
            "stuck-partition",
            duration_s,
            lambda t: full * 0.42,
            "steady 42 %; partition 3 stops draining at t=300 s",
            stuck={3: 300.0},
        ),
        Trace.from_function(
            "sparse",
            duration_s,
            lambda t: full * 0.85 if 100 <= t % 600 < 110 else 0.0,
            "idle, with a 10 s batch at 85 % every 600 s (scale to zero and wake)",
        ),
    ]


@dataclass(frozen=True)
class SimConfig:
    """The simulated cluster. ``worker_rate`` is the true images/s of one worker."""

    partitions: int = 12
    worker_rate: float = 20.0
    startup_s: float = 20.0
    rebalance_s: float = 3.0
    commit_s: int = 1
    target_lag_s: float = 10.0
    interval_s: float = 5.0
    warmup_s: int = 600
    noise: float = 0.2
    seed: int = 7
    gpu_hour_cost: float = 2.5

    def __post_init__(self) -> None:
        if self.partitions < 1 or self.worker_rate <= 0 or self.target_lag_s <= 0 or self.interval_s <= 0:
            raise ValueError("partitions, worker_rate, target_lag_s and interval_s must be positive")
        if min(self.startup_s, self.rebalance_s, self.warmup_s, self.noise, self.commit_s) < 0:
            raise ValueError("startup_s, rebalance_s, commit_s, warmup_s and noise must be >= 0")


@dataclass(frozen=True)
class SimResult:
    """Outcome of one trace under one controller (metrics exclude the warm-up)."""

    trace: str
    controller: str
    duration_s: int
    seconds_over_target: int
    gpu_seconds: float
    images: float
    max_queue_s: float
    mean_workers: float
    peak_workers: int
    changes: int
    stuck_backlog: int
    cost: CostSummary
    timeline: tuple[tuple[int, int, int, int, float], ...] = ()  # (t, workers, ready, backlog, oldest age)


def _split(total: float, parts: int, rng: random.Random, noise: float) -> list[float]:
    if parts == 1 or noise == 0:
        return [total / parts] * parts
    weights = [math.exp(rng.gauss(0.0, noise)) for _ in range(parts)]
    scale = total / sum(weights)
    return [w * scale for w in weights]


def range_assignment(partitions: int, consumers: int) -> list[list[int]]:
    """Partitions of each consumer under Kafka's range assignor (the first ``P % n`` get one more)."""
    if consumers <= 0:
        return []
    n = min(consumers, partitions)
    base, extra = divmod(partitions, n)
    out, start = [], 0
    for i in range(consumers):
        size = (base + (1 if i < extra else 0)) if i < n else 0
        out.append(list(range(start, start + size)))
        start += size
    return out


def simulate(
    trace: Trace,
    controller: Autoscaler,
    config: SimConfig,
    *,
    name: str = "",
    interval_s: float | None = None,
    keep_timeline: bool = False,
) -> SimResult:
    """Run ``trace`` (after a warm-up at its first rate) with ``controller`` deciding every ``interval_s``."""
    cfg = config
    every = interval_s if interval_s is not None else getattr(controller, "interval_s", cfg.interval_s)
    rng = random.Random(f"{cfg.seed}:{trace.name}")
    parts = cfg.partitions
    queues: list[deque[list[float]]] = [deque() for _ in range(parts)]  # [arrival time, count]
    arrived = [0.0] * parts
    done = [0.0] * parts
    commits: deque[list[float]] = deque([[0.0] * parts], maxlen=cfg.commit_s + 1)  # committed = done commit_s ago
    workers: list[float] = []  # start times, oldest first
    ready_prev = 0
    paused_until = -math.inf
    next_decision = 0.0
    warm = cfg.warmup_s
    rates = [trace.rates[0]] * warm + list(trace.rates) if trace.rates else []
    stuck_from = {p: warm + t for p, t in trace.stuck.items()}
    over = 0
    gpu_s = max_age = base_done = 0.0
    worker_steps = peak = changes = 0
    timeline: list[tuple[int, int, int, int, float]] = []

    for t in range(len(rates)):
        counted = t >= warm
        # arrivals, uniform within the second
        total = rates[t] * math.exp(rng.gauss(0.0, cfg.noise) - cfg.noise**2 / 2)  # mean-preserving jitter
        for p, a in enumerate(_split(total, parts, rng, cfg.noise / 2)):
            if a > _EPS:
                queues[p].append([t + 0.5, a])
                arrived[p] += a
        stuck = {p for p, since in stuck_from.items() if t >= since}
        ready = [s for s in workers if t >= s + cfg.startup_s]
        if len(ready) != ready_prev:
            paused_until = t + cfg.rebalance_s if ready else paused_until
            ready_prev = len(ready)
        if ready and t >= paused_until:
            for owned in range_assignment(parts, len(ready)):
                _serve(queues, done, [p for p in owned if p not in stuck], cfg.worker_rate)
        commits.append(list(done))
        now = t + 1
        healthy_age = max(
            (now - q[0][0] for p, q in enumerate(queues) if q and p not in stuck),
            default=0.0,
        )
        if counted:
            over += healthy_age > cfg.target_lag_s
            max_age = max(max_age, healthy_age)
            gpu_s += len(workers)
            worker_steps += len(workers)
            peak = max(peak, len(workers))
        if keep_timeline and counted:
            backlog = int(sum(sum(c for _, c in q) for q in queues))
            timeline.append((now - warm, len(workers), len(ready), backlog, healthy_age))
        if now >= next_decision:
            next_decision += every
            snap = LoadSnapshot(
                ts=float(now),
                partitions=tuple(
                    PartitionLag(p, committed=int(commits[0][p] + _EPS), high_water=int(arrived[p] + _EPS))
                    for p in range(parts)
                ),
                workers=len(workers),
                ready_workers=len(ready) if now >= paused_until else 0,
            )
            desired = controller.decide(snap, float(now)).desired
            if desired != len(workers) and now > warm:
                changes += 1
            if desired > len(workers):
                workers.extend([float(now)] * (desired - len(workers)))
            elif desired < len(workers):
                del workers[desired:]
        if t == warm - 1:
            base_done = sum(done)
    images = sum(done) - base_done
    duration = len(trace.rates)
    return SimResult(
        trace=trace.name,
        controller=name or type(controller).__name__,
        duration_s=duration,
        seconds_over_target=over,
        gpu_seconds=gpu_s,
        images=images,
        max_queue_s=max_age,
        mean_workers=worker_steps / duration if duration else 0.0,
        peak_workers=peak,
        changes=changes,
        stuck_backlog=int(sum(sum(c for _, c in queues[p]) for p in stuck_from)),
        cost=cost_summary(gpu_s, images, cfg.gpu_hour_cost),
        timeline=tuple(timeline),
    )


def _serve(queues: Sequence[deque[list[float]]], done: list[float], owned: list[int], rate: float) -> None:
    """One worker's second: water-fill ``rate`` images over its partitions, oldest messages first."""
    budget = rate
    active = [p for p in owned if queues[p]]
    while budget > _EPS and active:
        share = budget / len(active)
        still: list[int] = []
        for p in active:
            take = share
            q = queues[p]
            while take > _EPS and q:
                chunk = q[0]
                used = min(take, chunk[1])
                chunk[1] -= used
                take -= used
                done[p] += used
                budget -= used
                if chunk[1] <= _EPS:
                    q.popleft()
            if q:
                still.append(p)
        active = still


def oracle_gpu_seconds(trace: Trace, config: SimConfig) -> float:
    """Lower bound of the GPU-seconds that keep up with ``trace``: each second, the fewest workers whose
    usable capacity covers the nominal arrival rate (no noise, no start-up, no headroom). A controller
    below it is running short of capacity, whatever its queue shows at the moment."""
    return float(sum(workers_for(rate, config.worker_rate, config.partitions) for rate in trace.rates))


@dataclass(frozen=True)
class Comparison:
    """The policy and the baseline on one trace, with the oracle bound."""

    trace: Trace
    policy: SimResult
    baseline: SimResult
    oracle_gpu_seconds: float

    @property
    def fewer_seconds_over(self) -> bool:
        return self.policy.seconds_over_target < self.baseline.seconds_over_target

    @property
    def no_more_gpu(self) -> bool:
        return self.policy.gpu_seconds <= self.baseline.gpu_seconds

    @property
    def baseline_short(self) -> bool:
        """The baseline used fewer GPU-seconds than the load needs (it saved GPUs by running short)."""
        return self.baseline.gpu_seconds < self.oracle_gpu_seconds

    def as_dict(self) -> dict[str, object]:
        def one(r: SimResult) -> dict[str, object]:
            return {
                "seconds_over_target": r.seconds_over_target,
                "gpu_seconds": r.gpu_seconds,
                "max_queue_s": r.max_queue_s,
                "mean_workers": round(r.mean_workers, 3),
                "peak_workers": r.peak_workers,
                "changes": r.changes,
                "images": round(r.images),
                "cost_per_1000_images": None if r.cost.per_1000_images is None else round(r.cost.per_1000_images, 5),
            }

        return {
            "trace": self.trace.name,
            "policy": one(self.policy),
            "baseline": one(self.baseline),
            "oracle_gpu_seconds": self.oracle_gpu_seconds,
            "fewer_seconds_over": self.fewer_seconds_over,
            "no_more_gpu": self.no_more_gpu,
            "baseline_short": self.baseline_short,
        }


def compare(
    traces: Sequence[Trace],
    config: SimConfig,
    policy_config: PolicyConfig | None = None,
    keda_config: KedaConfig | None = None,
) -> list[Comparison]:
    """Replay every trace through a fresh policy and a fresh KEDA-style baseline.

    By default both are configured from the same knowledge: the worker rate, the partitions, the
    lag target and the start-up time of the simulated cluster.
    """
    pcfg = policy_config or PolicyConfig(
        partitions=config.partitions,
        target_lag_s=config.target_lag_s,
        worker_rate=config.worker_rate,
        startup_s=config.startup_s,
        interval_s=config.interval_s,
    )
    kcfg = keda_config or KedaConfig.for_target(config.partitions, pcfg.worker_rate, config.target_lag_s)
    out = []
    for trace in traces:
        policy = ScalingPolicy(pcfg)
        baseline = KedaBaseline(kcfg)
        out.append(
            Comparison(
                trace=trace,
                policy=simulate(trace, policy, config, name="policy", interval_s=pcfg.interval_s),
                baseline=simulate(trace, baseline, config, name="keda", interval_s=baseline.interval_s),
                oracle_gpu_seconds=oracle_gpu_seconds(trace, config),
            )
        )
    return out
