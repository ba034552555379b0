"""Webhook delivery against a real aiohttp server on 127.0.0.1; log and publish routing."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

import pytest
from aiohttp import web

from mugpos.rules.addresses import AddressRefused, check_address, parse_networks
from mugpos.rules.config import RulesConfig, RulesConfigError, load_config
from mugpos.rules.senders import (
    ACTION_ID_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    Dispatcher,
    LogSender,
    WebhookSender,
    publish_refusal,
    sign,
    verify_signature,
)
from tests.rules.conftest import T0

SECRET = "s3cret-for-tests"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@asynccontextmanager
async def server(handler: Handler) -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    """A real HTTP server on a free loopback port; yields its base URL and the requests it saw."""
    seen: list[dict[str, Any]] = []

    async def record(request: web.Request) -> web.StreamResponse:
        seen.append({"headers": dict(request.headers), "body": await request.read(), "path": request.path})
        return await handler(request)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", record)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}", seen
    finally:
        await runner.cleanup()


def action(url: str | None, **fields: Any) -> dict[str, Any]:
    base = {
        "action_id": "edge:img-1",
        "rule_id": "edge",
        "rule_name": "near the edge",
        "severity": "warning",
        "action_type": "webhook",
        "target": url,
        "message": "near the edge: mug 0 ...",
        "evidence": {"mug.index": "0", "mug.edge_distance_cm": "3.1"},
        "image_id": "img-1",
        "source": "kitchen-1",
        "captured_at": T0,
        "fired_at": T0,
    }
    base.update(fields)
    return base


def config(**overrides: Any) -> RulesConfig:
    base = RulesConfig(
        webhook_secret=SECRET,
        webhook_allowlist=("127.0.0.1", "localhost"),
        webhook_allow_networks=parse_networks("127.0.0.0/8"),  # the test receivers listen on loopback
        webhook_timeout_s=1.0,
        webhook_retries=2,
        webhook_backoff_s=0.01,
    )
    return replace(base, **overrides)


async def ok(request: web.Request) -> web.Response:
    return web.Response(text="thanks")


def test_delivered_payload_is_the_action_json_and_the_signature_verifies() -> None:
    async def go() -> tuple[Any, list[dict[str, Any]]]:
        async with server(ok) as (base, seen), WebhookSender(config()) as sender:
            return await sender.send(action(f"{base}/hooks/mugs")), seen

    delivery, seen = asyncio.run(go())
    assert delivery.ok and delivery.status == 200 and delivery.attempts == 1
    (request,) = seen
    assert request["path"] == "/hooks/mugs"
    headers, body = request["headers"], request["body"]
    payload = json.loads(body)
    assert payload["action_id"] == "edge:img-1" and payload["evidence"]["mug.edge_distance_cm"] == "3.1"
    assert payload["captured_at"] == "2026-11-22T10:00:00.000Z"
    assert headers[ACTION_ID_HEADER] == "edge:img-1" and headers["Idempotency-Key"] == "edge:img-1"
    assert headers["Content-Type"] == "application/json"
    assert headers[SIGNATURE_HEADER] == sign(SECRET, headers[TIMESTAMP_HEADER], body)
    assert verify_signature(SECRET, headers[TIMESTAMP_HEADER], body, headers[SIGNATURE_HEADER])
    assert not verify_signature("other", headers[TIMESTAMP_HEADER], body, headers[SIGNATURE_HEADER])
    assert not verify_signature(SECRET, headers[TIMESTAMP_HEADER], body + b" ", headers[SIGNATURE_HEADER])
    stale = str(int(time.time()) - 3600)
    assert not verify_signature(SECRET, stale, body, sign(SECRET, stale, body))


def test_transient_failures_are_retried_with_backoff_then_delivered() -> None:
    answers = [500, 429, 200]

    async def flaky(request: web.Request) -> web.Response:
        return web.Response(status=answers.pop(0), headers={"Retry-After": "0"})

    async def go() -> tuple[Any, list[dict[str, Any]]]:
        async with server(flaky) as (base, seen), WebhookSender(config()) as sender:
            return await sender.send(action(f"{base}/x")), seen

    delivery, seen = asyncio.run(go())
    assert delivery.ok and delivery.attempts == 3
    assert len(seen) == 3
    assert len({r["headers"][ACTION_ID_HEADER] for r in seen}) == 1  # same idempotency key on every retry


def test_exhausted_retries_report_webhook_failed() -> None:
    async def broken(request: web.Request) -> web.Response:
        return web.Response(status=503, text="down for maintenance")

    async def go() -> tuple[Any, list[dict[str, Any]]]:
        async with server(broken) as (base, seen), WebhookSender(config(webhook_retries=1)) as sender:
            return await sender.send(action(f"{base}/x")), seen

    delivery, seen = asyncio.run(go())
    assert not delivery.ok and delivery.reason == "webhook_failed" and delivery.attempts == 2
    assert "HTTP 503" in delivery.message and "down for maintenance" in delivery.message
    assert len(seen) == 2


def test_client_errors_are_not_retried_and_redirects_not_followed() -> None:
    async def reject(request: web.Request) -> web.Response:
        if request.path == "/moved":
            raise web.HTTPFound("http://169.254.169.254/latest/meta-data")
        return web.Response(status=401, text="bad signature")

    async def go() -> tuple[Any, Any, list[dict[str, Any]]]:
        async with server(reject) as (base, seen), WebhookSender(config()) as sender:
            return await sender.send(action(f"{base}/x")), await sender.send(action(f"{base}/moved")), seen

    rejected, moved, seen = asyncio.run(go())
    assert (rejected.reason, rejected.status, rejected.attempts) == ("webhook_rejected", 401, 1)
    assert (moved.reason, moved.status) == ("webhook_rejected", 302)
    assert "not followed" in moved.message
    assert [r["path"] for r in seen] == ["/x", "/moved"]


def test_timeouts_and_refused_connections_are_transient() -> None:
    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(2)
        return web.Response()

    async def go() -> tuple[Any, Any, float]:
        async with server(slow) as (base, _), WebhookSender(config(webhook_timeout_s=0.2, webhook_retries=1)) as sender:
            started = time.monotonic()
            timed_out = await sender.send(action(f"{base}/slow"))
            elapsed = time.monotonic() - started
            refused = await sender.send(action("http://127.0.0.1:9/closed"))
            return timed_out, refused, elapsed

    timed_out, refused, elapsed = asyncio.run(go())
    assert (timed_out.reason, timed_out.attempts) == ("webhook_failed", 2) and "timed out" in timed_out.message
    assert elapsed < 1.5
    assert (refused.reason, refused.attempts) == ("webhook_failed", 2)


def test_allowlist_and_secret_are_checked_before_any_request() -> None:
    async def go() -> tuple[Any, Any, Any, list[dict[str, Any]]]:
        async with server(ok) as (base, seen):
            async with WebhookSender(config(webhook_allowlist=("hooks.example.com",))) as sender:
                outside = await sender.send(action(f"{base}/x"))
            async with WebhookSender(config(webhook_secret="")) as sender:
                unsigned = await sender.send(action(f"{base}/x"))
            async with WebhookSender(config()) as sender:
                no_url = await sender.send(action(None))
            return outside, unsigned, no_url, seen

    outside, unsigned, no_url, seen = asyncio.run(go())
    assert (outside.reason, outside.attempts) == ("webhook_not_allowed", 0)
    assert "not in the allowlist" in outside.message
    assert unsigned.reason == "webhook_no_secret"
    assert no_url.reason == "webhook_not_allowed"
    assert seen == []


@pytest.mark.parametrize(
    ("address", "allowed", "refused"),
    [
        ("8.8.8.8", "", False),
        ("2606:4700:4700::1111", "", False),
        ("127.0.0.1", "", True),
        ("::1", "", True),
        ("10.1.2.3", "", True),
        ("192.168.0.10", "", True),
        ("172.16.5.5", "", True),
        ("169.254.1.1", "", True),
        ("0.0.0.0", "", True),
        ("224.0.0.1", "", True),
        ("::ffff:127.0.0.1", "", True),  # IPv4-mapped loopback
        ("10.1.2.3", "10.0.0.0/8", False),
        ("127.0.0.1", "127.0.0.1", False),
        ("169.254.169.254", "169.254.0.0/16", True),  # metadata: never, whatever is allowed
        ("fd00:ec2::254", "fd00::/8", True),
    ],
)
def test_webhook_addresses_must_be_public_unless_their_network_is_allowed(
    address: str, allowed: str, refused: bool
) -> None:
    if refused:
        with pytest.raises(AddressRefused):
            check_address(address, parse_networks(allowed))
    else:
        check_address(address, parse_networks(allowed))


def test_a_name_that_resolves_to_loopback_is_refused_at_send_time_without_a_request() -> None:
    """The allowlist names the host; where it points is checked on each send (DNS rebinding)."""

    async def go() -> tuple[Any, Any, list[dict[str, Any]]]:
        async with server(ok) as (base, seen):
            port = base.rsplit(":", 1)[1]
            strict = config(webhook_allow_networks=())
            async with WebhookSender(strict) as sender:
                by_name = await sender.send(action(f"http://localhost:{port}/x"))
                by_ip = await sender.send(action(f"{base}/x"))
            return by_name, by_ip, seen

    by_name, by_ip, seen = asyncio.run(go())
    assert (by_name.reason, by_ip.reason) == ("webhook_not_allowed", "webhook_not_allowed")
    assert "resolves to 127.0.0.1" in by_name.message or "resolves to ::1" in by_name.message
    assert seen == []


def test_allow_networks_is_read_and_checked_from_the_environment() -> None:
    loaded = load_config({"MUGPOS_WEBHOOK_ALLOW_NETWORKS": "10.0.0.0/8, 127.0.0.1"})
    assert [str(n) for n in loaded.webhook_allow_networks] == ["10.0.0.0/8", "127.0.0.1/32"]
    with pytest.raises(RulesConfigError, match="MUGPOS_WEBHOOK_ALLOW_NETWORKS"):
        load_config({"MUGPOS_WEBHOOK_ALLOW_NETWORKS": "intranet"})


def test_log_sender_logs_at_the_severity(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="mugpos.actions"):
        for severity in ("info", "warning", "critical"):
            assert asyncio.run(LogSender().send(action("", severity=severity, action_type="log"))).ok
    assert [r.levelno for r in caplog.records] == [logging.INFO, logging.WARNING, logging.CRITICAL]
    assert "edge:img-1" in caplog.records[0].getMessage()


def test_dispatcher_routes_and_refuses_publishing_into_own_topics() -> None:
    published: list[tuple[str, bytes, bytes]] = []

    async def publish(topic: str, key: bytes, value: bytes) -> None:
        published.append((topic, key, value))

    async def failing(topic: str, key: bytes, value: bytes) -> None:
        raise RuntimeError("broker said no")

    async def go() -> list[Any]:
        sender = WebhookSender(config())
        dispatcher = Dispatcher(sender, LogSender(), publish, frozenset({"mugpos.actions"}))
        results = [
            await dispatcher.deliver(action(None, action_type="publish"), b"raw"),
            await dispatcher.deliver(action("team.alerts", action_type="publish"), b"raw"),
            await dispatcher.deliver(action("mugpos.actions", action_type="publish"), b"raw"),
            await dispatcher.deliver(action(None, action_type="log"), b"raw"),
            await Dispatcher(sender, LogSender(), failing, frozenset()).deliver(
                action("team.alerts", action_type="publish"), b"raw"
            ),
        ]
        await sender.close()
        return results

    results = asyncio.run(go())
    assert [r.ok for r in results] == [True, True, False, True, False]
    assert [r.reason for r in results[2:]] == ["publish_loop", "delivered", "publish_failed"]
    assert published == [("team.alerts", b"edge:img-1", b"raw")]


@pytest.mark.parametrize(
    ("target", "reason"),
    [
        ("mugpos.alerts", None),  # under the deployment's prefix
        ("team.alerts", None),  # named in the allowlist
        ("ops.mugs.kitchen", None),  # under an allowlisted prefix*
        ("mugpos.actions", "publish_loop"),  # one of mugpos's own topics
        ("billing.events", "publish_not_allowed"),  # anywhere else
        ("opsmugs", "publish_not_allowed"),
    ],
)
def test_publish_actions_reach_only_the_prefix_and_the_allowlist(target: str, reason: str | None) -> None:
    refusal = publish_refusal(target, frozenset({"mugpos.actions"}), "mugpos.", ("team.alerts", "ops.mugs.*"))
    assert (refusal[0] if refusal else None) == reason


def test_a_publish_action_outside_the_allowlist_is_refused_without_publishing() -> None:
    published: list[str] = []

    async def publish(topic: str, key: bytes, value: bytes) -> None:
        published.append(topic)

    async def go() -> Any:
        sender = WebhookSender(config())
        dispatcher = Dispatcher(sender, LogSender(), publish, frozenset(), "mugpos.", ())
        try:
            return await dispatcher.deliver(action("billing.events", action_type="publish"), b"raw")
        finally:
            await sender.close()

    refused = asyncio.run(go())
    assert (refused.ok, refused.reason) == (False, "publish_not_allowed")
    assert "MUGPOS_PUBLISH_ALLOWLIST" in refused.message and published == []


def test_config_reads_and_validates_the_environment() -> None:
    loaded = load_config(
        {
            "MUGPOS_WEBHOOK_SECRET": "zz-top-secret",
            "MUGPOS_WEBHOOK_ALLOWLIST": " Hooks.Example.com, 127.0.0.1:9000 ,,",
            "MUGPOS_WEBHOOK_TIMEOUT_S": "2.5",
            "MUGPOS_WEBHOOK_RETRIES": "0",
        }
    )
    assert loaded.webhook_allowlist == ("hooks.example.com", "127.0.0.1:9000")
    assert (loaded.webhook_timeout_s, loaded.webhook_retries) == (2.5, 0)
    assert "zz-top-secret" not in repr(loaded)  # the secret stays out of logs
    assert load_config({}) == RulesConfig()
    with pytest.raises(RulesConfigError, match="MUGPOS_WEBHOOK_RETRIES"):
        load_config({"MUGPOS_WEBHOOK_RETRIES": "many"})
    with pytest.raises(RulesConfigError, match="MUGPOS_WEBHOOK_TIMEOUT_S"):
        load_config({"MUGPOS_WEBHOOK_TIMEOUT_S": "0"})
    with pytest.raises(RulesConfigError, match="MUGPOS_WEBHOOK_ALLOWLIST"):
        load_config({"MUGPOS_WEBHOOK_ALLOWLIST": "https://hooks.example.com/x"})
