"""Bearer tokens of the HTTP API: who may change rules (write token) and who may only read."""

from __future__ import annotations

import hmac

from faust import web


def check_token(request: web.Request, write_tokens: tuple[str, ...], read_tokens: tuple[str, ...]) -> int | None:
    """None when the request may mutate; else the HTTP status to answer (401 or 403)."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        return 401
    if any(hmac.compare_digest(token.encode(), t.encode()) for t in write_tokens if t):
        return None
    if any(hmac.compare_digest(token.encode(), t.encode()) for t in read_tokens if t):
        return 403
    return 401
