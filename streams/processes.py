"""Child processes the tools start (workers, a local broker): stopped gracefully, then firmly."""

from __future__ import annotations

import contextlib
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path


def stop_process(proc: subprocess.Popen[bytes], timeout_s: float = 20.0) -> None:
    """SIGTERM, wait up to ``timeout_s``, then SIGKILL; a no-op for a process that already ended."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextlib.contextmanager
def started(
    cmd: list[str], log: Path, env: dict[str, str] | None = None, cwd: str | Path | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``cmd`` with its output appended to ``log``; stop it when the block ends."""
    with log.open("ab") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd, start_new_session=True)
        try:
            yield proc
        finally:
            stop_process(proc)
