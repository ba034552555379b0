"""Run a real `mugpos worker` process against the local services, as a user would."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from mugpos.core.settings import Settings, settings_env
from mugpos.streams.processes import stop_process


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def running_worker(
    settings: Settings, log_path: Path, role: str = "detect", **extra: str
) -> Iterator[subprocess.Popen[bytes]]:
    """Start `mugpos worker --role ROLE`; stop it with SIGTERM (then SIGKILL) on exit."""
    env = settings_env(settings)
    env.update({"MUGPOS_WEB_PORT": str(free_port()), **extra})
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mugpos.cli", "worker", "--role", role],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=str(Path(__file__).resolve().parents[2]),
        )
        try:
            yield proc
        finally:
            stop_process(proc)


def mugpos_cli(env: dict[str, str], *args: str, code: int = 0) -> subprocess.CompletedProcess[str]:
    """`mugpos ARGS` in a child process with ``env``; fails the test unless it exits with ``code``."""
    result = subprocess.run(
        [sys.executable, "-m", "mugpos.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=str(Path(__file__).resolve().parents[2]),
    )
    assert result.returncode == code, (result.stdout, result.stderr)
    return result


def rules_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """`mugpos rules ARGS`, which must succeed."""
    return mugpos_cli(env, "rules", *args)
