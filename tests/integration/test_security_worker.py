"""The security cases against a running worker: read token, rate limit, redaction, topic and bucket limits."""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path

import pytest
from pydantic import SecretStr

from mugpos.core.settings import Settings
from mugpos.core.topics import ensure_topics
from tests.integration.test_web_rules import Http
from tests.integration.worker import free_port, running_worker

pytestmark = [pytest.mark.integration, pytest.mark.slow]

HOOK = "https://hooks.example.com/services/T0/B0/very-secret-path"


def test_reads_need_a_token_clients_are_rate_limited_and_secrets_never_leave(
    settings: Settings, tmp_path: Path
) -> None:
    write, read = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    settings = settings.model_copy(
        update={"session_timeout_s": 4.0, "api_token": SecretStr(write), "api_read_token": SecretStr(read)}
    )
    asyncio.run(ensure_topics(settings))
    port = free_port()
    http = Http(port)
    log_path = tmp_path / "worker.log"
    env = {
        "MUGPOS_WEB_PORT": str(port),
        "MUGPOS_REQUIRE_READ_TOKEN": "1",
        "MUGPOS_API_RATE": "5",
        "MUGPOS_API_BURST": "30",
        "MUGPOS_WEBHOOK_ALLOWLIST": "hooks.example.com",
    }
    with running_worker(settings, log_path, role="analyze", **env):
        http.wait_up()

        # -- reads need a token; probes, metrics and the dashboard page do not --------------------
        for path in ("/mugpos/stats", "/mugpos/latest", "/mugpos/rules", "/mugpos/images/x"):
            status, head, body = http.call("GET", path)
            assert status == 401 and "Bearer" in head.get("WWW-Authenticate", ""), (path, body)
            assert http.call("GET", path, token="wrong")[0] == 401, path
        assert http.call("GET", "/mugpos/stats", token=read)[0] == 200
        assert http.call("GET", "/mugpos/stats", token=write)[0] == 200
        assert http.call("GET", "/healthz")[0] == 200

        # -- a webhook rule is stored whole but read back with its secret path hidden ------------
        hook = {"text": "page me if a mug is over the edge", "rule_id": "hook", "action": "webhook", "target": HOOK}
        status, _, created = http.call("POST", "/mugpos/rules", hook, token=write)
        assert status == 201, created
        listing = http.wait_for(lambda body: "hook" in {r["rule_id"] for r in body["rules"]}, "the hook", token=read)
        (shown,) = [r for r in listing["rules"] if r["rule_id"] == "hook"]
        assert shown["action"]["target"] == "https://hooks.example.com/****"
        status, _, one = http.call("GET", "/mugpos/rules/hook", token=read)
        assert status == 200 and "very-secret-path" not in str(one)

        # -- publish actions reach only the prefix's topics or the allowlist ----------------------
        outside = {"text": "alert when a mug is not on a coaster", "action": "publish", "target": "billing.events"}
        status, _, refused = http.call("POST", "/mugpos/rules", outside, token=write)
        assert status == 422 and "MUGPOS_PUBLISH_ALLOWLIST" in refused["error"], refused
        inside = {**outside, "target": settings.topic("alerts")}
        assert http.call("POST", "/mugpos/rules", inside, token=write)[0] == 201

        # -- one client past its burst gets 429 with Retry-After, the probes still answer ---------
        statuses = [http.call("GET", "/mugpos/stats", token=read)[:2] for _ in range(40)]
        limited = [head for status, head in statuses if status == 429]
        assert limited, [s for s, _ in statuses]
        assert int(limited[0]["Retry-After"]) >= 1
        assert http.call("GET", "/healthz")[0] == 200

    log = log_path.read_text()
    assert write not in log and read not in log  # tokens are never logged
    assert "very-secret-path" not in log
