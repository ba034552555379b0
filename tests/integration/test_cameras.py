"""Per-camera configuration against the real broker: the CLI, the HTTP API on a running worker, and a
zone rule that fires only for mugs in its polygon, with changes applied without a restart."""

from __future__ import annotations

import asyncio
import json
import secrets
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from mugpos.core.settings import Settings, settings_env
from mugpos.core.topics import ensure_topics
from tests.integration.test_episodes import captured, produce, read, wait_until
from tests.integration.test_web_rules import Http
from tests.integration.worker import free_port, mugpos_cli, rules_cli, running_worker
from tests.models.test_positioning import TABLE, det, mug_at

pytestmark = [pytest.mark.integration, pytest.mark.slow]

LAPTOP = "600,350 900,350 900,700 600,700"  # the right part of the table
IN_ZONE, OUT_OF_ZONE = mug_at(750, 600), mug_at(300, 600)


def cameras_cli(env: dict[str, str], *args: str, code: int = 0) -> subprocess.CompletedProcess[str]:
    return mugpos_cli(env, "cameras", *args, code=code)


def listed(env: dict[str, str]) -> dict[str, dict[str, Any]]:
    out = cameras_cli(env, "list", "--json").stdout
    return {c["source"]: c for c in map(json.loads, out.splitlines())}


def test_cameras_set_list_merge_and_rm_on_the_topic(settings: Settings) -> None:
    env = settings_env(settings)
    asyncio.run(ensure_topics(settings))
    cameras_cli(env, "set", "cam-a", "--px-per-cm", "12.5", "--zone", f"laptop={LAPTOP}")
    cameras_cli(env, "set", "cam-b", "--table", "0,0 640,0 640,480 0,480")
    cameras_cli(env, "set", "cam-c", "--zone", "x=0,0 1,1", code=2)  # two points: refused, nothing stored
    cameras_cli(env, "set", "cam-d", "--px-per-cm", "5", "--dry-run")
    got = listed(env)
    assert set(got) == {"cam-a", "cam-b"}
    assert got["cam-a"]["px_per_cm"] == 12.5
    assert [z["name"] for z in got["cam-a"]["zones"]] == ["laptop"]
    assert got["cam-b"]["table"] == [[0, 0], [640, 0], [640, 480], [0, 480]]

    cameras_cli(env, "set", "cam-a", "--merge", "--zone", "keyboard=0,0 100,0 100,100")
    merged = listed(env)["cam-a"]
    assert merged["px_per_cm"] == 12.5 and [z["name"] for z in merged["zones"]] == ["laptop", "keyboard"]
    cameras_cli(env, "set", "cam-a", "--zone", "keyboard=0,0 100,0 100,100")  # without --merge: replaced
    assert listed(env)["cam-a"]["px_per_cm"] is None

    cameras_cli(env, "rm", "cam-b")
    cameras_cli(env, "rm", "cam-b", code=1)  # unknown now: partial
    assert set(listed(env)) == {"cam-a"}
    table = cameras_cli(env, "list").stdout
    assert "cam-a" in table and "keyboard (3 points)" in table


def frame(source: str, t_s: int) -> dict[str, Any]:
    return captured(source, t_s, det("mug", IN_ZONE), det("mug", OUT_OF_ZONE), det("surface", TABLE))


def test_a_zone_rule_fires_only_for_mugs_in_the_zone_and_follows_changes(settings: Settings, tmp_path: Path) -> None:
    write, readonly = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    settings = settings.model_copy(
        update={"session_timeout_s": 4.0, "api_token": SecretStr(write), "api_read_token": SecretStr(readonly)}
    )
    env = settings_env(settings)
    asyncio.run(ensure_topics(settings))
    rules_cli(env, "add", "alert when a mug is in zone laptop", "--cooldown", "0", "--id", "in-laptop")
    port = free_port()
    log = tmp_path / "worker.log"
    polygon = [[float(x), float(y)] for x, y in (p.split(",") for p in LAPTOP.split())]
    with running_worker(settings, log, role="analyze", MUGPOS_WEB_PORT=str(port), MUGPOS_LATENESS_S="1"):
        http = Http(port)
        http.wait_up()
        body = {"px_per_cm": 10, "zones": [{"name": "laptop", "polygon": polygon}]}
        assert http.call("PUT", "/mugpos/cameras/cam-a", body)[0] == 401
        assert http.call("PUT", "/mugpos/cameras/cam-a", body, token=readonly)[0] == 403
        status, _, error = http.call("PUT", "/mugpos/cameras/cam-a", {"zones": [{"name": "laptop"}]}, token=write)
        assert status == 422 and error["path"] == "zones[0].polygon", error
        status, head, stored = http.call("PUT", "/mugpos/cameras/cam-a", body, token=write)
        assert status == 201 and head["Location"] == "/mugpos/cameras/cam-a"
        assert stored["zones"] == body["zones"]
        assert http.call("PUT", "/mugpos/cameras/cam-a", body, token=write)[0] == 200  # replaced
        status, _, one = http.call("GET", "/mugpos/cameras/cam-a")
        assert status == 200 and one["px_per_cm"] == 10
        assert [c["source"] for c in http.call("GET", "/mugpos/cameras")[2]["cameras"]] == ["cam-a"]
        assert http.call("GET", "/mugpos/cameras/cam-b")[0] == 404

        # cam-b has no configuration: the same picture, no zone, so the rule is unknown there, never true
        asyncio.run(produce(settings, [frame("cam-a", 0), frame("cam-b", 0)]))

        def positioned(ids: set[str]) -> dict[str, dict[str, Any]]:
            found = {p["image_id"]: p for p in asyncio.run(read(settings, "positions"))}
            return found if ids <= set(found) else {}

        positions = wait_until(lambda: positioned({"cam-a-000", "cam-b-000"}), 120, "positions", log)
        a, b = positions["cam-a-000"], positions["cam-b-000"]
        assert [m["zones"] for m in a["mugs"]] == [["laptop"], []] and a["zones"] == ["laptop"]
        assert a["scale_source"] == "metadata"  # the image's own scale wins over the camera's
        assert [m["zones"] for m in b["mugs"]] == [[], []] and b["zones"] == []

        actions = wait_until(lambda: asyncio.run(read(settings, "actions")), 60, "the zone rule's action", log)
        assert {(x["source"], x["image_id"]) for x in actions} == {("cam-a", "cam-a-000")}
        assert all(x["rule_id"] == "in-laptop" for x in actions)
        evidence = actions[0]["evidence"]  # the mug in the zone (detection 0), not the one beside it
        assert str(evidence["mug.index"]) == "0" and str(evidence["mug.zone.laptop"]).lower() == "true", evidence
        assert "mug 0 in cam-a" in actions[0]["message"], actions[0]["message"]

        # removing the configuration applies to the next frame, without a restart
        assert http.call("DELETE", "/mugpos/cameras/cam-a", token=write)[0] == 204
        assert http.call("DELETE", "/mugpos/cameras/cam-a", token=write)[0] == 404
        time.sleep(2.0)  # the worker's feed polls the cameras topic every 0.2 s
        asyncio.run(produce(settings, [frame("cam-a", 10)]))
        later = wait_until(lambda: positioned({"cam-a-010"}), 60, "the next frame's position", log)["cam-a-010"]
        assert later["zones"] == [] and [m["zones"] for m in later["mugs"]] == [[], []]
