"""The control loop against the real broker: decisions flow, and no scaler or broker error stops it."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from mugpos.control.loop import Controller, Step
from mugpos.control.policy import PolicyConfig, ScalingPolicy
from mugpos.control.scalers import KubernetesScaler, NoneScaler
from mugpos.control.signals import LagReader, LagReading
from mugpos.core.codec import codec
from mugpos.core.errors import BrokerUnavailable
from mugpos.core.settings import Settings
from tests.control.broker import create_images_topic, produce_counts
from tests.control.test_scalers import FakeAppsV1Api

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]


async def _topic_with(settings: Settings, partitions: int, messages: int) -> str:
    topic = await create_images_topic(settings, partitions)
    counts = {p: len(range(p, messages, partitions)) for p in range(partitions)}
    await produce_counts(settings, topic, counts)
    return topic


async def test_a_waiting_backlog_wakes_workers_and_the_record_is_a_scaling_decision(settings: Settings) -> None:
    topic = await _topic_with(settings, 4, 40)
    group = f"g-{uuid.uuid4().hex[:8]}"
    async with LagReader(settings.bootstrap, topic, group) as reader:
        controller = Controller(reader, ScalingPolicy(PolicyConfig(partitions=4)), NoneScaler(), group=group)
        step = await controller.step()
    assert step is not None and step.applied
    assert step.decision.action == "wake" and step.decision.desired >= 1
    assert step.snapshot.total_lag == 40
    decoded = codec.decode(codec.encode("ScalingDecision", step.record), "ScalingDecision")
    assert decoded["group"] == group and decoded["scaler"] == "none" and decoded["total_lag"] == 40
    assert controller.stats()["decisions"] == 1


async def test_scaler_errors_are_counted_and_the_loop_goes_on_fake_api(settings: Settings) -> None:
    topic = await _topic_with(settings, 2, 10)
    group = f"g-{uuid.uuid4().hex[:8]}"
    # FAKE Kubernetes API (no cluster here): every call is refused, as when the API server is unreachable
    api = FakeAppsV1Api(fail=ConnectionRefusedError(111, "Connection refused"))
    steps: list[Step] = []

    async def collect(step: Step) -> None:
        steps.append(step)
        if len(steps) == 3:
            stop.set()

    stop = asyncio.Event()
    async with LagReader(settings.bootstrap, topic, group) as reader:
        scaler = KubernetesScaler("mugpos-detect", api=api)
        controller = Controller(
            reader, ScalingPolicy(PolicyConfig(partitions=2)), scaler, group=group, attempts=2, backoff_s=0.01
        )
        await asyncio.wait_for(controller.run(0.05, stop, collect), 30)
    assert len(steps) == 3 and not any(s.applied for s in steps)
    assert all(s.record["applied"] is False for s in steps)
    stats = controller.stats()
    assert stats["scaler_errors"] == 3 * 2 * 2  # three ticks, a read and a scale, two attempts each
    assert "Connection refused" in str(stats["scaler_last_error"])
    api.fail = None  # the API comes back
    async with LagReader(settings.bootstrap, topic, group) as reader:
        controller.source = reader
        step = await controller.step()
    assert step is not None and step.applied and api.replicas == step.decision.desired


async def test_an_unreadable_lag_skips_the_tick() -> None:
    class BrokerDown:
        """STUB lag source: the broker refuses every read."""

        async def read(self) -> LagReading:
            raise BrokerUnavailable("cannot read lag of group g on t: connection refused")

    controller = Controller(BrokerDown(), ScalingPolicy(PolicyConfig(partitions=2)), NoneScaler(), group="g")
    assert await controller.step() is None
    assert await controller.step() is None
    assert controller.stats()["read_errors"] == 2
