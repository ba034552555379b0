"""In-process live statistics for the web views: rates, percentiles, distributions, recent results.

Prometheus holds the long-term series; these are the figures a person wants at a glance on one
worker (throughput over 1 and 15 minutes, stage latency percentiles over the last minutes), kept
in fixed-size structures so memory stays bounded however long the worker runs.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Callable
from typing import Any

import numpy as np

log = logging.getLogger(__name__)


class RollingCounter:
    """Events per second over a sliding window, in one-second buckets (15 minutes by default)."""

    def __init__(self, horizon_s: int = 900, clock: Callable[[], float] = time.time) -> None:
        self._horizon = horizon_s
        self._buckets = np.zeros(horizon_s, dtype=np.int64)
        self._stamps = np.full(horizon_s, -1, dtype=np.int64)
        self._clock = clock
        self._lock = threading.Lock()
        self.total = 0

    def add(self, n: int = 1) -> None:
        second = int(self._clock())
        slot = second % self._horizon
        with self._lock:
            if self._stamps[slot] != second:
                self._stamps[slot] = second
                self._buckets[slot] = 0
            self._buckets[slot] += n
            self.total += n

    def rate(self, window_s: int) -> float:
        """Mean events/s over the last ``window_s`` complete and current seconds."""
        window_s = min(window_s, self._horizon)
        now = int(self._clock())
        with self._lock:
            fresh = (self._stamps > now - window_s) & (self._stamps <= now)
            return float(self._buckets[fresh].sum()) / window_s


class LatencyWindow:
    """Recent samples (bounded count and age) with percentiles."""

    def __init__(self, max_samples: int = 5000, max_age_s: float = 300.0, clock: Callable[[], float] = time.time):
        self._samples: deque[tuple[float, float]] = deque(maxlen=max_samples)
        self._max_age = max_age_s
        self._clock = clock

    def add(self, value: float) -> None:
        self._samples.append((self._clock(), value))

    def percentiles(self, qs: tuple[float, ...] = (50, 95, 99)) -> dict[str, float | None]:
        cutoff = self._clock() - self._max_age
        values = [v for t, v in list(self._samples) if t >= cutoff]
        if not values:
            return {f"p{q:g}": None for q in qs}
        result = np.percentile(np.asarray(values), qs)
        return {f"p{q:g}": round(float(v), 3) for q, v in zip(qs, result, strict=True)}


class PipelineStats:
    """Everything ``GET /mugpos/stats`` reports for one worker."""

    STAGES = ("fetch", "decode", "inference", "batch", "end_to_end", "position", "rules")

    def __init__(self, recent: int = 48, clock: Callable[[], float] = time.time) -> None:
        self.started = clock()
        self._clock = clock
        self.images = RollingCounter(clock=clock)
        self.positions = RollingCounter(clock=clock)
        self.actions = RollingCounter(clock=clock)
        self.latency = {stage: LatencyWindow(clock=clock) for stage in self.STAGES}
        self.batch_sizes: Counter[int] = Counter()
        self.cache: Counter[str] = Counter()
        self.dead_letters: Counter[str] = Counter()
        self.lag: dict[str, dict[int, int]] = {}
        self.model: dict[str, Any] = {}
        #: The control agent's counters and costs, when this worker runs it.
        self.control: Callable[[], dict[str, Any]] | None = None
        self.recent: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._recent_size = recent

    def record_batch(self, size: int) -> None:
        self.batch_sizes[size] += 1

    def record_stage(self, stage: str, ms: float) -> None:
        self.latency.setdefault(stage, LatencyWindow(clock=self._clock)).add(ms)

    def record_dead_letter(self, stage: str, reason: str) -> None:
        self.dead_letters[f"{stage}/{reason}"] += 1

    def remember(self, image_id: str, **fields: Any) -> None:
        """Merge fields into the recent-results entry of ``image_id`` (newest last, bounded)."""
        entry = self.recent.pop(image_id, {"image_id": image_id})
        entry.update(fields)
        self.recent[image_id] = entry
        while len(self.recent) > self._recent_size:
            self.recent.popitem(last=False)

    def snapshot(self) -> dict[str, Any]:
        hits, misses = self.cache["hit"], self.cache["miss"]
        return {
            "uptime_s": round(self._clock() - self.started, 1),
            "throughput": {
                "images_per_s_1m": round(self.images.rate(60), 3),
                "images_per_s_15m": round(self.images.rate(900), 3),
                "positions_per_s_1m": round(self.positions.rate(60), 3),
                "actions_per_s_1m": round(self.actions.rate(60), 3),
                "images_total": self.images.total,
            },
            "batch_sizes": {str(k): v for k, v in sorted(self.batch_sizes.items())},
            "latency_ms": {stage: window.percentiles() for stage, window in self.latency.items()},
            "cache": {
                "hits": hits,
                "misses": misses,
                "hit_ratio": round(hits / (hits + misses), 4) if hits + misses else None,
            },
            "dead_letters": dict(self.dead_letters),
            "lag": {topic: {str(p): n for p, n in sorted(parts.items())} for topic, parts in self.lag.items()},
            "model": self.model,
            "gpu": gpu_info(),
            "control": self.control() if self.control is not None else None,
        }


def gpu_info() -> list[dict[str, Any]]:
    """Name, memory and utilisation of each CUDA device this process already uses; empty otherwise.

    Asking torch about a device initialises CUDA (a context of several hundred MiB, seconds of
    start-up) in the asking process, so a stats request never does it: only a worker whose model
    already runs on a GPU reports one."""
    torch = sys.modules.get("torch")
    try:
        if torch is None or not torch.cuda.is_initialized():
            return []
        devices = []
        for i in range(torch.cuda.device_count()):
            free, total = torch.cuda.mem_get_info(i)
            entry: dict[str, Any] = {
                "index": i,
                "name": torch.cuda.get_device_name(i),
                "memory_used_mb": round((total - free) / 2**20),
                "memory_total_mb": round(total / 2**20),
            }
            try:
                entry["utilization_pct"] = torch.cuda.utilization(i)
            except Exception:  # needs NVML; memory figures still stand without it
                entry["utilization_pct"] = None
            devices.append(entry)
        return devices
    except Exception as exc:  # a broken driver must not break the stats page
        log.warning("GPU figures unavailable: %r", exc)
        return []
