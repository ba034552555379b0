"""Rule management over HTTP on a real `mugpos worker`: tokens, add/get/list/delete, test, and bad requests."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from mugpos.core.settings import Settings
from mugpos.core.topics import ensure_topics
from mugpos.rules.model import rule_from_obj
from mugpos.storage.rules import RuleStore
from tests.integration.worker import free_port, running_worker

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SENTENCE = "alert when a mug is not on a coaster"
OFF_COASTER = {
    "image_id": "bad",
    "source": "cam-1",
    "mugs": [{"index": 0, "on_coaster": True}, {"index": 2, "on_coaster": False}],
}


class Http:
    """A tiny JSON client for one worker."""

    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        token: str | None = None,
        raw: bytes | None = None,
        content_type: str | None = "application/json",
        authorization: str | None = None,
    ) -> tuple[int, dict[str, str], Any]:
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        headers = {}
        if content_type is not None and data is not None:
            headers["Content-Type"] = content_type
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        if authorization is not None:
            headers["Authorization"] = authorization
        request = urllib.request.Request(self.base + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=30) as resp:
                status, head, payload = resp.status, dict(resp.headers), resp.read()
        except urllib.error.HTTPError as exc:
            status, head, payload = exc.code, dict(exc.headers), exc.read()
        assert b"Traceback" not in payload, payload
        if status != 204 and method != "HEAD":
            assert head.get("Content-Type", "").startswith("application/json"), (status, head, payload)
            return status, head, json.loads(payload)
        return status, head, payload

    def wait_up(self, timeout_s: float = 90) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(self.base + "/healthz", timeout=2) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.3)
        raise AssertionError("the worker's web server never answered")

    def wait_for(self, predicate: Any, what: str, timeout_s: float = 60, token: str | None = None) -> Any:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            status, _, body = self.call("GET", "/mugpos/rules", token=token)
            if status == 200 and predicate(body):
                return body
            time.sleep(0.3)
        raise AssertionError(f"GET /mugpos/rules never showed {what}")


def rule_ids(listing: dict[str, Any]) -> set[str]:
    return {r["rule_id"] for r in listing["rules"]}


def test_rules_over_http_need_the_token_validate_like_the_cli_and_never_log_tokens(
    settings: Settings, tmp_path: Path
) -> None:
    write, read = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    settings = settings.model_copy(
        update={"session_timeout_s": 4.0, "api_token": SecretStr(write), "api_read_token": SecretStr(read)}
    )
    asyncio.run(ensure_topics(settings))
    port = free_port()
    http = Http(port)
    log_path = tmp_path / "worker.log"
    with running_worker(settings, log_path, role="analyze", MUGPOS_WEB_PORT=str(port)) as proc:
        http.wait_up()
        http.wait_for(lambda body: body["ready"] and body["rules"] == [], "the empty, loaded registry")

        # -- who may change rules --------------------------------------------------------------
        new_rule = {"text": SENTENCE}
        status, head, body = http.call("POST", "/mugpos/rules", new_rule)
        assert status == 401 and "Bearer" in head.get("WWW-Authenticate", "") and "token" in body["error"]
        assert http.call("POST", "/mugpos/rules", new_rule, token="wrong-" + write)[0] == 401
        assert http.call("POST", "/mugpos/rules", new_rule, authorization=f"Basic {write}")[0] == 401
        status, _, body = http.call("POST", "/mugpos/rules", new_rule, token=read)
        assert status == 403 and "read-only" in body["error"]
        assert http.call("DELETE", "/mugpos/rules/anything")[0] == 401
        assert http.call("DELETE", "/mugpos/rules/anything", token=read)[0] == 403

        # -- add: a sentence with options, and a full JSON rule --------------------------------
        sentence = {"text": SENTENCE, "rule_id": "coaster", "severity": "critical", "sources": ["cam-1"]}
        status, head, coaster = http.call("POST", "/mugpos/rules", sentence, token=write)
        assert status == 201, coaster
        assert head["Location"] == "/mugpos/rules/coaster"
        assert coaster["rule_id"] == "coaster" and coaster["severity"] == "critical"
        assert coaster["sources"] == ["cam-1"] and coaster["text"] == SENTENCE
        assert coaster["condition"] == {"kind": "compare", "field": "mug.on_coaster", "op": "==", "value": False}
        full: dict[str, Any] = {
            "rule_id": "crowd",
            "condition": {"kind": "compare", "field": "image.mug_count", "op": ">", "value": 3},
            "severity": "info",
            "cooldown_s": 30,
        }
        status, head, crowd = http.call("POST", "/mugpos/rules", full, token=write)
        assert status == 201, crowd
        assert head["Location"] == "/mugpos/rules/crowd" and crowd["cooldown_s"] == 30
        assert rule_from_obj(crowd).rule_id == "crowd"  # the answer is a rule the CLI reads back

        # -- read back: by id from the topic, the list from the worker's registry ---------------
        status, _, got = http.call("GET", "/mugpos/rules/coaster")
        assert status == 200 and got == coaster
        listing = http.wait_for(lambda body: {"coaster", "crowd"} <= rule_ids(body), "both new rules")
        assert listing["enabled"] == 2
        stored = asyncio.run(RuleStore(settings).read())  # the same topic the CLI reads
        assert set(stored.rules) == {"coaster", "crowd"}

        # -- test: read token suffices, nothing is stored --------------------------------------
        try_body = {"text": SENTENCE, "event": OFF_COASTER}
        assert http.call("POST", "/mugpos/rules/test", try_body)[0] == 401
        status, _, tried = http.call("POST", "/mugpos/rules/test", try_body, token=read)
        assert status == 200, tried
        assert tried["fires"] is True and tried["fired"] == 1
        assert tried["results"][0]["evidence"] == {"mug.index": "2", "mugs.matching": "2", "mug.on_coaster": "false"}
        events = [OFF_COASTER, {**OFF_COASTER, "image_id": "good", "mugs": [{"index": 0, "on_coaster": True}]}]
        status, _, tried = http.call("POST", "/mugpos/rules/test", {"rule": full, "events": events}, token=write)
        assert status == 200 and tried["fires"] is False
        assert [r["fires"] for r in tried["results"]] == [False, False]
        status, _, body = http.call(
            "POST", "/mugpos/rules/test", {"rule": {**full, "severity": "loud"}, "event": {}}, token=read
        )
        assert status == 422 and body["path"] == "rule.severity"

        # -- bad requests: JSON 4xx, never stored ----------------------------------------------
        status, _, body = http.call(
            "POST", "/mugpos/rules", {"text": "alert when a mug is not on a coastr"}, token=write
        )
        assert status == 400
        assert body["error"] == "cannot read the rule at character 30: unexpected word 'coastr'"
        lines = body["message"].splitlines()
        assert lines[1] == "  alert when a mug is not on a coastr" and lines[2] == "  " + " " * 29 + "^^^^^^"
        assert body["position"] == 29 and body["suggestion"] == "coaster"
        for bad, path in [
            ({"text": SENTENCE, "severity": "loud"}, "severity"),
            ({"text": SENTENCE, "colour": "red"}, "colour"),
            ({"text": 42}, "text"),
            ({**full, "condition": {**full["condition"], "field": "mug.quality", "value": "low"}}, "condition.value"),
            ({**full, "action": {"type": "publish", "target": settings.topic("actions")}}, "action.target"),
            ({**full, "action": {"type": "webhook", "target": "https://evil.example/x"}}, "action.target"),
            ([full], ""),
        ]:  # fmt: skip
            status, _, body = http.call("POST", "/mugpos/rules", bad, token=write)
            assert (status, body.get("path")) == (422, path), body
        big = {"text": SENTENCE, "name": "x" * (70 * 1024)}
        status, _, body = http.call("POST", "/mugpos/rules", big, token=write)
        assert status == 413 and "65536" in body["error"]
        status, _, body = http.call("POST", "/mugpos/rules", raw=b"x" * (70 * 1024), content_type=None, token=write)
        assert status == 415  # urllib's default form content type
        status, _, body = http.call(
            "POST", "/mugpos/rules", raw=SENTENCE.encode(), content_type="text/plain", token=write
        )
        assert status == 415 and "application/json" in body["error"]
        for raw in (b"{not json", b"", b'{"text": NaN}', b"\xff\xfe"):
            status, _, body = http.call("POST", "/mugpos/rules", raw=raw, token=write)
            assert status == 400, (raw, body)
        assert http.call("GET", "/mugpos/rules/not%20an%20id")[0] == 400
        assert http.call("PUT", "/mugpos/rules/coaster", full, token=write)[0] == 405

        # -- delete ------------------------------------------------------------------------------
        status, _, body = http.call("DELETE", "/mugpos/rules/crowd", token=write)
        assert status == 204 and body == b""
        status, _, body = http.call("GET", "/mugpos/rules/crowd")
        assert status == 404 and "crowd" in body["error"]
        assert http.call("DELETE", "/mugpos/rules/crowd", token=write)[0] == 404
        http.wait_for(lambda body: rule_ids(body) == {"coaster"}, "the deletion")
        assert proc.poll() is None

    log = log_path.read_text(errors="replace")
    assert "rules API: stored rule coaster" in log and "rules API: deleted rule crowd" in log
    assert write not in log and read not in log
    assert "Traceback" not in log, log[-4000:]


def test_without_a_token_changes_are_refused_and_other_roles_list_the_topic(settings: Settings, tmp_path: Path) -> None:
    settings = settings.model_copy(update={"session_timeout_s": 4.0})
    assert settings.api_token is None and settings.api_read_token is None
    asyncio.run(ensure_topics(settings))
    rule = rule_from_obj(
        {"rule_id": "edge", "condition": {"kind": "compare", "field": "mug.edge_distance_cm", "op": "<", "value": 5}}
    )
    asyncio.run(RuleStore(settings).put(rule))
    port = free_port()
    http = Http(port)
    with running_worker(settings, tmp_path / "worker.log", role="control", MUGPOS_WEB_PORT=str(port)):
        http.wait_up()
        status, _, body = http.call("POST", "/mugpos/rules", {"text": SENTENCE}, token="anything")
        assert status == 403 and "MUGPOS_API_TOKEN is not configured" in body["error"]
        assert http.call("DELETE", "/mugpos/rules/edge", token="anything")[0] == 403
        status, _, body = http.call("POST", "/mugpos/rules/test", {"text": SENTENCE, "event": {}}, token="x")
        assert status == 403 and "MUGPOS_API_READ_TOKEN" in body["error"]
        status, _, listing = http.call("GET", "/mugpos/rules")  # no rules agent here: read from the topic
        assert status == 200 and rule_ids(listing) == {"edge"}
        status, _, got = http.call("GET", "/mugpos/rules/edge")
        assert status == 200 and got["condition"]["field"] == "mug.edge_distance_cm"
