"""`mugpos demo` as a newcomer runs it: no services, no configuration, verdicts on screen."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.worker import free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]


def test_demo_runs_on_embedded_defaults_and_prints_every_verdict(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MUGPOS_", "AWS_"))}
    env["COLUMNS"] = "160"
    port = free_port()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mugpos.cli",
            "demo",
            "--count",
            "4",
            "--no-wait",
            "--port",
            str(port),
            "--data-dir",
            str(tmp_path / "demo"),
            "--timeout",
            "150",
        ],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,
    )
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-4000:]
    assert "broker: tansu" in out  # a private broker, since MUGPOS_BROKER was not set
    assert "4 images analysed" in out
    assert f"http://127.0.0.1:{port}/" in out
    for i in range(4):
        assert f"demo-7-00{i}" in out
    assert "Traceback" not in out
    # Everything it started is stopped again: the dashboard port is free.
    import socket

    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", port)) != 0
