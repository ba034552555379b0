"""Camera configuration over HTTP: the ``mugpos cameras`` commands as JSON endpoints on every worker.

======================================  =========================================================
``GET /mugpos/cameras``                 every configuration on the cameras topic, and the records
                                        that did not validate
``GET /mugpos/cameras/{source}``        one camera's configuration (404 when it has none)
``PUT /mugpos/cameras/{source}``        ``{"px_per_cm"?, "table"?, "zones"?}`` -> 201 (new) or 200
                                        (replaced), the stored configuration
``DELETE /mugpos/cameras/{source}``     write its tombstone -> 204 (404 when it has none)
======================================  =========================================================

Reads are open like the other pages (behind ``MUGPOS_REQUIRE_READ_TOKEN`` where it is on); changes
need the write token, exactly as rule changes do (``web.rules``). Polygons are lists of ``[x, y]``
pixel points; zones are ``{"name", "polygon"}``. Validation is ``core.cameras.config_from_obj``, the
one the CLI uses; a bad body is a 422 naming the offending part.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from faust import web

from mugpos.core.cameras import SOURCE_ID, CameraConfigError, config_from_obj, config_to_json
from mugpos.core.errors import MugposError
from mugpos.web.rules import _REFUSED, ApiError, RulesApi, guarded, invalid, read_json

if TYPE_CHECKING:
    from mugpos.storage.cameras import CameraRegistry, CameraStore
    from mugpos.streams.app import MugposApp

log = logging.getLogger(__name__)

#: Concurrent reads of the cameras topic (each one is a Kafka consumer) per worker.
TOPIC_READS = 4


def register_camera_views(app: MugposApp) -> None:
    """Attach the camera-configuration endpoints to ``app`` (see the module docstring)."""
    api = RulesApi(app)
    reads = asyncio.Semaphore(TOPIC_READS)

    async def store(operation: Callable[[CameraStore], Awaitable[Any]]) -> Any:
        from mugpos.storage.cameras import CameraStore

        try:
            return await operation(CameraStore(app.settings))
        except MugposError as exc:
            raise ApiError(503, str(exc)) from None

    async def read_topic() -> CameraRegistry:
        async with reads:
            registry: CameraRegistry = await store(lambda s: s.read())
            return registry

    def check_source(source: str) -> None:
        if not SOURCE_ID.fullmatch(source):
            shown = repr(source) if len(source) <= 60 else repr(source[:57]) + "..."
            raise ApiError(400, f"{shown} is not a configurable source id (it must match {SOURCE_ID.pattern})")

    class CamerasCollection(web.View):
        def get_methods(self) -> set[str]:
            return {"GET", "HEAD", "POST", "DELETE"} | _REFUSED

        async def get(self, request: web.Request) -> web.Response:
            return await guarded(self, request, lambda r: list_cameras(self))

    class CameraItem(web.View):
        def get_methods(self) -> set[str]:
            return {"GET", "HEAD", "PUT", "DELETE", "POST", "PATCH"}

        async def get(self, request: web.Request, source: str) -> web.Response:
            return await guarded(self, request, lambda r: get_camera(self, source))

        async def put(self, request: web.Request, source: str) -> web.Response:
            return await guarded(self, request, lambda r: put_camera(self, r, source))

        async def delete(self, request: web.Request, source: str) -> web.Response:
            return await guarded(self, request, lambda r: delete_camera(self, r, source))

    async def list_cameras(view: web.View) -> web.Response:
        registry = await read_topic()
        configs = sorted(registry.configs, key=lambda c: c.source)
        return view.json({"cameras": [config_to_json(c) for c in configs], "invalid": registry.invalid})

    async def get_camera(view: web.View, source: str) -> web.Response:
        check_source(source)
        registry = await read_topic()
        camera = registry.get(source)
        if camera is None:
            raise unknown(source, registry)
        return view.json(config_to_json(camera.config))

    async def put_camera(view: web.View, request: web.Request, source: str) -> web.Response:
        api.require_write(request)
        check_source(source)
        body = await read_json(request)
        try:
            config = config_from_obj(body, source=source)
        except CameraConfigError as exc:
            raise invalid(exc.path, exc.message) from None
        existed = (await read_topic()).get(source) is not None
        await store(lambda s: s.put(config))
        log.info("cameras API: stored the configuration of %s", source)
        headers = {"Location": f"/mugpos/cameras/{source}"}
        return view.json(config_to_json(config), status=200 if existed else 201, headers=headers)

    async def delete_camera(view: web.View, request: web.Request, source: str) -> web.Response:
        api.require_write(request)
        check_source(source)
        registry = await read_topic()
        if registry.get(source) is None and source not in registry.invalid:
            raise unknown(source, registry)
        await store(lambda s: s.delete(source))
        log.info("cameras API: removed the configuration of %s", source)
        return view.bytes(b"", status=204)

    app.page("/mugpos/cameras", name="mugpos_cameras")(CamerasCollection)
    app.page("/mugpos/cameras/{source}", name="mugpos_camera")(CameraItem)


def unknown(source: str, registry: CameraRegistry) -> ApiError:
    if source in registry.invalid:
        return ApiError(404, f"camera {source!r} has an invalid record on the topic", invalid=registry.invalid[source])
    return ApiError(404, f"no configuration for camera {source!r}")
