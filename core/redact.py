"""Redaction of secrets carried inside URLs, for anything shown to people (GETs, logs, dead letters).

A MongoDB or Redis URL may carry a password (``mongodb://user:pw@host``); a webhook URL usually
*is* the secret (``https://hooks.example.com/services/T0/B0/XXXX``, ``?token=...``). What stays is
what an operator needs to tell them apart: the scheme, the user, the host and the port.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

MASK = "****"


def redact_url(url: str) -> str:
    """The URL with the password of its user info masked (``mongodb://app:****@db:27017/x``)."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return MASK
    if password is None:
        return url
    host = parts.hostname or ""
    if ":" in host:  # an IPv6 literal
        host = f"[{host}]"
    netloc = f"{parts.username or ''}:{MASK}@{host}" + (f":{parts.port}" if parts.port is not None else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def redact_webhook(url: str) -> str:
    """Scheme, host and port of a webhook URL; its path, query and any user info masked."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError:
        return MASK
    if not parts.scheme or not host:
        return MASK
    if ":" in host:
        host = f"[{host}]"
    hidden = parts.path not in ("", "/") or parts.query or parts.fragment
    return f"{parts.scheme}://{host}{f':{port}' if port is not None else ''}/{MASK if hidden else ''}"
