"""Put each camera's frames back in capture-time order, within a bounded lateness.

Frames of one camera share a partition (keyed by source), so they arrive in the order the camera
produced them, except when the producer itself reorders (retries, several uploaders, clock
jitter). A frame waits here until either a frame captured ``lateness`` later has arrived (the
watermark of its camera passed it) or it has waited ``lateness`` of wall time (the camera went
quiet). Whatever is released comes out in capture order per camera, so the stateful stages behind
(tracking, episodes) never see time go backwards; a frame older than one already released is the
caller's *late* frame.

Nothing here is durable on purpose: waiting frames are unacknowledged Kafka events, so a crash
redelivers them.
"""

from __future__ import annotations

from bisect import insort
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(order=True, slots=True)
class _Waiting(Generic[T]):
    captured_ms: int
    seq: int
    arrived: float = field(compare=False)
    item: T = field(compare=False)


class Reorderer(Generic[T]):
    """Per-source buffers of items, released in capture order once due."""

    def __init__(self, lateness_s: float) -> None:
        self.lateness_s = lateness_s
        self._lateness_ms = int(lateness_s * 1000)
        self._waiting: dict[Hashable, list[_Waiting[T]]] = {}
        self._newest: dict[Hashable, int] = {}
        self._seq = 0

    def __len__(self) -> int:
        return sum(len(w) for w in self._waiting.values())

    def add(self, source: Hashable, captured_ms: int, item: T, now: float) -> None:
        """Hold ``item`` (captured at ``captured_ms``) until it is due; ``now`` is a monotonic clock."""
        self._seq += 1
        insort(self._waiting.setdefault(source, []), _Waiting(captured_ms, self._seq, now, item))
        if captured_ms > self._newest.get(source, captured_ms - 1):
            self._newest[source] = captured_ms

    def due(self, now: float) -> list[T]:
        """Items ready to go, each camera's in capture order (ties in arrival order).

        An item is due when the newest capture of its camera is ``lateness`` past it, or it waited
        ``lateness`` of wall time; everything captured before a due item goes with it, so order holds.
        """
        out: list[T] = []
        for source in list(self._waiting):
            waiting = self._waiting[source]
            watermark = self._newest[source] - self._lateness_ms
            oldest_allowed = now - self.lateness_s
            cut = 0
            for i, w in enumerate(waiting):
                if w.captured_ms <= watermark or w.arrived <= oldest_allowed:
                    cut = i + 1
            if cut:
                out.extend(w.item for w in waiting[:cut])
                del waiting[:cut]
            if not waiting:
                del self._waiting[source]
        return out

    def drop(self, unwanted: Callable[[T], bool]) -> list[T]:
        """Forget the items ``unwanted`` picks (their partitions were revoked: the new owner reads them)."""
        dropped: list[T] = []
        for source in list(self._waiting):
            keep = [w for w in self._waiting[source] if not unwanted(w.item)]
            dropped.extend(w.item for w in self._waiting[source] if unwanted(w.item))
            if keep:
                self._waiting[source] = keep
            else:
                del self._waiting[source]
        return dropped
