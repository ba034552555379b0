"""Faust agents. Thin: each decodes, calls into ``models``/``rules``/``control``, and produces."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from streams.app import MugposApp


def register(app: MugposApp) -> None:
    """Attach the agents of ``app.role`` to the app."""
    if app.role in ("all", "detect"):
        from agents import detect

        detect.register(app)
    if app.role in ("all", "analyze"):
        from agents import sink

        sink.register(app)
    if app.role in ("all", "analyze"):
        from agents import position

        position.register(app)
    if app.role in ("all", "analyze"):
        from agents import rules

        rules.register(app)
    if app.role in ("all", "control"):
        from agents import control

        control.register(app)
