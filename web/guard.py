"""What every HTTP request passes first: a per-client rate limit, and the read token where required.

Both are aiohttp middlewares on the worker's web server, so no view can forget them. The rate
limit is a token bucket per client address (``MUGPOS_API_RATE`` per second, bursts of
``MUGPOS_API_BURST``), answered with 429 and ``Retry-After``; probes and Prometheus scrapes are not
counted. With ``MUGPOS_REQUIRE_READ_TOKEN`` every read needs the read or the write token, except
the probes, ``/metrics`` and the dashboard's page (its data calls carry the token; see
``dashboard.html``). Mutations are checked by their own views (write token). Tokens are never logged.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from aiohttp import web as aioweb
from cachetools import TTLCache

from mugpos.web.auth import check_token

if TYPE_CHECKING:
    from mugpos.streams.app import MugposApp

Handler = Callable[[aioweb.Request], Awaitable[aioweb.StreamResponse]]

#: Paths that are never rate limited nor token checked: liveness, readiness, Prometheus.
OPEN_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
#: Paths readable without a token even with MUGPOS_REQUIRE_READ_TOKEN (a static page, no data).
PUBLIC_PAGES = frozenset({"/"})
#: Most client addresses tracked at once (an address idle for 10 minutes is forgotten).
MAX_CLIENTS = 10_000


class TokenBuckets:
    """One token bucket per client address, bounded in memory."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = burst
        self.clock = clock
        self._buckets: TTLCache[str, tuple[float, float]] = TTLCache(maxsize=MAX_CLIENTS, ttl=600, timer=clock)

    def take(self, client: str) -> float:
        """0 when the request may go ahead, else the seconds until it may."""
        now = self.clock()
        tokens, then = self._buckets.get(client, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - then) * self.rate)
        if tokens >= 1.0:
            self._buckets[client] = (tokens - 1.0, now)
            return 0.0
        self._buckets[client] = (tokens, now)
        return (1.0 - tokens) / self.rate


def _json(status: int, reason: str, headers: dict[str, str] | None = None) -> aioweb.Response:
    return aioweb.Response(
        status=status, text=json.dumps({"error": reason}), content_type="application/json", headers=headers
    )


def install_guards(app: MugposApp) -> None:
    """Put the rate limit and the read-token check in front of every view of ``app``."""
    settings = app.settings
    buckets = TokenBuckets(settings.api_rate, settings.api_burst)

    def tokens() -> tuple[tuple[str, ...], tuple[str, ...]]:
        write = settings.api_token.get_secret_value() if settings.api_token else ""
        read = settings.api_read_token.get_secret_value() if settings.api_read_token else ""
        return (write, read), ()

    @aioweb.middleware
    async def rate_limit(request: aioweb.Request, handler: Handler) -> aioweb.StreamResponse:
        if request.path in OPEN_PATHS:
            return await handler(request)
        wait = buckets.take(request.remote or "unknown")
        if wait > 0:
            retry = str(max(1, math.ceil(wait)))
            return _json(429, f"too many requests from this address; retry in {retry} s", {"Retry-After": retry})
        return await handler(request)

    @aioweb.middleware
    async def read_token(request: aioweb.Request, handler: Handler) -> aioweb.StreamResponse:
        reading = request.method in ("GET", "HEAD")
        if not reading or request.path in OPEN_PATHS or request.path in PUBLIC_PAGES:
            return await handler(request)
        accepted, _ = tokens()
        if not any(accepted):
            return _json(403, "reads need a token (MUGPOS_REQUIRE_READ_TOKEN), but no token is configured")
        if check_token(request, accepted, ()) is not None:  # type: ignore[arg-type]
            return _json(
                401,
                "missing or wrong token: send Authorization: Bearer <token>",
                {"WWW-Authenticate": 'Bearer realm="mugpos"'},
            )
        return await handler(request)

    middlewares = app.web.web_app.middlewares  # type: ignore[attr-defined]
    middlewares.append(rate_limit)
    if settings.require_read_token:
        middlewares.append(read_token)
