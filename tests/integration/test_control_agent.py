"""The control agent with the local scaler: a burst scales real detect workers up, the backlog
drains, the workers scale back down, and every image has its detection."""

from __future__ import annotations

import asyncio
import io
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mugpos.core.settings import Settings
from mugpos.core.topics import ensure_topics
from mugpos.streams.consumer import consume_events
from mugpos.streams.producer import ImageProducer
from tests.integration.worker import free_port, running_worker

pytestmark = [pytest.mark.integration, pytest.mark.slow]

WEIGHTS = Path(__file__).resolve().parents[2] / "models" / "weights" / "yolo26n.pt"


async def decisions(settings: Settings) -> list[dict]:
    """Every decision so far (the topic never goes quiet: one decision per interval)."""
    out: list[dict] = []
    try:
        async with asyncio.timeout(4):
            async for item in consume_events(settings, "control", from_beginning=True):
                if item.event is not None:
                    out.append(item.event)
    except TimeoutError:
        pass
    return out


async def detected_ids(settings: Settings) -> set[str]:
    return {
        str((i.event or {}).get("image_id"))
        async for i in consume_events(settings, "detections", from_beginning=True, timeout_s=3)
    }


def test_a_burst_scales_detect_workers_up_drains_and_scales_back_down_without_loss(
    settings: Settings, tmp_path: Path
) -> None:
    web_port = free_port()
    settings = settings.model_copy(
        update={
            "model": str(WEIGHTS),
            "image_size": 160,
            "batch_max": 8,
            "session_timeout_s": 4.0,
            "images_partitions": 4,
            "scaler": "local",
            "min_workers": 1,
            "max_workers": 3,
            "target_lag_s": 3.0,
            "worker_rate": 4.0,
            "worker_startup_s": 8.0,
            "scale_down_s": 10.0,
            "idle_s": 10.0,
            "control_interval_s": 1.0,
            "worker_state_dir": str(tmp_path / "workers"),
            "web_port": web_port,
            "redis_url": "",
        }
    )
    asyncio.run(ensure_topics(settings))
    rng = np.random.default_rng()
    images = []
    for i in range(240):
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 255, size=(64, 64, 3), dtype=np.uint8)).save(buf, format="PNG")
        images.append((f"burst-{i}", buf.getvalue()))

    with running_worker(settings, tmp_path / "control.log", role="control", MUGPOS_WEB_PORT=str(web_port)) as proc:
        # Before the burst the policy holds the minimum: one detect worker.
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not any(
            d["current_replicas"] == 1 for d in asyncio.run(decisions(settings))
        ):
            time.sleep(1)

        async def burst() -> None:
            async with ImageProducer(settings) as producer:
                for image_id, data in images:
                    await producer.produce_image(data, image_id=image_id, source="burst")

        asyncio.run(burst())
        want = {image_id for image_id, _ in images}
        deadline = time.monotonic() + 240
        seen: set[str] = set()
        while time.monotonic() < deadline and not want <= seen:
            time.sleep(2)
            seen = asyncio.run(detected_ids(settings))
        assert want <= seen, f"{len(want - seen)} image(s) without a detection"
        # Idle again: the policy scales back down to the minimum.
        deadline = time.monotonic() + 90
        history = asyncio.run(decisions(settings))
        while time.monotonic() < deadline and history[-1]["desired_replicas"] != 1:
            time.sleep(2)
            history = asyncio.run(decisions(settings))
        assert proc.poll() is None
    log = (tmp_path / "control.log").read_text()
    peak = max(d["desired_replicas"] for d in history)
    assert peak >= 2, log[-3000:]
    assert history[-1]["desired_replicas"] == 1, history[-1]["reason"]
    assert all(d["reason"] for d in history)
    assert any(d["applied"] and d["desired_replicas"] == peak for d in history)
