"""Web views served by every worker's Faust web server: stats, results, health, metrics, dashboard.

Errors are JSON with a 4xx status and a reason, never a traceback. Tokens are compared in constant
time and never logged.
"""

from __future__ import annotations

import asyncio
import logging
import time
from importlib import resources
from typing import TYPE_CHECKING, Any

from aiokafka.admin import AIOKafkaAdminClient
from faust import web

from mugpos.core.codec import to_jsonable
from mugpos.core.redact import redact_webhook

if TYPE_CHECKING:
    from mugpos.streams.app import MugposApp

log = logging.getLogger(__name__)

_IMAGE_ID_MAX = 512


def register_read_views(app: MugposApp) -> None:
    """Attach the read pages (health, readiness, stats, results, annotated images, dashboard) to ``app``."""
    _setup_metrics(app)
    readiness = BrokerProbe(app)

    @app.page("/healthz")
    async def healthz(self: web.View, request: web.Request) -> web.Response:
        return self.json({"status": "ok", "role": app.role})

    @app.page("/readyz")
    async def readyz(self: web.View, request: web.Request) -> web.Response:
        checks = {"broker": await readiness.reachable(), "model": model_ready(app)}
        ok = all(checks.values())
        return self.json({"ready": ok, "checks": checks}, status=200 if ok else 503)

    @app.page("/mugpos/stats")
    async def stats(self: web.View, request: web.Request) -> web.Response:
        return self.json(app.mugpos_stats.snapshot())

    @app.page("/mugpos/latest")
    async def latest(self: web.View, request: web.Request) -> web.Response:
        items = list(reversed(app.mugpos_stats.recent.values()))
        return self.json({"images": to_jsonable(items)})

    @app.page("/mugpos/images/{image_id}")
    async def image(self: web.View, request: web.Request, image_id: str) -> web.Response:
        if not valid_image_id(image_id):
            return self.error(400, "invalid image id")
        result = await app.mugpos_results.get(image_id)
        if result is None:
            return self.error(404, f"no result for image {image_id}")
        return self.json(to_jsonable(without_webhook_secrets(result)))

    @app.page("/mugpos/images/{image_id}/annotated.jpg")
    async def annotated(self: web.View, request: web.Request, image_id: str) -> web.Response:
        if not valid_image_id(image_id):
            return self.error(400, "invalid image id")
        jpeg = await app.mugpos_results.annotated(image_id)
        if jpeg is None:
            return self.error(404, f"no annotated image for {image_id}")
        return self.bytes(jpeg, content_type="image/jpeg")

    @app.page("/")
    async def dashboard(self: web.View, request: web.Request) -> web.Response:
        return self.html(dashboard_html())


def without_webhook_secrets(result: dict[str, Any]) -> dict[str, Any]:
    """A stored result for reading: the webhook URLs of its actions (the receivers' secrets) redacted."""
    actions = result.get("actions")
    if not isinstance(actions, dict):
        return result
    shown = {
        key: {**a, "target": redact_webhook(str(a["target"]))}
        if isinstance(a, dict) and a.get("action_type") == "webhook" and a.get("target")
        else a
        for key, a in actions.items()
    }
    return {**result, "actions": shown}


def valid_image_id(image_id: str) -> bool:
    return 0 < len(image_id) <= _IMAGE_ID_MAX and image_id.isprintable()


def model_ready(app: MugposApp) -> bool:
    """Roles that detect are ready once their model is loaded and warm; others need no model."""
    if app.role not in ("all", "detect"):
        return True
    return getattr(app, "mugpos_processor", None) is not None


def dashboard_html() -> str:
    return resources.files("mugpos.web").joinpath("dashboard.html").read_text(encoding="utf-8")


class BrokerProbe:
    """Answers "is the broker reachable?" with a short timeout, cached for a few seconds."""

    def __init__(self, app: MugposApp, ttl_s: float = 5.0, timeout_s: float = 2.0) -> None:
        self._app = app
        self._ttl = ttl_s
        self._timeout = timeout_s
        self._checked = 0.0
        self._ok = False

    async def reachable(self) -> bool:
        if time.monotonic() - self._checked < self._ttl:
            return self._ok
        admin = AIOKafkaAdminClient(
            bootstrap_servers=self._app.settings.bootstrap, request_timeout_ms=int(self._timeout * 1000)
        )
        try:
            await asyncio.wait_for(admin.start(), self._timeout)
            await asyncio.wait_for(admin.list_topics(), self._timeout)
            self._ok = True
        except Exception as exc:  # any failure means not ready; the reason goes to the log once per check
            log.warning("readiness: broker unreachable: %r", exc)
            self._ok = False
        finally:
            try:
                await admin.close()
            except Exception as exc:  # closing a half-open client may fail; readiness already decided
                log.debug("readiness: admin close failed: %r", exc)
        self._checked = time.monotonic()
        return self._ok


def _setup_metrics(app: MugposApp) -> None:
    """Prometheus at /metrics: Faust's own sensors plus every ``mugpos_*`` metric (default registry)."""
    from faust.sensors.prometheus import setup_prometheus_sensors

    try:
        setup_prometheus_sensors(app, name_prefix="faust")
    except ValueError:
        # Faust's collectors are process-global; a second app in one process (tests) reuses them.
        from faust.sensors.prometheus import FaustMetrics, PrometheusMonitor
        from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

        del FaustMetrics, PrometheusMonitor

        @app.page("/metrics")
        async def metrics(self: web.View, request: web.Request) -> web.Response:
            return self.bytes(generate_latest(REGISTRY), content_type=CONTENT_TYPE_LATEST.split(";")[0])


def json_error(view: web.View, status: int, reason: str, **extra: Any) -> web.Response:
    return view.error(status, reason, **extra)
