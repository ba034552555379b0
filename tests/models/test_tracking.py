"""Track ids across a camera's frames: kept through a restart, the same on a redelivery, none when late."""

from __future__ import annotations

import pickle
from typing import Any

import pytest

from mugpos.models.tracking import CameraTracker, TrackerStateError, load_tracker


def mug(x: float, confidence: float = 0.9) -> dict[str, Any]:
    return {"box": {"x1": x, "y1": 100.0, "x2": x + 80, "y2": 200.0}, "confidence": confidence}


def test_two_still_mugs_keep_distinct_ids_from_their_second_frame() -> None:
    tracker = CameraTracker(lost_s=30)
    first = tracker.update("f0", 0, [mug(100), mug(400)])
    assert first == [None, None]  # a track is confirmed on its second frame: no one-frame phantoms
    ids = [tracker.update(f"f{i}", i * 5000, [mug(100), mug(400)]) for i in range(1, 6)]
    assert all(frame == ids[0] for frame in ids) and len(set(ids[0])) == 2 and None not in ids[0]


def test_ids_survive_the_state_bytes_and_a_gap_shorter_than_lost_s() -> None:
    tracker = CameraTracker(lost_s=30)
    for i in range(3):
        ids = tracker.update(f"f{i}", i * 5000, [mug(100)])
    restored = load_tracker(tracker.dumps())  # a new worker, from the changelog
    assert restored.update("f3", 30_000, [mug(102)]) == ids  # unseen for 20 s: same mug
    assert restored.update("f4", 90_000, [mug(102)]) != ids  # unseen for 60 s: a new track (or none yet)


def test_a_redelivered_frame_gets_its_ids_again_and_a_late_one_gets_none() -> None:
    tracker = CameraTracker(lost_s=30)
    for i in range(3):
        tracker.update(f"f{i}", i * 5000, [mug(100)])
    again = tracker.update("f2", 10_000, [mug(100)])
    assert again == tracker.recent["f2"] and again != [None]
    assert tracker.is_late(7_000)
    assert tracker.update("late", 7_000, [mug(100)]) == [None]
    assert tracker.last_ms == 10_000  # the late frame moved nothing


class Boom:
    def __reduce__(self) -> tuple[Any, ...]:
        return (print, ("this must never run",))


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(pickle.dumps(Boom()), id="a foreign callable"),
        pytest.param(b"not a pickle at all", id="garbage"),
        pytest.param(pickle.dumps((99, 30.0, None, {}, None)), id="another format"),
    ],
)
def test_state_that_is_not_a_tracker_is_refused(data: bytes) -> None:
    with pytest.raises(TrackerStateError):
        load_tracker(data)
