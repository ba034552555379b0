"""Action delivery: webhooks (signed, allowlisted, retried), log lines, and publishing to a topic.

The actions topic is the outbox: the rules agent only publishes ``ActionEvent``s, and the actions
agent delivers them through these senders, so a slow webhook never stalls rule evaluation and
every delivery is at-least-once (receivers deduplicate on ``X-Mugpos-Action-Id``). A delivery that
cannot succeed returns a :class:`Delivery` with a stable reason code for the dead-letter topic.

Webhook signature: ``X-Mugpos-Signature: sha256=HEX`` where HEX is
``HMAC-SHA256(secret, f"{X-Mugpos-Timestamp}." + body)``; receivers check it with
:func:`verify_signature` (or the same two lines in any language) and reject stale timestamps.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_result,
    stop_after_attempt,
    wait_exponential,
    wait_random,
)

from mugpos.core.codec import to_json_line
from mugpos.core.redact import redact_webhook
from mugpos.rules.addresses import AddressRefused, GuardedResolver, check_address, is_ip
from mugpos.rules.config import RulesConfig
from mugpos.rules.errors import RuleValidationError
from mugpos.rules.metrics import DELIVERIES
from mugpos.rules.model import check_webhook_url

log = logging.getLogger(__name__)
action_log = logging.getLogger("mugpos.actions")

USER_AGENT = "mugpos-rules/0.1"
SIGNATURE_HEADER = "X-Mugpos-Signature"
TIMESTAMP_HEADER = "X-Mugpos-Timestamp"
ACTION_ID_HEADER = "X-Mugpos-Action-Id"
_LEVELS = {"info": logging.INFO, "warning": logging.WARNING, "critical": logging.CRITICAL}


@dataclass(frozen=True)
class Delivery:
    """Outcome of one delivery. ``reason`` is a bounded code (metrics label, dead-letter reason)."""

    ok: bool
    reason: str
    message: str = ""
    attempts: int = 1
    status: int | None = None


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """Signature header value for ``body`` sent at ``timestamp`` (unix seconds, as sent)."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify_signature(
    secret: str, timestamp: str, body: bytes, signature: str, *, tolerance_s: float = 300, now: float | None = None
) -> bool:
    """Receiver side: constant-time check of the signature, and that the timestamp is recent."""
    try:
        sent = float(timestamp)
    except ValueError:
        return False
    if abs((time.time() if now is None else now) - sent) > tolerance_s:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body), signature)


class WebhookSender:
    """POSTs actions as JSON to their allowlisted URL; retries transient failures with backoff."""

    def __init__(self, config: RulesConfig, session: aiohttp.ClientSession | None = None) -> None:
        self.config = config
        self._session = session
        self._own = session is None

    async def __aenter__(self) -> WebhookSender:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=32, resolver=GuardedResolver(self.config.webhook_allow_networks)),
                headers={"User-Agent": USER_AGENT},
            )
            self._own = True
        return self._session

    async def close(self) -> None:
        if self._session is not None and self._own and not self._session.closed:
            await self._session.close()

    async def send(self, action: Mapping[str, Any]) -> Delivery:
        """Deliver one ActionEvent record; never raises for delivery problems."""
        outcome = await self._send(action)
        DELIVERIES.labels("webhook", outcome.reason).inc()
        return outcome

    async def _send(self, action: Mapping[str, Any]) -> Delivery:
        url = action.get("target")
        if not isinstance(url, str) or not url:
            return Delivery(False, "webhook_not_allowed", "webhook action without a URL", attempts=0)
        try:
            check_webhook_url(url, self.config.webhook_allowlist)
            host = urlsplit(url).hostname or ""
            if is_ip(host):  # an IP literal skips the resolver: check it here
                check_address(host, self.config.webhook_allow_networks)
        except RuleValidationError as exc:
            return Delivery(False, "webhook_not_allowed", exc.detail, attempts=0)
        except AddressRefused as exc:
            return Delivery(False, "webhook_not_allowed", str(exc), attempts=0)
        if not self.config.webhook_secret:
            return Delivery(
                False,
                "webhook_no_secret",
                "MUGPOS_WEBHOOK_SECRET is not set; unsigned webhooks are refused",
                attempts=0,
            )
        body = to_json_line(action).encode()
        action_id = str(action.get("action_id", ""))
        backoff = wait_exponential(multiplier=self.config.webhook_backoff_s) + wait_random(
            0, self.config.webhook_backoff_s
        )

        def wait(state: RetryCallState) -> float:
            # The receiver's Retry-After (capped at 30 s) wins over a shorter backoff: tenacity has no such rule.
            _, retry_after = state.outcome.result() if state.outcome is not None else (None, None)
            return max(backoff(state), min(retry_after or 0.0, 30.0))

        async def attempt() -> tuple[Delivery, float | None]:
            number = retrying.statistics.get("attempt_number", 1)
            return await self._attempt(url, body, action_id, number)

        retrying = AsyncRetrying(
            stop=stop_after_attempt(1 + self.config.webhook_retries),
            retry=retry_if_result(lambda result: result[0].reason == "webhook_failed"),
            wait=wait,
            retry_error_callback=lambda state: state.outcome.result() if state.outcome is not None else None,
        )
        delivered: Delivery = (await retrying(attempt))[0]
        return delivered

    async def _attempt(self, url: str, body: bytes, action_id: str, attempt: int) -> tuple[Delivery, float | None]:
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            ACTION_ID_HEADER: action_id,
            "Idempotency-Key": action_id,
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: sign(self.config.webhook_secret, timestamp, body),
        }
        timeout = aiohttp.ClientTimeout(total=self.config.webhook_timeout_s)
        try:
            async with self._client().post(
                url, data=body, headers=headers, timeout=timeout, allow_redirects=False
            ) as response:
                status = response.status
                snippet = (await response.content.read(512)).decode("utf-8", "replace")
                retry_after = _retry_after(response.headers.get("Retry-After"))
        except AddressRefused as exc:  # the name resolves somewhere webhooks may not go
            return Delivery(False, "webhook_not_allowed", str(exc), attempt), None
        except TimeoutError:
            return Delivery(
                False, "webhook_failed", f"timed out after {self.config.webhook_timeout_s} s", attempt
            ), None
        except aiohttp.ClientError as exc:
            return Delivery(False, "webhook_failed", f"{type(exc).__name__}: {exc}", attempt), None
        if 200 <= status < 300:
            return Delivery(True, "delivered", f"HTTP {status}", attempt, status), None
        shown = redact_webhook(url)  # the URL is the receiver's secret: never in a log or a dead letter
        detail = f"HTTP {status} from {shown}: {snippet.strip()[:200]}"
        if status == 429 or status >= 500:
            return Delivery(False, "webhook_failed", detail, attempt, status), retry_after
        if 300 <= status < 400:
            detail = f"HTTP {status} redirect from {shown}; redirects are not followed"
        return Delivery(False, "webhook_rejected", detail, attempt, status), None


def _retry_after(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


class LogSender:
    """Writes an action as one log line on ``mugpos.actions``, at the level of its severity."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self.logger = logger or action_log

    async def send(self, action: Mapping[str, Any]) -> Delivery:
        level = _LEVELS.get(str(action.get("severity")), logging.WARNING)
        self.logger.log(
            level,
            "rule %s fired: %s [action %s]",
            action.get("rule_id"),
            action.get("message"),
            action.get("action_id"),
        )
        DELIVERIES.labels("log", "delivered").inc()
        return Delivery(True, "delivered")


Publish = Callable[[str, bytes, bytes], Awaitable[Any]]


def publish_refusal(
    target: str, forbidden: frozenset[str], prefix: str, allowlist: tuple[str, ...]
) -> tuple[str, str] | None:
    """``(reason, message)`` when a publish action may not write to ``target``, else None.

    Never one of mugpos's own topics (it would loop or corrupt them); otherwise a topic under the
    deployment's prefix, or one ``MUGPOS_PUBLISH_ALLOWLIST`` names (``name`` or ``prefix*``)."""
    if target in forbidden:
        return "publish_loop", f"{target!r} is a mugpos topic; publishing there would loop"
    listed = any(target == entry or (entry.endswith("*") and target.startswith(entry[:-1])) for entry in allowlist)
    if target.startswith(prefix) or listed:
        return None
    return "publish_not_allowed", (
        f"topic {target!r} is outside the prefix {prefix!r} and MUGPOS_PUBLISH_ALLOWLIST; add it there to publish to it"
    )


class Dispatcher:
    """Routes a decoded ActionEvent to its sender. ``publish(topic, key, value)`` forwards to a topic
    under ``prefix`` or in ``publish_allowlist`` (an empty prefix allows every topic but the forbidden)."""

    def __init__(
        self,
        webhook: WebhookSender,
        logger: LogSender,
        publish: Publish,
        forbidden_topics: frozenset[str],
        prefix: str = "",
        publish_allowlist: tuple[str, ...] = (),
    ) -> None:
        self.webhook = webhook
        self.logger = logger
        self.publish = publish
        self.forbidden = forbidden_topics
        self.prefix = prefix
        self.publish_allowlist = publish_allowlist

    async def deliver(self, action: Mapping[str, Any], raw: bytes) -> Delivery:
        if action.get("notify") is False:  # an episode end nobody asked to hear of: recorded, not sent
            return Delivery(True, "delivered", "recorded on the actions topic only", attempts=0)
        kind = action.get("action_type")
        if kind == "webhook":
            return await self.webhook.send(action)
        if kind == "log":
            return await self.logger.send(action)
        target = action.get("target")
        if not target:
            return Delivery(True, "delivered", "on the actions topic", attempts=0)
        refusal = publish_refusal(str(target), self.forbidden, self.prefix, self.publish_allowlist)
        if refusal is not None:
            DELIVERIES.labels("publish", refusal[0]).inc()
            return Delivery(False, refusal[0], refusal[1], 0)
        try:
            await self.publish(str(target), str(action["action_id"]).encode(), raw)
        except Exception as exc:  # the producer raises many types (Kafka errors, timeouts)
            DELIVERIES.labels("publish", "publish_failed").inc()
            return Delivery(False, "publish_failed", f"could not publish to {target}: {exc!r}")
        DELIVERIES.labels("publish", "delivered").inc()
        return Delivery(True, "delivered", f"published to {target}")
