"""The scripts the images run: the health check (against a real HTTP server on loopback) and the
init service's bucket creation (against the real dev S3 of `make services`)."""

from __future__ import annotations

import contextlib
import http.server
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from tests.deploy.support import ROOT

HEALTHCHECK = ROOT / "deploy" / "docker" / "healthcheck.py"
ENSURE_BUCKET = ROOT / "deploy" / "docker" / "ensure_bucket.py"


class _Handler(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status if self.path == "/healthz" else 404)
        self.end_headers()
        self.wfile.write(b'{"status":"ok"}')

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def web() -> Iterator[tuple[int, type[_Handler]]]:
    handler = type("Handler", (_Handler,), {"status": 200})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], handler
    finally:
        server.shutdown()
        server.server_close()


def run_check(port: int, host: str = "0.0.0.0") -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ.get("PATH", ""), "MUGPOS_WEB_HOST": host, "MUGPOS_WEB_PORT": str(port)}
    return subprocess.run([sys.executable, str(HEALTHCHECK)], capture_output=True, text=True, env=env, timeout=30)


def test_healthy_worker_passes(web: tuple[int, type[_Handler]]) -> None:
    port, _ = web
    done = run_check(port)
    assert done.returncode == 0, done.stderr
    assert run_check(port, host="127.0.0.1").returncode == 0


def test_failing_worker_fails(web: tuple[int, type[_Handler]]) -> None:
    port, handler = web
    handler.status = 503
    done = run_check(port)
    assert done.returncode == 1 and "unhealthy" in done.stderr and "/healthz" in done.stderr


def test_stopped_worker_fails() -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    done = run_check(port)  # nothing listens there any more
    assert done.returncode == 1 and "unhealthy" in done.stderr


@pytest.mark.integration
def test_ensure_bucket_creates_the_store_bucket_once(services: dict[str, str], tmp_path: Path) -> None:
    bucket = f"mugpos-init-{uuid.uuid4().hex[:12]}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MUGPOS_", "AWS_"))}
    env.update(
        {
            "MUGPOS_STORE": f"s3://{bucket}",
            "MUGPOS_S3_ENDPOINT": services["MUGPOS_S3_ENDPOINT"],
            "AWS_ACCESS_KEY_ID": services["AWS_ACCESS_KEY_ID"],
            "AWS_SECRET_ACCESS_KEY": services["AWS_SECRET_ACCESS_KEY"],
            "PYTHONPATH": str(ROOT),
        }
    )
    s3 = boto3.client(
        "s3",
        endpoint_url=services["MUGPOS_S3_ENDPOINT"],
        region_name="us-east-1",
        aws_access_key_id=services["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=services["AWS_SECRET_ACCESS_KEY"],
    )
    try:
        first = subprocess.run(
            [sys.executable, str(ENSURE_BUCKET)], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120
        )
        assert first.returncode == 0, first.stderr
        assert f"bucket {bucket} created" in first.stdout
        s3.head_bucket(Bucket=bucket)
        again = subprocess.run(
            [sys.executable, str(ENSURE_BUCKET)], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120
        )
        assert again.returncode == 0 and f"bucket {bucket} exists" in again.stdout, again.stderr
    finally:
        with contextlib.suppress(Exception):
            s3.delete_bucket(Bucket=bucket)


def test_ensure_bucket_reports_invalid_settings(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MUGPOS_", "AWS_"))}
    env.update({"MUGPOS_STORE": "ftp://nope", "PYTHONPATH": str(ROOT)})
    done = subprocess.run(
        [sys.executable, str(ENSURE_BUCKET)], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60
    )
    assert done.returncode == 2 and "MUGPOS_STORE" in done.stderr
