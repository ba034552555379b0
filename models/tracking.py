"""Mug tracks across one camera's frames: ByteTrack (Roboflow's ``trackers``, on supervision types).

One :class:`CameraTracker` per source. It is fed that source's frames in capture-time order (the
positioning stage orders them) and writes ``track_id`` into each positioned mug. Its whole state
travels as bytes (:meth:`CameraTracker.dumps` / :func:`load_tracker`), so the stream layer can keep
it in a changelogged table and a restarted or rebalanced worker carries on with the same ids.

Two choices worth knowing:

* ByteTrack confirms a track on its second matched frame: a mug seen once has no track id yet. A
  one-frame phantom therefore never starts an episode of a stateful rule.
* Tracks are timed in capture seconds (``timestamp``), not frame counts, so a camera that sends a
  frame every 5 s and one that sends 30 per second both keep a mug's id for ``lost_s`` unseen.

A frame seen again (an at-least-once redelivery after a crash) gets the ids it got the first time,
from a short memory of recent frames, instead of moving the tracks a second time.
"""

from __future__ import annotations

import io
import pickle
from collections import OrderedDict
from collections.abc import MutableMapping, Sequence
from typing import Any

import numpy as np
import supervision as sv
import trackers

#: Spawn a track only from a mug at least this sure; weaker ones (down to the report threshold) only
#: extend tracks (ByteTrack's second, low-confidence association).
SPAWN_CONFIDENCE = 0.4
#: Least IoU between a track's predicted box and a mug's box for them to be the same mug.
MATCH_IOU = 0.1
#: Frames whose assigned ids are remembered, to answer a redelivered frame with the same ids.
RECENT_FRAMES = 64
FORMAT = 1


class _TrackerUnpickler(pickle.Unpickler):
    """Load only tracker and numpy classes: the state comes from a topic, not from code we trust."""

    def find_class(self, module: str, name: str) -> Any:
        if module == "builtins" and name in ("dict", "list", "tuple", "set", "frozenset", "float", "int"):
            return super().find_class(module, name)
        if module == "numpy" or module.startswith(("trackers.", "numpy.")) or module in ("collections", "copyreg"):
            if module == "collections" and name != "OrderedDict":
                raise pickle.UnpicklingError(f"tracker state may not name {module}.{name}")
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"tracker state may not name {module}.{name}")


class TrackerStateError(ValueError):
    """Stored tracker state that cannot be read (another version, or not ours): start afresh."""


class CameraTracker:
    """ByteTrack for one camera, plus the capture time of the newest frame it has tracked."""

    def __init__(self, lost_s: float = 30.0) -> None:
        self.lost_s = lost_s
        self._tracker = trackers.ByteTrackTracker(
            lost_track_buffer=max(1, round(lost_s * 30)),  # "frames at 30 FPS": lost_s seconds
            frame_rate=30.0,
            track_activation_threshold=SPAWN_CONFIDENCE,
            minimum_consecutive_frames=1,
            minimum_iou_threshold=MATCH_IOU,
            high_conf_det_threshold=SPAWN_CONFIDENCE,
        )
        self.last_ms: int | None = None
        self.recent: MutableMapping[str, list[int | None]] = OrderedDict()

    def is_late(self, captured_ms: int) -> bool:
        """True for a frame older than one already tracked: it may not move the tracks back."""
        return self.last_ms is not None and captured_ms < self.last_ms

    def update(self, image_id: str, captured_ms: int, mugs: Sequence[dict[str, Any]]) -> list[int | None]:
        """Track ids of ``mugs`` (PositionEvent mug records, in order); None for an unconfirmed mug.

        A redelivered frame (same image id) gets its earlier answer; a late frame gets no ids."""
        if image_id in self.recent:
            return list(self.recent[image_id])
        if self.is_late(captured_ms):
            return [None] * len(mugs)
        ids: list[int | None] = [None] * len(mugs)
        if mugs:
            boxes = np.array([[m["box"]["x1"], m["box"]["y1"], m["box"]["x2"], m["box"]["y2"]] for m in mugs], float)
            detections = sv.Detections(
                xyxy=boxes,
                confidence=np.array([float(m["confidence"]) for m in mugs]),
                class_id=np.zeros(len(mugs), dtype=int),
                data={"mug": np.arange(len(mugs))},
            )
        else:
            detections = sv.Detections.empty()
        tracked = self._tracker.update(detections, timestamp=captured_ms / 1000)
        if len(tracked) and "mug" in tracked.data and tracked.tracker_id is not None:
            for index, track in zip(tracked.data["mug"], tracked.tracker_id, strict=True):
                if track >= 0:
                    ids[int(index)] = int(track)
        self.last_ms = captured_ms
        self.recent[image_id] = ids
        while len(self.recent) > RECENT_FRAMES:
            self.recent.popitem(last=False)  # type: ignore[call-arg]
        return ids

    def dumps(self) -> bytes:
        """The whole state as bytes (for a changelogged table)."""
        buffer = io.BytesIO()
        pickle.dump((FORMAT, self.lost_s, self.last_ms, dict(self.recent), self._tracker), buffer, protocol=5)
        return buffer.getvalue()


def load_tracker(data: bytes) -> CameraTracker:
    """A tracker from :meth:`CameraTracker.dumps`; refuses anything but tracker and numpy objects."""
    try:
        version, lost_s, last_ms, recent, inner = _TrackerUnpickler(io.BytesIO(data)).load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, ImportError) as exc:
        raise TrackerStateError(f"unreadable tracker state: {exc}") from None
    if version != FORMAT or not isinstance(inner, trackers.ByteTrackTracker):
        raise TrackerStateError(f"tracker state of format {version!r}, expected {FORMAT}")
    tracker = CameraTracker(float(lost_s))
    tracker._tracker = inner
    tracker.last_ms = last_ms
    tracker.recent = OrderedDict(recent)
    return tracker
