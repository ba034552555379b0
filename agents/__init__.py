"""Faust agents. Thin: each decodes, calls into ``models``/``rules``/``control``, and produces."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mugpos.streams.app import MugposApp


def register(app: MugposApp) -> None:
    """Attach the agents of ``app.role`` to the app."""
    if app.role in ("all", "detect"):
        from mugpos.agents import detect

        detect.register(app)
    if app.role in ("all", "sink"):
        from mugpos.agents import sink

        sink.register(app)
    if app.role in ("all", "analyze"):
        from mugpos.agents import position

        position.register(app)
    if app.role in ("all", "analyze"):
        from mugpos.agents import rules

        rules.register(app)
    if app.role in ("all", "control"):
        from mugpos.agents import control

        control.register(app)
