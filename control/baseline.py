"""A KEDA-style baseline autoscaler (Kafka scaler + Kubernetes HPA defaults), for comparison only.

KEDA's Kafka scaler reports the group's total lag; the HPA asks for ``ceil(total lag / lagThreshold)``
replicas, capped at the partition count (``allowIdleConsumers: false``). Defaults are KEDA's and the
HPA's own: activation checks every ``pollingInterval`` (30 s), the HPA re-reads the metric every 15 s
with a 10 % tolerance, scale-up is limited to +100 % or +4 pods per 15 s, scale-down waits for the
highest recommendation of the last 300 s, and a deployment with no lag for ``cooldownPeriod``
(300 s) goes to zero. ``for_target`` sets lagThreshold to the backlog one worker drains within the
lag target, so both controllers chase the same goal from the same knowledge.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from mugpos.control.policy import Action, ConfigError, Decision
from mugpos.control.signals import LoadSnapshot


@dataclass(frozen=True)
class KedaConfig:
    """ScaledObject + HPA parameters of the baseline (names follow KEDA's)."""

    partitions: int
    lag_threshold: float
    target_lag_s: float = 10.0
    activation_lag_threshold: int = 0
    min_replicas: int = 0
    max_replicas: int = 100
    polling_interval_s: float = 30.0
    hpa_sync_s: float = 15.0
    cooldown_s: float = 300.0
    scale_down_window_s: float = 300.0
    tolerance: float = 0.1
    scale_up_pods: int = 4
    scale_up_percent: float = 100.0

    def __post_init__(self) -> None:
        if self.partitions < 1:
            raise ConfigError(f"partitions={self.partitions} must be >= 1")
        if not self.lag_threshold > 0:
            raise ConfigError(f"lag_threshold={self.lag_threshold} must be > 0")
        if self.min_replicas < 0 or self.min_replicas > self.max_replicas:
            raise ConfigError(f"need 0 <= min_replicas ({self.min_replicas}) <= max_replicas ({self.max_replicas})")

    @classmethod
    def for_target(cls, partitions: int, worker_rate: float, target_lag_s: float, **kw: float) -> KedaConfig:
        """lagThreshold = the backlog one worker drains within the target (rate x target)."""
        return cls(partitions=partitions, lag_threshold=worker_rate * target_lag_s, target_lag_s=target_lag_s, **kw)  # type: ignore[arg-type]

    @property
    def ceiling(self) -> int:
        return min(self.max_replicas, self.partitions)


class KedaBaseline:
    """Replays KEDA + HPA behaviour on the same snapshots as ``ScalingPolicy``."""

    def __init__(self, config: KedaConfig) -> None:
        self.config = config
        self.interval_s = config.hpa_sync_s
        self._window: deque[tuple[float, int]] = deque()
        self._last_poll: float | None = None
        self._last_active: float | None = None

    def decide(self, snap: LoadSnapshot, now: float | None = None) -> Decision:
        cfg = self.config
        now = snap.ts if now is None else now
        current, total = snap.workers, snap.total_lag
        active = total > cfg.activation_lag_threshold
        if active:
            self._last_active = now
        desired = current
        action: Action = "hold"
        if current == 0:
            if self._last_poll is None or now - self._last_poll >= cfg.polling_interval_s:
                self._last_poll = now
                if active:
                    desired, action = max(cfg.min_replicas, 1), "wake"
            reason = f"keda: total lag {total} {'>' if active else '<='} activation {cfg.activation_lag_threshold}"
        elif (
            not active
            and cfg.min_replicas == 0
            and (self._last_active is None or now - self._last_active >= cfg.cooldown_s)
        ):
            desired, action = 0, "sleep"
            self._window.clear()
            reason = f"keda: no lag for {cfg.cooldown_s:g} s (cooldownPeriod)"
        else:
            per_pod = total / current
            if abs(per_pod / cfg.lag_threshold - 1.0) <= cfg.tolerance:
                rec = current
            else:
                rec = math.ceil(total / cfg.lag_threshold)
            rec = max(max(cfg.min_replicas, 1), min(cfg.ceiling, rec))
            self._window.append((now, rec))
            while self._window and self._window[0][0] <= now - cfg.scale_down_window_s:
                self._window.popleft()
            if rec > current:
                limit = max(current + cfg.scale_up_pods, math.ceil(current * (1 + cfg.scale_up_percent / 100)))
                desired = min(rec, limit)
            else:
                desired = min(current, max(n for _, n in self._window))
            action = "up" if desired > current else "down" if desired < current else "hold"
            reason = (
                f"keda: ceil({total} / {cfg.lag_threshold:g}) = {math.ceil(total / cfg.lag_threshold)} -> {desired}"
            )
        return Decision(
            at=now,
            current=current,
            desired=desired,
            action=action,
            reason=reason,
            total_lag=total,
            lag_by_partition=snap.lag_by_partition,
            target_lag_s=cfg.target_lag_s,
        )
