"""A load feed for policy tests: advances per-partition offsets the way a real topic and group would."""

from __future__ import annotations

from dataclasses import dataclass, field

from mugpos.control.policy import Decision, ScalingPolicy, usable_workers
from mugpos.control.signals import LoadSnapshot, PartitionLag


@dataclass
class Feed:
    """Offsets of ``partitions`` partitions; ``tick`` moves time, arrivals and processing forward."""

    partitions: int = 12
    t: float = 1_000.0
    high: list[float] = field(default_factory=list)
    done: list[float] = field(default_factory=list)
    stuck: set[int] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.high = [0.0] * self.partitions
        self.done = [0.0] * self.partitions

    def tick(
        self, dt: float, arrive_per_s: float, process_per_s: float, workers: int, ready: int | None = None
    ) -> LoadSnapshot:
        """Spread arrivals evenly; processing drains healthy partitions evenly, never past the high-water mark."""
        self.t += dt
        for p in range(self.partitions):
            self.high[p] += arrive_per_s * dt / self.partitions
        healthy = [p for p in range(self.partitions) if p not in self.stuck]
        budget = process_per_s * dt
        while budget > 1e-9:
            open_ = [p for p in healthy if self.high[p] - self.done[p] > 1e-9]
            if not open_:
                break
            share = budget / len(open_)
            for p in open_:
                used = min(share, self.high[p] - self.done[p])
                self.done[p] += used
                budget -= used
        return self.snapshot(workers, ready)

    def snapshot(self, workers: int, ready: int | None = None) -> LoadSnapshot:
        parts = tuple(
            PartitionLag(p, committed=int(self.done[p] + 1e-9), high_water=int(self.high[p] + 1e-9))
            for p in range(self.partitions)
        )
        return LoadSnapshot(ts=self.t, partitions=parts, workers=workers, ready_workers=ready)


def run(
    policy: ScalingPolicy,
    feed: Feed,
    seconds: float,
    arrive_per_s: float,
    *,
    workers: int,
    rate: float = 20.0,
    dt: float = 5.0,
    follow: bool = True,
) -> tuple[int, list[Decision]]:
    """Feed ``seconds`` of load at ``dt`` steps; workers process at ``rate`` each and follow the decisions."""
    decisions = []
    for _ in range(round(seconds / dt)):
        snap = feed.tick(dt, arrive_per_s, rate * usable_workers(workers, feed.partitions), workers)
        decision = policy.decide(snap)
        decisions.append(decision)
        if follow:
            workers = decision.desired
    return workers, decisions
