"""Pure parts of the signals (lag arithmetic, rates) and of the cost accounting."""

from __future__ import annotations

import math

import pytest

from mugpos.control.cost import CostMeter, cost_summary
from mugpos.control.signals import LagReading, LoadSnapshot, PartitionLag, rates_between


@pytest.mark.parametrize(
    ("part", "lag"),
    [
        (PartitionLag(0, committed=4, high_water=10), 6),
        (PartitionLag(0, committed=None, high_water=10), 10),  # never committed: from the log start
        (PartitionLag(0, committed=None, high_water=10, log_start=7), 3),
        (PartitionLag(0, committed=2, high_water=10, log_start=5), 5),  # committed offset deleted by retention
        (PartitionLag(0, committed=12, high_water=10), 0),  # never negative
    ],
    ids=["committed", "never-committed", "log-start", "retention", "ahead"],
)
def test_partition_lag(part: PartitionLag, lag: int) -> None:
    assert part.lag == lag


def test_rates_between_readings_ignore_resets_and_new_partitions() -> None:
    before = LagReading(0.0, "t", "g", (PartitionLag(0, 0, 100), PartitionLag(1, 50, 60)))
    after = LagReading(10.0, "t", "g", (PartitionLag(0, 40, 300), PartitionLag(1, 10, 5), PartitionLag(2, 0, 1_000)))
    arrival, processed = rates_between(before, after)
    assert arrival == pytest.approx(20.0)  # partition 1 went backwards (re-created): 0; partition 2 is new
    assert processed == pytest.approx(4.0)
    assert rates_between(after, before) == (None, None)


def test_snapshot_validation_and_views() -> None:
    snap = LoadSnapshot(ts=5.0, partitions=(PartitionLag(0, 1, 4), PartitionLag(1, 0, 2)), workers=3, ready_workers=5)
    assert snap.total_lag == 5 and snap.lag_by_partition == {0: 3, 1: 2}
    assert snap.ready == 3  # never more ready than running
    with pytest.raises(ValueError, match="workers must be >= 0"):
        LoadSnapshot(ts=0.0, partitions=(), workers=-1)
    with pytest.raises(ValueError, match="finite"):
        LoadSnapshot(ts=0.0, partitions=(), workers=1, arrival_rate=math.inf)


def test_oldest_wait_is_the_age_of_the_oldest_waiting_message() -> None:
    reading = LagReading(
        100.0,
        "t",
        "g",
        (PartitionLag(0, 0, 5, oldest_ts=70.0), PartitionLag(1, 5, 5, oldest_ts=10.0), PartitionLag(2, 0, 1)),
    )
    assert reading.oldest_wait_s() == 30.0  # partition 1 has nothing waiting: its timestamp is stale
    assert reading.oldest_wait_s(now=130.0) == 60.0
    assert LagReading(1.0, "t", "g", ()).oldest_wait_s() is None


def test_cost_per_thousand_images_and_gpu_hours() -> None:
    summary = cost_summary(gpu_seconds=7_200.0, images=40_000, gpu_hour_cost=2.5)
    assert summary.gpu_hours == 2.0 and summary.cost == 5.0
    assert summary.per_1000_images == pytest.approx(0.125)
    assert cost_summary(10.0, 0, 2.5).per_1000_images is None
    with pytest.raises(ValueError, match="gpu_hour_cost must be a finite number >= 0"):
        cost_summary(1.0, 1.0, -1.0)


def test_cost_meter_bills_workers_for_the_time_they_run() -> None:
    meter = CostMeter(gpu_hour_cost=3.6)
    meter.observe(0.0, 2)
    meter.observe(1800.0, 4)  # 2 workers for half an hour
    meter.observe(2700.0, 0)  # 4 workers for a quarter of an hour
    meter.observe(9999.0, 0)
    meter.add_images(1_000)
    s = meter.summary()
    assert s.gpu_hours == pytest.approx(2.0) and s.cost == pytest.approx(7.2)
    assert s.as_dict()["cost_per_1000_images"] == pytest.approx(7.2)
