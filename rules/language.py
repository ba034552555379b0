"""Plain-English rules: a tokenizer and a recursive-descent parser for the grammar in ``GRAMMAR.md``.

A sentence compiles to exactly the structure a JSON rule has (a condition tree, severity, scope,
cooldown, and for a rule over time its temporal clause: "for more than 30 seconds", "is put on a
coaster", "and tell me when it is resolved"), then goes through the same validator, so both ways of
writing a rule behave alike.
Nothing is guessed: a word the grammar does not expect stops the parse with a
:class:`~rules.errors.RuleSyntaxError` that points at it, says what would fit and suggests the
nearest known word. Many phrasings are accepted for one meaning ("exceeds", "is over", "more
than"), but each phrasing has exactly one meaning; a vague or ambiguous one ("near the edge",
"every mug", "drops below", "for a while") is refused with the reason. There is no eval and no model in the loop;
each grammar rule is one method, and :func:`canonical_sentence` says a rule back in the grammar's
own words.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from itertools import pairwise
from typing import Any, Literal, NoReturn, TypeVar

from mugpos.core.cameras import ZONE_NAME
from mugpos.rules.errors import RuleSyntaxError, RuleValidationError
from mugpos.rules.fields import zone_field, zone_of
from mugpos.rules.model import (
    MAX_FOR_FRAMES,
    MAX_FOR_S,
    MAX_TEXT_CHARS,
    ActionType,
    AllOf,
    AnyOf,
    Compare,
    Condition,
    Not,
    Rule,
    Severity,
    Temporal,
    TemporalKind,
    rule_from_obj,
    rule_to_record,
    temporal_to_obj,
)

MAX_NUMBER = 1_000_000_000
MAX_TOKENS = 120

TokenKind = Literal["word", "number", "string", "comma", "period", "percent", "symbol", "end"]
_V = TypeVar("_V")


@dataclass(frozen=True, slots=True)
class Token:
    """A word, number, quoted name or punctuation mark, with where it starts and ends in the text."""

    kind: TokenKind
    text: str
    pos: int
    end: int
    number: int | float | None = None

    @property
    def low(self) -> str:
        return self.text.lower().replace("’", "'")


@dataclass(frozen=True, slots=True)
class ParsedSentence:
    """What a sentence says; :func:`compile_sentence` turns it into a validated :class:`Rule`."""

    condition: Condition
    severity: Severity
    action: ActionType | None
    sources: tuple[str, ...]
    cooldown_s: int | None
    temporal: Temporal | None = None


_LEXEMES = re.compile(
    r"""
      (?P<space>\s+)
    | (?P<number>\d+(?:\.\d+)?|\.\d+)
    | (?P<word>[^\W\d_](?:[\w'’-]*\w)?(?:\.\w[\w-]*)*)
    | (?P<string>"[^"\n]*")
    | (?P<comma>,)
    | (?P<period>[.!])
    | (?P<percent>%)
    | (?P<symbol><=|>=|[<>≤≥])
    """,
    re.VERBOSE,
)


def tokenize(text: str) -> list[Token]:
    """Split a sentence into tokens; an unexpected character is a syntax error at its position."""
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        match = _LEXEMES.match(text, pos)
        if match is None:
            char = text[pos]
            shown = repr(char) if char.isprintable() else f"U+{ord(char):04X}"
            raise RuleSyntaxError(text, pos, f"unexpected character {shown}")
        kind = match.lastgroup
        lexeme = match.group()
        if kind == "number":
            digits = lexeme.split(".")[0]
            if len(digits) > 10:
                raise RuleSyntaxError(text, pos, f"number {lexeme} is too large", length=len(lexeme))
            number: int | float = float(lexeme) if "." in lexeme else int(lexeme)
            tokens.append(Token("number", lexeme, pos, match.end(), number))
        elif kind == "string":
            tokens.append(Token("string", lexeme[1:-1], pos, match.end()))
        elif kind in ("word", "comma", "period", "percent", "symbol"):
            tokens.append(Token(kind, lexeme, pos, match.end()))  # type: ignore[arg-type]
        pos = match.end()
        if len(tokens) > MAX_TOKENS:
            raise RuleSyntaxError(text, pos, f"a rule has at most {MAX_TOKENS} words")
    tokens.append(Token("end", "", len(text), len(text)))
    return tokens


# -- vocabulary ----------------------------------------------------------------------------------

LEADS: dict[str, tuple[Severity, ActionType | None]] = {
    "alert": ("warning", None),
    "warn": ("warning", None),
    "notify": ("info", None),
    "tell": ("info", None),
    "inform": ("info", None),
    "info": ("info", None),
    "warning": ("warning", None),
    "critical": ("critical", None),
    "page": ("critical", None),
    "log": ("info", "log"),
    "raise": ("warning", None),
    "send": ("warning", None),
    "let": ("info", None),
}
#: Leads that may also close a sentence: "if a mug is over the edge, page me".
TRAILING_LEADS = ("alert", "warn", "notify", "tell", "inform", "page", "log", "raise", "send", "let")
#: What "raise" and "send" raise: the noun sets the severity unless a level word comes first.
ALERT_NOUNS: dict[str, Severity] = {
    "alert": "warning",
    "alarm": "warning",
    "warning": "warning",
    "notification": "info",
    "notice": "info",
    "message": "info",
}
LEVELS: dict[str, Severity] = {"critical": "critical", "urgent": "critical", "warning": "warning", "info": "info"}
TRIGGERS = ("when", "if", "whenever")
TRIGGER_PHRASES: tuple[tuple[str, ...], ...] = (
    ("when",),
    ("if",),
    ("whenever",),
    ("as", "soon", "as"),
    ("every", "time"),
    ("each", "time"),
    ("any", "time"),
    ("anytime",),
)
DETERMINERS = ("a", "an", "any", "some", "one", "the")
MUG_WORDS = ("mug", "cup")
MUG_POSSESSIVES = ("mug's", "cup's")
COLOURS = ("red", "orange", "yellow", "green", "blue", "purple", "pink", "brown", "black", "white", "grey", "gray")
_ONES = {"zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9}
_TEENS = {
    "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15, "sixteen": 16,
    "seventeen": 17, "eighteen": 18, "nineteen": 19,
}  # fmt: skip
_TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90}
NUMBER_WORDS: dict[str, int] = {**_ONES, **_TEENS, **_TENS}
#: unit word -> (field family, factor to centimetres)
UNITS: dict[str, tuple[Literal["cm", "px"], float]] = {
    **dict.fromkeys(("cm", "centimetre", "centimetres", "centimeter", "centimeters"), ("cm", 1.0)),
    **dict.fromkeys(("mm", "millimetre", "millimetres", "millimeter", "millimeters"), ("cm", 0.1)),
    **dict.fromkeys(("m", "metre", "metres", "meter", "meters"), ("cm", 100.0)),
    **dict.fromkeys(("in", "inch", "inches"), ("cm", 2.54)),
    **dict.fromkeys(("ft", "foot", "feet"), ("cm", 30.48)),
    **dict.fromkeys(("px", "pixel", "pixels"), ("px", 1.0)),
}
PERCENT_WORDS = ("percent", "pct")
SURFACES = ("table", "surface", "desk", "counter", "worktop", "shelf")
SURFACE_POSSESSIVES = tuple(f"{s}'s" for s in SURFACES)
COUNT_THINGS = {
    **dict.fromkeys(("mug", "mugs", "cup", "cups"), "image.mug_count"),
    **dict.fromkeys(("coaster", "coasters"), "image.coaster_count"),
    **dict.fromkeys(("table", "tables", "surface", "surfaces", "desk", "desks"), "image.surface_count"),
}
#: "the mug count", "the coaster count": the singular names a count noun takes.
COUNT_NOUNS = {
    **dict.fromkeys(("mug", "cup"), "image.mug_count"),
    "coaster": "image.coaster_count",
    **dict.fromkeys(("table", "surface", "desk"), "image.surface_count"),
}
TIME_UNITS = {
    **dict.fromkeys(("s", "sec", "secs", "second", "seconds"), 1),
    **dict.fromkeys(("min", "mins", "minute", "minutes"), 60),
    **dict.fromkeys(("h", "hr", "hrs", "hour", "hours"), 3600),
    **dict.fromkeys(("day", "days"), 86400),
}
VERDICTS = {"ok": "ok", "okay": "ok", "fine": "ok", "warning": "warning", "violation": "violation"}
SCOPE_PREPS = ("in", "on", "at", "from", "for")
SCOPE_NOUNS = ("camera", "cameras", "source", "sources")
METRICS = {"quality": "mug.quality", "confidence": "mug.confidence"}
#: The full scale of each metric: a percentage is a share of it, and a value beyond it is a mistake.
METRIC_SCALE = {"quality": 100, "confidence": 1}
PLACES_AFTER_IN = ("view", "image", "picture", "frame", "scene", "shot", "sight")
PLACE_WORDS = ("visible", "seen", "detected", "found", "present")
CENTRES = ("centre", "center", "middle")
#: What "a mug's", "whose" and "its" may name (see ``mug_attribute``).
ATTRIBUTES = (
    "colour", "color", "placement", "detection", "quality", "confidence", "distance", "gap", "edge", "coaster",
    "offset",
)  # fmt: skip
OFF_CENTRE = ("off-centre", "off-center")
MUG_TARGET_WORDS = ("another", "other", "nearest", "next", "closest", "neighbouring", "neighboring", "adjacent")
NEIGHBOURS = ("neighbour", "neighbor")
#: Words between "is" and the state that add nothing: "is standing on a coaster", "is placed within".
#: ("put" is not one of them: "is put on a coaster" is a change, see ``MOVES``.)
PARTICIPLES = ("standing", "sitting", "resting", "lying", "placed", "positioned", "located", "left", "kept")
MORE_WORDS = ("more", "greater", "higher", "bigger", "larger")
LESS_WORDS = ("less", "fewer", "lower", "smaller")
FURTHER_WORDS = ("further", "farther")
CLOSER_WORDS = ("closer", "nearer")
SYMBOLS = {"<": "<", "<=": "<=", ">": ">", ">=": ">=", "≤": "<=", "≥": ">="}
#: "5 cm or less", "40 or above": the word after "or" and the inclusive bound it makes.
OR_BOUNDS = {
    **dict.fromkeys(("less", "fewer", "lower", "below", "under", "closer", "nearer", "smaller"), "<="),
    **dict.fromkeys(("more", "greater", "higher", "above", "over", "further", "farther", "bigger", "larger"), ">="),
}
_NEGATED = {"==": "!=", "!=": "==", "<": ">=", ">=": "<", ">": "<=", "<=": ">"}

# -- words of rules over time (durations, changes, resolution) -----------------------------------

#: "for 5 frames": a duration counted in frames (a duration in time takes ``TIME_UNITS``).
FRAME_UNITS = ("frame", "frames")
#: What "for a minute", "for an hour" may count: one of a singular unit.
SINGULAR_UNITS = ("second", "sec", "minute", "min", "hour", "hr", "day", "frame")
#: Verbs that say a state lasts ("stays off its coaster"); a duration must follow.
LASTING_VERBS = ("stays", "remains", "stay", "remain")
#: After "has" / "have": "has been off its coaster", "has stayed within 2 cm of the edge".
PERFECT_PARTICIPLES = ("been", "stayed", "remained")
#: How a mug is moved, after "is": "is put on a coaster", "is taken off its coaster" (a change), or
#: after "has been" the state it was moved into ("has been taken off its coaster for 30 seconds").
MOVES = ("put", "taken", "removed", "lifted")
APPEAR_WORDS = ("appears",)
DISAPPEAR_WORDS = ("disappears", "vanishes")
#: "is no longer seen": the mug is gone (``disappears``); "is no longer on its coaster" is a change.
GONE_WORDS = ("seen", "visible", "detected", "found", "present")
#: "and tell me when it is resolved": the end of each episode is delivered too.
RESOLVE_LEADS = ("tell", "inform", "notify", "let", "alert")
RESOLVE_TRIGGERS = ("when", "once", "if")
RESOLVED_WORDS = ("resolved", "cleared", "fixed", "over")
ENDING_VERBS = ("clears", "ends", "resolves", "stops")
ENDED_WORDS = ("cleared", "ended", "stopped", "resolved")
#: The condition of "when a mug appears" with no filter: any tracked mug.
TRACKED = Compare("mug.track_id", ">=", 0)

# -- words of zones (named areas of a camera's picture: ``mug.zone.NAME``) -------------------------

ZONE_WORDS = ("zone",)
#: Before a zone, a mug in it: "in zone laptop", "inside the laptop zone", "within zone desk-2".
INSIDE_WORDS = ("in", "inside", "within")
#: Before a zone, a mug not in it: "outside zone laptop", "outside of …", "out of the laptop zone".
OUTSIDE_WORDS = ("outside", "out")
#: A mug's move across a zone's border, a change (``becomes``): into it / out of it.
ENTER_WORDS = ("enters",)
LEAVE_WORDS = ("leaves", "exits")
#: What may come between "in" and "zone" without naming it: refused, a zone is named.
_ZONE_ARTICLES = ("the", "a", "an", "any", "some", "no", "every", "each", "one", "its")
#: Words that would read as the rest of the sentence, not as a zone's name: quote such a name.
_ZONE_STOPS = (
    "and", "or", "but", "for", "in", "on", "at", "from", "with", "until", "once", "not", "then", "only", "when",
    "if", "unless", "is", "zone", "zones",
)  # fmt: skip
MAX_ZONE_CHARS = 64

#: Why some words are refused wherever they stop the parse (appended to the error message).
_VAGUE = ("near", "close", "far", "nearby", "low", "high", "many", "several", "few", "lots", "plenty", "couple")
_CHANGES = (
    "drops", "drop", "falls", "fall", "rises", "rise", "goes", "go", "gets", "get", "becomes", "become",
    "reaches", "reach", "hits", "climbs", "dips", "increases", "decreases", "moves", "changes", "turns",
)  # fmt: skip
_ALL = ("every", "each", "all", "both")
#: Words that name no time span: a duration is a number and a unit.
_VAGUE_TIME = (
    "while", "awhile", "ages", "moment", "bit", "long", "recently", "lately", "sometimes", "often", "occasionally",
    "frequently", "repeatedly", "briefly", "usually", "always", "never", "ever", "still", "anymore",
)  # fmt: skip
HINTS: dict[str, str] = {
    **dict.fromkeys(_VAGUE, "it names no amount; give a number, e.g. 'within 5 cm of the table edge'"),
    **dict.fromkeys(
        _CHANGES,
        "it describes a change; a rule tests each picture ('is below 40'), says how long a state lasts"
        " ('is off its coaster for 30 seconds') or names a mug's move ('is put on a coaster')",
    ),
    **dict.fromkeys(_VAGUE_TIME, "it names no time; say how long, e.g. 'for 30 seconds' or 'for 5 frames'"),
    **dict.fromkeys(("was", "were", "had"), "a rule speaks of the present: 'is', or 'has been ... for 30 seconds'"),
    **dict.fromkeys(("after", "since"), "say how long with 'for', e.g. 'has been off its coaster for 5 minutes'"),
    "unless": "'unless' is not part of the grammar; join conditions with 'and', 'or' and 'not'",
}


_CLAUSE_WORDS = (*DETERMINERS, "there", "there's", "verdict", "placement", "overall", "no", *_ALL, "mugs", "cups")


@dataclass(frozen=True, slots=True)
class _Transition:
    """A change a sentence names ("is put on a coaster", "appears"): its kind, where it was said, and the
    state that turns true (the ``TRACKED`` placeholder for appears / disappears)."""

    kind: TemporalKind
    token: Token
    phrase: str
    state: Condition


def number_word(low: str) -> int | None:
    """'seven' -> 7, 'twenty-five' -> 25; None for a word that is no number."""
    if low in NUMBER_WORDS:
        return NUMBER_WORDS[low]
    tens, sep, one = low.partition("-")
    if sep and tens in _TENS and _ONES.get(one, 0) > 0:
        return _TENS[tens] + _ONES[one]
    return None


class _Parser:
    """One instance per sentence. Methods mirror the EBNF productions in GRAMMAR.md."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.i = 0
        self.mug_context = False
        self.lead_pending = False  # no lead before the trigger: one may close the sentence
        self.lasting: Token | None = None  # "stays", "has been": a duration must follow
        self.lasting_phrase = ""
        self.joined: Token | None = None  # the first "and" / "or" that joined two clauses
        self.transition: _Transition | None = None  # "is put on a coaster", "appears"

    # -- token helpers -------------------------------------------------------------------------

    def peek(self, ahead: int = 0) -> Token:
        return self.tokens[min(self.i + ahead, len(self.tokens) - 1)]

    def low(self, ahead: int = 0) -> str:
        tok = self.peek(ahead)
        return tok.low if tok.kind == "word" else ""

    def at(self, *words: str, ahead: int = 0) -> bool:
        tok = self.peek(ahead)
        return tok.kind == "word" and tok.low in words

    def at_phrase(self, words: tuple[str, ...], ahead: int = 0) -> bool:
        return all(self.at(word, ahead=ahead + k) for k, word in enumerate(words))

    def accept(self, *words: str) -> Token | None:
        if self.at(*words):
            tok = self.peek()
            self.i += 1
            return tok
        return None

    def expect(self, words: Iterable[str], expected: Iterable[str]) -> Token:
        words = tuple(words)
        tok = self.accept(*words)
        if tok is None:
            self.fail(expected, vocabulary=words)
        return tok

    def fail(self, expected: Iterable[str], vocabulary: Iterable[str] = (), message: str | None = None) -> NoReturn:
        self.fail_at(self.peek(), expected, vocabulary, message)

    def fail_at(
        self, tok: Token, expected: Iterable[str], vocabulary: Iterable[str] = (), message: str | None = None
    ) -> NoReturn:
        expected = list(dict.fromkeys(expected))
        if message is None:
            message = "the sentence ends too early" if tok.kind == "end" else f"unexpected {self.describe(tok)}"
            if tok.kind == "word" and tok.low in HINTS:
                message += f" ({HINTS[tok.low]})"
        suggestion = None
        if tok.kind == "word":
            close = difflib.get_close_matches(tok.low, list(dict.fromkeys(vocabulary)), n=1, cutoff=0.75)
            suggestion = close[0] if close and close[0] != tok.low else None
        raise RuleSyntaxError(self.text, tok.pos, message, expected, suggestion, length=max(1, tok.end - tok.pos))

    @staticmethod
    def describe(tok: Token) -> str:
        if tok.kind == "number":
            return f"number {tok.text}"
        if tok.kind == "string":
            return f'name "{tok.text}"'
        if tok.kind in ("comma", "period", "percent", "symbol"):
            return f"{tok.text!r}"
        return f"word {tok.text!r}"

    # -- numbers, comparisons and measures -----------------------------------------------------

    def number_span(self, ahead: int = 0) -> int:
        """How many tokens the number starting ``ahead`` on takes ("twenty five" is two); 0: none."""
        tok = self.peek(ahead)
        if tok.kind == "number":
            return 1
        if tok.kind != "word" or number_word(tok.low) is None:
            return 0
        return 2 if tok.low in _TENS and _ONES.get(self.low(ahead + 1), 0) > 0 else 1

    def is_number(self, ahead: int = 0) -> bool:
        return self.number_span(ahead) > 0

    def number(self, what: str, *, integer: bool = False) -> int | float:
        tok = self.peek()
        span = self.number_span()
        if not span:
            self.fail([what], vocabulary=NUMBER_WORDS)
        if tok.kind == "number" and tok.number is not None:
            value: int | float = tok.number
        else:
            value = (number_word(tok.low) or 0) + (_ONES[self.low(1)] if span == 2 else 0)
        if integer and isinstance(value, float):
            self.fail([f"a whole number ({what})"], message=f"{tok.text} is not a whole number")
        if value > MAX_NUMBER:
            self.fail([what], message=f"{tok.text} is too large (at most {MAX_NUMBER})")
        self.i += span
        return value

    def comparator_span(self, ahead: int = 0, *, distance: bool = False) -> tuple[str, int] | None:
        """The comparison starting ``ahead`` on, as (operator, tokens it takes), without consuming it.

        ``distance`` adds the words that only compare distances ("within", "closer than").
        """
        tok = self.peek(ahead)
        if tok.kind == "symbol":
            return SYMBOLS[tok.text], 1
        if tok.kind != "word":
            return None
        word = tok.low
        bigger = MORE_WORDS + (FURTHER_WORDS if distance else ())
        smaller = LESS_WORDS + (CLOSER_WORDS if distance else ())
        if word == "no" and self.low(ahead + 1) in bigger + smaller and self.at("than", ahead=ahead + 2):
            return ("<=" if self.low(ahead + 1) in bigger else ">="), 3
        if word in bigger + smaller and self.at("than", ahead=ahead + 1):
            op = ">" if word in bigger else "<"
            if self.at_phrase(("or", "equal", "to"), ahead + 2):
                return op + "=", 5
            return op, 2
        if word in ("above", "over"):
            return ">", 1
        if word in ("below", "under"):
            return "<", 1
        if word == "at" and self.at("least", "most", ahead=ahead + 1):
            return (">=" if self.low(ahead + 1) == "least" else "<="), 2
        if word == "up" and self.at("to", ahead=ahead + 1):
            return "<=", 2
        if distance and word == "within":
            return "<=", 1
        return None

    def measure_kind(self, ahead: int) -> Literal["unit", "percent", "bare"] | None:
        """What follows the number starting ``ahead`` on: a unit, a percent sign, nothing; None: no number."""
        span = self.number_span(ahead)
        if not span:
            return None
        after = ahead + span
        tok = self.peek(after)
        if tok.kind == "percent" or self.at(*PERCENT_WORDS, ahead=after) or self.at_phrase(("per", "cent"), after):
            return "percent"
        if tok.kind == "word" and tok.low in UNITS:
            return "unit"
        return "bare"

    def distance_ahead(self, ahead: int = 0) -> bool:
        """A distance comparison ("less than 5 cm", "within 10%", "5 cm or less") starts ``ahead`` on."""
        found = self.comparator_span(ahead, distance=True)
        if found is not None:
            return self.measure_kind(ahead + found[1]) in ("unit", "percent")
        return self.measure_kind(ahead) in ("unit", "percent")

    def comparison(self, *, distance: bool = False) -> str:
        found = self.comparator_span(distance=distance)
        if found is None:
            expected = ['"above N"', '"below N"', '"more than N"', '"less than N"', '"at least N"', '"at most N"']
            self.fail(expected, ("above", "below", "at", "more", "less", "over", "under"))
        self.i += found[1]
        return found[0]

    def or_bound(self) -> str | None:
        """The "or less" / "or more" after a value, if there is one (not "or more than", which joins)."""
        if self.at("or") and self.low(1) in OR_BOUNDS and not self.at("than", ahead=2):
            self.i += 2
            return OR_BOUNDS[self.tokens[self.i - 1].low]
        return None

    def percent(self) -> bool:
        """Consume "%", "percent", "per cent" or "pct" if it comes next."""
        if self.peek().kind == "percent" or self.at(*PERCENT_WORDS):
            self.i += 1
            return True
        if self.at_phrase(("per", "cent")):
            self.i += 2
            return True
        return False

    def measure(self) -> tuple[float, Literal["cm", "px", "frac"], Token]:
        """A distance: NUMBER and a unit (converted to cm or px) or a percentage (a fraction)."""
        amount = self.number("a distance such as 5 cm")
        tok = self.peek()
        if self.percent():
            return _tidy(amount / 100), "frac", tok
        unit = self.expect(UNITS, ['"cm"', '"mm"', '"m"', '"in"', '"px"', '"%"'])
        family, factor = UNITS[unit.low]
        return _tidy(amount * factor), family, unit

    def relation(self, read: Callable[[], _V], *, equality: bool, verb: bool) -> tuple[str, _V]:
        """[verb] comparison VALUE | [verb] VALUE "or" ("more" | "less" ...) | (counts) [verb] ["exactly"] VALUE.

        ``verb``: a noun came first ("the mug count exceeds 4"), so "is", "exceeds", "equals" may lead.
        ``equality``: a bare value means "equals" (counts only: nobody means a quality of exactly 40).
        """
        negate = False
        if verb:
            if self.accept("exceeds", "exceed"):
                return ">", read()
            if self.accept("doesn't") or (self.at("does") and self.at("not", ahead=1) and self.accept("does")):
                self.accept("not")
                self.expect(("exceed",), ['"exceed"'])
                return "<=", read()
            if equality and self.accept("equals"):
                return "==", read()
            lasting = self.lasting_verb()  # "the mug count has been above 4 for 2 minutes"
            if lasting is not None:
                negate = lasting[0] != (self.accept("not") is not None)
            elif self.accept("isn't"):
                negate = True
            elif self.accept("is"):
                negate = self.accept("not") is not None
            elif self.peek().kind != "symbol":
                self.fail(['"is"', '"exceeds"', '"is above N"', '"is below N"'], ("is", "exceeds", "equals"))
            if equality and self.at_phrase(("equal", "to")):
                self.i += 2
                return ("!=" if negate else "=="), read()
        if equality and self.accept("exactly"):
            op = "=="
        elif self.comparator_span() is not None:
            op = self.comparison()
        elif self.is_number():
            first = self.peek()
            value = read()
            bound = self.or_bound()
            if bound is None and not equality:
                expected = ['"below N"', '"above N"', '"N or less"', '"N or more"']
                self.fail_at(first, expected, message="a value needs a comparison, e.g. 'below 40'")
            op = bound or "=="
            return (_NEGATED[op] if negate else op), value
        else:
            op = self.comparison()
        return (_NEGATED[op] if negate else op), read()

    def metric_value(self, metric: str) -> int | float:
        """A quality (0 to 100) or confidence (0 to 1); a percentage is a share of that scale."""
        tok = self.peek()
        value = self.number("a number")
        scale = METRIC_SCALE[metric]
        if self.percent():
            value = value * scale / 100
        if value > scale:
            hint = "write 0.5 or 50%" if metric == "confidence" else "it is 0 to 100"
            message = f"{tok.text} is beyond the {metric} scale ({hint})"
            self.fail_at(tok, [f"a {metric} up to {scale}"], message=message)
        return _tidy(value)

    # -- sentence ------------------------------------------------------------------------------

    def trigger_ahead(self, ahead: int = 0) -> int:
        """Tokens of the trigger ("when", "as soon as") starting ``ahead`` on; 0: none."""
        for phrase in TRIGGER_PHRASES:
            if self.at_phrase(phrase, ahead):
                return len(phrase)
        return 0

    def trigger(self, has_lead: bool) -> None:
        span = self.trigger_ahead()
        if not span:
            expected = ['"when"', '"if"'] if has_lead else ['"alert"', '"warn"', '"notify me"', '"when"', '"if"']
            self.fail(expected, vocabulary=TRIGGERS)
        self.i += span

    def lead_ahead(self, ahead: int = 0) -> bool:
        """A lead closes the sentence here (after an optional comma and "then")."""
        if self.peek(ahead).kind == "comma":
            ahead += 1
        if self.at("then", ahead=ahead):
            ahead += 1
        return self.at(*TRAILING_LEADS, ahead=ahead)

    def sentence(self) -> ParsedSentence:
        lead: tuple[Severity, ActionType | None] | None = None
        if not self.trigger_ahead():
            lead = self.lead()
        self.trigger(lead is not None)
        self.lead_pending = lead is None
        condition = self.condition()
        sources: tuple[str, ...] | None = None
        cooldown: int | None = None
        duration: tuple[float | None, bool, int | None] | None = None
        resolve: Token | None = None
        closing_lead: Token | None = None
        closing_phrase = ""
        while True:
            if self.peek().kind == "comma" and (
                self.scope_ahead(1) or self.cooldown_ahead(1) or self.resolution_ahead(1)
            ):
                self.i += 1
            if self.scope_ahead():
                if sources is not None:
                    self.fail(["one scope per rule"], message="the cameras are given twice")
                sources = self.scope()
            elif self.cooldown_ahead():
                if cooldown is not None:
                    self.fail(["one cooldown per rule"], message="the cooldown is given twice")
                cooldown = self.cooldown()
            elif self.duration_ahead():
                self.check_duration_place(condition, duration, cooldown, closing_phrase)
                duration = self.duration()
            elif self.resolution_ahead():
                if resolve is not None:
                    self.fail(["one resolution per rule"], message="the resolution is given twice")
                resolve = self.peek()
                if self.transition is not None:
                    message = f"{self.transition.phrase!r} happens at one frame: it has no end to report"
                    self.fail(["the end of the sentence"], message=message)
                self.resolution()
            elif self.lead_pending and self.lead_ahead():
                if self.peek().kind == "comma":
                    self.i += 1
                self.accept("then")
                closing_lead = self.peek()
                lead = self.lead()
                closing_phrase = self.text[closing_lead.pos : self.tokens[self.i - 1].end]
                self.lead_pending = False
            else:
                break
        if self.peek().kind == "period":
            self.i += 1
        if self.peek().kind != "end":
            expected = ['"and"', '"or"', '"in camera NAME"', '"at most once per N minutes"', "the end of the sentence"]
            self.fail(expected, vocabulary=("and", "or", "in", "at", "camera", "once"))
        if self.lasting is not None and duration is None:
            message = f"{self.lasting_phrase!r} says that a state lasts: say how long, e.g. 'for 30 seconds'"
            self.fail_at(self.lasting, ['"for N seconds"', '"for N frames"'], message=message)
        severity, action = lead or ("warning", None)
        condition, temporal = self.temporal(condition, duration, resolve is not None)
        return ParsedSentence(condition, severity, action, sources or (), cooldown, temporal)

    def temporal(
        self, condition: Condition, duration: tuple[float | None, bool, int | None] | None, resolve: bool
    ) -> tuple[Condition, Temporal | None]:
        """The temporal clause the sentence gave, and the condition it applies to."""
        change = self.transition
        if change is None:
            if duration is None and not resolve:
                return condition, None
            for_s, strict, for_frames = duration or (None, False, None)
            return condition, Temporal("lasts", for_s, strict, for_frames, resolve)
        leaves = list(_flatten_all(condition))
        if change.kind == "becomes":  # only the mug's colour may come with the state that turns true
            extra = [leaf for leaf in leaves if leaf is not change.state and not _is_colour(leaf)]
            if extra:
                message = (
                    f"a change ({change.phrase!r}) is said of one state of a mug, with its colour at most;"
                    " other conditions would change its meaning"
                )
                expected = ['"a mug is put on a coaster"', '"a red mug is taken off its coaster"']
                self.fail_at(change.token, expected, message=message)
            return condition, Temporal("becomes")
        kept = [leaf for leaf in leaves if leaf is not change.state]  # appears / disappears: a filter
        filtered = kept[0] if len(kept) == 1 else AllOf(tuple(kept)) if kept else TRACKED
        return filtered, Temporal(change.kind)

    def check_duration_place(
        self,
        condition: Condition,
        duration: tuple[float | None, bool, int | None] | None,
        cooldown: int | None,
        closing_phrase: str,
    ) -> None:
        """Refuse a duration where it would be ambiguous or meaningless, pointing at its "for"."""
        expected = ["the end of the sentence"]
        if duration is not None:
            self.fail(["one duration per rule"], message="the duration is given twice")
        if self.transition is not None:
            message = (
                f"{self.transition.phrase!r} happens at one frame and does not last; a duration belongs to a"
                " state, e.g. 'is on a coaster for 5 seconds'"
            )
            self.fail(expected, message=message)
        if isinstance(condition, AnyOf):
            message = (
                "a duration after 'or' is ambiguous (does it cover every part, or the last one?);"
                " join with 'and' or write two rules"
            )
            self.fail(expected, message=message)
        if cooldown is not None:
            message = "a duration after the cooldown reads as part of it; put it right after the condition"
            self.fail(expected, message=message)
        if closing_phrase:
            message = (
                f"a duration after {closing_phrase!r} reads as how long the alert lasts;"
                " put it right after the condition"
            )
            self.fail(expected, message=message)

    def lead(self) -> tuple[Severity, ActionType | None]:
        tok = self.peek()
        if tok.kind != "word" or tok.low not in LEADS:
            expected = ['"alert"', '"warn"', '"notify me"', '"critical"', '"log"', '"when"', '"if"']
            self.fail(expected, [*LEADS, *TRIGGERS])
        self.i += 1
        severity, action = LEADS[tok.low]
        if tok.low in ("tell", "inform", "page"):
            self.expect(("me", "us"), ['"me"'])
        elif tok.low == "let":  # let me know
            self.expect(("me", "us"), ['"me"'])
            self.expect(("know",), ['"know"'])
        elif tok.low in ("raise", "send"):  # raise [a|an] [critical|warning|info] alert
            if tok.low == "send":
                self.accept("me", "us")
            self.accept("a", "an")
            level = self.accept(*LEVELS)
            if level is not None and level.low == "warning" and not self.at(*ALERT_NOUNS):
                return "warning", action  # "raise a warning": the level word is the noun
            noun = self.expect(ALERT_NOUNS, ['"alert"'])
            severity = LEVELS[level.low] if level is not None else ALERT_NOUNS[noun.low]
        else:
            self.accept("me", "us", "it")
            if tok.low == "critical":
                self.accept("alert", "alarm")
        return severity, action

    def condition(self) -> Condition:
        parts = [self.conjunction()]
        while self.joiner_ahead("or"):
            parts.append(self.conjunction())
        return parts[0] if len(parts) == 1 else AnyOf(tuple(parts))

    def conjunction(self) -> Condition:
        parts = [self.clause()]
        while self.joiner_ahead("and", "but"):
            parts.append(self.clause())
        return parts[0] if len(parts) == 1 else AllOf(tuple(parts))

    def joiner_ahead(self, *words: str) -> bool:
        """Consume ``[","] and`` (or ``or``) when a clause follows it; a comma alone joins nothing."""
        comma = 1 if self.peek().kind == "comma" else 0
        if self.at(*words, ahead=comma) and self.clause_ahead(comma + 1):
            joiner = self.peek(comma)
            if self.transition is not None:
                message = (
                    f"a change ({self.transition.phrase!r}) is said of a mug on its own;"
                    f" it cannot be joined with {joiner.text!r}"
                )
                self.fail_at(joiner, ["the end of the sentence", '"in camera NAME"'], message=message)
            self.joined = self.joined or joiner
            self.i += comma + 1
            return True
        return False

    def clause_ahead(self, ahead: int) -> bool:
        """Whether a clause starts ``ahead`` tokens on (so ``and``/``or`` there joins conditions)."""
        tok = self.peek(ahead)
        if tok.kind == "number":
            return True
        if tok.kind != "word":
            return False
        return (
            tok.low in _CLAUSE_WORDS
            or number_word(tok.low) is not None
            or self.quantity_ahead(ahead)
            or self.count_noun_ahead(ahead)
            or (self.mug_context and self.predicate_ahead(ahead))
            or self.its_attribute_ahead(ahead)
        )

    def its_attribute_ahead(self, ahead: int) -> bool:
        """ "... and its quality is below 40": the same mug's attribute, after a mug clause."""
        return self.mug_context and self.at("its", ahead=ahead) and self.at(*ATTRIBUTES, ahead=ahead + 1)

    def clause(self) -> Condition:
        if self.at("there", "there's") and self.there_mug_ahead():
            self.i += 1 if self.at("there's") else 2
            return self.mug_clause()
        if self.count_noun_ahead(0):
            return self.count_noun_clause()
        if self.at(*DETERMINERS) and self.at(*MUG_WORDS, *MUG_POSSESSIVES, *COLOURS, ahead=1):
            return self.mug_clause()
        if self.at("any") and (self.at("two", ahead=1) or self.peek(1).text == "2"):  # "any two mugs are ..."
            self.i += 1
            return self.count_clause(pair_only=True)
        if self.at(*_ALL, "mugs", "cups"):
            message = f"unexpected word {self.peek().text!r} (a rule fires when some mug matches: say 'a mug')"
            self.fail(['"a mug"', '"any mug"'], message=message)
        if self.its_attribute_ahead(0):
            self.i += 1
            return self.mug_attribute()
        if self.mug_context and self.predicate_ahead(0):
            self.accept("it")
            return self.mug_predicate()
        if self.at("there", "there's") or self.quantity_ahead(0) or self.is_number():
            return self.count_clause()
        if self.at("the", "verdict", "placement", "overall"):
            return self.verdict_clause()
        expected = ['"a mug is ..."', '"more than N mugs ..."', '"there are no coasters"', '"the verdict is ..."']
        return self.fail(expected, vocabulary=(*DETERMINERS, "mug", "there", "more", "fewer", "the", "verdict"))

    # -- mug clauses ---------------------------------------------------------------------------

    def there_mug_ahead(self) -> bool:
        """ "there is a mug that ..." / "there's a red mug within ..." (a mug clause, not a count)."""
        k = 1 if self.at("there's") else 2
        if k == 2 and not self.at("is", ahead=1):
            return False
        if not self.at("a", "an", "any", "some", ahead=k):
            return False
        return self.at(*MUG_WORDS, ahead=k + 1) or (self.at(*COLOURS, ahead=k + 1) and self.at(*MUG_WORDS, ahead=k + 2))

    def mug_clause(self) -> Condition:
        self.expect(DETERMINERS, ['"a"', '"any"'])
        colour = self.accept(*COLOURS)
        mug = self.expect((*MUG_WORDS, *MUG_POSSESSIVES), ['"mug"'])
        self.mug_context = True
        parts: list[Condition] = []
        if colour is not None:
            parts.append(_colour(colour.low))
        if mug.low in MUG_POSSESSIVES:  # "a mug's quality is below 40"
            parts.append(self.mug_attribute())
        else:
            if self.accept("coloured", "colored"):
                parts.append(_colour(self.expect(COLOURS, ['"red"', '"blue"']).low))
            elif self.accept("whose"):
                parts.append(self.mug_attribute())
                if not self.predicate_verb_ahead():
                    return parts[0] if len(parts) == 1 else AllOf(tuple(parts))
            # "a mug that is red is ...", "a mug without a coaster is ...": a relative clause, then the predicate
            relative = self.at("that", "which") or not self.predicate_verb_ahead()
            parts.append(self.mug_predicate())
            if relative and self.predicate_verb_ahead() and not self.at("that", "which"):
                parts.append(self.mug_predicate())
            if self.zone_ahead():  # "a mug is off its coaster in zone laptop", "a mug appears in zone desk"
                parts.append(self.zone_place())
        return parts[0] if len(parts) == 1 else AllOf(tuple(parts))

    def mug_attribute(self) -> Condition:
        """What follows "a mug's" or "whose": a measure and its relation to a value."""
        if self.accept("colour", "color"):
            negate = self.accept("isn't") is not None
            if not negate:
                self.expect(("is",), ['"is"'])
                negate = self.accept("not") is not None
            colour = _colour(self.expect(COLOURS, ['"red"', '"blue"']).low)
            return negate_condition(colour) if negate else colour
        if self.at("placement", "detection", *METRICS):
            metric = self.metric_name()
            op, value = self.relation(lambda: self.metric_value(metric), equality=False, verb=True)
            return Compare(METRICS[metric], op, value)
        if self.accept("distance", "gap"):
            self.expect(("to", "from"), ['"to"', '"from"'])
            kind = self.target()
        elif self.accept("edge"):
            self.expect(("distance",), ['"distance"'])
            kind = "edge_distance"
        elif self.accept("coaster"):
            self.expect(("offset",), ['"offset"'])
            kind = "coaster_offset"
        elif self.accept("offset"):
            self.expect(("from",), ['"from"'])
            kind = self.centre_target()
        else:
            expected = ['"quality"', '"confidence"', '"distance to the table edge"', '"coaster offset"', '"colour"']
            self.fail(expected, ("quality", "confidence", "distance", "colour", "color", "coaster", "offset"))
        op, (amount, family, unit) = self.relation(self.measure, equality=False, verb=True)
        return self.measured(kind, family, unit, op, amount)

    PREDICATE_WORDS = (
        "is", "isn't", "it", "it's", "that", "which", "that's", "stands", "sits", "rests", "lies", "not",
        "doesn't", "does", "on", "off", "without", "missing", "with", "has", "having", "over", "overhanging",
        "overhangs", "hanging", "hangs", "sticking", "sticks", "touching", "touches", *OFF_CENTRE, *PARTICIPLES,
        "hasn't", "becomes", *LASTING_VERBS[:2], *APPEAR_WORDS, *DISAPPEAR_WORDS, *ENTER_WORDS, *LEAVE_WORDS,
    )  # fmt: skip

    def predicate_ahead(self, ahead: int) -> bool:
        """Whether a mug predicate ("is on a coaster", "within 5 cm of ...") starts ``ahead`` on."""
        tok = self.peek(ahead)
        if tok.kind in ("symbol", "number") or self.is_number(ahead):
            return self.distance_ahead(ahead)
        if tok.kind != "word":
            return False
        word = tok.low
        if word in ("within", "closer", "nearer", "further", "farther") or self.zone_ahead(ahead):
            return True
        if self.comparator_span(ahead, distance=True) is not None:
            if self.distance_ahead(ahead):
                return True
            return word == "over" and not self.is_number(ahead + 1)  # "over the edge"
        if word == "on":  # "on a coaster" vs the scope "on camera x"
            return not self.at(*SCOPE_NOUNS, ahead=ahead + 1)
        return word in self.PREDICATE_WORDS

    def predicate_verb_ahead(self) -> bool:
        return self.at(
            "is", "isn't", "stands", "sits", "rests", "lies", "doesn't", "does", "has", "that", "which",
            "hasn't", "becomes", *LASTING_VERBS[:2], *APPEAR_WORDS, *DISAPPEAR_WORDS, *ENTER_WORDS, *LEAVE_WORDS,
        )  # fmt: skip

    def mug_predicate(self) -> Condition:
        negate = False
        self.accept("that", "which")
        lasting = self.lasting_verb()
        if lasting is not None:  # "stays off its coaster", "hasn't been on a coaster": a duration follows
            negate, been = lasting
            if been and self.at(*MOVES):  # "has been taken off its coaster": the state it was moved into
                state = self.moved_state()
                return negate_condition(state) if negate else state
        elif self.at("becomes"):
            return self.becomes()
        elif self.at(*ENTER_WORDS, *LEAVE_WORDS):
            return self.zone_move()
        elif self.at(*APPEAR_WORDS, *DISAPPEAR_WORDS):
            return self.appearance()
        elif self.accept("isn't"):
            negate = True
        elif self.accept("doesn't") or (self.at("does") and self.at("not", ahead=1) and self.accept("does")):
            self.accept("not")
            verb = self.expect(("stand", "sit", "rest", "lie", "have", "touch"), ['"stand"', '"have"'])
            if verb.low == "have":
                return negate_condition(self.with_state())
            if verb.low == "touch":
                return negate_condition(self.touching())
            negate = True
        else:
            be = self.accept("is", "it's", "that's", "stands", "sits", "rests", "lies")
            if be is not None and be.low in ("is", "it's", "that's") and self.change_ahead():
                return self.change()
        if self.accept("not"):
            negate = not negate
        if negate and lasting is None and self.change_ahead():
            message = "a change cannot be negated; say how long a state lasts, e.g. 'is not on a coaster for 5 seconds'"
            self.fail(['"on a coaster"', '"off its coaster"'], message=message)
        self.accept(*PARTICIPLES)
        state = self.mug_state()
        return negate_condition(state) if negate else state

    # -- rules over time -----------------------------------------------------------------------

    def lasting_verb(self) -> tuple[bool, bool] | None:
        """Consume "stays", "remains", "has been", "hasn't been", "has stayed" ...: the state must last.

        Returns (negated, whether "been" was said), or None when no such verb comes next. The first one
        is remembered: a sentence that says a state lasts must say how long.
        """
        tok = self.peek()
        if self.at(*LASTING_VERBS):
            self.i += 1
            found = (False, False)
        elif self.at("has", "have") and self.at(*PERFECT_PARTICIPLES, ahead=1):
            found = (False, self.low(1) == "been")
            self.i += 2
        elif self.at("has", "have") and self.at("not", ahead=1) and self.at(*PERFECT_PARTICIPLES, ahead=2):
            found = (True, self.low(2) == "been")
            self.i += 3
        elif self.at("hasn't", "haven't") and self.at(*PERFECT_PARTICIPLES, ahead=1):
            found = (True, self.low(1) == "been")
            self.i += 2
        else:
            return None
        if self.lasting is None:
            self.lasting, self.lasting_phrase = tok, self.text[tok.pos : self.tokens[self.i - 1].end]
        return found

    def change_ahead(self) -> bool:
        """After "is": a move ("put on a coaster", "taken off its coaster") or "no longer"."""
        return self.at(*MOVES) or self.at_phrase(("no", "longer"))

    def change(self) -> Condition:
        """ "is put [back] on a coaster", "is taken off its coaster", "is no longer seen" / "on its coaster"."""
        start = self.peek()
        if self.accept("no"):
            self.expect(("longer",), ['"longer"'])
            if self.accept(*GONE_WORDS) or self.in_view():
                return self.mark("disappears", start, TRACKED)
            self.accept(*PARTICIPLES)
            return self.mark("becomes", start, negate_condition(self.mug_state()))
        return self.mark("becomes", start, self.moved_state())

    def moved_state(self) -> Condition:
        """Where a move leaves a mug: "put [back] on a coaster", "taken off its coaster", "removed from it"."""
        verb = self.expect(MOVES, ['"put on a coaster"', '"taken off its coaster"'])
        if verb.low == "put":
            self.accept("back")
            if self.zone_ahead(into=True):  # "is put in zone laptop", "is put into the laptop zone"
                return self.zone_place()
            if not (self.at("on", "over", "overhanging", "hanging") or self.distance_ahead()):
                expected = ['"on a coaster"', '"within N cm of the table edge"', '"over the edge"']
                self.fail(expected, ("on", "within", "over"))
            return self.mug_state()
        if verb.low == "removed":
            self.expect(("from",), ['"from its coaster"'])
            if self.zone_ref_ahead():  # "is removed from zone laptop"
                return Compare(zone_field(self.zone_ref()), "==", False)
        elif self.at("out") and self.zone_ahead():  # "is taken out of zone laptop"
            return self.zone_place()
        else:
            self.expect(("off",), ['"off its coaster"'])
            self.accept("of")
        self.accept("a", "an", "its", "the")
        self.expect(("coaster",), ['"coaster"'])
        return Compare("mug.on_coaster", "==", False)

    def becomes(self) -> Condition:
        """ "becomes within 2 cm of the edge": the state turns true for the mug."""
        start = self.expect(("becomes",), ['"becomes"'])
        return self.mark("becomes", start, self.mug_state())

    def appearance(self) -> Condition:
        """ "appears", "disappears [from view]", "vanishes": a tracked mug is first / no longer seen."""
        start = self.expect((*APPEAR_WORDS, *DISAPPEAR_WORDS), ['"appears"', '"disappears"'])
        if start.low in APPEAR_WORDS:
            self.in_view()
            return self.mark("appears", start, TRACKED)
        if self.at("from") and self.at("view", "sight", "the", ahead=1):
            self.i += 1
            self.accept("the")
            self.expect(PLACES_AFTER_IN, ['"view"'])
        return self.mark("disappears", start, TRACKED)

    def in_view(self) -> bool:
        """Consume "in view", "in the picture", "in sight" if it comes next."""
        article = 1 if self.at("the", ahead=1) else 0
        if self.at("in") and self.at(*PLACES_AFTER_IN, ahead=1 + article):
            self.i += 2 + article
            return True
        return False

    def mark(self, kind: TemporalKind, start: Token, state: Condition) -> Condition:
        """Remember the change a predicate named; one per rule, and never joined with other clauses."""
        phrase = self.text[start.pos : self.tokens[self.i - 1].end]
        if self.transition is not None:
            self.fail_at(start, ["the end of the sentence"], message="a rule names one change at most")
        if self.joined is not None:
            message = (
                f"a change ({phrase!r}) is said of a mug on its own; it cannot be joined with {self.joined.text!r}"
            )
            self.fail_at(start, ['"a mug is put on a coaster"', '"a mug appears"'], message=message)
        self.transition = _Transition(kind, start, phrase, state)
        return state

    def duration_ahead(self, ahead: int = 0) -> bool:
        """A duration ("for 30 seconds") starts here: "for" that does not name cameras."""
        return self.at("for", ahead=ahead) and not self.scope_ahead(ahead)

    DURATION_EXAMPLES = ('"for 30 seconds"', '"for more than 2 minutes"', '"for at least 5 frames"')

    def duration(self) -> tuple[float | None, bool, int | None]:
        """ "for" [bound] NUMBER unit: (seconds, strictly longer, frames); frames are counted inclusively,
        so "more than 5 frames" is 6."""
        self.expect(("for",), ['"for"'])
        if self.at("the") and self.at("last", "past", ahead=1):  # "for the last 5 minutes"
            self.i += 2
        bound = self.peek()
        strict: bool | None = None
        if self.at("longer") and self.at("than", ahead=1):
            self.i += 2
            strict = True
        elif self.at("no") and self.at("shorter", ahead=1) and self.at("than", ahead=2):
            self.i += 3
            strict = False
        elif (found := self.comparator_span()) is not None:
            if found[0] in ("<", "<="):
                self.fail(self.DURATION_EXAMPLES, message=_UPPER_BOUND)
            self.i += found[1]
            strict = found[0] == ">"
        amount_tok = self.peek()
        if self.is_number():
            amount = self.number("a duration such as 30 seconds")
        elif self.at("a", "an") and self.at(*SINGULAR_UNITS, ahead=1):  # "for more than a minute"
            amount = 1
            self.i += 1
        else:
            bad = self.peek(1) if self.at("a", "an") else self.peek()
            message = None
            if bad.kind != "end" and not (bad.kind == "word" and bad.low in HINTS):
                message = f"unexpected {self.describe(bad)} (a duration is a number and a unit, e.g. 'for 30 seconds')"
            self.fail_at(bad, self.DURATION_EXAMPLES, NUMBER_WORDS, message=message)
        self.accept("consecutive")
        unit = self.expect((*TIME_UNITS, *FRAME_UNITS), ['"seconds"', '"minutes"', '"hours"', '"frames"'])
        frames = unit.low in FRAME_UNITS
        if frames and self.at_phrase(("in", "a", "row")):
            self.i += 3
        if self.at("or") and self.at("more", "longer", "less", "shorter", "fewer", ahead=1):
            if self.low(1) in ("less", "shorter", "fewer"):
                self.fail(self.DURATION_EXAMPLES, message=_UPPER_BOUND)
            if strict is not None:
                self.fail(
                    ["the end of the sentence"], message=f"the bound is given twice ({bound.text!r} and 'or more')"
                )
            self.i += 2
            strict = False
        if amount <= 0:
            message = "a duration must be more than 0 (without 'for …' a rule fires from the first frame)"
            self.fail_at(amount_tok, self.DURATION_EXAMPLES, message=message)
        if frames:
            if isinstance(amount, float) and not amount.is_integer():
                self.fail_at(
                    amount_tok, ["a whole number of frames"], message=f"{amount_tok.text} is not a whole number"
                )
            count = int(amount) + (1 if strict else 0)
            if count > MAX_FOR_FRAMES:
                self.fail_at(amount_tok, [f"at most {MAX_FOR_FRAMES} frames"], message=f"{count} frames is too long")
            return None, False, count
        seconds = _tidy(amount * TIME_UNITS[unit.low])
        if seconds > MAX_FOR_S:
            message = f"{amount_tok.text} {unit.text} is too long (at most {MAX_FOR_S:g} seconds, 7 days)"
            self.fail_at(amount_tok, ['"for at most 7 days"'], message=message)
        return float(seconds), bool(strict), None

    def resolution_ahead(self, ahead: int = 0) -> bool:
        """ "and tell me when it is resolved", "and when it clears", "until resolved" starts here."""
        if self.at("until", ahead=ahead):
            return True
        if not self.at("and", ahead=ahead):
            return False
        k = ahead + (2 if self.at("also", ahead=ahead + 1) else 1)
        if self.at("once", ahead=k):
            return not self.cooldown_ahead(k)
        return self.at(*RESOLVE_LEADS, "when", ahead=k) or self.at_phrase(("as", "soon", "as"), k)

    def resolution(self) -> None:
        """ "and" ["also"] [tell me ["again"]] ("when" | "once" | "if" | "as soon as") "it" resolved | "until" …"""
        if self.accept("until"):
            if self.accept("it"):
                self.resolved()
            elif self.accept("it's"):
                self.expect(RESOLVED_WORDS, ['"resolved"', '"cleared"'])
            else:
                self.expect(RESOLVED_WORDS[:3], ['"resolved"', '"cleared"', '"it clears"'])
            return
        self.expect(("and",), ['"and"'])
        self.accept("also")
        if self.at(*RESOLVE_LEADS):
            lead = self.expect(RESOLVE_LEADS, ['"tell me"'])
            if lead.low in ("tell", "inform", "let"):
                self.expect(("me", "us"), ['"me"'])
                if lead.low == "let":
                    self.expect(("know",), ['"know"'])
            else:
                self.accept("me", "us")
            self.accept("again", "too", "also")
        if self.at_phrase(("as", "soon", "as")):
            self.i += 3
        else:
            self.expect(RESOLVE_TRIGGERS, ['"when"', '"once"'])
        if self.accept("it's"):
            self.expect(RESOLVED_WORDS, ['"resolved"', '"cleared"'])
            return
        self.expect(("it",), ['"it"'])
        self.resolved()

    def resolved(self) -> None:
        """After "it": "is resolved", "gets fixed", "has been cleared", "has ended", "clears", "ends"."""
        if self.accept("is", "gets"):
            self.expect(RESOLVED_WORDS, ['"resolved"', '"cleared"', '"over"'])
        elif self.accept("has"):
            if self.accept("been"):
                self.expect(RESOLVED_WORDS, ['"resolved"', '"cleared"'])
            else:
                self.expect(ENDED_WORDS, ['"ended"', '"cleared"', '"been resolved"'])
        else:
            self.expect(ENDING_VERBS, ['"is resolved"', '"clears"', '"ends"'])

    # -- zones -------------------------------------------------------------------------------

    ZONE_EXAMPLES = ('"in zone laptop"', '"in the laptop zone"', '"outside zone laptop"')

    def zone_ahead(self, ahead: int = 0, *, into: bool = False) -> bool:
        """A zone place ("in zone laptop", "outside the desk zone", "out of zone x") starts ``ahead`` on.

        Only with the word "zone" in reach, so "in camera x", "in view" and "within 5 cm" keep their
        meaning; ``into``: after "put", "into" says "in" too.
        """
        word = self.low(ahead)
        if word in INSIDE_WORDS or word == "outside" or (into and word == "into"):
            k = ahead + (2 if word == "outside" and self.at("of", ahead=ahead + 1) else 1)
        elif word == "out" and self.at("of", ahead=ahead + 1):
            k = ahead + 2
        else:
            return False
        return self.zone_ref_ahead(k)

    def zone_ref_ahead(self, ahead: int = 0) -> bool:
        """ "zone NAME", "the zone NAME" or "the NAME zone" (a longer name too, to refuse it) starts here."""
        if self.at(*ZONE_WORDS, "zones", ahead=ahead):
            return True
        if not self.at(*_ZONE_ARTICLES, ahead=ahead):
            return False
        if self.at(*ZONE_WORDS, "zones", ahead=ahead + 1) or self.peek(ahead + 1).kind == "string":
            return True
        return self.zone_word_within_at(ahead + 1, 4) or self.at("zones", ahead=ahead + 2)

    def zone_word_within(self, reach: int) -> bool:
        """ "zone" comes within ``reach`` tokens, past words and numbers only (a name of several words)."""
        return self.zone_word_within_at(0, reach)

    def zone_word_within_at(self, ahead: int, reach: int) -> bool:
        for k in range(ahead, ahead + reach):
            tok = self.peek(k)
            if tok.kind == "word" and tok.low in ZONE_WORDS:
                return True
            if tok.kind not in ("word", "number") or tok.low in _ZONE_STOPS:
                return False
        return False

    def zone_place(self) -> Compare:
        """In a zone ("in", "inside", "within", after "put" "into") or not ("outside [of]", "out of")."""
        if self.accept("outside"):
            self.accept("of")
            inside = False
        elif self.accept("out"):
            self.expect(("of",), ['"of"'])
            inside = False
        else:
            self.expect((*INSIDE_WORDS, "into"), self.ZONE_EXAMPLES)
            inside = True
        return Compare(zone_field(self.zone_ref()), "==", inside)

    def zone_ref(self) -> str:
        """ "zone" NAME | "the" "zone" NAME | "the" NAME "zone": the name of one of the camera's zones."""
        tok = self.peek()
        if self.at("zones"):
            message = "unexpected word 'zones' (one zone at a time: 'in zone laptop or in zone desk')"
            self.fail(['"zone NAME"', '"the NAME zone"'], message=message)
        if self.at(*_ZONE_ARTICLES) and not self.at("the"):
            message = f"unexpected word {tok.text!r} (name the zone: 'in zone laptop' or 'in the laptop zone')"
            self.fail(['"zone NAME"', '"the NAME zone"'], message=message)
        if self.accept(*ZONE_WORDS):
            return self.zone_name()
        self.expect(("the",), ['"zone NAME"', '"the NAME zone"'])
        if self.accept(*ZONE_WORDS):
            return self.zone_name()
        name = self.zone_name()
        if self.at("zones"):
            message = "unexpected word 'zones' (one zone at a time: 'in the laptop zone or in the desk zone')"
            self.fail(['"zone"'], message=message)
        if not self.at(*ZONE_WORDS) and self.zone_word_within(3):  # "the front door zone"
            message = f"a zone's name is one word (letters, digits, '_' and '-'), e.g. '{name}-{self.peek().text}'"
            self.fail(['"zone"'], message=message)
        self.expect(ZONE_WORDS, ['"zone"'])
        return name

    def zone_name(self) -> str:
        """A zone's name as written (its case kept): a word, glued words and numbers ("2nd-desk"), or quoted."""
        tok = self.peek()
        expected = ["a zone name such as laptop or desk-2"]
        if tok.kind == "string":
            name, end = tok.text, tok.end
            self.i += 1
        elif tok.kind == "number" or (tok.kind == "word" and tok.low not in _ZONE_STOPS):
            parts, end = [tok.text], tok.end
            self.i += 1
            while self.peek().kind in ("word", "number") and self.peek().pos == end:
                parts.append(self.peek().text)
                end = self.peek().end
                self.i += 1
            name = "".join(parts)
        else:
            message = None
            if tok.kind == "word":
                message = (
                    f"unexpected word {tok.text!r} (the zone's name comes here;"
                    f' quote a name that is a word of the grammar: "{tok.text}")'
                )
            self.fail(expected, message=message)
        if len(name) > MAX_ZONE_CHARS:
            message = f"the zone name is {len(name)} characters long; at most {MAX_ZONE_CHARS}"
            raise RuleSyntaxError(self.text, tok.pos, message, expected, length=end - tok.pos)
        if not ZONE_NAME.fullmatch(name):
            what = "the zone name is empty" if not name else f"{name!r} is not a zone name"
            message = f"{what}: a zone name is letters, digits, '_' and '-', starting with a letter or digit"
            raise RuleSyntaxError(self.text, tok.pos, message, expected, length=end - tok.pos)
        return name

    def zone_move(self) -> Condition:
        """ "enters zone laptop" (becomes in it), "leaves" / "exits the laptop zone" (becomes out of it).

        A change like "is put on a coaster": it needs the mug's value in its previous frame, so a mug
        first seen inside a zone has not entered it, and one that leaves the picture has not left it."""
        start = self.expect((*ENTER_WORDS, *LEAVE_WORDS), ['"enters zone NAME"', '"leaves zone NAME"'])
        zone = self.zone_ref()
        return self.mark("becomes", start, Compare(zone_field(zone), "==", start.low in ENTER_WORDS))

    MUG_STATES = (
        '"on a coaster"', '"off a coaster"', '"within N cm of the table edge"', '"closer than N cm to another mug"',
        '"further than N cm from the table edge"', '"at least N cm from another mug"', '"over the edge"',
        '"more than N cm from the centre of its coaster"', '"with quality below N"', '"in zone NAME"',
    )  # fmt: skip

    def mug_state(self) -> Condition:
        vocabulary = ("on", "off", "without", "within", "closer", "nearer", "less", "further", "farther", "more",
                      "at", "over", "overhanging", "hanging", "with", "has", "coaster", "not", "inside",
                      "outside")  # fmt: skip
        if self.zone_ahead():
            return self.zone_place()
        if self.accept("on"):
            self.accept("a", "an", "its", "the")
            self.expect(("coaster",), ['"coaster"'])
            return Compare("mug.on_coaster", "==", True)
        if self.at(*OFF_CENTRE) or (self.at("off") and self.at(*CENTRES, ahead=1)):
            return self.off_centre()
        if self.accept("off", "without", "missing"):
            self.accept("a", "an", "its", "the")
            self.expect(("coaster",), ['"coaster"'])
            return Compare("mug.on_coaster", "==", False)
        if self.accept("with", "has", "having"):
            return self.with_state()
        if self.at(*COLOURS):
            return _colour(self.expect(COLOURS, ()).low)
        if self.at("touching", "touches"):
            self.i += 1
            return self.touching()
        if self.accept("overhanging", "overhangs"):
            if self.at("the", "its", "edge", *SURFACES, *SURFACE_POSSESSIVES):
                self.edge_target()
            return Compare("mug.edge_distance_px", "<", 0)
        if self.accept("hanging", "hangs", "sticking", "sticks"):
            if self.tokens[self.i - 1].low.startswith("stick"):
                self.expect(("out",), ['"out"'])
            self.expect(("over", "off", "past"), ['"over"'])
            self.edge_target()
            return Compare("mug.edge_distance_px", "<", 0)
        if self.at("over") and not self.distance_ahead():
            self.i += 1
            self.edge_target()
            return Compare("mug.edge_distance_px", "<", 0)
        if self.comparator_span(distance=True) is not None or self.is_number():
            return self.distance()
        return self.fail(self.MUG_STATES, vocabulary=vocabulary)

    def with_state(self) -> Condition:
        """After "with" / "has": a coaster ("has no coaster") or a metric ("with quality below 40")."""
        if self.accept("no"):
            self.expect(("coaster",), ['"coaster"'])
            return Compare("mug.on_coaster", "==", False)
        if self.at("coaster") or (self.at("a", "an", "its") and self.at("coaster", ahead=1)):
            self.accept("a", "an", "its")
            self.i += 1
            return Compare("mug.on_coaster", "==", True)
        self.accept("a", "an")
        metric = self.metric_name()
        self.accept("of")
        op, value = self.relation(lambda: self.metric_value(metric), equality=False, verb=False)
        return Compare(METRICS[metric], op, value)

    def metric_name(self) -> str:
        """ "quality", "placement quality", "confidence", "detection confidence" [ "score" | "level" ]."""
        if self.accept("placement"):
            name = self.expect(("quality",), ['"quality"'])
        elif self.accept("detection"):
            name = self.expect(("confidence",), ['"confidence"'])
        else:
            name = self.expect(METRICS, ['"quality"', '"confidence"', '"a coaster"'])
        self.accept("score", "level", "value")
        return name.low

    def touching(self) -> Compare:
        """ "touching another mug": the gap between footprints is 0 when they touch or overlap."""
        at = self.peek()
        if self.target() != "nearest_mug":
            self.fail_at(at, ['"another mug"'], message="only another mug can be touched (the gap to it is 0)")
        return Compare("mug.nearest_mug_px", "<=", 0)

    def off_centre(self) -> Compare:
        """ "off-centre [on its coaster] by more than 2 cm": how far the mug sits from its coaster's centre."""
        self.i += 1 if self.at(*OFF_CENTRE) else 2
        if self.accept("on"):
            self.accept("its", "the", "a", "an")
            self.expect(("coaster",), ['"coaster"'])
        self.expect(("by",), ['"by more than N cm"'])
        op = self.comparison(distance=True)
        amount, family, unit = self.measure()
        return self.measured("coaster_offset", family, unit, op, amount)

    def distance(self) -> Compare:
        """comparison DISTANCE ["away"] prep target | DISTANCE "or" ("less" | "more") ["away"] prep target."""
        first = self.peek()
        found = self.comparator_span(distance=True)
        if found is not None:
            self.i += found[1]
            amount, family, unit = self.measure()
            op = found[0]
        else:
            amount, family, unit = self.measure()
            bound = self.or_bound()
            if bound is None:
                self.fail_at(
                    first,
                    ['"within N cm of"', '"less than N cm from"', '"N cm or less from"'],
                    message="a distance needs a comparison ('within', 'less than', 'at least')",
                )
            op = bound
        self.accept("away")
        if self.at(*OFF_CENTRE):  # "more than 2 cm off-centre"
            self.i += 1
            return self.measured("coaster_offset", family, unit, op, amount)
        if self.accept("off"):  # "more than 30% off its coaster's centre"
            return self.measured(self.centre_target(bare=True), family, unit, op, amount)
        prepositions = ("of", "from", "to") if first.low == "within" else ("from", "to")
        self.expect(prepositions, [f'"{p}"' for p in prepositions])
        return self.measured(self.target(), family, unit, op, amount)

    def measured(self, kind: str, family: str, unit: Token, op: str, amount: float) -> Compare:
        """The field for a distance to ``kind``: cm, px or (for a percentage) the relative ``_frac`` field."""
        if family == "frac" and kind == "nearest_mug":
            self.fail_at(
                unit,
                ['"cm"', '"mm"', '"in"', '"px"'],
                message="a percentage is known for the table edge and the coaster centre, not between mugs",
            )
        return Compare(f"mug.{kind}_{family}", op, amount)

    def target(self) -> str:
        """What a distance is measured to: "edge_distance", "nearest_mug" or "coaster_offset"."""
        self.accept("the", "its", "a", "an", "any")
        if self.at_phrase(("each", "other")) or self.at_phrase(("one", "another")):
            self.i += 2
            return "nearest_mug"
        if self.at(*MUG_TARGET_WORDS, *NEIGHBOURS, *MUG_WORDS):
            described = False
            while self.accept(*MUG_TARGET_WORDS):
                described = True
            if self.accept(*NEIGHBOURS) or (described and self.accept("one")):  # "another one"
                return "nearest_mug"
            self.expect((*MUG_WORDS, "mugs", "cups"), ['"mug"'])
            return "nearest_mug"
        if self.at(*CENTRES, "coaster", "coaster's"):
            return self.centre_target()
        self.edge_target(after_the=True)
        return "edge_distance"

    def centre_target(self, bare: bool = False) -> str:
        """ "the centre of its coaster", "its coaster's centre" (``bare``: "off centre" says it all)."""
        self.accept("the", "its")
        if self.accept(*CENTRES):
            if self.accept("of"):
                self.accept("its", "the", "a", "an")
                self.expect(("coaster",), ['"coaster"'])
            elif not bare:
                self.fail(['"of its coaster"'])
            return "coaster_offset"
        self.expect(("coaster's", "coaster"), ['"the centre of its coaster"', '"its coaster\'s centre"'])
        if not self.accept(*CENTRES):  # the coaster's centre, or its rim?
            message = "the sentence ends too early (a distance to a coaster is to its centre: 'its coaster's centre')"
            self.fail(['"centre"'], CENTRES, message=message if self.peek().kind == "end" else None)
        return "coaster_offset"

    def edge_target(self, after_the: bool = False) -> None:
        if not after_the:
            self.accept("the", "its")
        expected = ['"the table edge"', '"the edge of the table"', '"another mug"', '"the centre of its coaster"']
        if self.accept(*SURFACES, *SURFACE_POSSESSIVES):
            self.expect(("edge",), ['"edge"'])
            return
        self.expect(("edge",), expected)
        if self.at("of") and self.at("the", "its", "a", *SURFACES, ahead=1):
            self.i += 1
            self.accept("the", "its", "a")
            self.expect(SURFACES, ['"table"'])

    # -- image clauses -------------------------------------------------------------------------

    def quantity_ahead(self, ahead: int) -> bool:
        tok = self.peek(ahead)
        if tok.kind not in ("word", "symbol"):
            return False
        low = tok.low
        if low == "not":
            found = self.comparator_span(ahead + 1)
            return found is not None and self.measure_kind(ahead + 1 + found[1]) == "bare"
        if low == "exactly":
            return self.is_number(ahead + 1)
        found = self.comparator_span(ahead)
        if found is not None:
            return self.measure_kind(ahead + found[1]) == "bare"
        return low == "no" or (low in MORE_WORDS + LESS_WORDS and self.low(ahead + 1) in COUNT_THINGS)

    def count_clause(self, pair_only: bool = False) -> Condition:
        start = self.peek()
        if self.at("there", "there's"):
            none = False  # "there aren't any coasters", "there is not a coaster"
            if not self.accept("there's"):
                self.i += 1
                none = self.accept("isn't", "aren't") is not None
                lasting = None if none else self.lasting_verb()  # "there have been no coasters for 5 minutes"
                if lasting is not None:
                    none = lasting[0]
                elif not none:
                    self.expect(("is", "are"), ['"are"'])
            if not none and self.at("not") and self.at("any", "a", "an", ahead=1):
                self.i += 1
                none = True
            if none:
                self.accept("any", "a", "an")
                thing = self.expect(COUNT_THINGS, ['"mugs"', '"coasters"', '"tables"'])
                self.place()
                return Compare(COUNT_THINGS[thing.low], "==", 0)
        op, count, plain = self.quantity()
        thing = self.expect(COUNT_THINGS, ['"mugs"', '"coasters"', '"tables"'])
        field = COUNT_THINGS[thing.low]
        if field == "image.mug_count" and self.pair_ahead():
            if not (plain and count == 2):
                message = "a distance between mugs is said of two mugs, e.g. 'two mugs are closer than 2 cm'"
                self.fail_at(start, ['"two mugs"'], message=message)
            return self.pair()
        if pair_only:
            self.fail(['"closer than N cm"', '"within N cm of each other"'])
        if plain:
            op = self.or_bound() or op
        if self.lasting_verb() is None:  # "more than 4 mugs have been on the table for 2 minutes"
            self.accept("is", "are", "appear", "appears")
        self.place()
        if field == "image.mug_count" and not (self.scope_ahead() or self.cooldown_ahead()) and self.predicate_ahead(0):
            message = "a count is of every mug in view, not of mugs in some state; say 'a mug is ...'"
            self.fail(['"and"', '"or"', "the end of the sentence"], message=message)
        return Compare(field, op, count)

    def quantity(self) -> tuple[str, int, bool]:
        """(operator, count, whether it was a bare number: "two mugs" may be the pair form)."""
        if self.at("no") and self.comparator_span() is None:
            self.i += 1
            return "==", 0, False
        negate = self.accept("not") is not None
        if self.accept("exactly"):
            return "==", int(self.number("a count", integer=True)), False
        if self.is_number() and not negate:
            count = int(self.number("a count", integer=True))
            if self.at("or") and self.low(1) in OR_BOUNDS and not self.at("than", ahead=2):
                return self.or_bound() or "==", count, False
            return "==", count, True
        if self.low() in MORE_WORDS + LESS_WORDS and self.low(1) in COUNT_THINGS:
            self.fail(['"more than N mugs"'], message="a count is compared with a number, not with another count")
        op = self.comparison()
        count = int(self.number("a count", integer=True))
        return (_NEGATED[op] if negate else op), count, False

    def pair_ahead(self) -> bool:
        k = 1 if self.at("are", "stand", "sit") else 0
        return self.at("touching", "touch", ahead=k) or self.distance_ahead(k)

    def pair(self) -> Compare:
        """ "two mugs are closer than 1.5 cm [apart | to each other]": some mug's nearest neighbour is."""
        self.accept("are", "stand", "sit")
        if self.accept("touching", "touch"):
            if self.accept("each", "one"):
                self.expect(("other", "another"), ['"other"'])
            return Compare("mug.nearest_mug_px", "<=", 0)
        first = self.peek()
        expected = ['"closer than N cm"', '"within N cm of each other"', '"N cm or less apart"']
        found = self.comparator_span(distance=True)
        if found is not None:
            self.i += found[1]
            op = found[0]
            amount, family, unit = self.measure()
        else:  # "two mugs are 2 cm or less apart"
            amount, family, unit = self.measure()
            op = self.or_bound() or ""
            if not op:
                self.fail_at(first, expected, message="a distance needs a comparison ('closer than', 'within')")
        if op in (">", ">="):
            message = "only an upper bound ('closer than', 'within', 'less than') can be said of two mugs"
            self.fail_at(first, expected, message=message)
        self.accept("away")
        if not self.accept("apart") and self.accept("of", "from", "to"):
            if not (self.at_phrase(("each", "other")) or self.at_phrase(("one", "another"))):
                self.fail(['"each other"'], message="two mugs are close to each other, not to something else")
            self.i += 2
        return self.measured("nearest_mug", family, unit, op, amount)

    def place(self) -> None:
        for _ in range(2):  # "visible on the table"
            article = 1 if self.at("the", "a", ahead=1) else 0
            if (self.at("on") and self.at(*SURFACES, "tables", ahead=1 + article)) or (
                self.at("in") and self.at(*PLACES_AFTER_IN, ahead=1 + article)
            ):
                self.i += 2 + article
            elif not self.accept(*PLACE_WORDS):
                return

    def count_noun_ahead(self, ahead: int) -> bool:
        """ "the mug count", "the number of coasters" (a count as a noun, compared with a verb)."""
        k = ahead + (1 if self.at("the", ahead=ahead) else 0)
        if self.at("number", "count", ahead=k) and self.at("of", ahead=k + 1):
            return self.at(*COUNT_THINGS, ahead=k + 2)
        return self.at(*COUNT_NOUNS, ahead=k) and self.at("count", ahead=k + 1)

    def count_noun_clause(self) -> Compare:
        self.accept("the")
        if self.accept("number", "count"):
            self.expect(("of",), ['"of"'])
            field = COUNT_THINGS[self.expect(COUNT_THINGS, ['"mugs"']).low]
        else:
            field = COUNT_NOUNS[self.expect(COUNT_NOUNS, ['"mug"']).low]
            self.expect(("count",), ['"count"'])
        self.place()
        op, count = self.relation(lambda: int(self.number("a count", integer=True)), equality=True, verb=True)
        return Compare(field, op, count)

    def verdict_clause(self) -> Condition:
        self.accept("the")
        self.accept("overall")
        word = self.expect(("verdict", "placement"), ['"verdict"'])
        if word.low == "placement":
            self.accept("verdict")
        negate = False
        lasting = self.lasting_verb()  # "the verdict has been violation for 10 minutes"
        if lasting is not None:
            negate = lasting[0] != (self.accept("not") is not None)
        elif self.accept("isn't"):
            negate = True
        else:
            self.expect(("is",), ['"is"'])
            negate = self.accept("not") is not None
        if not negate and self.accept("anything"):  # "anything but ok", "anything other than ok"
            if not self.accept("but"):
                self.expect(("other",), ['"but"', '"other than"'])
                self.expect(("than",), ['"than"'])
            negate = True
        either = self.accept("either")
        values = [self.verdict_word()]
        while self.at("or") and self.at(*VERDICTS, ahead=2 if self.at("a", "an", ahead=1) else 1):
            or_tok = self.peek()
            self.i += 1
            if negate:
                message = "'not A or B' is ambiguous; say 'the verdict is not A and the verdict is not B'"
                self.fail_at(or_tok, ['"and"'], message=message)
            values.append(self.verdict_word())
        if either is not None and len(values) < 2:
            self.fail(['"or"'])
        unique = tuple(dict.fromkeys(values))
        if len(unique) > 1:
            return Compare("image.verdict", "in", unique)
        return Compare("image.verdict", "!=" if negate else "==", unique[0])

    def verdict_word(self) -> str:
        self.accept("a", "an")
        return VERDICTS[self.expect(VERDICTS, ['"ok"', '"warning"', '"violation"']).low]

    # -- modifiers -----------------------------------------------------------------------------

    def scope_ahead(self, ahead: int = 0) -> bool:
        offset = ahead + (1 if self.at("only", ahead=ahead) else 0)
        return self.at(*SCOPE_PREPS, ahead=offset) and self.at(*SCOPE_NOUNS, ahead=offset + 1)

    def scope(self) -> tuple[str, ...]:
        self.accept("only")
        self.expect(SCOPE_PREPS, ['"in"'])
        self.expect(SCOPE_NOUNS, ['"camera"'])
        names = [self.name()]
        while True:
            if self.peek().kind == "comma":
                if (
                    self.scope_ahead(1)
                    or self.cooldown_ahead(1)
                    or self.resolution_ahead(1)
                    or (self.lead_pending and self.lead_ahead())
                ):
                    break
                self.i += 1
                self.accept("and", "or")
            elif self.at("and", "or") and self.peek(1).kind in ("word", "number", "string"):
                if (self.clause_ahead(1) and self.peek(1).kind != "string") or self.resolution_ahead():
                    break
                self.i += 1
            else:
                break
            names.append(self.name())
        if self.at("only") and not self.scope_ahead():  # "in camera kitchen-1 only"
            self.i += 1
        return tuple(dict.fromkeys(names))

    def name(self) -> str:
        tok = self.peek()
        if tok.kind not in ("word", "number", "string"):
            self.fail(['a camera name (quote it if it has spaces: "front door")'])
        self.i += 1
        if tok.kind == "string":
            if not tok.text.strip():
                self.i -= 1
                self.fail(["a camera name"], message="the camera name is empty")
            return tok.text
        parts, end = [tok.text], tok.end
        while self.peek().kind in ("word", "number") and self.peek().pos == end:  # "1st-floor" = 1 + st-floor
            parts.append(self.peek().text)
            end = self.peek().end
            self.i += 1
        return "".join(parts)

    def cooldown_ahead(self, ahead: int = 0) -> bool:
        return (
            (self.at("at", ahead=ahead) and self.at("most", ahead=ahead + 1) and self.at("once", ahead=ahead + 2))
            or (self.at("no", "not", ahead=ahead) and self.at_phrase(("more", "than", "once"), ahead + 1))
            or self.at("once", ahead=ahead)
            or (
                self.at("with", ahead=ahead)
                and (self.at("cooldown", ahead=ahead + 1) or self.at_phrase(("a", "cooldown"), ahead + 1))
            )
        )

    def cooldown(self) -> int:
        if self.accept("with"):
            self.accept("a")
            self.expect(("cooldown",), ['"cooldown"'])
            self.expect(("of",), ['"of"'])
            amount = self.number("a duration", integer=True)
        else:
            if self.accept("at"):
                self.expect(("most",), ['"most"'])
            elif self.accept("no", "not"):
                self.i += 2  # "more than", checked by cooldown_ahead
            self.expect(("once",), ['"once"'])
            self.expect(("every", "per", "a", "an"), ['"every"', '"per"'])
            amount = self.number("a duration", integer=True) if self.is_number() else 1
        unit = self.expect(TIME_UNITS, ['"seconds"', '"minutes"', '"hours"'])
        return int(amount) * TIME_UNITS[unit.low]


_UPPER_BOUND = (
    "a rule waits until its condition has held that long, so a duration is a lower bound:"
    " say 'for more than N seconds' or 'for at least N seconds'"
)


def _colour(name: str) -> Compare:
    return Compare("mug.attributes.colour", "==", "grey" if name == "gray" else name)


def negate_condition(node: Condition) -> Condition:
    """Logical not that keeps comparisons readable: ``not (x < 5)`` becomes ``x >= 5``.

    Equivalent under the three-valued logic the evaluator uses, because a null stays unknown either way.
    """
    if isinstance(node, Compare) and node.op in _NEGATED:
        if isinstance(node.value, bool) and node.op == "==":
            return Compare(node.field, "==", not node.value)
        return Compare(node.field, _NEGATED[node.op], node.value)
    if isinstance(node, Not):
        return node.child
    return Not(node)


def _tidy(value: float) -> int | float:
    """5.0 -> 5, 0.30000000000000004 -> 0.3: thresholds read the way the user wrote them."""
    rounded = round(float(value), 6)
    return int(rounded) if rounded.is_integer() else rounded


def parse_sentence(text: str) -> ParsedSentence:
    """Parse a sentence; raises :class:`RuleSyntaxError` (with position and caret) when it cannot."""
    if not isinstance(text, str):
        raise RuleSyntaxError("", 0, f"a rule sentence must be text, got {type(text).__name__}")
    if not text.strip():
        raise RuleSyntaxError(text, 0, "the rule sentence is empty")
    if len(text) > MAX_TEXT_CHARS:
        raise RuleSyntaxError(
            text[:80] + "...", 80, f"the sentence is {len(text)} characters long; at most {MAX_TEXT_CHARS}"
        )
    return _Parser(text).sentence()


def compile_sentence(
    text: str,
    *,
    rule_id: str | None = None,
    name: str | None = None,
    severity: Severity | None = None,
    action: ActionType | None = None,
    target: str | None = None,
    sources: Iterable[str] = (),
    cooldown_s: int | None = None,
    enabled: bool = True,
    allowlist: tuple[str, ...] | None = None,
    now: datetime | None = None,
) -> Rule:
    """Sentence -> validated :class:`Rule`. Keyword arguments override what the sentence says."""
    parsed = parse_sentence(text)
    text = " ".join(text.split())
    extra = tuple(sources)
    obj: dict[str, Any] = {
        "rule_id": rule_id,
        "name": name or text[:120],
        "enabled": enabled,
        "text": text,
        "sources": list(dict.fromkeys((*parsed.sources, *extra))),
        "condition": rule_to_record(_shell(parsed.condition))["condition"],
        "severity": severity or parsed.severity,
        "action": {"type": action or parsed.action or "publish", "target": target},
        "cooldown_s": cooldown_s
        if cooldown_s is not None
        else (parsed.cooldown_s if parsed.cooldown_s is not None else 60),
        "temporal": temporal_to_obj(parsed.temporal),
    }
    try:
        return rule_from_obj(obj, allowlist=allowlist, now=now)
    except RuleValidationError as exc:
        if exc.path.startswith(("condition", "sources", "temporal")) or exc.path == "cooldown_s":
            raise RuleSyntaxError(text, 0, f"the sentence reads, but the rule is not valid: {exc}") from None
        raise


def _shell(condition: Condition) -> Rule:
    return Rule(rule_id="x", name="x", condition=condition)


# -- saying a rule back ----------------------------------------------------------------------------

_SAY_LEADS: dict[tuple[Severity, ActionType], str] = {
    ("info", "publish"): "notify me",
    ("warning", "publish"): "alert",
    ("critical", "publish"): "critical",
    ("info", "log"): "log",
}
_SAY_BOUNDS = {"<": "less than", "<=": "at most", ">": "more than", ">=": "at least"}
_SAY_METRIC_BOUNDS = {"<": "below", "<=": "at most", ">": "above", ">=": "at least"}
_SAY_TARGETS = {
    "edge_distance": "the table edge",
    "nearest_mug": "another mug",
    "coaster_offset": "the centre of its coaster",
}
_SAY_COUNTS = {"image.mug_count": "mug", "image.coaster_count": "coaster", "image.surface_count": "table"}
_PLAIN_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")
_RESERVED = frozenset(
    (
        "and", "or", "but", "only", "once", "with", "not", "then", "until", *SCOPE_PREPS, *TRAILING_LEADS,
        *_CLAUSE_WORDS,
    )
)  # fmt: skip
#: How a sentence asks for the end of each episode (``Temporal.resolve``).
SAY_RESOLVED = ", and tell me when it is resolved"


def canonical_sentence(rule: Rule) -> str | None:
    """The rule said back in the grammar's own words (one fixed phrasing per meaning), or None when
    the rule holds something no sentence can say (a webhook, a field only JSON rules reach).

    Compiling the result gives the same rule again, so ``rules explain`` shows what was understood.
    """
    lead = _SAY_LEADS.get((rule.severity, rule.action.type))
    temporal = rule.temporal
    if temporal is not None and temporal.kind != "lasts":
        condition = _say_change(rule.condition, temporal.kind)
    else:
        condition = _Say().condition(rule.condition)
    if lead is None or condition is None or rule.action.target is not None:
        return None
    words = [lead, "when", condition]
    if temporal is not None and temporal.kind == "lasts":
        if isinstance(rule.condition, AnyOf) and (temporal.for_s is not None or temporal.for_frames is not None):
            return None  # the grammar refuses a duration after "or" as ambiguous
        duration = _say_duration(temporal)
        if duration is None:
            return None
        if duration:
            words.append(duration)
    if rule.sources:
        names = [_say_name(name) for name in rule.sources]
        if any(name is None for name in names):
            return None
        words.append(("in camera " if len(names) == 1 else "in cameras ") + ", ".join(n for n in names if n))
    if rule.cooldown_s != 60:
        words.append(_say_cooldown(rule.cooldown_s))
    said = " ".join(words)
    return said + SAY_RESOLVED if temporal is not None and temporal.resolve else said


class _Say:
    """Renders a condition; the first mug comparison says "a mug", later ones "it" (the same mug)."""

    def __init__(self) -> None:
        self.mug_said = False

    def condition(self, node: Condition) -> str | None:
        if isinstance(node, AnyOf):
            parts = [self.conjunction(child) for child in node.children]
            return None if None in parts else " or ".join(p for p in parts if p)
        return self.conjunction(node)

    def conjunction(self, node: Condition) -> str | None:
        leaves = list(_flatten_all(node))
        parts: list[str] = []
        k = 0
        while k < len(leaves):
            leaf = leaves[k]
            if isinstance(leaf, AnyOf | AllOf) or (isinstance(leaf, Not) and not _pushable(leaf)):
                return None  # an "or" inside an "and" needs brackets, which the grammar does not have
            if isinstance(leaf, Not):
                leaf = negate_condition(leaf.child)
            assert isinstance(leaf, Compare)
            colour = _said_colour(leaf)
            nxt = leaves[k + 1] if k + 1 < len(leaves) else None
            if colour and not self.mug_said and isinstance(nxt, Compare) and nxt.field.startswith("mug."):
                state = _say_state(nxt)
                if state is not None:  # "a red mug is not on a coaster"
                    self.mug_said = True
                    parts.append(f"a {colour} mug {state}")
                    k += 2
                    continue
            said = self.clause(leaf)
            if said is None:
                return None
            parts.append(said)
            k += 1
        return " and ".join(parts)

    def clause(self, leaf: Compare) -> str | None:
        if leaf.field.startswith("mug."):
            state = _say_state(leaf)
            if state is None:
                return None
            subject = "it" if self.mug_said else "a mug"
            self.mug_said = True
            return f"{subject} {state}"
        return _say_image(leaf)


def _flatten_all(node: Condition) -> Iterable[Condition]:
    if isinstance(node, AllOf):
        for child in node.children:
            yield from _flatten_all(child)
    else:
        yield node


def _pushable(node: Not) -> bool:
    return isinstance(node.child, Compare) and node.child.op in _NEGATED


def _is_colour(node: Condition) -> bool:
    return isinstance(node, Compare) and _said_colour(node) is not None


def _said_colour(leaf: Compare) -> str | None:
    if leaf.field == "mug.attributes.colour" and leaf.op == "==" and leaf.value in COLOURS:
        return str(leaf.value)
    return None


def _say_number(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= MAX_NUMBER:
        return None
    text = str(value) if isinstance(value, int) else f"{value:.6f}".rstrip("0").rstrip(".")
    return text if float(text) == value else None


def _say_state(leaf: Compare) -> str | None:
    """The predicate of a mug comparison: "is within 5 cm of the table edge", "has quality below 40"."""
    field, op, value = leaf.field, leaf.op, leaf.value
    if field == "mug.on_coaster" and isinstance(value, bool) and op in ("==", "!="):
        return "is on a coaster" if (value is True) == (op == "==") else "is not on a coaster"
    zone = zone_of(field)
    if zone is not None:
        if not isinstance(value, bool) or op not in ("==", "!="):
            return None
        return f"is {'' if (value is True) == (op == '==') else 'not '}in zone {_say_zone(zone)}"
    if field == "mug.attributes.colour" and op in ("==", "!=") and value in COLOURS:
        return f"is {value}" if op == "==" else f"is not {value}"
    if field == "mug.edge_distance_px" and op == "<" and value == 0:
        return "is over the table edge"
    metric = field.removeprefix("mug.")
    if metric in METRICS and op in _SAY_METRIC_BOUNDS:
        shown = _say_number(value)
        return None if shown is None else f"has {metric} {_SAY_METRIC_BOUNDS[op]} {shown}"
    kind, _, family = metric.rpartition("_")
    if kind not in _SAY_TARGETS or op not in _SAY_BOUNDS or family not in ("cm", "px", "frac"):
        return None
    if family == "frac":
        shown = _say_number(_tidy(float(value) * 100)) if isinstance(value, int | float) else None
        amount = None if shown is None else f"{shown}%"
    else:
        shown = _say_number(value)
        amount = None if shown is None else f"{shown} {family}"
    if amount is None:
        return None
    if op == "<=":
        return f"is within {amount} of {_SAY_TARGETS[kind]}"
    return f"is {_SAY_BOUNDS[op]} {amount} from {_SAY_TARGETS[kind]}"


def _say_zone(name: str) -> str:
    """A zone's name as the parser reads it back: bare when its tokens glue back into it, else quoted
    ("desk-" ends in a dash no word ends in; "and" would read as a joiner)."""
    if name.lower() not in _ZONE_STOPS:
        try:
            tokens = tokenize(name)[:-1]
        except RuleSyntaxError:
            tokens = []
        glued = all(a.end == b.pos for a, b in pairwise(tokens))
        if tokens and glued and all(t.kind in ("word", "number") for t in tokens) and tokens[-1].end == len(name):
            return name
    return f'"{name}"'


def _say_image(leaf: Compare) -> str | None:
    field, op, value = leaf.field, leaf.op, leaf.value
    if field == "image.verdict":
        if op == "in" and isinstance(value, tuple) and value and all(v in VERDICTS for v in value):
            return "the verdict is " + " or ".join(value)
        if op in ("==", "!=") and value in VERDICTS:
            return f"the verdict is {'not ' if op == '!=' else ''}{value}"
        return None
    noun = _SAY_COUNTS.get(field)
    shown = _say_number(value)
    if noun is None or shown is None or not isinstance(value, int):
        return None
    if op == "!=":
        return f"the {noun} count is not {shown}"
    if op == "==" and value == 0:
        return f"there are no {noun}s"
    words = {"==": "exactly", **{k: v.replace("less", "fewer") for k, v in _SAY_BOUNDS.items()}}.get(op)
    if words is None:
        return None
    return f"there is {words} 1 {noun}" if value == 1 else f"there are {words} {shown} {noun}s"


def _say_name(name: str) -> str | None:
    if _PLAIN_NAME.fullmatch(name) and name.lower() not in _RESERVED and number_word(name.lower()) is None:
        return name
    return None if '"' in name or "\n" in name else f'"{name}"'


def _say_cooldown(seconds: int) -> str:
    if seconds == 0:
        return "with a cooldown of 0 seconds"
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1)):
        if seconds % size == 0:
            count = seconds // size
            return f"at most once per {unit}" if count == 1 else f"at most once per {count} {unit}s"
    raise AssertionError("unreachable: every whole number of seconds is a number of seconds")


def _say_duration(temporal: Temporal) -> str | None:
    """ "for more than 30 seconds", "for at least 5 frames", "" (resolution only), or None: unsayable
    (seconds and frames together, a zero duration, "strict" without seconds, a clause with nothing)."""
    for_s, frames = temporal.for_s, temporal.for_frames
    if for_s is not None and frames is not None:
        return None
    if frames is not None:
        shown = _say_number(frames)
        if temporal.strict or shown is None:
            return None
        return f"for at least {shown} frame{'' if frames == 1 else 's'}"
    if for_s is None:
        return "" if temporal.resolve and not temporal.strict else None
    if for_s <= 0:
        return None
    bound = "more than" if temporal.strict else "at least"
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1)):
        count = for_s / size
        if float(count).is_integer() or size == 1:
            shown = _say_number(_tidy(count))
            if shown is None or float(shown) * size != for_s:
                return None
            return f"for {bound} {shown} {unit}{'' if shown == '1' else 's'}"
    raise AssertionError("unreachable: the last unit is the second")


def _say_change(condition: Condition, kind: TemporalKind) -> str | None:
    """A transition said back: "a red mug is put on a coaster", "a mug becomes over the table edge",
    "a mug that is not on a coaster appears"; None when the condition is more than the grammar's filter."""
    leaves = [leaf for leaf in _flatten_all(condition) if isinstance(leaf, Compare)]
    if len(leaves) != len(list(_flatten_all(condition))):
        return None
    colour = _said_colour(leaves[0]) if leaves and (len(leaves) > 1 or kind != "becomes") else None
    rest = leaves[1:] if colour else leaves
    subject = f"a {colour} mug" if colour else "a mug"
    if kind in ("appears", "disappears"):
        if leaves == [TRACKED]:
            return f"a mug {kind}"
        if not rest:
            return f"{subject} {kind}"
        if len(rest) > 1:
            return None
        zone = zone_of(rest[0].field)
        if kind == "appears" and zone is not None and rest[0].op == "==" and rest[0].value is True:
            return f"{subject} appears in zone {_say_zone(zone)}"
        state = _say_state(rest[0])
        return None if state is None else f"{subject} that {state} {kind}"
    if len(rest) != 1 or not rest[0].field.startswith("mug."):
        return None
    leaf = rest[0]
    if leaf.field == "mug.on_coaster" and leaf.op == "==" and isinstance(leaf.value, bool):
        return f"{subject} is put on a coaster" if leaf.value else f"{subject} is taken off its coaster"
    zone = zone_of(leaf.field)
    if zone is not None:
        if leaf.op not in ("==", "!=") or not isinstance(leaf.value, bool):
            return None
        verb = "enters" if (leaf.value is True) == (leaf.op == "==") else "leaves"
        return f"{subject} {verb} zone {_say_zone(zone)}"
    state = _say_state(leaf)
    if state is None or not state.startswith("is ") or state.startswith("is not "):
        return None
    return f"{subject} becomes {state.removeprefix('is ')}"
