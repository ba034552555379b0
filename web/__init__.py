"""HTTP views and the dashboard, served by each worker's Faust web server.

``views`` holds the read pages (health, readiness, stats, results, annotated images, dashboard),
``rules`` the rule management API, ``cameras`` the camera configuration, ``dlq`` the dead letters
for operators, ``auth`` the bearer-token check, ``guard`` the rate limit and read-token
middlewares; :func:`register_views` mounts them all on an app.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mugpos.web.cameras import register_camera_views
from mugpos.web.dlq import register_dlq_views
from mugpos.web.guard import install_guards
from mugpos.web.rules import register_rule_views
from mugpos.web.views import register_read_views

if TYPE_CHECKING:
    from mugpos.streams.app import MugposApp


def register_views(app: MugposApp) -> None:
    """Attach every page of the project to ``app``, behind the rate limit and the read-token check."""
    install_guards(app)
    register_read_views(app)
    register_rule_views(app)
    register_dlq_views(app)
    register_camera_views(app)
