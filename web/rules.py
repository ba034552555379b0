"""Rule management over HTTP: the ``mugpos rules`` commands as JSON endpoints on every worker.

======================================  =========================================================
``GET /mugpos/rules``                   the rules (the worker's live registry where it runs the
                                        rules agent, see ``agents/rules.py``; else the topic)
``POST /mugpos/rules``                  add or replace a rule: ``{"text": SENTENCE, options...}``
                                        or a full JSON rule -> 201, the rule, ``Location``
``GET /mugpos/rules/{rule_id}``         one rule, read from the rules topic (404 when unknown)
``DELETE /mugpos/rules/{rule_id}``      write its tombstone -> 204 (404 when unknown)
``POST /mugpos/rules/test``             ``{"text"|"rule": ..., "event"|"events": ...}``: does it
                                        fire, with the evidence (nothing is stored)
======================================  =========================================================

Reads are open like the other pages. Changes need ``Authorization: Bearer <MUGPOS_API_TOKEN>``
(401 without or with a wrong token, 403 with ``MUGPOS_API_READ_TOKEN``, 403 for everyone while
``MUGPOS_API_TOKEN`` is unset); testing needs either token. Rules are built, checked and tried by
the same functions as the CLI (``rules.manage``) and stored with the same ``RuleStore``. Every
error is JSON with a 4xx status (5xx only for a broker outage or a bug, never with a traceback);
headers, and so tokens, are never logged.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, cast

from aiohttp import web as aioweb
from faust import web

from mugpos.core.errors import MugposError
from mugpos.rules.errors import RuleError, RuleSyntaxError, RuleValidationError
from mugpos.rules.model import MAX_JSON_BYTES, RULE_ID, Rule, rule_to_json, rule_to_public_json
from mugpos.web.auth import check_token

if TYPE_CHECKING:
    from mugpos.rules.config import RulesConfig
    from mugpos.storage.rules import RuleRegistry
    from mugpos.streams.app import MugposApp

log = logging.getLogger(__name__)

#: Largest request body read, in bytes (a rule is at most this much JSON, too).
MAX_BODY_BYTES = MAX_JSON_BYTES
#: Most events one ``/mugpos/rules/test`` call evaluates.
MAX_TEST_EVENTS = 1000
#: Concurrent reads of the rules topic (each one is a Kafka consumer) per worker.
TOPIC_READS = 4

#: Methods a view claims besides its own, so that they get a JSON 405 (Faust's base view) instead of aiohttp's text.
_REFUSED = frozenset({"PUT", "PATCH"})

Handler = Callable[[web.Request], Awaitable[web.Response]]


class ApiError(Exception):
    """An answer other than success: status, a reason for people, and extra JSON fields."""

    def __init__(self, status: int, reason: str, headers: dict[str, str] | None = None, **extra: Any) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.headers = headers
        self.extra = extra


class RulesApi:
    """What the views share: settings, tokens, the rules config and access to the rules topic."""

    def __init__(self, app: MugposApp) -> None:
        self.app = app
        self._config: RulesConfig | None = None
        self._reads = asyncio.Semaphore(TOPIC_READS)

    # -- access -----------------------------------------------------------------------------------

    def _token(self, name: str) -> str:
        secret = getattr(self.app.settings, name, None)
        return secret.get_secret_value() if secret is not None else ""

    def require_write(self, request: web.Request) -> None:
        write = self._token("api_token")
        if not write:
            raise ApiError(403, "changes over HTTP are disabled: MUGPOS_API_TOKEN is not configured on this worker")
        self._check(
            request,
            (write,),
            (self._token("api_read_token"),),
            "this token is read-only; changes need MUGPOS_API_TOKEN",
        )

    def require_read(self, request: web.Request) -> None:
        tokens = (self._token("api_token"), self._token("api_read_token"))
        if not any(tokens):
            raise ApiError(
                403,
                "testing rules over HTTP is disabled: neither MUGPOS_API_TOKEN nor MUGPOS_API_READ_TOKEN is configured",
            )
        self._check(request, tokens, (), "")

    @staticmethod
    def _check(request: web.Request, write: tuple[str, ...], read: tuple[str, ...], forbidden: str) -> None:
        status = check_token(request, write, read)
        if status == 401:
            raise ApiError(
                401,
                "missing or wrong token: send Authorization: Bearer <token>",
                headers={"WWW-Authenticate": 'Bearer realm="mugpos"'},
            )
        if status is not None:
            raise ApiError(status, forbidden)

    # -- rules --------------------------------------------------------------------------------------

    def config(self) -> RulesConfig:
        """The webhook allowlist and friends, read once (a bad variable is the server's fault: 500)."""
        if self._config is None:
            from mugpos.rules.config import load_config

            try:
                self._config = load_config()
            except RuleError as exc:
                raise ApiError(500, f"the worker's rules configuration is invalid: {exc}") from None
        return self._config

    def build(self, spec: Any, path: str = "") -> Rule:
        """A rule from a request's JSON (sentence form or full rule); 400 for syntax, 422 for the rest."""
        from mugpos.rules.manage import check_publish_target, rule_from_spec

        try:
            rule = rule_from_spec(spec, allowlist=self.config().webhook_allowlist)
            check_publish_target(rule, self.app.settings, self.config().publish_allowlist)
        except RuleSyntaxError as exc:
            raise ApiError(
                400,
                f"cannot read the rule at character {exc.position + 1}: {exc.detail}",
                message=str(exc),
                position=exc.position,
                length=exc.length,
                expected=list(exc.expected),
                suggestion=exc.suggestion,
                text=exc.text,
            ) from None
        except RuleValidationError as exc:
            raise invalid(_join(path, exc.path), exc.detail) from None
        return rule

    async def store(self, operation: Callable[[Any], Awaitable[Any]]) -> Any:
        """Run ``operation(RuleStore)``; a broker that cannot be reached is a 503."""
        from mugpos.storage.rules import RuleStore

        try:
            return await operation(RuleStore(self.app.settings))
        except MugposError as exc:
            raise ApiError(503, str(exc)) from None

    async def read_topic(self) -> RuleRegistry:
        """The current rules, read from the compacted topic (what the next GET anywhere will see)."""
        async with self._reads:
            return cast("RuleRegistry", await self.store(lambda s: s.read()))


def register_rule_views(app: MugposApp) -> None:
    """Attach the rule-management endpoints to ``app`` (see the module docstring)."""
    api = RulesApi(app)
    # The rules agent serves GET /mugpos/rules from its live registry; the other roles read the topic.
    serves_list = app.role not in ("all", "analyze")

    class RulesCollection(web.View):
        def get_methods(self) -> set[str]:
            return {"POST", "DELETE"} | _REFUSED | ({"GET", "HEAD"} if serves_list else set())

        async def get(self, request: web.Request) -> web.Response:
            return await guarded(self, request, lambda r: list_rules(self, r))

        async def post(self, request: web.Request) -> web.Response:
            return await guarded(self, request, lambda r: add_rule(self, r))

    class RuleTest(web.View):
        def get_methods(self) -> set[str]:
            return {"POST"}

        async def post(self, request: web.Request) -> web.Response:
            return await guarded(self, request, lambda r: try_rules(self, r))

    class RuleItem(web.View):
        def get_methods(self) -> set[str]:
            return {"GET", "HEAD", "DELETE", "POST"} | _REFUSED

        async def get(self, request: web.Request, rule_id: str) -> web.Response:
            return await guarded(self, request, lambda r: get_rule(self, r, rule_id))

        async def delete(self, request: web.Request, rule_id: str) -> web.Response:
            return await guarded(self, request, lambda r: delete_rule(self, r, rule_id))

    async def list_rules(view: web.View, request: web.Request) -> web.Response:
        registry = await api.read_topic()
        return view.json(
            {
                "ready": True,
                "version": registry.version,
                "enabled": len(registry.ruleset),
                "rules": [rule_to_public_json(r) for r in sorted(registry.rules.values(), key=lambda r: r.rule_id)],
                "invalid": registry.invalid,
            }
        )

    async def add_rule(view: web.View, request: web.Request) -> web.Response:
        api.require_write(request)
        body = await read_json(request)
        if not isinstance(body, dict):
            raise invalid("", f'the body must be a JSON object (a rule, or {{"text": SENTENCE}}), got {_kind(body)}')
        rule = api.build(body)
        await api.store(lambda s: s.put(rule))
        log.info("rules API: stored rule %s", rule.rule_id)
        return view.json(rule_to_json(rule), status=201, headers={"Location": f"/mugpos/rules/{rule.rule_id}"})

    async def get_rule(view: web.View, request: web.Request, rule_id: str) -> web.Response:
        check_rule_id(rule_id)
        registry = await api.read_topic()
        rule = registry.rules.get(rule_id)
        if rule is None:
            raise unknown(rule_id, registry)
        return view.json(rule_to_public_json(rule))

    async def delete_rule(view: web.View, request: web.Request, rule_id: str) -> web.Response:
        api.require_write(request)
        check_rule_id(rule_id)
        registry = await api.read_topic()
        if rule_id not in registry.rules and rule_id not in registry.invalid:
            raise unknown(rule_id, registry)
        await api.store(lambda s: s.delete(rule_id))
        log.info("rules API: deleted rule %s", rule_id)
        return view.bytes(b"", status=204)

    async def try_rules(view: web.View, request: web.Request) -> web.Response:
        from mugpos.rules.manage import try_rule

        api.require_read(request)
        body = await read_json(request)
        if not isinstance(body, dict):
            raise invalid("", f"the body must be a JSON object, got {_kind(body)}")
        extra = sorted(set(body) - {"text", "rule", "event", "events"})
        if extra:
            raise invalid(extra[0], "unknown field; a test takes text or rule, and event or events")
        if ("text" in body) == ("rule" in body):
            raise invalid("", 'give exactly one of "text" (a sentence) and "rule" (a JSON rule)')
        rule = api.build({"text": body["text"]}) if "text" in body else api.build(body["rule"], "rule")
        events = events_of(body)
        results = try_rule(rule, events)
        fired = sum(1 for r in results if r["fires"])
        return view.json(
            {"rule": rule_to_json(rule), "fires": fired > 0, "fired": fired, "events": len(events), "results": results}
        )

    app.page("/mugpos/rules", name="mugpos_rules_api")(RulesCollection)
    app.page("/mugpos/rules/test", name="mugpos_rules_test")(RuleTest)
    app.page("/mugpos/rules/{rule_id}", name="mugpos_rule")(RuleItem)


async def guarded(view: web.View, request: web.Request, handler: Handler) -> web.Response:
    """Run a handler; its :class:`ApiError` becomes a JSON error, anything else a JSON 500 (logged)."""
    try:
        return await handler(request)
    except ApiError as exc:
        return view.error(exc.status, exc.reason, headers=exc.headers, **exc.extra)
    except Exception:  # a bug: the client gets JSON, the log gets the traceback (never the headers)
        log.exception("rules API: %s %s failed", request.method, request.url.path)
        return view.error(500, "internal error; the worker log has the details")


async def read_json(request: web.Request) -> Any:
    """The body as JSON: 415 unless it says JSON (UTF-8), 413 beyond MAX_BODY_BYTES, 400 unless it parses."""
    mime, _, params = request.headers.get("Content-Type", "").partition(";")
    mime = mime.strip().lower()
    if mime != "application/json" and not (mime.startswith("application/") and mime.endswith("+json")):
        raise ApiError(415, f"send the body as Content-Type: application/json, got {mime or 'none'!r}")
    for param in params.split(";"):
        key, _, value = param.partition("=")
        if key.strip().lower() == "charset" and value.strip().strip('"').lower() not in ("utf-8", "utf8"):
            raise ApiError(415, f"the body must be UTF-8 JSON, got charset {value.strip()!r}")
    length = request.headers.get("Content-Length")
    if length is not None and length.strip().isdigit() and int(length) > MAX_BODY_BYTES:
        raise ApiError(413, f"the body is {int(length)} bytes; at most {MAX_BODY_BYTES}")
    data = bytearray()
    async for chunk in cast(aioweb.Request, request).content.iter_chunked(16 * 1024):
        data += chunk
        if len(data) > MAX_BODY_BYTES:
            raise ApiError(413, f"the body is larger than {MAX_BODY_BYTES} bytes")
    if not data.strip():
        raise ApiError(400, "the body is empty; send a JSON object")
    try:
        return json.loads(bytes(data).decode("utf-8"), parse_constant=_reject_constant)
    except UnicodeDecodeError:
        raise ApiError(400, "the body is not UTF-8") from None
    except RecursionError:
        raise ApiError(400, "malformed JSON: nested too deeply") from None
    except ValueError as exc:
        raise ApiError(400, f"malformed JSON: {exc}") from None


def events_of(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The position events of a test request: ``event`` (one object) or ``events`` (a list of them)."""
    if ("event" in body) == ("events" in body):
        raise invalid("", 'give exactly one of "event" (a PositionEvent object) and "events" (a list of them)')
    if "event" in body:
        if not isinstance(body["event"], dict):
            raise invalid("event", f"must be a JSON object (a PositionEvent), got {_kind(body['event'])}")
        return [body["event"]]
    events = body["events"]
    if not isinstance(events, list) or not events:
        raise invalid("events", f"must be a non-empty list of PositionEvent objects, got {_kind(events)}")
    if len(events) > MAX_TEST_EVENTS:
        raise invalid("events", f"at most {MAX_TEST_EVENTS} events per test, got {len(events)}")
    for i, event in enumerate(events):
        if not isinstance(event, dict):
            raise invalid(f"events[{i}]", f"must be a JSON object (a PositionEvent), got {_kind(event)}")
    return events


def check_rule_id(rule_id: str) -> None:
    if not RULE_ID.fullmatch(rule_id):
        shown = repr(rule_id) if len(rule_id) <= 60 else repr(rule_id[:57]) + "..."
        raise ApiError(400, f"{shown} is not a rule id (1-128 letters, digits, '.', '_' or '-')")


def invalid(path: str, detail: str) -> ApiError:
    return ApiError(422, f"{path}: {detail}" if path else detail, path=path, detail=detail)


def unknown(rule_id: str, registry: RuleRegistry) -> ApiError:
    if rule_id in registry.invalid:
        return ApiError(404, f"rule {rule_id!r} is on the rules topic but invalid", invalid=registry.invalid[rule_id])
    return ApiError(404, f"no rule {rule_id!r}")


def _join(prefix: str, path: str) -> str:
    if not prefix:
        return path
    return f"{prefix}.{path}" if path else prefix


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}.get(type(value), "a number")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")
