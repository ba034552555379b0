"""Scalers: LocalScaler with real processes, KubernetesScaler's call shape, the guard, the factory."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from mugpos.control.policy import ConfigError
from mugpos.control.scalers import (
    GuardedScaler,
    KubernetesScaler,
    LocalScaler,
    NoneScaler,
    Scaler,
    ScalerError,
    make_scaler,
)

pytestmark = pytest.mark.asyncio

STANDIN = Path(__file__).with_name("standin_worker.py")


def _command(markers: Path, *extra: str) -> list[str]:
    return [sys.executable, str(STANDIN), str(markers), "{slot}", *extra]


async def _wait_for(path: Path, timeout_s: float = 10.0) -> str:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} did not appear within {timeout_s} s")
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.02)
    return path.read_text()


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.fixture
def dirs(tmp_path: Path) -> tuple[Path, Path]:
    state, markers = tmp_path / "state", tmp_path / "markers"
    markers.mkdir()
    return state, markers


# -- local ----------------------------------------------------------------------------------------


async def test_local_scaler_starts_tracks_and_stops_workers_gracefully(dirs: tuple[Path, Path]) -> None:
    state, markers = dirs
    scaler = LocalScaler(state, _command(markers), base_port=17000, env={"STANDIN_ROLE": "detect-{slot}"})
    try:
        assert await scaler.start() == 0
        await scaler.scale(3)
        assert await scaler.current() == 3
        pids = scaler.pids()
        assert sorted(pids) == [0, 1, 2]
        started = {s: json.loads(await _wait_for(markers / f"started-{s}")) for s in pids}
        assert {s: i["pid"] for s, i in started.items()} == pids
        assert {i["port"] for i in started.values()} == {"17000", "17001", "17002"}  # one web port each
        assert started[2]["role"] == "detect-2"
        files = {p.name: json.loads(p.read_text()) for p in state.glob("worker-*.json")}
        assert {f["pid"] for f in files.values()} == set(pids.values())

        await scaler.scale(1)  # the newest slots go first, with SIGTERM
        assert await scaler.current() == 1
        for slot in (1, 2):
            assert int(await _wait_for(markers / f"term-{slot}")) == pids[slot]
            assert not _alive(pids[slot])
            assert not (state / f"worker-{slot}.json").exists()
        assert _alive(pids[0]) and not (markers / "term-0").exists()

        await scaler.scale(2)  # the freed slot is reused
        assert sorted(scaler.pids()) == [0, 1]
    finally:
        await scaler.close()
    assert await scaler.current() == 0 and not list(state.glob("worker-*.json"))


async def test_orphans_of_a_crashed_controller_are_stopped_at_start(dirs: tuple[Path, Path]) -> None:
    state, markers = dirs
    first = LocalScaler(state, _command(markers))
    await first.scale(2)
    pids = first.pids()
    for slot in pids:
        await _wait_for(markers / f"started-{slot}")
    del first  # the controller "crashes": its workers live on in their own sessions

    second = LocalScaler(state, _command(markers))
    assert await second.start() == 2
    for slot, pid in pids.items():
        assert int(await _wait_for(markers / f"term-{slot}")) == pid  # graceful, not SIGKILL
        assert not _alive(pid)
    assert await second.current() == 0
    assert not list(state.glob("worker-*.json"))


async def test_a_reused_pid_is_never_signalled(dirs: tuple[Path, Path]) -> None:
    state, _ = dirs
    state.mkdir()
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        # a stale state file whose PID now belongs to an unrelated process (different start time)
        (state / "worker-0.json").write_text(
            json.dumps({"slot": 0, "pid": bystander.pid, "ticks": 1, "started_at": 0.0, "argv": ["x"]})
        )
        scaler = LocalScaler(state, ["true"])
        assert await scaler.start() == 0
        await asyncio.sleep(0.2)
        assert bystander.poll() is None, "the bystander must not be killed"
        assert not (state / "worker-0.json").exists()
    finally:
        bystander.kill()
        bystander.wait()


async def test_a_worker_that_ignores_sigterm_is_killed_after_the_timeout(dirs: tuple[Path, Path]) -> None:
    state, markers = dirs
    scaler = LocalScaler(state, _command(markers, "--ignore-term"), stop_timeout_s=0.5)
    await scaler.scale(1)
    pid = scaler.pids()[0]
    await _wait_for(markers / "started-0")
    started = time.monotonic()
    await scaler.scale(0)
    assert time.monotonic() - started >= 0.5
    assert (markers / "term-0").exists()  # it got SIGTERM first
    assert not _alive(pid)


async def test_a_crashed_worker_is_noticed_and_counted(dirs: tuple[Path, Path]) -> None:
    state, markers = dirs
    scaler = LocalScaler(state, _command(markers))
    try:
        await scaler.scale(2)
        await _wait_for(markers / "started-1")
        os.kill(scaler.pids()[1], signal.SIGKILL)
        deadline = time.monotonic() + 5
        while await scaler.current() != 1 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert await scaler.current() == 1 and scaler.crashed == 1
        await scaler.scale(2)  # the next decision replaces it
        assert await scaler.current() == 2
    finally:
        await scaler.close()


async def test_bad_counts_and_configs_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="integer >= 0"):
        await NoneScaler().scale(-1)
    with pytest.raises(ConfigError, match="worker command"):
        LocalScaler(tmp_path, [])
    with pytest.raises(ConfigError, match="MUGPOS_SCALER must be one of none, local, kubernetes"):
        make_scaler("docker")


async def test_none_scaler_only_records() -> None:
    scaler = make_scaler("none")
    assert isinstance(scaler, NoneScaler) and isinstance(scaler, Scaler)
    await scaler.scale(4)
    assert await scaler.current() == 4


# -- kubernetes -----------------------------------------------------------------------------------


class FakeAppsV1Api:
    """FAKE, for the call shape only: records calls the way AppsV1Api would receive them.

    No cluster exists here, so this checks only that KubernetesScaler calls the scale subresource with
    the right names and body; it says nothing about a real API server.
    """

    def __init__(self, replicas: int = 2, fail: BaseException | None = None) -> None:
        self.replicas = replicas
        self.fail = fail
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def _scale(self) -> Any:
        spec = type("Spec", (), {"replicas": self.replicas})()
        return type("V1Scale", (), {"spec": spec})()

    def read_namespaced_deployment_scale(self, name: str, namespace: str) -> Any:
        self.calls.append(("read_namespaced_deployment_scale", {"name": name, "namespace": namespace}))
        if self.fail is not None:
            raise self.fail
        return self._scale()

    def patch_namespaced_deployment_scale(self, name: str, namespace: str, body: dict[str, Any]) -> Any:
        self.calls.append(("patch_namespaced_deployment_scale", {"name": name, "namespace": namespace, "body": body}))
        if self.fail is not None:
            raise self.fail
        self.replicas = body["spec"]["replicas"]
        return self._scale()


async def test_kubernetes_scaler_uses_the_scale_subresource_fake_api() -> None:
    api = FakeAppsV1Api(replicas=2)
    scaler = KubernetesScaler("mugpos-detect", "vision", api=api)
    assert await scaler.current() == 2
    await scaler.scale(5)
    assert api.calls == [
        ("read_namespaced_deployment_scale", {"name": "mugpos-detect", "namespace": "vision"}),
        (
            "patch_namespaced_deployment_scale",
            {"name": "mugpos-detect", "namespace": "vision", "body": {"spec": {"replicas": 5}}},
        ),
    ]


async def test_kubernetes_api_errors_become_scaler_errors_fake_api() -> None:
    class ApiException(Exception):  # shaped like kubernetes.client.ApiException
        status, reason = 403, "Forbidden"

    scaler = KubernetesScaler("mugpos-detect", api=FakeAppsV1Api(fail=ApiException()))
    with pytest.raises(ScalerError, match=r"kubernetes scale of deployment default/mugpos-detect failed: HTTP 403"):
        await scaler.scale(3)


@pytest.mark.skipif(importlib.util.find_spec("kubernetes") is not None, reason="kubernetes is installed here")
async def test_missing_kubernetes_package_says_how_to_install_it() -> None:
    scaler = make_scaler("kubernetes")
    with pytest.raises(ScalerError, match="pip install kubernetes"):
        await scaler.current()


# -- the guard ------------------------------------------------------------------------------------


async def test_guard_retries_counts_and_never_raises_fake_api() -> None:
    sleeps: list[float] = []

    async def record_sleep(seconds: float) -> None:
        sleeps.append(seconds)

    api = FakeAppsV1Api(fail=ConnectionRefusedError(111, "Connection refused"))
    guard = GuardedScaler(KubernetesScaler("d", api=api), attempts=3, backoff_s=0.5, sleep=record_sleep)
    assert await guard.apply(4) is False
    assert await guard.current() is None
    assert (guard.errors, guard.failures) == (6, 2)
    assert sleeps == [0.5, 1.0, 0.5, 1.0]
    assert guard.last_error is not None and "Connection refused" in guard.last_error
    api.fail = None  # the API comes back: the next call succeeds
    assert await guard.apply(4) is True and api.replicas == 4


async def test_guard_lets_cancellation_through() -> None:
    class Hangs:
        name = "hangs"

        async def current(self) -> int:
            await asyncio.sleep(60)
            return 0

        async def scale(self, n: int) -> None:
            await asyncio.sleep(60)

    task = asyncio.create_task(GuardedScaler(Hangs()).apply(1))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
