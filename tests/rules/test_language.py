"""The sentence grammar: the documented examples, the accepted variations, and the errors users see."""

from __future__ import annotations

import contextlib
import json
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mugpos.core.codec import codec
from mugpos.rules.errors import RuleSyntaxError
from mugpos.rules.examples import EXAMPLES
from mugpos.rules.language import UNITS, compile_sentence, parse_sentence, tokenize
from mugpos.rules.model import (
    AllOf,
    AnyOf,
    Compare,
    Not,
    describe,
    rule_from_json,
    rule_from_record,
    rule_to_json,
    rule_to_record,
)

GRAMMAR = Path(__file__).resolve().parents[2] / "rules" / "GRAMMAR.md"


@pytest.mark.parametrize(
    ("sentence", "condition", "severity", "sources"),
    [
        ("alert when a mug is not on a coaster", Compare("mug.on_coaster", "==", False), "warning", ()),
        ("warn if any mug is within 5 cm of the table edge", Compare("mug.edge_distance_cm", "<=", 5), "warning", ()),
        (
            "notify me when more than 3 mugs are on the table in camera kitchen-1",
            Compare("image.mug_count", ">", 3),
            "info",
            ("kitchen-1",),
        ),
        ("critical if a mug is closer than 2 cm to another mug", Compare("mug.nearest_mug_cm", "<", 2), "critical", ()),
    ],
)
def test_the_four_issue_examples_compile_to_the_expected_rule(
    sentence: str, condition: Compare, severity: str, sources: tuple[str, ...]
) -> None:
    rule = compile_sentence(sentence)
    assert rule.condition == condition
    assert rule.severity == severity
    assert rule.sources == sources
    assert rule.text == sentence
    assert rule.action.type == "publish"
    assert rule.cooldown_s == 60


@pytest.mark.parametrize(
    ("sentence", "expected"),
    [
        ("when a mug is on a coaster", "mug.on_coaster == true"),
        ("alert when a mug is off its coaster", "mug.on_coaster == false"),
        ("alert when a mug isn't on a coaster", "mug.on_coaster == false"),
        ("alert when a mug is without a coaster", "mug.on_coaster == false"),
        ("alert when the mug is not within 5 cm of the edge", "mug.edge_distance_cm > 5"),
        ("alert when a mug is within 20 mm of the edge of the table", "mug.edge_distance_cm <= 2"),
        ("alert when a mug is within 1 in of the table's edge", "mug.edge_distance_cm <= 2.54"),
        ("alert when a mug is within 0.05 m of the table edge", "mug.edge_distance_cm <= 5"),
        ("alert when a mug is within 40 px of the table edge", "mug.edge_distance_px <= 40"),
        ("alert when a mug is within 5cm of the table edge", "mug.edge_distance_cm <= 5"),
        ("alert when a mug is less than 3 cm from the edge", "mug.edge_distance_cm < 3"),
        ("alert when a mug is at most 3 cm from the edge", "mug.edge_distance_cm <= 3"),
        ("alert when a mug is further than 30 cm from the nearest mug", "mug.nearest_mug_cm > 30"),
        ("alert when a mug is at least 2 cm away from another mug", "mug.nearest_mug_cm >= 2"),
        ("alert when a mug is nearer than 1.5 cm to each other", "mug.nearest_mug_cm < 1.5"),
        ("alert when a mug is over the edge", "mug.edge_distance_px < 0"),
        ("alert when a mug is hanging over the table edge", "mug.edge_distance_px < 0"),
        ("alert when a mug has quality below 40", "mug.quality < 40"),
        ("alert when a mug with confidence at least 0.9", "mug.confidence >= 0.9"),
        ("alert when a red mug is not on a coaster", 'mug.attributes.colour == "red" and mug.on_coaster == false'),
        ("alert when a gray cup is on a coaster", 'mug.attributes.colour == "grey" and mug.on_coaster == true'),
        ("alert when there are no coasters", "image.coaster_count == 0"),
        ("alert when there are more than two mugs", "image.mug_count > 2"),
        ("alert when fewer than 2 coasters are visible", "image.coaster_count < 2"),
        ("alert when at least 4 mugs are in view", "image.mug_count >= 4"),
        ("alert when at most 1 table is detected", "image.surface_count <= 1"),
        ("alert when no more than 3 mugs are in the image", "image.mug_count <= 3"),
        ("alert when exactly 2 mugs are on the table", "image.mug_count == 2"),
        ("alert when 2 or more mugs are on the table", "image.mug_count >= 2"),
        ("alert when 2 or fewer coasters are present", "image.coaster_count <= 2"),
        ("alert when the verdict is violation", 'image.verdict == "violation"'),
        ("alert when the verdict is not ok", 'image.verdict != "ok"'),
        ("alert when the placement isn't okay", 'image.verdict != "ok"'),
        (
            "alert when a mug is not on a coaster and within 5 cm of the edge",
            "mug.on_coaster == false and mug.edge_distance_cm <= 5",
        ),
        (
            "alert when a mug is not on a coaster or it is over the edge",
            "mug.on_coaster == false or mug.edge_distance_px < 0",
        ),
        (
            "alert when a mug is over the edge or more than 3 mugs are on the table and the verdict is violation",
            'mug.edge_distance_px < 0 or (image.mug_count > 3 and image.verdict == "violation")',
        ),
    ],
)
def test_accepted_forms(sentence: str, expected: str) -> None:
    assert describe(compile_sentence(sentence).condition) == expected


@pytest.mark.parametrize(
    ("sentence", "severity", "action"),
    [
        ("alert me when a mug is on a coaster", "warning", "publish"),
        ("warn us if a mug is on a coaster", "warning", "publish"),
        ("tell me when a mug is on a coaster", "info", "publish"),
        ("page me when a mug is on a coaster", "critical", "publish"),
        ("critical alert when a mug is on a coaster", "critical", "publish"),
        ("raise a critical alert whenever a mug is on a coaster", "critical", "publish"),
        ("raise an alert if a mug is on a coaster", "warning", "publish"),
        ("log it when a mug is on a coaster", "info", "log"),
        ("when a mug is on a coaster", "warning", "publish"),
        ("If A Mug Is On A Coaster.", "warning", "publish"),
    ],
)
def test_lead_words_set_severity_and_action(sentence: str, severity: str, action: str) -> None:
    rule = compile_sentence(sentence)
    assert (rule.severity, rule.action.type) == (severity, action)


@pytest.mark.parametrize(
    ("sentence", "sources", "cooldown"),
    [
        ("alert when a mug is on a coaster in camera kitchen-1", ("kitchen-1",), 60),
        ("alert when a mug is on a coaster on cameras a, b and c", ("a", "b", "c"), 60),
        ("alert when a mug is on a coaster from sources hall or desk-2", ("hall", "desk-2"), 60),
        ('alert when a mug is on a coaster in camera "front door"', ("front door",), 60),
        ("alert when a mug is on a coaster in camera 1st-floor.cam", ("1st-floor.cam",), 60),
        ("alert when a mug is on a coaster, only in camera x", ("x",), 60),
        ("alert when a mug is on a coaster at most once per minute", (), 60),
        ("alert when a mug is on a coaster at most once every 10 minutes", (), 600),
        ("alert when a mug is on a coaster once an hour in camera k", ("k",), 3600),
        ("alert when a mug is on a coaster with a cooldown of 0 seconds", (), 0),
        ("alert when a mug is on a coaster in camera k, with a cooldown of 5 s.", ("k",), 5),
    ],
)
def test_scope_and_cooldown(sentence: str, sources: tuple[str, ...], cooldown: int) -> None:
    rule = compile_sentence(sentence)
    assert rule.sources == sources
    assert rule.cooldown_s == cooldown


def test_keyword_overrides_win_over_the_sentence() -> None:
    rule = compile_sentence(
        "alert when a mug is on a coaster in camera a",
        rule_id="r1",
        name="coasters",
        severity="critical",
        action="log",
        sources=["b"],
        cooldown_s=5,
        enabled=False,
    )
    assert (rule.rule_id, rule.name, rule.severity, rule.action.type) == ("r1", "coasters", "critical", "log")
    assert (rule.sources, rule.cooldown_s, rule.enabled) == (("a", "b"), 5, False)


def test_same_sentence_gives_the_same_id_and_whitespace_does_not_matter() -> None:
    a = compile_sentence("alert when a mug is not on a coaster")
    b = compile_sentence("  alert  when a mug\tis not on a coaster ")
    assert a.rule_id == b.rule_id
    assert b.text == "alert when a mug is not on a coaster"
    assert compile_sentence("warn when a mug is not on a coaster").rule_id == a.rule_id  # same severity
    assert compile_sentence("critical if a mug is not on a coaster").rule_id != a.rule_id


def caret_column(message: str) -> int:
    lines = message.splitlines()
    caret = next(line for line in lines if set(line.strip()) == {"^"})
    return caret.index("^") - 2


@pytest.mark.parametrize(
    ("sentence", "word", "expected_hint", "suggestion"),
    [
        ("alert when a mug is flying", "flying", "on a coaster", None),
        ("alert when a mug is not on a coastr", "coastr", '"coaster"', "coaster"),
        ("alrt when a mug is on a coaster", "alrt", '"alert"', "alert"),
        ("alert when a mug is within 5 parsecs of the edge", "parsecs", '"cm"', None),
        ("alert when a mug is within five of the edge", "of", '"cm"', None),
        ("alert when a mug is on a coaster in camera kitchen-1 please", "please", "in camera NAME", None),
        ("alert when the verdict is great", "great", '"violation"', None),
        ("alert when more than 2.5 mugs are on the table", "2.5", "whole number", None),
        ("alert when a mug is close to the edge", "close", "within N cm", None),
        (
            "alert when a mug is on a coaster in camera a at most once per 10 fortnights",
            "fortnights",
            '"minutes"',
            None,
        ),
        ("alert when a mug is on a coaster in camera a in camera b", "in", "one scope per rule", None),
    ],
)
def test_syntax_errors_point_at_the_word_and_say_what_fits(
    sentence: str, word: str, expected_hint: str, suggestion: str | None
) -> None:
    with pytest.raises(RuleSyntaxError) as info:
        compile_sentence(sentence)
    error = info.value
    assert sentence[error.position :].startswith(word)
    assert error.position == (sentence.rindex(word) if word == "in" else sentence.index(word))
    message = str(error)
    assert caret_column(message) == error.position
    assert expected_hint in message
    assert "accepted forms" in message and EXAMPLES[0] in message
    if suggestion:
        assert f"did you mean {suggestion!r}" in message


def test_sentence_ending_too_early_puts_the_caret_after_the_last_word() -> None:
    with pytest.raises(RuleSyntaxError, match="ends too early") as info:
        parse_sentence("alert when a mug is within 5 cm of")
    assert info.value.position == len("alert when a mug is within 5 cm of")


@pytest.mark.parametrize("text", ["", "   ", "\n\t"])
def test_empty_sentence(text: str) -> None:
    with pytest.raises(RuleSyntaxError, match="empty"):
        parse_sentence(text)


def test_absurdly_long_sentence_is_refused_before_parsing() -> None:
    text = "alert when a mug is on a coaster " + "and a mug is on a coaster " * 40
    with pytest.raises(RuleSyntaxError, match="at most 500"):
        parse_sentence(text)


def test_unexpected_character_and_huge_numbers() -> None:
    with pytest.raises(RuleSyntaxError, match="unexpected character '@'") as info:
        parse_sentence("alert when a mug is @ the edge")
    assert info.value.position == 20
    with pytest.raises(RuleSyntaxError, match="too large"):
        parse_sentence("alert when more than 99999999999 mugs are on the table")
    with pytest.raises(RuleSyntaxError, match="too large"):
        parse_sentence("alert when more than 2000000000 mugs are on the table")
    with pytest.raises(RuleSyntaxError, match="U\\+0000"):
        parse_sentence("alert when\x00 a mug is on a coaster")


def test_cooldown_beyond_a_week_is_a_readable_error() -> None:
    with pytest.raises(RuleSyntaxError, match="cooldown_s"):
        compile_sentence("alert when a mug is on a coaster with a cooldown of 30 days")


def test_tokenizer_keeps_positions_and_splits_glued_units() -> None:
    tokens = tokenize("within 5cm, kitchen-1.")
    assert [(t.kind, t.text, t.pos) for t in tokens] == [
        ("word", "within", 0),
        ("number", "5", 7),
        ("word", "cm", 8),
        ("comma", ",", 10),
        ("word", "kitchen-1", 12),
        ("period", ".", 21),
        ("end", "", 22),
    ]


def test_tokenizer_reads_percentages_comparison_signs_and_leading_point_decimals() -> None:
    tokens = tokenize("within 30% <= .5in ≥2")
    assert [(t.kind, t.text) for t in tokens] == [
        ("word", "within"),
        ("number", "30"),
        ("percent", "%"),
        ("symbol", "<="),
        ("number", ".5"),
        ("word", "in"),
        ("symbol", "≥"),
        ("number", "2"),
        ("end", ""),
    ]
    assert tokens[4].number == 0.5


def test_compiled_sentences_survive_json_and_avro_round_trips() -> None:
    for sentence in EXAMPLES:
        rule = compile_sentence(sentence)
        assert rule_from_json(json.dumps(rule_to_json(rule))) == rule
        decoded = codec.decode(codec.encode("RuleDefinition", rule_to_record(rule)), "RuleDefinition")
        assert rule_from_record(decoded) == rule


def test_grammar_doc_exists_has_ebnf_and_every_example_parses() -> None:
    text = GRAMMAR.read_text(encoding="utf-8")
    assert "```ebnf" in text
    block = re.search(r"### Examples\s+```text\n(.*?)```", text, re.S)
    assert block is not None
    examples = [line for line in block.group(1).splitlines() if line.strip()]
    assert len(examples) >= 10
    for example in examples:
        compile_sentence(example)
    for example in EXAMPLES:
        assert example in examples


def test_every_unit_in_the_grammar_doc() -> None:
    text = GRAMMAR.read_text(encoding="utf-8")
    for unit in UNITS:
        assert f'"{unit}"' in text, unit


def test_not_is_pushed_into_comparisons_without_changing_meaning() -> None:
    rule = compile_sentence("alert when a mug is not within 5 cm of the edge")
    assert rule.condition == Compare("mug.edge_distance_cm", ">", 5)
    rule = compile_sentence("alert when a red mug is not on a coaster")
    assert isinstance(rule.condition, AllOf)
    assert not any(isinstance(c, Not | AnyOf) for c in rule.condition.children)


# -- fuzzing: only RuleSyntaxError may escape --------------------------------------------------

VOCABULARY = sorted(
    {
        *[
            "alert",
            "warn",
            "notify",
            "me",
            "critical",
            "log",
            "when",
            "if",
            "whenever",
            "a",
            "an",
            "any",
            "the",
            "mug",
            "mugs",
            "cup",
            "is",
            "isn't",
            "not",
            "on",
            "off",
            "its",
            "coaster",
            "coasters",
            "within",
            "closer",
            "nearer",
            "than",
            "to",
            "from",
            "of",
            "table",
            "edge",
            "another",
            "other",
            "more",
            "fewer",
            "less",
            "at",
            "least",
            "most",
            "exactly",
            "no",
            "there",
            "are",
            "verdict",
            "ok",
            "warning",
            "violation",
            "in",
            "camera",
            "cameras",
            "source",
            "and",
            "or",
            "once",
            "per",
            "every",
            "minutes",
            "with",
            "cooldown",
            "quality",
            "confidence",
            "below",
            "above",
            "over",
            "hanging",
            "px",
            "cm",
            "mm",
            "red",
            "0",
            "1",
            "2",
            "5",
            "2.5",
            "three",
            ",",
        ],
        ".",
        '"x y"',
    }
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=200))
def test_fuzz_arbitrary_text_only_raises_syntax_errors(text: str) -> None:
    try:
        rule = compile_sentence(text)
    except RuleSyntaxError as exc:
        assert 0 <= exc.position <= max(len(text), 80)
        str(exc)
    else:
        assert rule.condition is not None


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(VOCABULARY), min_size=0, max_size=30))
def test_fuzz_word_salad_only_raises_syntax_errors_and_parses_give_valid_rules(words: list[str]) -> None:
    text = " ".join(words)
    try:
        rule = compile_sentence(text)
    except RuleSyntaxError as exc:
        assert 0 <= exc.position <= len(text)
        assert "^" in str(exc) or not text.strip()
        return
    # whatever parses is a rule the decoder accepts unchanged and Avro can carry
    assert rule_from_json(json.dumps(rule_to_json(rule))) == rule
    codec.encode("RuleDefinition", rule_to_record(rule))


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(EXAMPLES), st.integers(0, 120), st.sampled_from(["", " ", "x", "5", ",", "not ", "@", "é"]))
def test_fuzz_mutated_examples(example: str, at: int, insert: str) -> None:
    text = example[:at] + insert + example[at:]
    with contextlib.suppress(RuleSyntaxError):
        compile_sentence(text)
