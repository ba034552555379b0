"""Plain-English rules: a tokenizer and a recursive-descent parser for the grammar in ``GRAMMAR.md``.

A sentence compiles to exactly the structure a JSON rule has (a condition tree, severity, scope,
cooldown), then goes through the same validator, so both ways of writing a rule behave alike.
Nothing is guessed: a word the grammar does not expect stops the parse with a
:class:`~rules.errors.RuleSyntaxError` that points at it, says what would fit and suggests the
nearest known word. There is no eval and no model in the loop; each grammar rule is one method.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, NoReturn

from mugpos.rules.errors import RuleSyntaxError, RuleValidationError
from mugpos.rules.model import (
    MAX_TEXT_CHARS,
    ActionType,
    AllOf,
    AnyOf,
    Compare,
    Condition,
    Not,
    Rule,
    Severity,
    rule_from_obj,
    rule_to_record,
)

#: Shown in every syntax error; each one is covered by a test.

MAX_NUMBER = 1_000_000_000
MAX_TOKENS = 120

TokenKind = Literal["word", "number", "string", "comma", "period", "end"]


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


_LEXEMES = re.compile(
    r"""
      (?P<space>\s+)
    | (?P<number>\d+(?:\.\d+)?)
    | (?P<word>[^\W\d_](?:[\w'’-]*\w)?(?:\.\w[\w-]*)*)
    | (?P<string>"[^"\n]*")
    | (?P<comma>,)
    | (?P<period>[.!])
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
        elif kind in ("word", "comma", "period"):
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
}
TRIGGERS = ("when", "if", "whenever")
DETERMINERS = ("a", "an", "any", "some", "one", "the")
MUG_WORDS = ("mug", "cup")
COLOURS = ("red", "orange", "yellow", "green", "blue", "purple", "pink", "brown", "black", "white", "grey", "gray")
NUMBER_WORDS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
    "seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12,
}  # fmt: skip
#: unit word -> (field family, factor to centimetres)
UNITS: dict[str, tuple[Literal["cm", "px"], float]] = {
    **dict.fromkeys(("cm", "centimetre", "centimetres", "centimeter", "centimeters"), ("cm", 1.0)),
    **dict.fromkeys(("mm", "millimetre", "millimetres", "millimeter", "millimeters"), ("cm", 0.1)),
    **dict.fromkeys(("m", "metre", "metres", "meter", "meters"), ("cm", 100.0)),
    **dict.fromkeys(("in", "inch", "inches"), ("cm", 2.54)),
    **dict.fromkeys(("px", "pixel", "pixels"), ("px", 1.0)),
}
COUNT_THINGS = {
    **dict.fromkeys(("mug", "mugs", "cup", "cups"), "image.mug_count"),
    **dict.fromkeys(("coaster", "coasters"), "image.coaster_count"),
    **dict.fromkeys(("table", "tables", "surface", "surfaces"), "image.surface_count"),
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
PLACES_AFTER_IN = ("view", "image", "picture", "frame", "scene")
PLACE_WORDS = ("visible", "seen", "detected", "found", "present")
_NEGATED = {"==": "!=", "!=": "==", "<": ">=", ">=": "<", ">": "<=", "<=": ">"}


class _Parser:
    """One instance per sentence. Methods mirror the EBNF productions in GRAMMAR.md."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.i = 0
        self.mug_context = False

    # -- token helpers -------------------------------------------------------------------------

    def peek(self, ahead: int = 0) -> Token:
        return self.tokens[min(self.i + ahead, len(self.tokens) - 1)]

    def at(self, *words: str, ahead: int = 0) -> bool:
        tok = self.peek(ahead)
        return tok.kind == "word" and tok.low in words

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
        tok = self.peek()
        expected = list(dict.fromkeys(expected))
        if message is None:
            message = "the sentence ends too early" if tok.kind == "end" else f"unexpected {self.describe(tok)}"
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
        if tok.kind in ("comma", "period"):
            return f"{tok.text!r}"
        return f"word {tok.text!r}"

    def number(self, what: str, *, integer: bool = False) -> int | float:
        tok = self.peek()
        if tok.kind == "number" and tok.number is not None:
            value = tok.number
        elif tok.kind == "word" and tok.low in NUMBER_WORDS:
            value = NUMBER_WORDS[tok.low]
        else:
            self.fail([what], vocabulary=NUMBER_WORDS)
        if integer and isinstance(value, float):
            self.fail([f"a whole number ({what})"], message=f"{tok.text} is not a whole number")
        if value > MAX_NUMBER:
            self.fail([what], message=f"{tok.text} is too large (at most {MAX_NUMBER})")
        self.i += 1
        return value

    def is_number(self, ahead: int = 0) -> bool:
        tok = self.peek(ahead)
        return tok.kind == "number" or (tok.kind == "word" and tok.low in NUMBER_WORDS)

    # -- sentence ------------------------------------------------------------------------------

    def sentence(self) -> ParsedSentence:
        severity, action = self.lead()
        self.expect(
            TRIGGERS, ['"when"', '"if"'] if severity else ['"alert"', '"warn"', '"notify me"', '"when"', '"if"']
        )
        condition = self.condition()
        sources: tuple[str, ...] | None = None
        cooldown: int | None = None
        while True:
            if self.peek().kind == "comma" and (self.scope_ahead(1) or self.cooldown_ahead(1)):
                self.i += 1
            if self.scope_ahead():
                if sources is not None:
                    self.fail(["one scope per rule"], message="the cameras are given twice")
                sources = self.scope()
            elif self.cooldown_ahead():
                if cooldown is not None:
                    self.fail(["one cooldown per rule"], message="the cooldown is given twice")
                cooldown = self.cooldown()
            else:
                break
        if self.peek().kind == "period":
            self.i += 1
        if self.peek().kind != "end":
            expected = ['"and"', '"or"', '"in camera NAME"', '"at most once per N minutes"', "the end of the sentence"]
            self.fail(expected, vocabulary=("and", "or", "in", "at", "camera", "once"))
        return ParsedSentence(condition, severity or "warning", action, sources or (), cooldown)

    def lead(self) -> tuple[Severity | None, ActionType | None]:
        tok = self.peek()
        if tok.kind != "word" or tok.low not in LEADS:
            if not self.at(*TRIGGERS):
                self.fail(
                    ['"alert"', '"warn"', '"notify me"', '"critical"', '"log"', '"when"', '"if"'], [*LEADS, *TRIGGERS]
                )
            return None, None
        self.i += 1
        severity, action = LEADS[tok.low]
        if tok.low in ("tell", "inform", "page"):
            self.expect(("me", "us"), ['"me"'])
        elif tok.low == "raise":  # raise [a|an] [critical|warning|info] alert
            self.accept("a", "an")
            level = self.accept("critical", "warning", "info")
            if level is not None:
                severity = LEADS[level.low][0]
            self.expect(("alert", "alarm"), ['"alert"'])
        else:
            self.accept("me", "us", "it")
            if tok.low == "critical":
                self.accept("alert", "alarm")
        return severity, action

    def condition(self) -> Condition:
        parts = [self.conjunction()]
        while self.at("or") and self.clause_ahead(1):
            self.i += 1
            parts.append(self.conjunction())
        return parts[0] if len(parts) == 1 else AnyOf(tuple(parts))

    def conjunction(self) -> Condition:
        parts = [self.clause()]
        while self.at("and") and self.clause_ahead(1):
            self.i += 1
            parts.append(self.clause())
        return parts[0] if len(parts) == 1 else AllOf(tuple(parts))

    def clause_ahead(self, ahead: int) -> bool:
        """Whether a clause starts ``ahead`` tokens on (so ``and``/``or`` there joins conditions)."""
        tok = self.peek(ahead)
        if tok.kind == "number":
            return True
        if tok.kind != "word":
            return False
        return (
            tok.low in (*DETERMINERS, "there", "the", "verdict", "placement", "no", *NUMBER_WORDS)
            or self.quantity_ahead(ahead)
            or (self.mug_context and self.predicate_ahead(ahead))
        )

    def clause(self) -> Condition:
        if self.at(*DETERMINERS) and (self.at(*MUG_WORDS, ahead=1) or self.at(*COLOURS, ahead=1)):
            return self.mug_clause()
        if self.mug_context and self.predicate_ahead(0):
            self.accept("it")
            return self.mug_predicate()
        if self.at("there") or self.quantity_ahead(0) or self.is_number():
            return self.count_clause()
        if self.at("the", "verdict", "placement"):
            return self.verdict_clause()
        expected = ['"a mug is ..."', '"more than N mugs ..."', '"there are no coasters"', '"the verdict is ..."']
        return self.fail(expected, vocabulary=(*DETERMINERS, "mug", "there", "more", "fewer", "the", "verdict"))

    # -- mug clauses ---------------------------------------------------------------------------

    def mug_clause(self) -> Condition:
        self.expect(DETERMINERS, ['"a"', '"any"'])
        colour = self.accept(*COLOURS)
        self.expect(MUG_WORDS, ['"mug"'])
        self.mug_context = True
        predicate = self.mug_predicate()
        if colour is None:
            return predicate
        name = "grey" if colour.low == "gray" else colour.low
        return AllOf((Compare("mug.attributes.colour", "==", name), predicate))

    PREDICATE_STARTS = (
        "is", "isn't", "stands", "sits", "that", "which", "it", "not", "on", "off", "without", "within", "closer",
        "nearer", "less", "further", "farther", "more", "at", "over", "overhanging", "hanging", "with", "has",
    )  # fmt: skip

    def predicate_ahead(self, ahead: int) -> bool:
        tok = self.peek(ahead)
        if tok.kind != "word" or tok.low not in self.PREDICATE_STARTS:
            return False
        if tok.low in ("more", "less", "at"):  # "more than 5 cm from ..." vs "more than 3 mugs"
            return self.peek(ahead + 3).low in UNITS
        if tok.low == "over":
            return not self.is_number(ahead + 1)
        if tok.low == "on":  # "on a coaster" vs the scope "on camera x"
            return not self.at(*SCOPE_NOUNS, ahead=ahead + 1)
        return True

    def mug_predicate(self) -> Condition:
        negate = False
        self.accept("that", "which")
        if self.accept("isn't"):
            negate = True
        else:
            self.accept("is", "stands", "sits")
        if self.accept("not"):
            negate = not negate
        state = self.mug_state()
        return negate_condition(state) if negate else state

    MUG_STATES = (
        '"on a coaster"', '"off a coaster"', '"within N cm of the table edge"', '"closer than N cm to another mug"',
        '"further than N cm from the table edge"', '"at least N cm from another mug"', '"over the edge"',
        '"with quality below N"',
    )  # fmt: skip

    def mug_state(self) -> Condition:
        vocabulary = ("on", "off", "without", "within", "closer", "nearer", "less", "further", "farther", "more",
                      "at", "over", "overhanging", "hanging", "with", "has", "coaster", "not")  # fmt: skip
        if self.accept("on"):
            self.accept("a", "an", "its", "the")
            self.expect(("coaster",), ['"coaster"'])
            return Compare("mug.on_coaster", "==", True)
        if self.accept("off", "without"):
            self.accept("a", "an", "its", "the")
            self.expect(("coaster",), ['"coaster"'])
            return Compare("mug.on_coaster", "==", False)
        if self.accept("within"):
            return self.distance("<=", ("of", "from", "to"))
        if self.accept("closer", "nearer"):
            self.expect(("than",), ['"than"'])
            return self.distance("<", ("to", "from"))
        if self.at("less", "more") and self.at("than", ahead=1):
            op = "<" if self.peek().low == "less" else ">"
            self.i += 2
            return self.distance(op, ("from", "to"))
        if self.accept("further", "farther"):
            self.expect(("than",), ['"than"'])
            return self.distance(">", ("from",))
        if self.at("at") and self.at("least", "most", ahead=1):
            op = ">=" if self.peek(1).low == "least" else "<="
            self.i += 2
            return self.distance(op, ("from", "to"))
        if self.accept("overhanging") or (self.accept("hanging") and self.expect(("over",), ['"over"'])):
            self.edge_target()
            return Compare("mug.edge_distance_px", "<", 0)
        if self.accept("over"):
            self.edge_target()
            return Compare("mug.edge_distance_px", "<", 0)
        if self.accept("with", "has"):
            return self.metric()
        return self.fail(self.MUG_STATES, vocabulary=vocabulary)

    def distance(self, op: str, prepositions: tuple[str, ...]) -> Compare:
        amount = self.number("a distance such as 5 cm")
        unit = self.expect(UNITS, ['"cm"', '"mm"', '"px"', '"in"'])
        family, factor = UNITS[unit.low]
        self.accept("away")
        self.expect(prepositions, [f'"{p}"' for p in prepositions])
        target = self.target()
        value = _tidy(amount * factor)
        return Compare(f"mug.{target}_{family}", op, value)

    def target(self) -> str:
        self.accept("the", "its")
        if self.at("another", "other", "nearest", "next", "closest", "each") or self.at(*MUG_WORDS):
            if self.accept("each"):
                self.expect(("other",), ['"other"'])
                return "nearest_mug"
            self.accept("another", "other", "nearest", "next", "closest")
            self.expect(MUG_WORDS, ['"mug"'])
            return "nearest_mug"
        self.edge_target(after_the=True)
        return "edge_distance"

    def edge_target(self, after_the: bool = False) -> None:
        if not after_the:
            self.accept("the", "its")
        expected = ['"the table edge"', '"the edge of the table"', '"another mug"']
        if self.accept("table", "table's", "surface", "surface's"):
            self.expect(("edge",), ['"edge"'])
            return
        self.expect(("edge",), expected)
        if self.at("of") and self.at("the", "table", "surface", ahead=1):
            self.i += 1
            self.accept("the")
            self.expect(("table", "surface"), ['"table"'])

    def metric(self) -> Compare:
        name = self.expect(METRICS, ['"quality"', '"confidence"'])
        op = self.comparison()
        value = self.number("a number")
        return Compare(METRICS[name.low], op, _tidy(value))

    def comparison(self) -> str:
        if self.accept("above", "over"):
            return ">"
        if self.accept("below", "under"):
            return "<"
        if self.at("more", "greater", "higher") and self.at("than", ahead=1):
            self.i += 2
            return ">"
        if self.at("less", "lower", "fewer") and self.at("than", ahead=1):
            self.i += 2
            return "<"
        if self.at("at") and self.at("least", "most", ahead=1):
            op = ">=" if self.peek(1).low == "least" else "<="
            self.i += 2
            return op
        return self.fail(['"above N"', '"below N"', '"at least N"', '"at most N"'], ("above", "below", "at", "more"))

    # -- image clauses -------------------------------------------------------------------------

    def quantity_ahead(self, ahead: int) -> bool:
        tok = self.peek(ahead)
        if tok.kind != "word":
            return False
        low = tok.low
        if low in ("more", "fewer", "less") and self.at("than", ahead=ahead + 1):
            return self.peek(ahead + 3).low not in UNITS
        if low in ("over", "above", "under", "below", "exactly"):
            return self.is_number(ahead + 1)
        if low == "at" and self.at("least", "most", ahead=ahead + 1):
            return self.peek(ahead + 3).low not in UNITS and not self.at("once", ahead=ahead + 2)
        return low == "no"

    def count_clause(self) -> Compare:
        if self.accept("there"):
            self.expect(("is", "are"), ['"are"'])
        op, count = self.quantity()
        thing = self.expect(COUNT_THINGS, ['"mugs"', '"coasters"', '"tables"'])
        self.accept("is", "are")
        self.place()
        return Compare(COUNT_THINGS[thing.low], op, count)

    def quantity(self) -> tuple[str, int]:
        if self.at("no") and not self.at("more", "fewer", "less", ahead=1):
            self.i += 1
            return "==", 0
        if self.accept("no"):
            word = self.expect(("more", "fewer", "less"), ['"more than"', '"fewer than"'])
            self.expect(("than",), ['"than"'])
            return ("<=" if word.low == "more" else ">="), int(self.number("a count", integer=True))
        if self.accept("exactly"):
            return "==", int(self.number("a count", integer=True))
        if self.is_number():
            count = int(self.number("a count", integer=True))
            if self.at("or") and self.at("more", "fewer", "less", ahead=1):
                op = ">=" if self.peek(1).low == "more" else "<="
                self.i += 2
                return op, count
            return "==", count
        op = self.comparison()
        return op, int(self.number("a count", integer=True))

    def place(self) -> None:
        if self.at("on") and self.at("the", ahead=1) and self.at("table", "surface", ahead=2):
            self.i += 3
        elif self.at("in") and self.at(*PLACES_AFTER_IN, ahead=1):
            self.i += 2
        elif self.at("in") and self.at("the", ahead=1) and self.at(*PLACES_AFTER_IN, ahead=2):
            self.i += 3
        else:
            self.accept(*PLACE_WORDS)

    def verdict_clause(self) -> Compare:
        self.accept("the")
        self.expect(("verdict", "placement"), ['"verdict"'])
        negate = False
        if self.accept("isn't"):
            negate = True
        else:
            self.expect(("is",), ['"is"'])
            negate = self.accept("not") is not None
        self.accept("a", "an")
        word = self.expect(VERDICTS, ['"ok"', '"warning"', '"violation"'])
        return Compare("image.verdict", "!=" if negate else "==", VERDICTS[word.low])

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
                if self.scope_ahead(1) or self.cooldown_ahead(1):
                    break
                self.i += 1
                self.accept("and", "or")
            elif self.at("and", "or") and self.peek(1).kind in ("word", "number", "string"):
                if self.clause_ahead(1) and self.peek(1).kind != "string":
                    break
                self.i += 1
            else:
                break
            names.append(self.name())
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
            or self.at("once", ahead=ahead)
            or (
                self.at("with", ahead=ahead) and (self.at("cooldown", ahead=ahead + 1) or self.at("a", ahead=ahead + 1))
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
            self.expect(("once",), ['"once"'])
            self.expect(("every", "per", "a", "an"), ['"every"', '"per"'])
            amount = self.number("a duration", integer=True) if self.is_number() else 1
        unit = self.expect(TIME_UNITS, ['"seconds"', '"minutes"', '"hours"'])
        return int(amount) * TIME_UNITS[unit.low]


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
    }
    try:
        return rule_from_obj(obj, allowlist=allowlist, now=now)
    except RuleValidationError as exc:
        if exc.path.startswith("condition") or exc.path.startswith("sources") or exc.path == "cooldown_s":
            raise RuleSyntaxError(text, 0, f"the sentence reads, but the rule is not valid: {exc}") from None
        raise


def _shell(condition: Condition) -> Rule:
    return Rule(rule_id="x", name="x", condition=condition)
