"""Cut the network off inside a test, so a hidden download fails loudly instead of hanging."""

from __future__ import annotations

import socket
from typing import Any

import pytest


def _refuse(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError(f"network access attempted: {args[:2]}")


def cut_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make any DNS lookup or connection attempt raise."""
    monkeypatch.setattr(socket.socket, "connect", _refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", _refuse)
    monkeypatch.setattr(socket, "getaddrinfo", _refuse)
    monkeypatch.setattr(socket, "create_connection", _refuse)
