"""Rule-delivery settings, read from the environment in this one place.

They may join ``mugpos.core.settings.Settings`` one day; until then the rules package reads them
here, so moving them is a one-file change. Values are validated like
settings: a bad value stops the process with a message naming the variable.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from mugpos.rules.addresses import Network, parse_networks
from mugpos.rules.errors import RuleError


class RulesConfigError(RuleError):
    """An invalid ``MUGPOS_WEBHOOK_*`` / ``MUGPOS_RULES_*`` variable; the message names it."""


@dataclass(frozen=True)
class RulesConfig:
    """Webhook delivery and rule-feed knobs."""

    #: HMAC-SHA256 key for the ``X-Mugpos-Signature`` header; webhooks are refused without one.
    webhook_secret: str = field(default="", repr=False)
    #: Hosts webhooks may call: ``host``, ``host:port`` or ``*.domain``. Empty: no webhook allowed.
    webhook_allowlist: tuple[str, ...] = ()
    #: Networks webhooks may reach although they are not public (loopback, private, link-local):
    #: by default none, and cloud metadata addresses never. Checked on the resolved addresses.
    webhook_allow_networks: tuple[Network, ...] = ()
    #: Topics ``publish`` actions may target besides ``MUGPOS_TOPIC_PREFIX``*: names, or ``prefix*``.
    publish_allowlist: tuple[str, ...] = ()
    #: Per-attempt timeout, seconds.
    webhook_timeout_s: float = 5.0
    #: Retries after the first attempt (connection errors, timeouts, 429 and 5xx only).
    webhook_retries: int = 3
    #: First retry delay, doubled per retry (with jitter), seconds.
    webhook_backoff_s: float = 0.5
    #: Longest a starting worker waits to read the rules topic before evaluating positions, seconds.
    rules_ready_timeout_s: float = 30.0


ENV = {
    "webhook_secret": "MUGPOS_WEBHOOK_SECRET",
    "webhook_allowlist": "MUGPOS_WEBHOOK_ALLOWLIST",
    "webhook_allow_networks": "MUGPOS_WEBHOOK_ALLOW_NETWORKS",
    "publish_allowlist": "MUGPOS_PUBLISH_ALLOWLIST",
    "webhook_timeout_s": "MUGPOS_WEBHOOK_TIMEOUT_S",
    "webhook_retries": "MUGPOS_WEBHOOK_RETRIES",
    "webhook_backoff_s": "MUGPOS_WEBHOOK_BACKOFF_S",
    "rules_ready_timeout_s": "MUGPOS_RULES_READY_TIMEOUT_S",
}


def load_config(environ: Mapping[str, str] | None = None) -> RulesConfig:
    """Read the variables in :data:`ENV` (unset or empty: the default), from the environment and,
    like every other setting, from a ``.env`` file in the working directory (the environment wins)."""
    if environ is None:
        from dotenv import dotenv_values

        file_values = {k: v for k, v in dotenv_values(".env").items() if v is not None}
        env: Mapping[str, str] = {**file_values, **os.environ}
    else:
        env = environ
    defaults = RulesConfig()
    allow = env.get(ENV["webhook_allowlist"], "")
    hosts = tuple(h.strip().lower() for h in allow.split(",") if h.strip())
    for host in hosts:
        if "/" in host or "@" in host or " " in host:
            raise RulesConfigError(
                f"{ENV['webhook_allowlist']}: {host!r} is not a host (use host, host:port or *.domain)"
            )
    try:
        networks = parse_networks(env.get(ENV["webhook_allow_networks"], ""))
    except ValueError as exc:
        raise RulesConfigError(f"{ENV['webhook_allow_networks']}: {exc}") from None
    return RulesConfig(
        webhook_secret=env.get(ENV["webhook_secret"], ""),
        webhook_allowlist=hosts,
        webhook_allow_networks=networks,
        publish_allowlist=tuple(t.strip() for t in env.get(ENV["publish_allowlist"], "").split(",") if t.strip()),
        webhook_timeout_s=_number(env, "webhook_timeout_s", defaults.webhook_timeout_s, 0.1, 300),
        webhook_retries=int(_number(env, "webhook_retries", defaults.webhook_retries, 0, 20, integer=True)),
        webhook_backoff_s=_number(env, "webhook_backoff_s", defaults.webhook_backoff_s, 0, 60),
        rules_ready_timeout_s=_number(env, "rules_ready_timeout_s", defaults.rules_ready_timeout_s, 0, 600),
    )


def _number(env: Mapping[str, str], name: str, default: float, lo: float, hi: float, integer: bool = False) -> float:
    raw = env.get(ENV[name], "").strip()
    if not raw:
        return default
    try:
        value = int(raw) if integer else float(raw)
    except ValueError:
        kind = "a whole number" if integer else "a number"
        raise RulesConfigError(f"{ENV[name]}={raw!r}: expected {kind}") from None
    if not lo <= value <= hi:
        raise RulesConfigError(f"{ENV[name]}={raw!r}: expected a value between {lo:g} and {hi:g}")
    return value
