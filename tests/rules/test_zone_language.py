"""Zones in plain English: "in zone laptop", "outside the desk zone", "enters zone laptop", said and said back.

The corpus pins each accepted phrasing to one exact rule JSON (condition, temporal clause, severity,
scope, cooldown); the refusals pin each meaningless or malformed zone phrasing to an error at the
word that makes it so. Every accepted sentence is said back by ``canonical_sentence`` in words that
compile to the same rule, and ``mugpos rules explain`` shows it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as fuzz_settings
from hypothesis import strategies as st

from mugpos.core.codec import codec
from mugpos.rules import language
from mugpos.rules.errors import RuleSyntaxError
from mugpos.rules.language import canonical_sentence, compile_sentence
from mugpos.rules.model import AllOf, AnyOf, Condition, rule_from_json, rule_from_obj, rule_to_json, rule_to_record
from tests.rules.test_cli_rules import explain_cli
from tests.rules.test_paraphrases import flat
from tests.rules.test_temporal_language import check_mutated, check_word_salad

GRAMMAR = Path(__file__).resolve().parents[2] / "rules" / "GRAMMAR.md"

Json = dict[str, Any]


def cmp(field: str, op: str, value: Any) -> Json:
    return {"kind": "compare", "field": field, "op": op, "value": value}


def zone(name: str, inside: bool = True) -> Json:
    return cmp(f"mug.zone.{name}", "==", inside)


def all_(*children: Json) -> Json:
    return {"kind": "all", "children": list(children)}


def any_(*children: Json) -> Json:
    return {"kind": "any", "children": list(children)}


def lasts(for_s: float | None = None, strict: bool = False, frames: int | None = None, resolve: bool = False) -> Json:
    return {"kind": "lasts", "for_s": for_s, "strict": strict, "for_frames": frames, "resolve": resolve}


def moment(kind: str) -> Json:
    return {"kind": kind, "for_s": None, "strict": False, "for_frames": None, "resolve": False}


def rule_json(
    condition: Json,
    temporal: Json | None = None,
    *,
    severity: str = "warning",
    sources: tuple[str, ...] = (),
    cooldown: int = 60,
    action: str = "publish",
) -> Json:
    """The JSON a sentence compiles to, less what follows from the text (id, name, text, time)."""
    out: Json = {
        "enabled": True,
        "sources": list(sources),
        "condition": condition,
        "severity": severity,
        "action": {"type": action, "target": None},
        "cooldown_s": cooldown,
    }
    if temporal is not None:
        out["temporal"] = temporal
    return out


IN, OUT = zone("laptop"), zone("laptop", False)
DESK, KEYBOARD = zone("desk"), zone("keyboard")
OFF = cmp("mug.on_coaster", "==", False)
RED = cmp("mug.attributes.colour", "==", "red")
EDGE2 = cmp("mug.edge_distance_cm", "<=", 2)
VIOLATION = cmp("image.verdict", "==", "violation")
BECOMES, APPEARS, DISAPPEARS = moment("becomes"), moment("appears"), moment("disappears")

# (sentence, the rule JSON it compiles to)
CORPUS: list[tuple[str, Json]] = [
    # -- in a zone -------------------------------------------------------------------------------------
    ("alert when a mug is in zone laptop", rule_json(IN)),
    ("alert when a mug is in the laptop zone", rule_json(IN)),
    ("alert when a mug is in the zone laptop", rule_json(IN)),
    ("alert when a mug is inside zone laptop", rule_json(IN)),
    ("alert when a mug is inside the laptop zone", rule_json(IN)),
    ("alert when a mug is within zone laptop", rule_json(IN)),
    ("alert when a mug is within the laptop zone", rule_json(IN)),
    ("alert when a mug is placed in zone laptop", rule_json(IN)),
    ("alert when a mug sits in the laptop zone", rule_json(IN)),
    ("alert when any cup is in zone laptop", rule_json(IN)),
    ("alert when there is a mug in zone laptop", rule_json(IN)),
    ("alert when a mug in zone laptop", rule_json(IN)),
    ("alert when a mug is not outside zone laptop", rule_json(IN)),
    ("alert when a mug is in ZONE laptop", rule_json(IN)),  # the word is case-insensitive, the name is not
    ("alert when a mug is in zone Laptop", rule_json(zone("Laptop"))),
    ("alert when a mug is in zone desk-2", rule_json(zone("desk-2"))),
    ("alert when a mug is in zone 2nd_shelf", rule_json(zone("2nd_shelf"))),
    ("alert when a mug is in zone 7", rule_json(zone("7"))),
    ('alert when a mug is in zone "laptop"', rule_json(IN)),
    ('alert when a mug is in zone "and"', rule_json(zone("and"))),
    ('alert when a mug is in zone "desk-"', rule_json(zone("desk-"))),
    ("alert when a mug is in zone laptop.", rule_json(IN)),
    # -- not in a zone ---------------------------------------------------------------------------------
    ("alert when a mug is not in zone laptop", rule_json(OUT)),
    ("alert when a mug isn't in the laptop zone", rule_json(OUT)),
    ("alert when a mug is not inside zone laptop", rule_json(OUT)),
    ("alert when a mug is outside zone laptop", rule_json(OUT)),
    ("alert when a mug is outside of zone laptop", rule_json(OUT)),
    ("alert when a mug is outside the laptop zone", rule_json(OUT)),
    ("alert when a mug is out of zone laptop", rule_json(OUT)),
    ("alert when a mug is out of the laptop zone", rule_json(OUT)),
    ("alert when a mug stands outside zone laptop", rule_json(OUT)),
    # -- with other conditions -------------------------------------------------------------------------
    ("warn when a mug in zone laptop is off its coaster", rule_json(all_(IN, OFF))),
    ("warn when a mug that is in zone laptop is off its coaster", rule_json(all_(IN, OFF))),
    ("warn when a mug in the laptop zone is off its coaster", rule_json(all_(IN, OFF))),
    ("warn when a mug outside the laptop zone is not on a coaster", rule_json(all_(OUT, OFF))),
    ("warn when a mug is off its coaster in zone laptop", rule_json(all_(OFF, IN))),
    ("warn when a mug is in zone laptop and it is off its coaster", rule_json(all_(IN, OFF))),
    ("warn when a red mug is in zone laptop", rule_json(all_(RED, IN))),
    (
        "critical if a mug is in zone keyboard and within 2 cm of the table edge",
        rule_json(all_(KEYBOARD, EDGE2), severity="critical"),
    ),
    ("alert when a mug is in zone laptop and in zone desk", rule_json(all_(IN, DESK))),
    ("alert when a mug is in zone laptop or in zone desk", rule_json(any_(IN, DESK))),
    ("alert when a mug is in zone laptop or the verdict is violation", rule_json(any_(IN, VIOLATION))),
    ("alert when a mug is in zone laptop in camera desk-1", rule_json(IN, sources=("desk-1",))),
    ("alert when a mug is outside zone laptop in camera desk-1", rule_json(OUT, sources=("desk-1",))),
    (
        "alert when a mug is on a coaster in camera zone",
        rule_json(cmp("mug.on_coaster", "==", True), sources=("zone",)),
    ),
    (
        "notify me when a mug is in zone laptop at most once per 10 minutes",
        rule_json(IN, severity="info", cooldown=600),
    ),
    ("if a mug is in zone laptop, page me", rule_json(IN, severity="critical")),
    ("log when a mug is outside zone laptop", rule_json(OUT, severity="info", action="log")),
    # -- changes ---------------------------------------------------------------------------------------
    ("alert when a mug enters zone laptop", rule_json(IN, BECOMES)),
    ("alert when a mug enters the laptop zone", rule_json(IN, BECOMES)),
    ("alert when a red mug enters zone laptop", rule_json(all_(RED, IN), BECOMES)),
    ("alert when a mug is put in zone laptop", rule_json(IN, BECOMES)),
    ("alert when a mug is put into the laptop zone", rule_json(IN, BECOMES)),
    ("alert when a mug leaves zone laptop", rule_json(OUT, BECOMES)),
    ("notify me when a mug enters zone laptop", rule_json(IN, BECOMES, severity="info")),
    ("notify me when a mug leaves the keyboard zone", rule_json(zone("keyboard", False), BECOMES, severity="info")),
    ("alert when a mug exits the laptop zone", rule_json(OUT, BECOMES)),
    ("alert when a mug is taken out of zone laptop", rule_json(OUT, BECOMES)),
    ("alert when a mug is removed from the laptop zone", rule_json(OUT, BECOMES)),
    ("alert when a mug is no longer in zone laptop", rule_json(OUT, BECOMES)),
    (
        "notify me when a mug leaves zone laptop in camera desk-1",
        rule_json(OUT, BECOMES, severity="info", sources=("desk-1",)),
    ),
    ("alert when a mug appears in zone laptop", rule_json(IN, APPEARS)),
    ("info when a red mug appears in zone desk-2", rule_json(all_(RED, zone("desk-2")), APPEARS, severity="info")),
    ("alert when a mug that is outside zone laptop appears", rule_json(OUT, APPEARS)),
    ("alert when a mug disappears in zone laptop", rule_json(IN, DISAPPEARS)),
    # -- durations -------------------------------------------------------------------------------------
    ("alert when a mug has been in zone laptop for more than 30 seconds", rule_json(IN, lasts(30, strict=True))),
    ("alert when a mug is in zone laptop for more than 30 seconds", rule_json(IN, lasts(30, strict=True))),
    ("alert when a mug stays in the laptop zone for 5 minutes", rule_json(IN, lasts(300))),
    ("alert when a mug remains outside zone laptop for at least 10 frames", rule_json(OUT, lasts(frames=10))),
    ("alert when a mug hasn't been in zone laptop for over an hour", rule_json(OUT, lasts(3600, strict=True))),
    ("alert when a mug has been off its coaster in zone laptop for 2 minutes", rule_json(all_(OFF, IN), lasts(120))),
    ("alert when a mug has been taken out of zone laptop for 30 seconds", rule_json(OUT, lasts(30))),
    (
        "warn when a mug is in zone laptop for 1 minute, and tell me when it is resolved",
        rule_json(IN, lasts(60, resolve=True)),
    ),
    ("alert when a mug is in zone laptop until resolved", rule_json(IN, lasts(resolve=True))),
]

# (sentence, where the error points: the text there, or "" for the end of the sentence, and what it says)
REFUSALS: list[tuple[str, str, str]] = [
    ("alert when a mug is in zone", "", "ends too early"),
    ("alert when a mug is in the zone", "", "ends too early"),
    ("alert when a mug enters zone", "", "ends too early"),
    ("alert when a mug is in zone !!", "!!", "unexpected '!'"),
    ("alert when a mug is in zone " + "a" * 65, "a" * 65, "65 characters long; at most 64"),
    ("alert when a mug is in zone café", "café", "is not a zone name"),
    ("alert when a mug is in zone laptop's", "laptop's", "is not a zone name"),
    ("alert when a mug is in zone 2.5", "2.5", "is not a zone name"),
    ('alert when a mug is in zone ""', '""', "the zone name is empty"),
    ("alert when a mug is in zone laptop- now", "- now", "unexpected character"),
    ("alert when a mug is in zone for 30 seconds", "for", "quote a name that is a word of the grammar"),
    ("alert when a mug is in zones laptop", "zones", "one zone at a time"),
    ("alert when a mug is in the laptop zones", "zones", "one zone at a time"),
    ("alert when a mug is in a zone", "a zone", "name the zone"),
    ("alert when a mug is in any zone", "any", "name the zone"),
    ("alert when a mug is in the front door zone", "door", "a zone's name is one word"),
    ("alert when a mug is in the laptop", "in the", "unexpected word 'in'"),
    ("alert when a mug is inside laptop", "inside", "unexpected word 'inside'"),
    ("alert when a mug is out zone laptop", "out", "unexpected word 'out'"),
    ("alert when a mug is in zone laptop and desk", "and desk", "unexpected word 'and'"),
    ("alert when a mug enters laptop", "laptop", "unexpected word 'laptop'"),
    ("alert when a mug enters zone laptop for 5 seconds", "for", "does not last"),
    ("alert when a mug that is off its coaster enters zone laptop", "enters", "with its colour at most"),
    ("alert when a mug enters zone laptop and the verdict is ok", "and", "cannot be joined"),
    ("alert when a mug leaves zone laptop and tell me when it is resolved", "and tell", "no end to report"),
    ("alert when a mug is not entering zone laptop", "entering", "unexpected word 'entering'"),
    ("alert when more than 2 mugs are in zone laptop", "in zone", "not of mugs in some state"),
    ("alert when the verdict is violation in zone laptop", "in zone", "unexpected word 'in'"),
    ("alert when there are no coasters in zone laptop", "in zone", "unexpected word 'in'"),
    ("alert when a mug is put in zone laptop for 5 minutes", "for", "does not last"),
]


def test_the_corpus_is_large_and_has_no_duplicates() -> None:
    sentences = [row[0] for row in CORPUS]
    assert len(sentences) >= 40 and len(set(sentences)) == len(sentences)
    assert {row[1].get("temporal", {}).get("kind") for row in CORPUS} == {
        None,
        "lasts",
        "becomes",
        "appears",
        "disappears",
    }
    assert len(REFUSALS) >= 15 and len({row[0] for row in REFUSALS}) == len(REFUSALS)


@pytest.mark.parametrize(("sentence", "expected"), CORPUS, ids=[c[0][:80] for c in CORPUS])
def test_sentence_compiles_to_its_rule(sentence: str, expected: Json) -> None:
    rule = compile_sentence(sentence)
    record = rule_to_json(rule)
    for key in ("rule_id", "name", "text", "updated_at"):
        del record[key]
    assert record == expected
    # what it compiles to is a rule the decoder accepts unchanged and Avro can carry
    assert rule_from_json(json.dumps(rule_to_json(rule))) == rule
    codec.encode("RuleDefinition", rule_to_record(rule))


@pytest.mark.parametrize("sentence", [c[0] for c in CORPUS], ids=[c[0][:80] for c in CORPUS])
def test_the_canonical_sentence_says_the_same_rule(sentence: str) -> None:
    rule = compile_sentence(sentence)
    canonical = canonical_sentence(rule)
    assert canonical is not None
    again = compile_sentence(canonical)
    assert flat(again.condition) == flat(rule.condition)
    assert (again.temporal, again.severity, again.action, again.sources, again.cooldown_s) == (
        rule.temporal,
        rule.severity,
        rule.action,
        rule.sources,
        rule.cooldown_s,
    )
    assert canonical_sentence(again) == canonical  # one fixed phrasing per meaning


@pytest.mark.parametrize(
    ("sentence", "canonical"),
    [
        ("alert when a mug is inside the laptop zone", "alert when a mug is in zone laptop"),
        ("alert when a mug is out of the laptop zone", "alert when a mug is not in zone laptop"),
        (
            "warn when a mug in zone laptop is off its coaster",
            "alert when a mug is in zone laptop and it is not on a coaster",
        ),
        (
            "critical if a mug is in zone keyboard and within 2 cm of the table edge",
            "critical when a mug is in zone keyboard and it is within 2 cm of the table edge",
        ),
        ("alert when a mug exits the laptop zone", "alert when a mug leaves zone laptop"),
        ("alert when a mug is put into the laptop zone", "alert when a mug enters zone laptop"),
        ("alert when a mug is no longer in zone laptop", "alert when a mug leaves zone laptop"),
        ("info when a red mug appears in zone desk-2", "notify me when a red mug appears in zone desk-2"),
        ("alert when a mug disappears in zone laptop", "alert when a mug that is in zone laptop disappears"),
        (
            "alert when a mug has been in zone laptop for more than 30 seconds",
            "alert when a mug is in zone laptop for more than 30 seconds",
        ),
        ('alert when a mug is in zone "laptop"', "alert when a mug is in zone laptop"),
        ("alert when a mug is in zone Laptop", "alert when a mug is in zone Laptop"),
    ],
)
def test_canonical_forms(sentence: str, canonical: str) -> None:
    assert canonical_sentence(compile_sentence(sentence)) == canonical


@pytest.mark.parametrize(
    ("name", "said"),
    [
        ("laptop", "laptop"),
        ("Laptop", "Laptop"),
        ("desk-2", "desk-2"),
        ("2nd-desk", "2nd-desk"),
        ("5cm", "5cm"),
        ("x--y", "x--y"),
        ("a" * 64, "a" * 64),
        ("desk-", '"desk-"'),  # no word ends in a dash
        ("2_a", '"2_a"'),  # "_" cannot start a word
        ("and", '"and"'),  # it would read as a joiner
        ("For", '"For"'),
        ("zone", '"zone"'),
    ],
)
def test_json_zone_rules_are_said_back_with_their_names_quoted_where_needed(name: str, said: str) -> None:
    for inside, verb in ((True, "is in"), (False, "is not in")):
        rule = rule_from_obj({"condition": zone(name, inside)})
        canonical = canonical_sentence(rule)
        assert canonical == f"alert when a mug {verb} zone {said}"
        assert compile_sentence(canonical).condition == rule.condition
    moved = rule_from_obj({"condition": zone(name, False), "temporal": {"kind": "becomes"}})
    assert canonical_sentence(moved) == f"alert when a mug leaves zone {said}"
    assert compile_sentence(canonical_sentence(moved) or "").condition == moved.condition


def test_a_not_equal_json_rule_is_said_as_its_equal_meaning() -> None:
    """``!= true`` holds exactly where ``== false`` does (null stays unknown), so it reads "not in"."""
    rule = rule_from_obj({"condition": cmp("mug.zone.laptop", "!=", True)})
    assert canonical_sentence(rule) == "alert when a mug is not in zone laptop"
    entry = rule_from_obj({"condition": cmp("mug.zone.laptop", "!=", False), "temporal": {"kind": "becomes"}})
    assert canonical_sentence(entry) == "alert when a mug enters zone laptop"


@pytest.mark.parametrize(("sentence", "at", "words"), REFUSALS, ids=[r[0][:80] for r in REFUSALS])
def test_refusals_point_at_the_word_and_say_why(sentence: str, at: str, words: str) -> None:
    with pytest.raises(RuleSyntaxError) as info:
        compile_sentence(sentence)
    error = info.value
    if at:
        assert sentence[error.position :].startswith(at), (error.position, str(error))
        if not error.detail.startswith("unexpected character"):
            assert error.expected, str(error)
    else:
        assert error.position == len(sentence), str(error)
    assert words in error.detail, str(error)
    message = str(error)
    caret = next(line for line in message.splitlines() if set(line.strip()) == {"^"})
    assert caret.index("^") - 2 == error.position


def test_a_bad_name_is_underlined_whole() -> None:
    with pytest.raises(RuleSyntaxError) as info:
        compile_sentence("alert when a mug is in zone 2nd.desk")
    assert (info.value.position, info.value.length) == (len("alert when a mug is in zone "), len("2nd.desk"))


def test_zone_words_leave_the_other_meanings_of_in_within_and_out_alone() -> None:
    assert (
        compile_sentence("alert when a mug is within 5 in of the edge").condition
        == compile_sentence("alert when a mug is within 12.7 cm of the edge").condition
    )
    assert compile_sentence("alert when a mug appears in view").temporal is not None
    assert compile_sentence("alert when a mug is sticking out over the edge").condition is not None
    assert compile_sentence("alert when a mug is on a coaster in camera laptop").sources == ("laptop",)


# -- the docs ----------------------------------------------------------------------------------------


def _zone_examples() -> list[str]:
    text = GRAMMAR.read_text(encoding="utf-8")
    block = re.search(r"### Zones\s+.*?```text\n(.*?)```", text, re.S)
    assert block is not None
    return [line for line in block.group(1).splitlines() if line.strip()]


def test_every_documented_zone_example_is_in_the_corpus() -> None:
    examples = _zone_examples()
    assert len(examples) >= 6
    corpus = {row[0] for row in CORPUS}
    for example in examples:
        assert example in corpus, example
        assert any(c.field.startswith("mug.zone.") for c in _leaves(compile_sentence(example).condition)), example


def _leaves(node: Condition) -> list[Any]:
    if isinstance(node, AllOf | AnyOf):
        return [leaf for child in node.children for leaf in _leaves(child)]
    return [node]


def test_every_zone_word_is_in_the_grammar_doc() -> None:
    text = GRAMMAR.read_text(encoding="utf-8")
    vocabulary = [
        *language.ZONE_WORDS, *language.INSIDE_WORDS, *language.OUTSIDE_WORDS, *language.ENTER_WORDS,
        *language.LEAVE_WORDS, "into", "zones",
    ]  # fmt: skip
    assert sorted({word for word in vocabulary if f'"{word}"' not in text}) == []
    assert "`mug.zone.NAME`" in text and "case-sensitive" in text
    assert "neither `in zone laptop` nor `not in zone laptop` fires" in " ".join(text.split())


# -- the CLI -----------------------------------------------------------------------------------------


def test_explain_shows_a_zone_rule() -> None:
    result = explain_cli("warn when a mug in the laptop zone is off its coaster")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "understood: alert when a mug is in zone laptop and it is not on a coaster"
    assert lines[1] == "condition:  mug.zone.laptop == true and mug.on_coaster == false"
    assert json.loads("\n".join(lines[2:]))["condition"] == all_(IN, OFF)


def test_explain_json_of_a_zone_change_round_trips() -> None:
    out = json.loads(explain_cli("--json", "notify me when a mug exits the keyboard zone").stdout)
    assert out["sentence"] == "notify me when a mug leaves zone keyboard"
    assert (out["condition"], out["temporal"]) == ("mug.zone.keyboard == false", "becomes")
    again = json.loads(explain_cli("--json", out["sentence"]).stdout)
    assert again["rule"]["condition"] == out["rule"]["condition"] and again["sentence"] == out["sentence"]
    assert again["rule"]["temporal"] == out["rule"]["temporal"] == BECOMES


def test_explain_refuses_a_zone_without_a_name_with_the_position() -> None:
    sentence = "alert when a mug is in zone"
    result = explain_cli(sentence)
    assert result.returncode == 2 and result.stdout == "" and "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert lines[0] == f"error: cannot read the rule at character {len(sentence) + 1}: the sentence ends too early"
    assert lines[2] == "  " + " " * len(sentence) + "^"
    assert "expected: a zone name such as laptop or desk-2" in lines


# -- fuzzing: zone words never let anything but a syntax error escape ---------------------------------

ZONE_SALAD = sorted(
    {word for sentence, _ in CORPUS for word in re.findall(r"[\w'’.-]+|[%<>≤≥,]", sentence)}
    | {"zone", "zones", "in", "the", "out", "of", "into", "outside", "enters", "leaves", '"x"', "-", "2.5", "and"}
)


@fuzz_settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(ZONE_SALAD), min_size=0, max_size=25))
def test_fuzz_zone_word_salad_gives_errors_or_rules_that_say_themselves(words: list[str]) -> None:
    check_word_salad(" ".join(["alert", "when", *words]))


@fuzz_settings(max_examples=300, deadline=None)
@given(st.sampled_from([c[0] for c in CORPUS]), st.integers(0, 120), st.sampled_from(["", " ", "x", "zone ", '"', "-"]))
def test_fuzz_mutated_zone_sentences_only_raise_syntax_errors(sentence: str, at: int, insert: str) -> None:
    check_mutated(sentence[:at] + insert + sentence[at:])
