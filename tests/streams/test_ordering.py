"""A camera's frames come out in capture order, within the lateness, whatever order they arrived in."""

from __future__ import annotations

import pytest

from mugpos.streams.ordering import Reorderer


@pytest.mark.parametrize(
    ("arrivals", "released"),
    [
        pytest.param([0, 5, 10, 15], [0, 5], id="in-order: released once 10 s of capture time have passed"),
        pytest.param([5, 0, 15, 10], [0, 5], id="neighbours swapped: back in order"),
        pytest.param([20, 0, 5], [0, 5], id="a frame far ahead releases everything before it"),
    ],
)
def test_frames_are_released_in_capture_order_once_the_watermark_passes(
    arrivals: list[int], released: list[int]
) -> None:
    waiting: Reorderer[int] = Reorderer(lateness_s=10)
    for t in arrivals:
        waiting.add("cam", t * 1000, t, now=0.0)
    assert waiting.due(now=1.0) == released
    assert len(waiting) == len(arrivals) - len(released)


def test_a_quiet_camera_is_released_after_the_lateness_in_wall_time() -> None:
    waiting: Reorderer[int] = Reorderer(lateness_s=10)
    for t in (10, 0, 5):
        waiting.add("cam", t * 1000, t, now=100.0)
    assert waiting.due(now=105.0) == [0]  # 10 - 10 s watermark passed only the first
    assert waiting.due(now=110.0) == [5, 10]  # waited the lateness out, still in order


def test_cameras_are_ordered_independently_and_zero_lateness_waits_for_nothing() -> None:
    waiting: Reorderer[str] = Reorderer(lateness_s=0)
    waiting.add("a", 2000, "a2", now=0.0)
    waiting.add("b", 9000, "b9", now=0.0)
    waiting.add("a", 1000, "a1", now=0.0)  # came after a2: it is the caller's late frame, in order here
    assert waiting.due(now=0.0) == ["a1", "a2", "b9"]


def test_frames_of_revoked_partitions_are_dropped() -> None:
    waiting: Reorderer[tuple[int, int]] = Reorderer(lateness_s=60)
    for partition, t in ((0, 1), (1, 2), (0, 3)):
        waiting.add(f"cam-{partition}", t, (partition, t), now=0.0)
    assert sorted(waiting.drop(lambda item: item[0] == 0)) == [(0, 1), (0, 3)]
    assert waiting.due(now=61.0) == [(1, 2)]
