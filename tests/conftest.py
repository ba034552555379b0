"""Shared fixtures: settings that point at the real local services (`make services`)."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator

import pytest

from mugpos.core.settings import Settings, load_settings

DEV_ENV = {
    "MUGPOS_BROKER": "kafka://127.0.0.1:19092",
    "MUGPOS_S3_ENDPOINT": "http://127.0.0.1:8333",
    "MUGPOS_STORE": "s3://mugpos-images",
    "AWS_ACCESS_KEY_ID": "mugpos-dev",
    "AWS_SECRET_ACCESS_KEY": "mugpos-dev-secret",
    "MUGPOS_REDIS_URL": "redis://127.0.0.1:16379/0",
    "MUGPOS_MONGODB_URI": "mongodb://127.0.0.1:27117",
}


def _env(name: str) -> str:
    return os.environ.get(name, DEV_ENV[name])


def _reachable(hostport: str) -> bool:
    host, _, port = hostport.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def services() -> dict[str, str]:
    """Addresses of the running dev services; fails loudly (never skips) when one is down."""
    found = {name: _env(name) for name in DEV_ENV}
    checks = {
        "broker": found["MUGPOS_BROKER"].removeprefix("kafka://"),
        "s3": found["MUGPOS_S3_ENDPOINT"].removeprefix("http://"),
        "redis": found["MUGPOS_REDIS_URL"].removeprefix("redis://").split("/")[0],
        "mongodb": found["MUGPOS_MONGODB_URI"].removeprefix("mongodb://").split("/")[0],
    }
    down = [f"{name} at {addr}" for name, addr in checks.items() if not _reachable(addr)]
    if down:
        pytest.fail("services not running: " + ", ".join(down) + " (start them with `make services`)")
    return found


@pytest.fixture
def test_prefix() -> str:
    """A topic prefix of its own, so every test starts with empty topics on the shared broker."""
    return f"test-{uuid.uuid4().hex[:10]}."


@pytest.fixture
def settings(services: dict[str, str], test_prefix: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Settings for the real services, with a private topic prefix and small partition counts."""
    return load_settings(
        env_file=None,
        broker=services["MUGPOS_BROKER"],
        s3_endpoint=services["MUGPOS_S3_ENDPOINT"],
        store=services["MUGPOS_STORE"],
        aws_access_key_id=services["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=services["AWS_SECRET_ACCESS_KEY"],
        redis_url=services["MUGPOS_REDIS_URL"],
        mongodb_uri=services["MUGPOS_MONGODB_URI"],
        topic_prefix=test_prefix,
        app_id=test_prefix.rstrip("."),  # a consumer group of its own too: groups are not per topic
        images_partitions=4,
        partitions=2,
    )


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Remove MUGPOS_* and AWS_* variables so a developer's shell does not leak into a test."""
    for name in list(os.environ):
        if name.startswith(("MUGPOS_", "AWS_")):
            monkeypatch.delenv(name, raising=False)
    yield
