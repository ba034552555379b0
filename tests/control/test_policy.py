"""The scaling policy: readable behaviour cases, invariants over random load, config validation."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mugpos.control.policy import ConfigError, Decision, PolicyConfig, ScalingPolicy, usable_workers, workers_for
from mugpos.control.signals import LoadSnapshot, PartitionLag
from mugpos.core.codec import codec
from tests.control.feed import Feed, run

# -- capacity arithmetic --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "usable"),
    [(0, 0.0), (1, 1.0), (2, 2.0), (3, 3.0), (4, 4.0), (5, 4.0), (6, 6.0), (7, 6.0), (11, 6.0), (12, 12.0), (20, 12.0)],
)
def test_usable_workers_on_12_partitions(n: int, usable: float) -> None:
    """The busiest consumer owns ceil(12/n) partitions: 5 consumers are worth 4, 7 to 11 are worth 6."""
    assert usable_workers(n, 12) == usable


def test_workers_for_picks_the_smallest_count_that_covers_the_demand() -> None:
    assert workers_for(0, 20, 12) == 0
    assert workers_for(81, 20, 12) == 6  # 5 would give only 4 workers' worth (80/s)
    assert workers_for(10_000, 20, 12) == 12
    assert workers_for(76, 20, 12, margin=0.05) == 4
    assert workers_for(77, 20, 12, margin=0.05) == 6


# -- behaviour cases ------------------------------------------------------------------------------


def _burst_scales_up_in_one_decision() -> None:
    policy = ScalingPolicy(PolicyConfig(partitions=12))
    feed = Feed(12)
    workers, _ = run(policy, feed, 300, 30.0, workers=2)
    assert workers == 2
    snap = feed.tick(5.0, 200.0, 40.0, workers)  # a burst: 200/s arrive, two workers drain 40/s
    decision = policy.decide(snap)
    assert decision.action == "up"
    assert decision.desired == 12
    assert decision.reason.startswith("up 2→12:")


def _scale_down_waits_for_the_window() -> None:
    cfg = PolicyConfig(partitions=12, scale_down_window_s=60.0)
    policy = ScalingPolicy(cfg)
    feed = Feed(12)
    workers, _ = run(policy, feed, 300, 200.0, workers=12)
    assert workers == 12
    workers, decisions = run(policy, feed, 120, 30.0, workers=workers)
    downs = [d for d in decisions if d.action == "down"]
    assert downs, "demand fell to 30/s: the policy must scale down eventually"
    first = downs[0]
    assert first.at - decisions[0].at >= cfg.scale_down_window_s - 5.0  # not before a whole window
    holds = [d for d in decisions if d.at < first.at]
    assert holds and all(d.desired == 12 and "waiting" in d.reason for d in holds[1:])
    assert first.desired in (2, 3) and "averaged over 60 s" in first.reason
    workers, _ = run(policy, feed, 180, 30.0, workers=workers)
    assert workers == 2  # 30/s fits two workers with headroom


def _hysteresis_prevents_flapping() -> None:
    """Arrivals alternate across the 4-worker capacity (80/s): one step up, then no flapping."""
    policy = ScalingPolicy(PolicyConfig(partitions=12))
    feed = Feed(12)
    workers = 4
    changes = 0
    for i in range(240):  # 20 minutes of 5 s decisions
        snap = feed.tick(5.0, 72.0 if i % 2 else 94.0, 20.0 * usable_workers(workers, 12), workers)
        decision = policy.decide(snap)
        changes += decision.desired != workers
        workers = decision.desired
    assert changes <= 1
    assert workers == 6


def _never_above_partitions() -> None:
    policy = ScalingPolicy(PolicyConfig(partitions=12, max_workers=50))
    feed = Feed(12)
    _, decisions = run(policy, feed, 120, 5_000.0, workers=1)
    assert max(d.desired for d in decisions) == 12


def _never_above_max_workers() -> None:
    policy = ScalingPolicy(PolicyConfig(partitions=12, max_workers=3))
    _, decisions = run(policy, Feed(12), 120, 5_000.0, workers=1)
    assert max(d.desired for d in decisions) == 3


def _scale_to_zero_after_idle_and_back_on_the_first_message() -> None:
    cfg = PolicyConfig(partitions=12, idle_s=120.0)
    policy = ScalingPolicy(cfg)
    feed = Feed(12)
    workers, _ = run(policy, feed, 120, 50.0, workers=3)
    workers, quiet = run(policy, feed, 110, 0.0, workers=workers)
    assert workers >= 1, "idle for less than MUGPOS_IDLE_S: keep a worker"
    workers, quiet = run(policy, feed, 20, 0.0, workers=workers)
    assert workers == 0
    sleep = next(d for d in quiet if d.action == "sleep")
    assert "no lag and no arrivals" in sleep.reason
    workers, still = run(policy, feed, 300, 0.0, workers=0)
    assert workers == 0 and all(d.action == "hold" for d in still)
    feed.high[5] += 1  # one image arrives
    decision = policy.decide(feed.snapshot(0))
    assert decision.action == "wake" and decision.desired >= 1
    assert decision.reason.startswith("wake 0→")


def _min_workers_are_kept_when_idle() -> None:
    policy = ScalingPolicy(PolicyConfig(partitions=12, min_workers=2, idle_s=10.0))
    workers, decisions = run(policy, Feed(12), 600, 0.0, workers=4)
    assert workers == 2 and min(d.desired for d in decisions) == 2


def _stuck_partition_is_left_out() -> None:
    cfg = PolicyConfig(partitions=12, stuck_after_s=60.0)
    policy = ScalingPolicy(cfg)
    feed = Feed(12)
    workers, _ = run(policy, feed, 300, 100.0, workers=6)
    assert workers == 6
    feed.stuck.add(3)
    workers, decisions = run(policy, feed, 600, 100.0, workers=workers)
    assert workers <= 6, "more workers cannot drain a stuck partition"
    assert decisions[-1].stuck_partitions == (3,)
    assert "partition(s) 3 stuck" in decisions[-1].reason
    assert decisions[-1].lag_by_partition[3] > 4_000


def _rate_is_measured_only_while_saturated() -> None:
    """True rate 40/s, prior 20/s: the estimate moves up under a backlog, and stays put when idle-ish."""
    policy = ScalingPolicy(PolicyConfig(partitions=12, worker_rate=20.0, max_workers=4))
    feed = Feed(12)
    run(policy, feed, 30, 10.0, workers=4, rate=40.0)
    assert policy.rate_per_worker == 20.0  # never busy: nothing learnt
    run(policy, feed, 300, 400.0, workers=4, rate=40.0, follow=False)
    assert policy.rate_per_worker == pytest.approx(40.0, rel=0.05)


def _reported_rate_wins() -> None:
    policy = ScalingPolicy(PolicyConfig(partitions=12, worker_rate=20.0, rate_smoothing=1.0))
    snap = LoadSnapshot(ts=1.0, partitions=(PartitionLag(0, 0, 100),), workers=1, rate_per_worker=55.0)
    assert policy.decide(snap).rate_per_worker == 55.0


def _above_the_ceiling_scales_down_at_once() -> None:
    policy = ScalingPolicy(PolicyConfig(partitions=12, max_workers=4))
    decision = policy.decide(Feed(12).tick(5.0, 10.0, 10.0, 9))
    assert decision.action == "down" and decision.desired == 4
    assert "ceiling" in decision.reason


def _start_up_delay_is_projected() -> None:
    """Arrivals exceed the ready capacity: the backlog that builds while new workers load counts now."""
    quick = ScalingPolicy(PolicyConfig(partitions=12, startup_s=0.0))
    slow = ScalingPolicy(PolicyConfig(partitions=12, startup_s=60.0))
    feed = Feed(12)
    for _ in range(12):
        snap = feed.tick(5.0, 30.0, 30.0, 2)
        assert quick.decide(snap).desired == slow.decide(snap).desired == 2
    surge = feed.tick(5.0, 70.0, 40.0, 2)
    assert quick.decide(surge).desired <= 4  # follows the (smoothed) arrivals: no backlog builds meanwhile
    assert slow.decide(surge).desired == 12  # + 60 s x 30/s of backlog to drain within 10 s


CASES = {
    "burst-scales-up-fast": _burst_scales_up_in_one_decision,
    "scale-down-slow-after-window": _scale_down_waits_for_the_window,
    "hysteresis-prevents-flapping": _hysteresis_prevents_flapping,
    "never-above-partitions": _never_above_partitions,
    "never-above-max-workers": _never_above_max_workers,
    "scale-to-zero-after-idle-and-wake-on-first-message": _scale_to_zero_after_idle_and_back_on_the_first_message,
    "min-workers-kept-when-idle": _min_workers_are_kept_when_idle,
    "stuck-partition-left-out-of-demand": _stuck_partition_is_left_out,
    "rate-learnt-only-when-saturated": _rate_is_measured_only_while_saturated,
    "worker-reported-rate-wins": _reported_rate_wins,
    "above-ceiling-scales-down-at-once": _above_the_ceiling_scales_down_at_once,
    "start-up-delay-projected": _start_up_delay_is_projected,
}


@pytest.mark.parametrize("case", CASES.values(), ids=list(CASES))
def test_policy_behaviour(case: Callable[[], None]) -> None:
    case()


def test_every_decision_carries_a_reason_that_matches_its_action() -> None:
    policy = ScalingPolicy(PolicyConfig(partitions=12, idle_s=60.0))
    feed = Feed(12)
    workers = 0
    decisions: list[Decision] = []
    for seconds, load in ((30, 0.0), (120, 30.0), (120, 150.0), (300, 20.0), (200, 0.0), (60, 90.0)):
        workers, ds = run(policy, feed, seconds, load, workers=workers)
        decisions += ds
    assert {d.action for d in decisions} == {"hold", "wake", "up", "down", "sleep"}
    for d in decisions:
        assert d.reason.startswith(d.action + " "), d.reason
        assert (d.desired > d.current) == (d.action in ("up", "wake"))
        assert (d.desired < d.current) == (d.action in ("down", "sleep"))


def test_decision_record_is_a_valid_scaling_decision() -> None:
    feed = Feed(4)
    decision = ScalingPolicy(PolicyConfig(partitions=4)).decide(feed.tick(5.0, 100.0, 0.0, 1))
    record = decision.record(decision_id="d-1", group="mugpos-detect", scaler="none", applied=True)
    decoded = codec.decode(codec.encode("ScalingDecision", record), "ScalingDecision")
    assert decoded["desired_replicas"] == decision.desired == 4
    assert decoded["lag_by_partition"] == {"0": 125, "1": 125, "2": 125, "3": 125}
    assert decoded["reason"] == decision.reason and decoded["applied"] is True


# -- invariants -----------------------------------------------------------------------------------


@st.composite
def configs(draw: st.DrawFn) -> PolicyConfig:
    partitions = draw(st.integers(1, 24))
    return PolicyConfig(
        partitions=partitions,
        min_workers=draw(st.integers(0, min(2, partitions))),
        max_workers=draw(st.integers(2, 40)),
        target_lag_s=draw(st.floats(0.5, 60)),
        idle_s=draw(st.floats(0, 120)),
        worker_rate=draw(st.floats(0.5, 500)),
        startup_s=draw(st.floats(0, 60)),
        scale_down_window_s=draw(st.floats(0, 120)),
    )


steps = st.lists(
    st.tuples(
        st.floats(0.5, 30),  # dt
        st.lists(st.integers(0, 5_000), min_size=1, max_size=24),  # arrivals per partition
        st.lists(st.integers(0, 5_000), min_size=1, max_size=24),  # processed per partition
        st.integers(0, 40),  # workers the scaler reports
        st.integers(0, 40),  # of which ready
    ),
    min_size=1,
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(cfg=configs(), plan=steps)
def test_desired_stays_within_bounds(
    cfg: PolicyConfig, plan: list[tuple[float, list[int], list[int], int, int]]
) -> None:
    """min <= desired <= min(max, partitions), except 0 when scale-to-zero is allowed and nothing waits."""
    policy = ScalingPolicy(cfg)
    t = 0.0
    high = [0] * cfg.partitions
    done = [0] * cfg.partitions
    for dt, arrivals, processed, workers, ready in plan:
        t += dt
        for p in range(cfg.partitions):
            high[p] += arrivals[p % len(arrivals)]
            done[p] = min(high[p], done[p] + processed[p % len(processed)])
        snap = LoadSnapshot(
            ts=t,
            partitions=tuple(PartitionLag(p, done[p], high[p]) for p in range(cfg.partitions)),
            workers=workers,
            ready_workers=min(ready, workers),
        )
        d = policy.decide(snap)
        assert 0 <= d.desired <= min(cfg.max_workers, cfg.partitions)
        if d.desired < cfg.min_workers or d.desired == 0:
            assert cfg.min_workers == 0 and d.desired == 0
            assert snap.total_lag == 0, "never scale to zero with messages waiting"
        if workers == 0 and snap.total_lag > 0:
            assert d.desired >= 1, "the first message wakes a worker"
        assert d.reason and math.isfinite(d.demand or 0.0)


# -- configuration errors --------------------------------------------------------------------------

BAD = {
    "min-above-max": ({"min_workers": 5, "max_workers": 2}, "min_workers=5 is above max_workers=2"),
    "zero-partitions": ({"partitions": 0}, "partitions=0 must be >= 1"),
    "negative-target": ({"target_lag_s": -1.0}, "target_lag_s=-1.0 must be > 0"),
    "zero-target": ({"target_lag_s": 0.0}, "target_lag_s=0.0 must be > 0"),
    "nan-target": ({"target_lag_s": float("nan")}, "target_lag_s=nan must be a finite number"),
    "negative-idle": ({"idle_s": -5.0}, "idle_s=-5.0 must be >= 0"),
    "zero-worker-rate": ({"worker_rate": 0.0}, "worker_rate=0.0 must be > 0"),
    "hysteresis-of-one": ({"hysteresis": 1.0}, "hysteresis=1.0 must be >= 0 and < 1"),
    "min-above-partitions": ({"partitions": 4, "min_workers": 6, "max_workers": 8}, "above the 4 images partitions"),
    "bool-is-not-a-count": ({"max_workers": True}, "max_workers=True must be an integer"),
    "float-partitions": ({"partitions": 2.5}, "partitions=2.5 must be an integer"),
}


@pytest.mark.parametrize(("values", "message"), BAD.values(), ids=list(BAD))
def test_impossible_configuration_fails_at_start(values: dict[str, object], message: str) -> None:
    kwargs: dict[str, object] = {"partitions": 12} | values
    with pytest.raises(ConfigError, match="invalid control settings") as err:
        PolicyConfig(**kwargs)  # type: ignore[arg-type]
    assert message in str(err.value)


def test_several_problems_are_reported_together() -> None:
    with pytest.raises(ConfigError) as err:
        PolicyConfig(partitions=12, target_lag_s=-1, idle_s=-1)
    assert "target_lag_s" in str(err.value) and "idle_s" in str(err.value)


def test_config_from_settings_maps_every_field() -> None:
    @dataclass
    class FakeSettings:  # the fields the settings object will carry (see the report to the lead)
        images_partitions: int = 6
        target_lag_s: float = 7.5
        idle_s: float = 90.0
        min_workers: int = 1
        max_workers: int = 5
        worker_rate: float = 33.0
        worker_startup_s: float = 12.0
        scale_down_s: float = 45.0
        control_interval_s: float = 2.0

    cfg = PolicyConfig.from_settings(FakeSettings(), hysteresis=0.1)
    assert (cfg.partitions, cfg.target_lag_s, cfg.idle_s, cfg.min_workers, cfg.max_workers) == (6, 7.5, 90.0, 1, 5)
    assert (cfg.worker_rate, cfg.startup_s, cfg.scale_down_window_s, cfg.interval_s) == (33.0, 12.0, 45.0, 2.0)
    assert cfg.hysteresis == 0.1 and cfg.ceiling == 5
