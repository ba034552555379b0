"""Dead letters over HTTP, for operators: the ``mugpos dlq`` commands as JSON endpoints.

====================================  ===========================================================
``GET /mugpos/dlq``                   matching letters (newest last, at most ``limit``) and counts
                                      by stage and reason; query: stage, reason, source, since,
                                      image_id, limit
``POST /mugpos/dlq/replay``           ``{"stage"?, "reason"?, "source"?, "since"?, "image_id"?,
                                      "dry_run"?}``: re-produce the matching originals -> 200, report
====================================  ===========================================================

Both need ``Authorization: Bearer <MUGPOS_API_TOKEN>`` (dead letters hold the original payloads;
a replay writes to the pipeline's topics): 401 without or with a wrong token, 403 with the read
token or while ``MUGPOS_API_TOKEN`` is unset. Replay is idempotent (see ``mugpos.streams.dlq``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from faust import web

from mugpos.core.errors import MugposError
from mugpos.streams.dlq import DeadLetterFilter, parse_since, read_dead_letters, replay, stats
from mugpos.web.rules import ApiError, RulesApi, guarded, invalid, read_json

if TYPE_CHECKING:
    from mugpos.streams.app import MugposApp

log = logging.getLogger(__name__)

#: Most letters one GET returns (the counts cover every match).
MAX_LIMIT = 1000
#: Concurrent reads of the dead-letter topic per worker (each is a Kafka consumer).
TOPIC_READS = 2
FILTER_FIELDS = ("stage", "reason", "source", "since", "image_id")


def where(values: Mapping[str, Any]) -> DeadLetterFilter:
    """A filter from query parameters or a JSON body; 422 for a bad value."""
    fields: dict[str, Any] = {}
    for name in FILTER_FIELDS:
        value = values.get(name)
        if value is None or value == "":
            continue
        if not isinstance(value, str) or len(value) > 200:
            raise invalid(name, "expected a string of at most 200 characters")
        fields[name] = value
    if "since" in fields:
        try:
            fields["since"] = parse_since(fields["since"])
        except ValueError as exc:
            raise invalid("since", str(exc)) from None
    return DeadLetterFilter(**fields)


def register_dlq_views(app: MugposApp) -> None:
    """Attach ``/mugpos/dlq`` and ``/mugpos/dlq/replay`` to ``app``."""
    api = RulesApi(app)
    reads = asyncio.Semaphore(TOPIC_READS)

    async def letters(chosen: DeadLetterFilter) -> list[Any]:
        async with reads:
            try:
                return await read_dead_letters(app.settings, chosen, idle_s=1.0)
            except MugposError as exc:
                raise ApiError(503, str(exc)) from None

    async def list_letters(view: web.View, request: web.Request) -> web.Response:
        api.require_write(request)
        query = request.query
        unknown = sorted(set(query) - {*FILTER_FIELDS, "limit"})
        if unknown:
            raise invalid(unknown[0], f"unknown parameter; expected {', '.join((*FILTER_FIELDS, 'limit'))}")
        limit_text = query.get("limit", "100")
        if not limit_text.isdigit() or not 1 <= int(limit_text) <= MAX_LIMIT:
            raise invalid("limit", f"expected a whole number from 1 to {MAX_LIMIT}")
        found = await letters(where(query))
        shown = found[-int(limit_text) :]
        return view.json({"total": len(found), "stats": stats(found), "letters": [x.summary() for x in shown]})

    async def replay_letters(view: web.View, request: web.Request) -> web.Response:
        api.require_write(request)
        body = await read_json(request)
        if not isinstance(body, dict):
            raise invalid("", "the body must be a JSON object of filters (stage, reason, source, since, image_id)")
        extra = sorted(set(body) - {*FILTER_FIELDS, "dry_run"})
        if extra:
            raise invalid(extra[0], "unknown field")
        dry_run = body.get("dry_run", False)
        if not isinstance(dry_run, bool):
            raise invalid("dry_run", "expected true or false")
        chosen = where(body)
        found = await letters(chosen)
        try:
            report = await replay(app.settings, found, dry_run=dry_run)
        except MugposError as exc:
            raise ApiError(503, str(exc)) from None
        log.info("dlq API: %s %d dead letter(s)", "dry run of" if dry_run else "replayed", report["replayed"])
        return view.json({**report, "matched": len(found)})

    class DeadLetters(web.View):
        def get_methods(self) -> set[str]:
            return {"GET", "HEAD"}

        async def get(self, request: web.Request) -> web.Response:
            return await guarded(self, request, lambda r: list_letters(self, r))

    class Replay(web.View):
        def get_methods(self) -> set[str]:
            return {"POST"}

        async def post(self, request: web.Request) -> web.Response:
            return await guarded(self, request, lambda r: replay_letters(self, r))

    app.page("/mugpos/dlq", name="mugpos_dlq")(DeadLetters)
    app.page("/mugpos/dlq/replay", name="mugpos_dlq_replay")(Replay)
