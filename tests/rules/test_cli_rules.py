"""`mugpos rules` as a user runs it (subprocess, real broker): add, list, rm, test, explain, and the mistakes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mugpos.core.settings import Settings

pytestmark = pytest.mark.integration

MUGPOS = [sys.executable, "-m", "mugpos.cli"]
ROOT = Path(__file__).resolve().parents[2]


def cli_env(settings: Settings, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MUGPOS_", "AWS_"))}
    env.update(
        MUGPOS_BROKER=settings.broker,
        MUGPOS_TOPIC_PREFIX=settings.topic_prefix,
        MUGPOS_PARTITIONS=str(settings.partitions),
        MUGPOS_IMAGES_PARTITIONS=str(settings.images_partitions),
        COLUMNS="200",
    )
    env.update(extra)
    return env


def rules_cli(settings: Settings, *args: str, stdin: str | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*MUGPOS, "rules", *args],
        env=cli_env(settings, **env),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        cwd="/",
    )


def listed(settings: Settings) -> dict[str, dict[str, object]]:
    result = rules_cli(settings, "list", "--json")
    assert result.returncode == 0, result.stderr
    return {r["rule_id"]: r for r in map(json.loads, result.stdout.splitlines())}


def test_add_list_rm_round_trip(settings: Settings, tmp_path: Path) -> None:
    added = rules_cli(settings, "add", "notify me when more than 3 mugs are on the table in camera kitchen-1")
    assert added.returncode == 0, added.stderr
    rule = json.loads(added.stdout)
    assert rule["condition"] == {"kind": "compare", "field": "image.mug_count", "op": ">", "value": 3}
    assert rule["sources"] == ["kitchen-1"] and rule["severity"] == "info"
    assert f"added rule {rule['rule_id']}" in added.stderr

    (tmp_path / "rule.json").write_text(json.dumps({**rule, "rule_id": "from-file", "cooldown_s": 5}))
    from_file = rules_cli(settings, "add", "--file", str(tmp_path / "rule.json"))
    assert from_file.returncode == 0, from_file.stderr
    piped = rules_cli(settings, "add", "--file", "-", stdin=json.dumps({**rule, "rule_id": "piped"}))
    assert piped.returncode == 0, piped.stderr

    current = listed(settings)
    assert set(current) == {rule["rule_id"], "from-file", "piped"}
    assert current["from-file"]["cooldown_s"] == 5
    table = rules_cli(settings, "list")
    assert "from-file" in table.stdout and "image.mug_count > 3" in table.stdout

    removed = rules_cli(settings, "rm", "from-file")
    assert removed.returncode == 0, removed.stderr
    assert set(listed(settings)) == {rule["rule_id"], "piped"}
    unknown = rules_cli(settings, "rm", "no-such-rule")
    assert unknown.returncode == 1 and "no rule 'no-such-rule'" in unknown.stderr


def test_a_sentence_it_cannot_read_points_at_the_word_and_stores_nothing(settings: Settings) -> None:
    result = rules_cli(settings, "add", "alert when a mug is not on a coastr")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert lines[0] == "error: cannot read the rule at character 30: unexpected word 'coastr'"
    assert lines[1] == "  alert when a mug is not on a coastr"
    assert lines[2] == "  " + " " * 29 + "^^^^^^"
    assert "did you mean 'coaster'?" in result.stderr
    assert "alert when a mug is not on a coaster" in result.stderr  # the accepted forms
    assert listed(settings) == {}


@pytest.mark.parametrize(
    ("args", "stdin", "words"),
    [
        (["add", ""], None, "empty"),
        (["add", "alert when a mug is on a coaster " * 20], None, "at most 500"),
        (["add", "--file", "-"], "{not json", "malformed JSON"),
        (
            ["add", "--file", "-"],
            '{"condition": {"kind": "compare", "field": "mug.on_coaster", "op": "==", "value": true}, "colour": 1}',
            "unknown field(s) 'colour'",
        ),
        (
            ["add", "--file", "-"],
            '{"condition": {"kind": "compare", "field": "mug.quality", "op": "<", "value": "low"}}',
            "is a number",
        ),
        (
            ["add", "--file", "-"],
            '{"condition": {"kind": "compare", "field": "mug.on_coaster", "op": ">", "value": true}}',
            "does not fit boolean",
        ),
        (
            ["add", "alert when a mug is on a coaster", "--action", "webhook", "--target", "https://evil.example/x"],
            None,
            "not in the allowlist",
        ),
        (
            ["add", "alert when a mug is on a coaster", "--action", "publish", "--target", "PREFIX.actions"],
            None,
            "would loop",
        ),
        (["add", "alert when a mug is on a coaster", "--severity", "loud"], None, "--severity"),
        (["add", "alert when a mug is on a coaster", "--file", "x.json"], None, "either a sentence"),
        (["add"], None, "either a sentence"),
        (["add", "--file", "/nonexistent/rule.json"], None, "cannot read"),
    ],
)
def test_bad_rules_are_refused_and_never_stored(
    settings: Settings, args: list[str], stdin: str | None, words: str
) -> None:
    args = [a.replace("PREFIX.", settings.topic_prefix) for a in args]
    result = rules_cli(settings, *args, stdin=stdin, MUGPOS_WEBHOOK_ALLOWLIST="hooks.example.com")
    assert result.returncode == 2, result.stdout
    assert words in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    assert listed(settings) == {}


def test_webhook_rule_inside_the_allowlist_is_stored(settings: Settings) -> None:
    result = rules_cli(
        settings,
        "add",
        "critical if a mug is over the edge",
        "--action",
        "webhook",
        "--target",
        "https://hooks.example.com/mugs",
        "--id",
        "hook",
        MUGPOS_WEBHOOK_ALLOWLIST="hooks.example.com",
        MUGPOS_WEBHOOK_SECRET="s",
    )
    assert result.returncode == 0, result.stderr
    assert listed(settings)["hook"]["action"] == {"type": "webhook", "target": "https://hooks.example.com/mugs"}


def test_dry_run_stores_nothing(settings: Settings) -> None:
    result = rules_cli(settings, "add", "--dry-run", "alert when a mug is not on a coaster")
    assert result.returncode == 0 and json.loads(result.stdout)["condition"]["field"] == "mug.on_coaster"
    assert listed(settings) == {}


def test_rules_test_prints_whether_it_fires_and_the_evidence(settings: Settings, tmp_path: Path) -> None:
    events = tmp_path / "positions.jsonl"
    events.write_text(
        "\n".join(
            json.dumps(e)
            for e in [
                {
                    "image_id": "bad",
                    "source": "k",
                    "mugs": [{"index": 0, "on_coaster": True}, {"index": 2, "on_coaster": False}],
                },
                {"image_id": "good", "source": "k", "mugs": [{"index": 0, "on_coaster": True}]},
                {"image_id": "unknown", "source": "k", "mugs": [{"index": 0, "on_coaster": None}]},
                {"image_id": "broken", "source": "k", "mugs": [{"index": 0}]},
            ]
        )
    )
    result = rules_cli(settings, "test", "alert when a mug is not on a coaster", "--event", str(events))
    assert result.returncode == 0, result.stderr
    out = {r["image_id"]: r for r in map(json.loads, result.stdout.splitlines())}
    assert out["bad"]["fires"] is True and out["bad"]["mug_index"] == 2
    assert out["bad"]["evidence"] == {"mug.index": "2", "mugs.matching": "2", "mug.on_coaster": "false"}
    assert "mug 2 in k" in out["bad"]["message"]
    assert out["good"]["fires"] is False and out["unknown"]["fires"] is False
    assert out["broken"]["skipped"] == {"reason": "missing_field", "field": "mug.on_coaster"}
    assert "fires on 1 of 4 event(s)" in result.stderr

    single = tmp_path / "one.json"
    single.write_text(json.dumps({"image_id": "x", "source": "k", "mug_count": 5, "mugs": []}, indent=2))
    result = rules_cli(settings, "test", "notify me when more than 3 mugs are on the table", "-e", str(single))
    assert json.loads(result.stdout)["fires"] is True

    for content, words in [("", "no events"), ("[1]", "not a JSON object"), ("{oops", "not JSON")]:
        single.write_text(content)
        result = rules_cli(settings, "test", "alert when there are no mugs", "-e", str(single))
        assert result.returncode == 2 and words in result.stderr


@pytest.mark.parametrize("args", [["add", "alert when a mug is not on a coaster"], ["list"], ["rm", "x"]])
def test_unreachable_broker_is_one_line_and_exit_2(settings: Settings, args: list[str]) -> None:
    result = rules_cli(settings.model_copy(update={"broker": "kafka://127.0.0.1:9"}), *args)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith("error: cannot reach the Kafka broker at kafka://127.0.0.1:9")
    assert "Traceback" not in result.stderr


def explain_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """``rules explain`` with every service address pointing nowhere: it must not need any of them."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MUGPOS_", "AWS_"))}
    env.update(MUGPOS_BROKER="kafka://127.0.0.1:9", MUGPOS_REDIS_URL="redis://127.0.0.1:9/0", COLUMNS="200")
    return subprocess.run(
        [*MUGPOS, "rules", "explain", *args], env=env, capture_output=True, text=True, timeout=60, cwd="/"
    )


def test_explain_says_the_rule_back_and_prints_its_json_without_any_service() -> None:
    result = explain_cli("warn if the mug count exceeds 4")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "understood: alert when there are more than 4 mugs"
    assert lines[1] == "condition:  image.mug_count > 4"
    rule = json.loads("\n".join(lines[2:]))
    assert rule["condition"] == {"kind": "compare", "field": "image.mug_count", "op": ">", "value": 4}
    assert (rule["severity"], rule["sources"], rule["cooldown_s"]) == ("warning", [], 60)
    assert rule["text"] == "warn if the mug count exceeds 4" and "updated_at" not in rule

    as_json = explain_cli("--json", "critical when two mugs are closer than 1.5 cm in camera k")
    assert as_json.returncode == 0, as_json.stderr
    out = json.loads(as_json.stdout)
    assert out["sentence"] == "critical when a mug is less than 1.5 cm from another mug in camera k"
    assert out["condition"] == "mug.nearest_mug_cm < 1.5"
    assert out["rule"]["sources"] == ["k"] and out["rule"]["severity"] == "critical"
    again = json.loads(explain_cli("--json", out["sentence"]).stdout)  # the canonical sentence means the same
    assert again["rule"]["condition"] == out["rule"]["condition"] and again["sentence"] == out["sentence"]


@pytest.mark.parametrize(
    ("sentence", "column", "word"),
    [
        ("alert when a mug is near the edge", 21, "near"),
        ("alert when every mug is on a coaster", 12, "every"),
        ("alert when the mug count drops below 4", 26, "drops"),
    ],
)
def test_explain_refuses_what_it_cannot_read_with_the_position(sentence: str, column: int, word: str) -> None:
    result = explain_cli(sentence)
    assert result.returncode == 2
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert lines[0].startswith(f"error: cannot read the rule at character {column}: unexpected word {word!r}")
    assert lines[1] == "  " + sentence
    assert lines[2] == "  " + " " * (column - 1) + "^" * len(word)
    assert "expected:" in result.stderr
