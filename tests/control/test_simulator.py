"""The simulator's model, and the benchmark claim: the policy beats the KEDA-style baseline."""

from __future__ import annotations

import pytest

from mugpos.control.baseline import KedaBaseline, KedaConfig
from mugpos.control.policy import Decision, PolicyConfig
from mugpos.control.signals import LoadSnapshot
from mugpos.control.simulator import (
    SimConfig,
    Trace,
    compare,
    oracle_gpu_seconds,
    range_assignment,
    simulate,
    standard_traces,
)


class Fixed:
    """A controller that always asks for ``n`` workers (to test the model, not a policy)."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.seen: list[LoadSnapshot] = []

    def decide(self, snap: LoadSnapshot, now: float | None = None) -> Decision:
        self.seen.append(snap)
        return Decision(snap.ts, snap.workers, self.n, "hold", "fixed", snap.total_lag, {}, 10.0)


QUIET = SimConfig(noise=0.0, warmup_s=0, rebalance_s=0.0, commit_s=0)


@pytest.mark.parametrize(
    ("partitions", "consumers", "sizes"),
    [(12, 5, [3, 3, 2, 2, 2]), (12, 12, [1] * 12), (4, 6, [1, 1, 1, 1, 0, 0]), (7, 1, [7])],
)
def test_range_assignment_splits_like_kafka(partitions: int, consumers: int, sizes: list[int]) -> None:
    owned = range_assignment(partitions, consumers)
    assert [len(o) for o in owned] == sizes
    assert sorted(p for o in owned for p in o) == list(range(partitions))


def test_images_are_conserved_and_work_needs_ready_workers() -> None:
    cfg = SimConfig(noise=0.0, warmup_s=0, startup_s=20.0, rebalance_s=0.0)
    trace = Trace("flat", (60.0,) * 100)
    result = simulate(trace, Fixed(4), cfg, interval_s=5.0, keep_timeline=True)
    arrived = 60.0 * 100
    backlog = result.timeline[-1][3]
    assert result.images + backlog == pytest.approx(arrived, abs=2)
    assert all(ready == 0 for t, _, ready, _, _ in result.timeline if t < 21)  # loading the model
    assert result.timeline[19][3] >= 60 * 19  # nothing processed while they load
    assert result.gpu_seconds == 4 * 99  # billed from the first decision (t=1), loading included


def test_uneven_partition_split_limits_throughput() -> None:
    """5 consumers on 12 partitions drain only as fast as 4: the busiest owns 3 partitions."""
    trace = Trace("flat", (90.0,) * 300)
    five = simulate(trace, Fixed(5), QUIET, interval_s=5.0)
    six = simulate(trace, Fixed(6), QUIET, interval_s=5.0)
    assert five.seconds_over_target > 250  # 90/s arrive, 80/s drain: the queue grows for good
    assert six.seconds_over_target < 60  # the 20 s start-up backlog, drained at 30/s spare


def test_a_stuck_partition_never_drains_and_is_reported_apart() -> None:
    trace = Trace("stuck", (60.0,) * 300, stuck={3: 100.0})
    result = simulate(trace, Fixed(12), QUIET, interval_s=5.0)
    assert result.stuck_backlog == pytest.approx(60 / 12 * 200, abs=2)
    assert result.seconds_over_target <= 25  # the stuck backlog does not count against the controller


class Flapping(Fixed):
    """Switches between 6 and 12 workers every 30 s."""

    def decide(self, snap: LoadSnapshot, now: float | None = None) -> Decision:
        n = 6 if int(snap.ts) // 30 % 2 else 12
        return Decision(snap.ts, snap.workers, n, "hold", "flap", snap.total_lag, {}, 10.0)


def test_rebalances_pause_consumption() -> None:
    cfg = SimConfig(noise=0.0, warmup_s=0, rebalance_s=3.0, commit_s=0)
    steady = simulate(Trace("flat", (100.0,) * 600), Fixed(12), cfg, interval_s=5.0)
    flappy = simulate(Trace("flat", (100.0,) * 600), Flapping(12), cfg, interval_s=5.0)
    assert flappy.seconds_over_target > steady.seconds_over_target + 30


def test_runs_are_deterministic() -> None:
    trace = standard_traces()[2]
    a = compare([trace], SimConfig())[0]
    b = compare([trace], SimConfig())[0]
    assert a.as_dict() == b.as_dict()


def test_oracle_bound_counts_usable_workers() -> None:
    cfg = SimConfig()
    assert oracle_gpu_seconds(Trace("t", (81.0, 0.0, 240.0)), cfg) == 6 + 0 + 12


def test_bad_simulation_config_is_refused() -> None:
    with pytest.raises(ValueError, match="must be positive"):
        SimConfig(worker_rate=0)
    with pytest.raises(ValueError, match=">= 0"):
        SimConfig(startup_s=-1)


# -- the claim of docs/benchmarks.md --------------------------------------------------------------


def test_policy_beats_the_keda_baseline_on_every_trace() -> None:
    """The documented run (seed 7): fewer seconds over the lag target on every trace, at no more
    GPU-seconds than the baseline, except where the baseline ran below the oracle bound (short of the
    capacity the load needs): there the policy stays within 1 % of that bound."""
    results = compare(standard_traces(), SimConfig(seed=7))
    assert [c.trace.name for c in results] == ["steady", "step", "burst", "diurnal", "stuck-partition", "sparse"]
    for c in results:
        p, b = c.policy, c.baseline
        assert p.seconds_over_target < b.seconds_over_target, c.trace.name
        assert p.changes <= b.changes, c.trace.name  # and it flaps less
        if c.baseline_short:
            assert p.gpu_seconds <= 1.01 * c.oracle_gpu_seconds, c.trace.name
        else:
            assert p.gpu_seconds <= b.gpu_seconds, c.trace.name
    assert [c.trace.name for c in results if c.baseline_short] == ["step"]


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_result_holds_for_other_noise_seeds(seed: int) -> None:
    """Other seeds: always fewer seconds over target; GPU-seconds never more than 3 % above the
    baseline's (step and diurnal are near-ties on GPU, the other traces save 25-65 %)."""
    for c in compare(standard_traces(), SimConfig(seed=seed)):
        assert c.policy.seconds_over_target < c.baseline.seconds_over_target, c.trace.name
        assert c.policy.gpu_seconds <= 1.03 * c.baseline.gpu_seconds, c.trace.name


def test_policy_leaves_a_stuck_partition_out_and_saves_the_gpus_keda_spends_on_it() -> None:
    trace = next(t for t in standard_traces() if t.name == "stuck-partition")
    c = compare([trace], SimConfig())[0]
    assert c.policy.peak_workers == 6  # what the healthy partitions need
    assert c.baseline.peak_workers == 12  # KEDA chases the stuck lag to the partition cap
    assert c.policy.gpu_seconds < 0.6 * c.baseline.gpu_seconds


@pytest.mark.slow
def test_policy_with_a_wrong_prior_still_beats_the_baseline_given_the_same_prior() -> None:
    cfg = SimConfig()
    for prior in (10.0, 40.0):
        pcfg = PolicyConfig(partitions=12, worker_rate=prior)
        kcfg = KedaConfig.for_target(12, prior, 10.0)
        for c in compare(standard_traces(), cfg, pcfg, kcfg):
            assert c.policy.seconds_over_target < c.baseline.seconds_over_target, (prior, c.trace.name)


def test_keda_baseline_follows_lag_over_threshold() -> None:
    keda = KedaBaseline(KedaConfig(partitions=12, lag_threshold=100.0))
    from tests.control.feed import Feed

    feed = Feed(12)
    feed.high = [50.0] * 12  # 600 waiting
    assert keda.decide(feed.snapshot(0)).desired == 1  # activation: 0 -> 1
    d = keda.decide(feed.snapshot(1))
    assert d.desired == 5  # ceil(600 / 100) = 6, but +100 % or +4 pods per step
    assert keda.decide(feed.snapshot(5)).desired == 6
    feed.high = [500.0] * 12
    assert keda.decide(feed.snapshot(6)).desired == 12  # capped by partitions
    feed.done = list(feed.high)
    assert keda.decide(feed.snapshot(12)).desired == 12  # 300 s stabilisation before scaling down
