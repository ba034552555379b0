"""Control agent: reads the detect group's lag, decides how many GPU workers should run, applies it
through the configured scaler, and publishes every decision on the control topic (key = group).

The loop itself lives in ``control.loop`` (no Faust); this module only schedules it and reports.
"""

from __future__ import annotations

import asyncio
import logging

from mugpos.control.loop import Controller, Step
from mugpos.control.policy import PolicyConfig, ScalingPolicy
from mugpos.control.scalers import LocalScaler, make_scaler
from mugpos.control.signals import LagReader
from mugpos.core.codec import codec
from mugpos.core.settings import settings_env
from mugpos.streams.app import MugposApp, app_id
from mugpos.streams.metrics import CONSUMER_LAG, DESIRED_WORKERS, RUNNING_WORKERS

log = logging.getLogger(__name__)


def register(app: MugposApp) -> None:
    """Attach the control loop to ``app``; an impossible configuration fails here, at start."""
    settings = app.settings
    policy_config = PolicyConfig.from_settings(settings)
    # The group that consumes images: the detect workers', or this app's own when it runs every role.
    group = app_id(settings, "all" if app.role == "all" else "detect")
    images_topic = settings.topic("images")
    scaler = make_scaler(
        settings.scaler,
        state_dir=settings.worker_state_dir,
        base_port=settings.web_port + 1,
        deployment=settings.k8s_deployment,
        namespace=settings.k8s_namespace,
        env=settings_env(settings),
    )

    @app.task
    async def control_loop() -> None:
        reader = LagReader(settings.bootstrap, images_topic, group)
        if isinstance(scaler, LocalScaler):
            await scaler.start()  # stops orphans a crashed control worker left behind
        controller = Controller(
            reader, ScalingPolicy(policy_config), scaler, group=group, gpu_hour_cost=settings.gpu_hour_cost
        )
        app.mugpos_stats.control = controller.stats
        stop = asyncio.Event()

        async def publish(step: Step) -> None:
            DESIRED_WORKERS.set(step.decision.desired)
            RUNNING_WORKERS.set(step.snapshot.workers)
            lag = step.snapshot.lag_by_partition
            app.mugpos_stats.lag[images_topic] = dict(lag)
            for partition, waiting in lag.items():
                CONSUMER_LAG.labels(images_topic, str(partition)).set(waiting)
            value = codec.encode("ScalingDecision", step.record)
            await (await app.mugpos_topics.control.send(key=group.encode(), value=value))

        try:
            await controller.run(settings.control_interval_s, stop, publish)
        finally:
            stop.set()
            await reader.close()
            if isinstance(scaler, LocalScaler):
                await scaler.close()
