"""Rules over time in plain English: durations, a mug's changes and resolution, said and said back.

The corpus pins each accepted phrasing to one exact (condition, temporal clause); the refusals pin
each vague, ambiguous or meaningless phrasing to an error at the word that makes it so. Every
accepted sentence is said back by ``canonical_sentence`` in words that compile to the same rule.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as fuzz_settings
from hypothesis import strategies as st

from mugpos.core.codec import codec
from mugpos.core.settings import Settings
from mugpos.rules import language
from mugpos.rules.errors import RuleSyntaxError
from mugpos.rules.language import canonical_sentence, compile_sentence, parse_sentence
from mugpos.rules.model import (
    Compare,
    Temporal,
    rule_from_json,
    rule_from_obj,
    rule_to_json,
    rule_to_record,
)
from tests.rules.test_cli_rules import explain_cli
from tests.rules.test_paraphrases import all_, any_, cmp, flat

GRAMMAR = Path(__file__).resolve().parents[2] / "rules" / "GRAMMAR.md"
MUGPOS = [sys.executable, "-m", "mugpos.cli"]

Json = dict[str, Any]


def lasts(for_s: float | None = None, strict: bool = False, frames: int | None = None, resolve: bool = False) -> Json:
    return {"kind": "lasts", "for_s": for_s, "strict": strict, "for_frames": frames, "resolve": resolve}


def moment(kind: str) -> Json:
    return {"kind": kind, "for_s": None, "strict": False, "for_frames": None, "resolve": False}


ON, EDGE_CM, EDGE_PX = "mug.on_coaster", "mug.edge_distance_cm", "mug.edge_distance_px"
NEAR_CM, QUALITY, COLOUR, VERDICT = "mug.nearest_mug_cm", "mug.quality", "mug.attributes.colour", "image.verdict"
MUGS, COASTERS = "image.mug_count", "image.coaster_count"

OFF, ONC = cmp(ON, "==", False), cmp(ON, "==", True)
EDGE2, EDGE5 = cmp(EDGE_CM, "<=", 2), cmp(EDGE_CM, "<=", 5)
OVER = cmp(EDGE_PX, "<", 0)
TRACKED = cmp("mug.track_id", ">=", 0)
VIOLATION = cmp(VERDICT, "==", "violation")
BECOMES, APPEARS, DISAPPEARS = moment("becomes"), moment("appears"), moment("disappears")
RESOLVED = lasts(resolve=True)

# (sentence, the condition it compiles to, its temporal clause)
CORPUS: list[tuple[str, Json, Json]] = [
    # -- durations: longer than ---------------------------------------------------------------------
    ("alert when a mug has been off its coaster for more than 30 seconds", OFF, lasts(30, strict=True)),
    ("alert when a mug is off its coaster for more than 30 seconds", OFF, lasts(30, strict=True)),
    ("alert when a mug is off its coaster for longer than 30 seconds", OFF, lasts(30, strict=True)),
    ("alert when a mug is off its coaster for over 30 seconds", OFF, lasts(30, strict=True)),
    ("alert when a mug is not on a coaster for more than thirty seconds", OFF, lasts(30, strict=True)),
    ("alert when a mug has not been on a coaster for more than 30 s", OFF, lasts(30, strict=True)),
    ("alert when a mug hasn't been on its coaster for more than 30 secs", OFF, lasts(30, strict=True)),
    ("alert when a mug is without a coaster for > 30 s", OFF, lasts(30, strict=True)),
    ("alert when a mug is off its coaster for more than 0.5 minutes", OFF, lasts(30, strict=True)),
    ("alert when a mug stays off its coaster for longer than 30 sec", OFF, lasts(30, strict=True)),
    ("alert when a mug is off its coaster for over 1 hour", OFF, lasts(3600, strict=True)),
    ("alert when a mug is off its coaster for more than an hour", OFF, lasts(3600, strict=True)),
    ("alert when a mug is off its coaster for more than a minute", OFF, lasts(60, strict=True)),
    # -- durations: at least ------------------------------------------------------------------------
    ("alert when a mug is off its coaster for 2 minutes", OFF, lasts(120)),
    ("alert when a mug has been off its coaster for 2 minutes", OFF, lasts(120)),
    ("alert when a mug stays off its coaster for 2 mins", OFF, lasts(120)),
    ("alert when a mug remains off its coaster for at least 2 minutes", OFF, lasts(120)),
    ("alert when a mug is left off its coaster for 120 seconds", OFF, lasts(120)),
    ("alert when a mug has stayed off its coaster for two minutes", OFF, lasts(120)),
    ("alert when a mug has remained off its coaster for 2 min", OFF, lasts(120)),
    ("alert when a mug has been taken off its coaster for 2 minutes", OFF, lasts(120)),
    ("alert when a mug is off its coaster for 120 s or more", OFF, lasts(120)),
    ("alert when a mug is off its coaster for 2 minutes or longer", OFF, lasts(120)),
    ("alert when a mug is off its coaster for no less than 2 minutes", OFF, lasts(120)),
    ("alert when a mug is off its coaster for no shorter than 2 minutes", OFF, lasts(120)),
    ("alert when a mug is off its coaster for ≥ 120 s", OFF, lasts(120)),
    ("alert when a mug is off its coaster for the last 2 minutes", OFF, lasts(120)),
    ("alert when a mug is off its coaster for 1.5 minutes", OFF, lasts(90)),
    ("alert when a mug is off its coaster for 90 s", OFF, lasts(90)),
    ("alert when a mug is off its coaster for ninety seconds", OFF, lasts(90)),
    ("alert when a mug is off its coaster for twenty-five seconds", OFF, lasts(25)),
    ("alert when a mug is off its coaster for twenty five seconds", OFF, lasts(25)),
    ("alert when a mug is off its coaster for an hour", OFF, lasts(3600)),
    ("alert when a mug is off its coaster for 2 h", OFF, lasts(7200)),
    ("alert when a mug is off its coaster for 3 hrs", OFF, lasts(10800)),
    ("alert when a mug is off its coaster for a day", OFF, lasts(86400)),
    ("alert when a mug is off its coaster for 7 days", OFF, lasts(604800)),
    ("alert when a mug is off its coaster for 0.5 seconds", OFF, lasts(0.5)),
    ("alert when a mug is off its coaster for at least 1 minute", OFF, lasts(60)),
    # -- durations in frames: always inclusive --------------------------------------------------------
    ("warn if a mug stays within 2 cm of the edge for 5 frames", EDGE2, lasts(frames=5)),
    ("warn if a mug stays within 2 cm of the edge for at least 5 frames", EDGE2, lasts(frames=5)),
    ("warn if a mug is within 2 cm of the edge for more than 5 frames", EDGE2, lasts(frames=6)),
    ("warn if a mug is within 2 cm of the edge for over 5 frames", EDGE2, lasts(frames=6)),
    ("warn if a mug is within 2 cm of the edge for five frames", EDGE2, lasts(frames=5)),
    ("warn if a mug is within 2 cm of the edge for 5 consecutive frames", EDGE2, lasts(frames=5)),
    ("warn if a mug is within 2 cm of the edge for 5 frames in a row", EDGE2, lasts(frames=5)),
    ("warn if a mug is within 20 mm of the edge for 5 frames or more", EDGE2, lasts(frames=5)),
    ("warn if a mug remains within 2 cm of the table edge for the last 5 frames", EDGE2, lasts(frames=5)),
    ("warn if a mug is within 2 cm of the edge for a frame", EDGE2, lasts(frames=1)),
    ("warn if a mug is within 2 cm of the edge for 1000000 frames", EDGE2, lasts(frames=1_000_000)),
    ("warn if a mug is within 2 cm of the edge for more than ten frames", EDGE2, lasts(frames=11)),
    # -- durations of other conditions ----------------------------------------------------------------
    ("alert when a mug is over the edge for 10 seconds", OVER, lasts(10)),
    ("alert when a mug has quality below 40 for 10 frames", cmp(QUALITY, "<", 40), lasts(frames=10)),
    ("alert when a mug's quality stays below 40 for 10 frames", cmp(QUALITY, "<", 40), lasts(frames=10)),
    ("alert when a mug is closer than 2 cm to another mug for 1 minute", cmp(NEAR_CM, "<", 2), lasts(60)),
    ("alert when a red mug is off its coaster for 5 minutes", all_(cmp(COLOUR, "==", "red"), OFF), lasts(300)),
    (
        "alert when a mug that is red stays off its coaster for 5 minutes",
        all_(cmp(COLOUR, "==", "red"), OFF),
        lasts(300),
    ),
    ("alert when a mug is off its coaster and within 5 cm of the edge for 30 seconds", all_(OFF, EDGE5), lasts(30)),
    ("alert when a mug is off its coaster and it stays within 5 cm of the edge for 30 s", all_(OFF, EDGE5), lasts(30)),
    ("alert when the verdict has been violation for 10 minutes", VIOLATION, lasts(600)),
    ("alert when the verdict stays violation for 10 minutes", VIOLATION, lasts(600)),
    ("alert when the verdict is not ok for 10 minutes", cmp(VERDICT, "!=", "ok"), lasts(600)),
    (
        "alert when the verdict remains warning or violation for 10 frames",
        cmp(VERDICT, "in", ["warning", "violation"]),
        lasts(frames=10),
    ),
    ("alert when the mug count stays above 4 for 2 minutes", cmp(MUGS, ">", 4), lasts(120)),
    ("alert when the mug count has been above 4 for 2 minutes", cmp(MUGS, ">", 4), lasts(120)),
    ("alert when more than 4 mugs have been on the table for 2 minutes", cmp(MUGS, ">", 4), lasts(120)),
    ("alert when there are more than 4 mugs for 2 minutes", cmp(MUGS, ">", 4), lasts(120)),
    ("alert when there have been no coasters for 5 minutes", cmp(COASTERS, "==", 0), lasts(300)),
    ("alert when there are no coasters for five minutes", cmp(COASTERS, "==", 0), lasts(300)),
    ("alert when there haven't been any coasters for 5 minutes", cmp(COASTERS, "==", 0), lasts(300)),
    ("if a mug stays off its coaster for 5 minutes, page me", OFF, lasts(300)),
    ("critical when a mug is off its coaster for 5 minutes in camera k", OFF, lasts(300)),
    ("alert when a mug is off its coaster in camera k for 5 minutes", OFF, lasts(300)),
    ("alert when a mug is off its coaster for 5 minutes at most once per hour", OFF, lasts(300)),
    # -- a mug's changes ------------------------------------------------------------------------------
    ("alert when a mug is put on a coaster", ONC, BECOMES),
    ("tell me when a mug is put back on its coaster", ONC, BECOMES),
    ("notify me when a mug is put back on a coaster", ONC, BECOMES),
    ("alert when a mug is put on the coaster", ONC, BECOMES),
    ("alert when a mug is taken off its coaster", OFF, BECOMES),
    ("alert when a mug is taken off of its coaster", OFF, BECOMES),
    ("alert when a mug is removed from its coaster", OFF, BECOMES),
    ("alert when a mug is removed from the coaster", OFF, BECOMES),
    ("alert when a mug is lifted off its coaster", OFF, BECOMES),
    ("alert when a mug is no longer on its coaster", OFF, BECOMES),
    ("alert when a mug is no longer on a coaster", OFF, BECOMES),
    ("alert when a red mug is put on a coaster", all_(cmp(COLOUR, "==", "red"), ONC), BECOMES),
    ("alert when a mug that is blue is taken off its coaster", all_(cmp(COLOUR, "==", "blue"), OFF), BECOMES),
    ("alert when a mug is put within 5 cm of the edge", EDGE5, BECOMES),
    ("alert when a mug becomes within 2 cm of the edge", EDGE2, BECOMES),
    ("alert when a mug becomes over the edge", OVER, BECOMES),
    ("alert when a mug is put over the edge", OVER, BECOMES),
    ("alert when a mug is no longer within 5 cm of the edge", cmp(EDGE_CM, ">", 5), BECOMES),
    ("alert when a mug is put on a coaster in camera k at most once per hour", ONC, BECOMES),
    ("raise an alert when a mug is put on a coaster", ONC, BECOMES),
    ("if a mug is taken off its coaster, page me", OFF, BECOMES),
    # -- mugs seen for the first time / no longer seen ------------------------------------------------
    ("alert when a mug appears", TRACKED, APPEARS),
    ("alert when a cup appears", TRACKED, APPEARS),
    ("alert when a mug appears in view", TRACKED, APPEARS),
    ("alert when a mug appears in the picture", TRACKED, APPEARS),
    ("info when a red mug appears", cmp(COLOUR, "==", "red"), APPEARS),
    ("alert when a mug that is not on a coaster appears", OFF, APPEARS),
    ("alert when a mug without a coaster appears", OFF, APPEARS),
    ("tell me when a mug disappears", TRACKED, DISAPPEARS),
    ("alert when a mug vanishes", TRACKED, DISAPPEARS),
    ("alert when a mug disappears from view", TRACKED, DISAPPEARS),
    ("alert when a mug is no longer seen", TRACKED, DISAPPEARS),
    ("alert when a mug is no longer visible", TRACKED, DISAPPEARS),
    ("alert when a mug is no longer in view", TRACKED, DISAPPEARS),
    ("alert when a mug is no longer detected in camera k", TRACKED, DISAPPEARS),
    ("log when a green mug disappears", cmp(COLOUR, "==", "green"), DISAPPEARS),
    ("alert when a mug whose quality is below 40 disappears", cmp(QUALITY, "<", 40), DISAPPEARS),
    # -- resolution -----------------------------------------------------------------------------------
    ("warn when a mug is off its coaster and tell me when it is resolved", OFF, RESOLVED),
    ("warn when a mug is off its coaster and when it clears", OFF, RESOLVED),
    ("warn when a mug is off its coaster and notify me when it ends", OFF, RESOLVED),
    ("warn when a mug is off its coaster until resolved", OFF, RESOLVED),
    ("warn when a mug is off its coaster until it clears", OFF, RESOLVED),
    ("warn when a mug is off its coaster until it's fixed", OFF, RESOLVED),
    ("warn when a mug is off its coaster, and let me know when it is over", OFF, RESOLVED),
    ("warn when a mug is off its coaster and also tell me when it is resolved", OFF, RESOLVED),
    ("warn when a mug is off its coaster and tell me again once it has cleared", OFF, RESOLVED),
    ("warn when a mug is off its coaster and notify us as soon as it is fixed", OFF, RESOLVED),
    ("warn when a mug is off its coaster and alert me when it has been resolved", OFF, RESOLVED),
    ("warn when a mug is off its coaster and inform me if it gets resolved", OFF, RESOLVED),
    (
        "alert when a mug has been off its coaster for more than 30 seconds and tell me when it is resolved",
        OFF,
        lasts(30, strict=True, resolve=True),
    ),
    (
        "warn if a mug stays within 2 cm of the edge for 5 frames, and tell me when it ends",
        EDGE2,
        lasts(frames=5, resolve=True),
    ),
    (
        "alert when a mug is off its coaster for 30 seconds in camera k, and tell me when it is resolved",
        OFF,
        lasts(30, resolve=True),
    ),
    ("alert when a mug is off its coaster in cameras a and b and tell me when it stops", OFF, RESOLVED),
    ("alert when the verdict is violation until resolved", VIOLATION, RESOLVED),
    (
        "alert when a mug is off its coaster or over the edge, and tell me when it is resolved",
        any_(OFF, OVER),
        RESOLVED,
    ),
    (
        "critical when the verdict has been violation for over 1 hour until resolved",
        VIOLATION,
        lasts(3600, strict=True, resolve=True),
    ),
    ("alert when a mug is off its coaster at most once per hour, and tell me when it ends", OFF, RESOLVED),
]


def test_the_corpus_is_large_and_has_no_duplicates() -> None:
    sentences = [row[0] for row in CORPUS]
    assert len(sentences) >= 80
    assert len(set(sentences)) == len(sentences)
    kinds = {row[2]["kind"] for row in CORPUS}
    assert kinds == {"lasts", "becomes", "appears", "disappears"}
    assert len(REFUSALS) >= 25
    assert len({row[0] for row in REFUSALS}) == len(REFUSALS)


@pytest.mark.parametrize(("sentence", "condition", "temporal"), CORPUS, ids=[c[0] for c in CORPUS])
def test_sentence_compiles_to_its_condition_and_temporal_clause(sentence: str, condition: Json, temporal: Json) -> None:
    rule = compile_sentence(sentence)
    record = rule_to_json(rule)
    assert record["condition"] == condition
    assert record["temporal"] == temporal
    assert rule.stateful
    # a rule over time survives the JSON and Avro forms unchanged too
    assert rule_from_json(json.dumps(record)) == rule
    codec.encode("RuleDefinition", rule_to_record(rule))


@pytest.mark.parametrize("sentence", [c[0] for c in CORPUS])
def test_the_canonical_sentence_says_the_same_rule_over_time(sentence: str) -> None:
    rule = compile_sentence(sentence)
    canonical = canonical_sentence(rule)
    assert canonical is not None
    again = compile_sentence(canonical)
    assert flat(again.condition) == flat(rule.condition)
    assert again.temporal == rule.temporal
    assert (again.severity, again.action, again.sources, again.cooldown_s) == (
        rule.severity,
        rule.action,
        rule.sources,
        rule.cooldown_s,
    )
    assert canonical_sentence(again) == canonical  # one fixed phrasing per meaning


@pytest.mark.parametrize(
    ("sentence", "canonical"),
    [
        (
            "warn when a mug has been off its coaster for more than 30 seconds and tell me when it is resolved",
            "alert when a mug is not on a coaster for more than 30 seconds, and tell me when it is resolved",
        ),
        (
            "warn if a mug stays within 2 cm of the edge for more than 5 frames",
            "alert when a mug is within 2 cm of the table edge for at least 6 frames",
        ),
        (
            "alert when a mug is off its coaster for 1.5 minutes",
            "alert when a mug is not on a coaster for at least 90 seconds",
        ),
        ("alert when a mug is off its coaster for 2 h", "alert when a mug is not on a coaster for at least 2 hours"),
        ("alert when a mug is off its coaster for an hour", "alert when a mug is not on a coaster for at least 1 hour"),
        (
            "alert when a mug is off its coaster for 0.5 s",
            "alert when a mug is not on a coaster for at least 0.5 seconds",
        ),
        ("tell me when a mug is put back on its coaster", "notify me when a mug is put on a coaster"),
        ("alert when a mug is removed from its coaster", "alert when a mug is taken off its coaster"),
        (
            "alert when a mug is no longer within 5 cm of the edge",
            "alert when a mug becomes more than 5 cm from the table edge",
        ),
        ("info when a red mug appears", "notify me when a red mug appears"),
        ("alert when a mug without a coaster appears", "alert when a mug that is not on a coaster appears"),
        ("alert when a mug is no longer seen in camera k", "alert when a mug disappears in camera k"),
        (
            "critical if a mug stays off its coaster for 5 minutes in camera k at most once per hour until resolved",
            "critical when a mug is not on a coaster for at least 5 minutes in camera k at most once per hour,"
            " and tell me when it is resolved",
        ),
    ],
)
def test_canonical_phrasings_of_rules_over_time(sentence: str, canonical: str) -> None:
    assert canonical_sentence(compile_sentence(sentence)) == canonical


@pytest.mark.parametrize(
    ("sentence", "canonical"),
    [
        ("alert when a mug is not on a coaster", "alert when a mug is not on a coaster"),
        ("warn if the mug count exceeds 4", "alert when there are more than 4 mugs"),
        (
            "log when the verdict is violation in cameras hall, desk-2 at most once per 10 minutes",
            "log when the verdict is violation in cameras hall, desk-2 at most once per 10 minutes",
        ),
    ],
)
def test_rules_about_single_images_read_and_say_back_as_before(sentence: str, canonical: str) -> None:
    rule = compile_sentence(sentence)
    assert rule.temporal is None and not rule.stateful
    assert "temporal" not in rule_to_json(rule)
    assert parse_sentence(sentence).temporal is None
    assert canonical_sentence(rule) == canonical


def test_the_id_of_a_rule_about_single_images_does_not_move() -> None:
    # fixed before rules over time existed: ids derive from content, and old rules keep theirs
    assert compile_sentence("alert when a mug is not on a coaster").rule_id == "rule-d3090c0ec4"
    timed = compile_sentence("alert when a mug is not on a coaster for 30 seconds")
    assert timed.rule_id != compile_sentence("alert when a mug is not on a coaster").rule_id
    assert timed.rule_id == compile_sentence("warn if a mug stays off its coaster for 30 s").rule_id


@pytest.mark.parametrize(
    ("sentence", "severity", "sources", "cooldown"),
    [
        ("if a mug stays off its coaster for 5 minutes, page me", "critical", (), 60),
        ("info when a red mug appears", "info", (), 60),
        ('log when a mug disappears in camera "front door"', "info", ("front door",), 60),
        ("critical when a mug is taken off its coaster with a cooldown of 0 seconds", "critical", (), 0),
        ("alert when a mug is off its coaster in cameras a and b and tell me when it stops", "warning", ("a", "b"), 60),
        ("alert when a mug is off its coaster in camera k, and tell me when it ends", "warning", ("k",), 60),
        ("alert when a mug is off its coaster in cameras a, b, and tell me when it ends", "warning", ("a", "b"), 60),
        ("alert when a mug is off its coaster for 30 s at most once every 10 minutes", "warning", (), 600),
        ("alert when a mug is off its coaster for camera k", "warning", ("k",), 60),
    ],
)
def test_leads_scopes_and_cooldowns_around_rules_over_time(
    sentence: str, severity: str, sources: tuple[str, ...], cooldown: int
) -> None:
    rule = compile_sentence(sentence)
    assert (rule.severity, rule.sources, rule.cooldown_s) == (severity, sources, cooldown)


def test_for_camera_is_a_scope_not_a_duration() -> None:
    assert compile_sentence("alert when a mug is off its coaster for camera k").temporal is None


# -- refusals --------------------------------------------------------------------------------------

# (sentence, the word the error points at ("": the end), words of the reason)
REFUSALS: list[tuple[str, str, str]] = [
    # vague time
    ("alert when a mug is off its coaster for a while", "while", "names no time"),
    ("alert when a mug is off its coaster for some time", "some", "a duration is a number and a unit"),
    ("alert when a mug is off its coaster for long", "long", "names no time"),
    ("alert when a mug is off its coaster for a long time", "long", "names no time"),
    ("alert when a mug is off its coaster for too long", "too", "a duration is a number and a unit"),
    ("alert when a mug is off its coaster for hours", "hours", "a duration is a number and a unit"),
    ("alert when a mug is off its coaster for several minutes", "several", "names no amount"),
    ("alert when a mug is off its coaster for a few seconds", "few", "names no amount"),
    ("alert when a mug is off its coaster for a bit", "bit", "names no time"),
    ("alert when a mug is off its coaster for a moment", "moment", "names no time"),
    ("alert when a mug was recently off its coaster", "was", "speaks of the present"),
    ("alert when a mug is recently off its coaster", "recently", "names no time"),
    ("alert when a mug is off its coaster recently", "recently", "names no time"),
    ("alert when a mug is sometimes off its coaster", "sometimes", "names no time"),
    ("alert sometimes when a mug is off its coaster", "sometimes", "names no time"),
    ("alert when a mug is often over the edge", "often", "names no time"),
    ("alert when a mug is off its coaster after 5 minutes", "after", "with 'for'"),
    # a change neither lasts nor ends
    ("alert when a mug is put on a coaster for 5 seconds", "for", "does not last"),
    ("alert when a mug appears for 5 seconds", "for", "does not last"),
    ("alert when a mug is taken off its coaster for more than 30 seconds", "for", "does not last"),
    ("alert when a mug is put on a coaster and tell me when it is resolved", "and", "no end to report"),
    ("alert when a mug disappears until resolved", "until", "no end to report"),
    # amounts of time it cannot wait for
    ("alert when a mug is off its coaster for 0 seconds", "0", "more than 0"),
    ("alert when a mug is off its coaster for zero frames", "zero", "more than 0"),
    ("alert when a mug is off its coaster for -5 seconds", "-5", "unexpected character"),
    ("alert when a mug is off its coaster for 2.5 frames", "2.5", "not a whole number"),
    ("alert when a mug is off its coaster for 8 days", "8", "too long"),
    ("alert when a mug is off its coaster for 1000001 frames", "1000001", "too long"),
    ("alert when a mug is off its coaster for less than 30 seconds", "less", "a duration is a lower bound"),
    ("alert when a mug is off its coaster for at most 5 frames", "at", "a duration is a lower bound"),
    ("alert when a mug is off its coaster for up to a minute", "up", "a duration is a lower bound"),
    ("alert when a mug is off its coaster for 30 seconds or less", "or", "a duration is a lower bound"),
    ("alert when a mug is off its coaster for more than 30 seconds or more", "or", "given twice"),
    ("alert when a mug is off its coaster for 30 seconds for 5 frames", "for", "given twice"),
    ("alert when a mug is off its coaster for 5", "", "ends too early"),
    ("alert when a mug is off its coaster for 5 cm", "cm", '"seconds"'),
    # where a duration would be ambiguous
    ("alert when a mug is off its coaster at most once per hour for 5 minutes", "for", "part of it"),
    ("if a mug is off its coaster, page me for 5 minutes", "for", "how long the alert lasts"),
    ("alert when a mug is off its coaster or over the edge for 5 minutes", "for", "ambiguous"),
    # a lasting verb says how long
    ("alert when a mug stays off its coaster", "stays", "'stays' says that a state lasts"),
    ("alert when a mug has been off its coaster", "has", "'has been' says that a state lasts"),
    ("alert when the verdict has been violation", "has", "say how long"),
    # a change is said of one mug on its own
    ("alert when a mug is put on a coaster and the verdict is ok", "and", "on its own"),
    ("alert when the verdict is ok and a mug is put on a coaster", "put", "on its own"),
    ("alert when a mug appears or a mug disappears", "or", "on its own"),
    ("alert when a mug is red and it appears", "appears", "on its own"),
    ("alert when a mug appears and it is put on a coaster", "and", "on its own"),
    ("alert when a mug without a coaster becomes within 5 cm of the edge", "becomes", "one state of a mug"),
    ("alert when a mug is not put on a coaster", "put", "cannot be negated"),
    ("alert when a mug isn't taken off its coaster", "taken", "cannot be negated"),
    ("alert when a mug is put red", "red", '"on a coaster"'),
    # changes the grammar does not name
    ("alert when a mug gets closer than 2 cm to the edge", "gets", "describes a change"),
    ("alert when the verdict becomes violation", "becomes", "describes a change"),
    ("alert when a mug appears on a coaster", "on", "the end of the sentence"),
    # resolution phrases it cannot read, or given twice
    ("alert when a mug is off its coaster and tell me when it is gone", "gone", '"resolved"'),
    (
        "alert when a mug is off its coaster for 30 seconds and tell me when it is resolved and when it clears",
        "and",
        "given twice",
    ),
]


@pytest.mark.parametrize(("sentence", "word", "reason"), REFUSALS, ids=[r[0] for r in REFUSALS])
def test_refusal_points_at_the_word_and_says_why(sentence: str, word: str, reason: str) -> None:
    with pytest.raises(RuleSyntaxError) as info:
        compile_sentence(sentence)
    error = info.value
    if word:
        assert error.position == sentence.rindex(" " + word) + 1, (error.position, str(error))
        if not error.detail.startswith("unexpected character"):
            assert error.expected, str(error)
    else:
        assert error.position == len(sentence), str(error)
    message = str(error)
    assert reason in message
    caret = next(line for line in message.splitlines() if set(line.strip()) == {"^"})
    assert caret.index("^") - 2 == error.position
    assert "accepted forms" in message


# -- what only JSON can say ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "temporal",
    [
        {"kind": "lasts", "for_s": 30, "for_frames": 5},  # seconds and frames together
        {"kind": "lasts", "for_s": 0},  # "from the first frame", said by no duration
        {"kind": "lasts", "strict": True},  # strict without seconds
        {"kind": "lasts", "for_frames": 5, "strict": True},  # frames are inclusive
        {"kind": "lasts"},  # a stateful rule without duration or resolution
    ],
)
def test_temporal_clauses_no_sentence_says_have_no_canonical_sentence(temporal: Json) -> None:
    rule = rule_from_obj({"condition": OFF, "temporal": temporal})
    assert canonical_sentence(rule) is None


@pytest.mark.parametrize(
    ("condition", "temporal"),
    [
        (any_(OFF, OVER), {"kind": "lasts", "for_s": 30}),  # the grammar refuses a duration after "or"
        (all_(OFF, EDGE5), {"kind": "becomes"}),  # a change of one state only
        (all_(OFF, EDGE5), {"kind": "appears"}),  # a filter of one state only
        (cmp(QUALITY, "<", 40), {"kind": "becomes"}),  # "becomes has quality below 40" is no English
        (cmp("mug.track_id", ">=", 5), {"kind": "appears"}),  # only "any tracked mug" has words
    ],
)
def test_conditions_no_sentence_says_over_time_have_no_canonical_sentence(condition: Json, temporal: Json) -> None:
    assert canonical_sentence(rule_from_obj({"condition": condition, "temporal": temporal})) is None


def test_parsed_sentence_carries_the_temporal_clause() -> None:
    parsed = parse_sentence("warn if a mug stays within 2 cm of the edge for more than 5 frames until resolved")
    assert parsed.temporal == Temporal("lasts", None, False, 6, True)
    assert parsed.condition == Compare(EDGE_CM, "<=", 2)


# -- the docs ----------------------------------------------------------------------------------------


def _over_time_examples() -> list[str]:
    text = GRAMMAR.read_text(encoding="utf-8")
    block = re.search(r"### Rules over time\s+.*?```text\n(.*?)```", text, re.S)
    assert block is not None
    return [line for line in block.group(1).splitlines() if line.strip()]


def test_every_documented_rule_over_time_compiles_to_a_rule_over_time() -> None:
    examples = _over_time_examples()
    assert len(examples) >= 6
    kinds = set()
    for example in examples:
        rule = compile_sentence(example)
        assert rule.temporal is not None, example
        kinds.add(rule.temporal.kind)
        again = compile_sentence(canonical_sentence(rule) or "")
        assert again.temporal == rule.temporal
    assert kinds == {"lasts", "becomes", "appears", "disappears"}


def test_every_word_of_rules_over_time_is_in_the_grammar_doc() -> None:
    text = GRAMMAR.read_text(encoding="utf-8")
    vocabulary = [
        *language.FRAME_UNITS, *language.SINGULAR_UNITS, *language.LASTING_VERBS, *language.PERFECT_PARTICIPLES,
        *language.MOVES, *language.APPEAR_WORDS, *language.DISAPPEAR_WORDS, *language.GONE_WORDS,
        *language.RESOLVE_LEADS, *language.RESOLVE_TRIGGERS, *language.RESOLVED_WORDS, *language.ENDING_VERBS,
        *language.ENDED_WORDS, *language.TIME_UNITS, "for", "until", "becomes", "longer", "consecutive", "row",
    ]  # fmt: skip
    missing = sorted({word for word in vocabulary if f'"{word}"' not in text})
    assert missing == []


def test_the_grammar_doc_explains_episodes() -> None:
    text = " ".join(GRAMMAR.read_text(encoding="utf-8").split())
    assert "fires once per episode" in text
    assert "per tracked mug for mug conditions and per camera for image conditions" in text
    assert "tell me when it is resolved" in text and "cooldown still applies between episodes" in text
    assert "`temporal`" in text  # the JSON key is documented


# -- fuzzing: temporal words never let anything but a syntax error escape --------------------------

TEMPORAL_WORDS = sorted(
    {word for sentence, _, _ in CORPUS for word in re.findall(r"[\w'’.-]+|[%<>≤≥,]", sentence)}
    | {"for", "a", "while", "0", "-", "until", "and", "or", "not", "becomes", "gets", "frames", "seconds"}
)


def check_word_salad(text: str) -> None:
    """Random words: a syntax error at a position inside the text, or a rule that survives JSON and
    Avro and whose canonical sentence means the same."""
    try:
        rule = compile_sentence(text)
    except RuleSyntaxError as exc:
        assert 0 <= exc.position <= len(text)
        return
    assert rule_from_json(json.dumps(rule_to_json(rule))) == rule
    codec.encode("RuleDefinition", rule_to_record(rule))
    canonical = canonical_sentence(rule)
    if canonical is not None:
        again = compile_sentence(canonical)
        assert flat(again.condition) == flat(rule.condition)
        assert again.temporal == rule.temporal


def check_mutated(text: str) -> None:
    """A damaged sentence: compiles, or is a syntax error with a caret (never another exception)."""
    try:
        compile_sentence(text)
    except RuleSyntaxError as exc:
        assert "^" in str(exc)


@fuzz_settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(TEMPORAL_WORDS), min_size=0, max_size=25))
def test_fuzz_temporal_word_salad_gives_errors_or_rules_that_say_themselves(words: list[str]) -> None:
    check_word_salad(" ".join(["alert", "when", *words]))


@fuzz_settings(max_examples=300, deadline=None)
@given(st.sampled_from([c[0] for c in CORPUS]), st.integers(0, 120), st.sampled_from(["", " ", "x", "5", ",", "for "]))
def test_fuzz_mutated_corpus_sentences_only_raise_syntax_errors(sentence: str, at: int, insert: str) -> None:
    check_mutated(sentence[:at] + insert + sentence[at:])


# -- the CLI -----------------------------------------------------------------------------------------


def test_explain_shows_the_temporal_clause_of_a_duration_with_resolution() -> None:
    result = explain_cli("warn when a mug has been off its coaster for more than 30 seconds and tell me when it ends")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == (
        "understood: alert when a mug is not on a coaster for more than 30 seconds, and tell me when it is resolved"
    )
    assert lines[1] == "condition:  mug.on_coaster == false"
    assert lines[2] == "over time:  lasts for > 30 s until resolved"
    rule = json.loads("\n".join(lines[3:]))
    assert rule["temporal"] == lasts(30, strict=True, resolve=True)
    assert rule["condition"] == OFF and "updated_at" not in rule


def test_explain_json_of_a_change_and_of_a_rule_about_single_images() -> None:
    result = explain_cli("--json", "info when a red mug appears in camera k")
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["sentence"] == "notify me when a red mug appears in camera k"
    assert (out["condition"], out["temporal"]) == ('mug.attributes.colour == "red"', "appears")
    assert out["rule"]["temporal"] == APPEARS and out["rule"]["sources"] == ["k"]
    again = json.loads(explain_cli("--json", out["sentence"]).stdout)
    assert again["rule"]["temporal"] == out["rule"]["temporal"] and again["sentence"] == out["sentence"]

    plain = explain_cli("--json", "alert when a mug is not on a coaster")
    out = json.loads(plain.stdout)
    assert out["temporal"] is None and "temporal" not in out["rule"]
    lines = explain_cli("alert when a mug is not on a coaster").stdout.splitlines()
    assert lines[1] == "condition:  mug.on_coaster == false" and lines[2] == "{"  # no "over time" line


def test_explain_shows_frames_and_transitions() -> None:
    frames = explain_cli("warn if a mug stays within 2 cm of the edge for more than 5 frames").stdout.splitlines()
    assert frames[2] == "over time:  lasts for >= 6 frames"
    taken = explain_cli("alert when a mug is removed from its coaster").stdout.splitlines()
    assert taken[:3] == [
        "understood: alert when a mug is taken off its coaster",
        "condition:  mug.on_coaster == false",
        "over time:  becomes",
    ]


@pytest.mark.parametrize(
    ("sentence", "word"),
    [
        ("alert when a mug is off its coaster for a while", "while"),
        ("alert when a mug is put on a coaster for 5 seconds", "for"),
        ("alert when a mug stays off its coaster", "stays"),
    ],
)
def test_explain_refuses_vague_or_meaningless_time_with_the_position(sentence: str, word: str) -> None:
    result = explain_cli(sentence)
    assert result.returncode == 2 and result.stdout == ""
    assert "Traceback" not in result.stderr
    column = sentence.index(" " + word) + 2
    lines = result.stderr.splitlines()
    assert lines[0].startswith(f"error: cannot read the rule at character {column}: ")
    assert lines[1] == "  " + sentence
    assert lines[2] == "  " + " " * (column - 1) + "^" * len(word)


@pytest.mark.integration
def test_list_shows_the_temporal_clause(settings: Settings) -> None:
    from tests.rules.test_cli_rules import cli_env

    def rules(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*MUGPOS, "rules", *args], env=cli_env(settings), capture_output=True, text=True, timeout=60, cwd="/"
        )

    added = rules("add", "--id", "timed", "alert when a mug has been off its coaster for more than 30 seconds")
    assert added.returncode == 0, added.stderr
    assert rules("add", "--id", "plain", "alert when a mug is not on a coaster").returncode == 0
    listed = {r["rule_id"]: r for r in map(json.loads, rules("list", "--json").stdout.splitlines())}
    assert listed["timed"]["temporal"] == lasts(30, strict=True)
    assert "temporal" not in listed["plain"]
    table = rules("list").stdout
    assert "over time" in table and "lasts for > 30 s" in table
    assert re.search(r"plain .*mug\.on_coaster == false .*│ - ", table), table
