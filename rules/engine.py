"""Compile rules into closures plus a shared index, and evaluate them against ``PositionEvent`` records.

Semantics (documented in GRAMMAR.md):

* Three-valued logic: a comparison whose field is null (or NaN) is *unknown*; ``not unknown`` is
  unknown; ``all`` is false if a child is false, else unknown if one is unknown; ``any`` is true if a
  child is true. A rule fires only on *true*, so a model that cannot see coasters never trips
  "a mug is not on a coaster".
* A condition that mentions ``mug.*`` fields is evaluated once per mug and fires when some mug
  makes it true ("any mug"); every ``mug.*`` comparison in one rule talks about that same mug. The
  first such mug is the witness named in the evidence.
* A rule that mentions a field the event lacks, or holds with the wrong type, is skipped (and
  reported), never evaluated on a guess.

Why an index: with 100 rules a naive loop calls ~100 closures per mug per event, far too slow for
50,000 events/s on one core. Most events fire nothing, so each rule gets *guard clauses*: sets of
comparisons, one of which must hold whenever the rule fires (found on the negation normal form).
Guards on the same field and operator share one sorted threshold list, and each referenced field
is read once per event by a probe, so one pass over the mugs (keeping min and max) plus a bound
check answers every "edge distance < N" rule at once. A rule runs its full closure only when all
of its clauses passed; a rule that is a single comparison is decided by its guard alone, and its
witness mug and evidence are worked out only if someone asks (an action that survives the cooldown).
"""

from __future__ import annotations

import hashlib
import operator
from bisect import bisect_left, bisect_right
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mugpos.rules.fields import FieldSpec, FieldType, lookup_field
from mugpos.rules.model import AllOf, AnyOf, Compare, Condition, Not, Rule, describe

Record = Mapping[str, Any]
Test = Callable[[Record, Any], bool | None]

_ALLOWED_TYPES: dict[FieldType, tuple[type, ...]] = {
    FieldType.NUMBER: (int, float),
    FieldType.BOOL: (bool,),
    FieldType.STRING: (str,),
}
_CMP: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "in": lambda v, s: v in s,
}
_NEGATED = {"==": "!=", "!=": "==", "<": ">=", ">=": "<", ">": "<=", "<=": ">"}

#: Skip reasons (the bounded label values of ``mugpos_rule_skips_total``).
MISSING_FIELD = "missing_field"
WRONG_TYPE = "wrong_type"


_UNRESOLVED: Any = object()


class Match:
    """A rule that fired on one event, with its witness mug (the first that made the condition true).

    The witness and the evidence (values of the fields the rule reads, which mugs matched) are
    worked out on first use: most fires of a stuck scene are dropped by the cooldown, so finding
    and formatting them for every fire would be waste.
    """

    __slots__ = ("_compiled", "_event", "_evidence", "_matching", "_mug", "rule")

    def __init__(self, compiled: CompiledRule, event: Record, mug: Any = _UNRESOLVED) -> None:
        self.rule = compiled.rule
        self._compiled = compiled
        self._event = event
        self._mug = mug
        self._matching: list[Any] | None = None
        self._evidence: dict[str, str] | None = None

    def _witness(self) -> Any:
        if self._mug is _UNRESOLVED or self._matching is None:
            self._mug, self._matching = self._compiled.witnesses(self._event, self._mug)
        return self._mug

    @property
    def mug_index(self) -> int | None:
        """Detection index of the witness mug; None for a rule about image fields only."""
        mug = self._witness()
        return None if mug is None else mug.get("index")

    @property
    def evidence(self) -> dict[str, str]:
        """``field -> value`` as text, plus ``mug.index`` and ``mugs.matching`` for mug rules."""
        if self._evidence is None:
            mug = self._witness()
            self._evidence = self._compiled.evidence(self._event, mug, self._matching or [])
        return self._evidence

    def __repr__(self) -> str:
        return f"Match(rule_id={self.rule.rule_id!r}, mug_index={self.mug_index!r}, evidence={self.evidence!r})"


@dataclass(frozen=True, slots=True)
class Skip:
    """A rule that could not be evaluated on one event, and why."""

    rule: Rule
    reason: str
    field: str


@dataclass(frozen=True, slots=True)
class Evaluation:
    """Outcome of one event against a rule set (shared and immutable: most events fire nothing)."""

    matches: tuple[Match, ...] = ()
    skips: tuple[Skip, ...] = ()


NOTHING = Evaluation()


class _WrongType(Exception):
    pass


def format_value(value: Any) -> str:
    """Evidence text of a value: ``true``/``null``, floats to 6 significant digits (float32 noise hidden)."""
    t = type(value)
    if t is float:
        return "NaN" if value != value else f"{value:.6g}"
    if t is bool:
        return "true" if value else "false"
    if value is None:
        return "null"
    return str(value)


# -- reading fields ------------------------------------------------------------------------------


def _scaled(value: Any, scale: Any) -> float | None:
    """A derived value, ``value / scale`` (pixels to centimetres); unknown when either is null or NaN,
    or the scale is not positive, so a missing scale never makes a centimetre rule fire."""
    if value is None or scale is None:
        return None
    if type(value) not in (int, float) or type(scale) not in (int, float):
        raise TypeError("a derived field needs numbers")
    if value != value or not scale > 0:
        return None
    return float(value / scale)


_LISTS = (list, tuple)


def _member(held: Any, known: Any, key: str) -> bool | None:
    """A membership field's Kleene value: ``key`` in the mug's list ``held`` (true), else in the image's
    list ``known`` of every possible value (false), else unknown: the camera has no such zone, so
    neither "in zone x" nor "not in zone x" may fire there. A null mug list is unknown too."""
    if held is None:
        return None
    if type(held) not in _LISTS:
        raise TypeError("a zones list must be a list of names")
    if key in held:
        return True
    if known is None:
        return None
    if type(known) not in _LISTS:
        raise TypeError("a zones list must be a list of names")
    return False if key in known else None


def _getter(spec: FieldSpec) -> Callable[[Record, Any], Any]:
    attr, key, scale = spec.attr, spec.key, spec.scale
    if spec.listed is not None and key is not None:  # mug.zone.NAME; events from before zones lack both lists
        listed, name = spec.listed, key
        return lambda ev, m: _member(m.get(attr, ()), ev.get(listed, ()), name)
    if scale is not None:
        return lambda ev, m: _scaled(m[attr], ev[scale])
    if spec.scope == "image":
        if key is None:
            return lambda ev, m: ev[attr]
        return lambda ev, m: ev[attr].get(key)
    if key is None:
        return lambda ev, m: m[attr]
    return lambda ev, m: m[attr].get(key)


def _collector(spec: FieldSpec) -> Callable[[Record], list[Any]]:
    """Known (non-null, non-NaN) values of ``spec`` in an event; raises on a missing field or wrong type.

    Runs once per referenced field per event, so each shape gets its own loop without indirection.
    """
    attr, key = spec.attr, spec.key
    allowed = _ALLOWED_TYPES[spec.type]
    number = spec.type is FieldType.NUMBER

    if spec.listed is not None and key is not None:
        listed, name = spec.listed, key

        def collect_member(ev: Record) -> list[Any]:
            """True per mug in the zone, False per mug outside a zone the camera has; a missing list is
            empty (an event from before zones: every zone unknown), one that is not a list is wrong."""
            mugs = ev["mugs"]
            if type(mugs) is not list:
                raise _WrongType
            known = ev.get(listed, ())
            if known is None:
                known = ()
            elif type(known) not in _LISTS:
                raise _WrongType
            outside = False if name in known else None
            out: list[Any] = []
            for m in mugs:
                if not isinstance(m, Mapping):
                    raise _WrongType
                held = m.get(attr, ())
                if held is None:
                    continue
                if type(held) not in _LISTS:
                    raise _WrongType
                if name in held:
                    out.append(True)
                elif outside is not None:
                    out.append(outside)
            return out

        return collect_member

    if spec.scale is not None:
        scale_attr = spec.scale

        def collect_scaled(ev: Record) -> list[Any]:
            scale = ev[scale_attr]
            mugs = ev["mugs"]
            if type(mugs) is not list:
                raise _WrongType
            out: list[Any] = []
            for m in mugs:
                v = _scaled(m[attr], scale)
                if v is not None:
                    out.append(v)
            return out

        return collect_scaled

    if spec.scope == "image":

        def collect_image(ev: Record) -> list[Any]:
            v = ev[attr]
            if key is not None:
                if not isinstance(v, Mapping):
                    raise _WrongType
                v = v.get(key)
            if v is None:
                return []
            if type(v) not in allowed:
                raise _WrongType
            return [] if number and v != v else [v]

        return collect_image

    if key is None and number:

        def collect_numbers(ev: Record) -> list[Any]:  # the hot path: inlined type checks
            out: list[Any] = []
            mugs = ev["mugs"]
            if type(mugs) is not list:
                raise _WrongType
            for m in mugs:
                v = m[attr]
                if v is None:
                    continue
                t = type(v)
                if t is float:
                    if v == v:
                        out.append(v)
                elif t is int:
                    out.append(v)
                else:
                    raise _WrongType
            return out

        return collect_numbers

    if key is None:
        kind = allowed[0]

        def collect_plain(ev: Record) -> list[Any]:
            out: list[Any] = []
            mugs = ev["mugs"]
            if type(mugs) is not list:
                raise _WrongType
            for m in mugs:
                v = m[attr]
                if v is None:
                    continue
                if type(v) is not kind:
                    raise _WrongType
                out.append(v)
            return out

        return collect_plain

    def collect_map(ev: Record) -> list[Any]:
        out: list[Any] = []
        mugs = ev["mugs"]
        if type(mugs) is not list:
            raise _WrongType
        for m in mugs:
            mapping = m[attr]
            if not isinstance(mapping, Mapping):
                raise _WrongType
            v = mapping.get(key)
            if v is None:
                continue
            if type(v) is not str:
                raise _WrongType
            out.append(v)
        return out

    return collect_map


# -- compiling conditions ------------------------------------------------------------------------


def _compile(node: Condition) -> Test:
    """Kleene-logic closure of a condition over (event, mug)."""
    if isinstance(node, Compare):
        spec = lookup_field(node.field)
        assert spec is not None  # validated rules only
        cmp = _CMP[node.op]
        value: Any = frozenset(node.value) if isinstance(node.value, tuple) else node.value
        attr = spec.attr
        plain = spec.key is None and spec.scale is None
        if plain and spec.scope == "mug":  # the common case, without a getter call

            def compare_mug(ev: Record, m: Any) -> bool | None:
                v = m[attr]
                if v is None or v != v:
                    return None
                return cmp(v, value)

            return compare_mug
        if plain:

            def compare_image(ev: Record, m: Any) -> bool | None:
                v = ev[attr]
                if v is None or v != v:
                    return None
                return cmp(v, value)

            return compare_image
        get = _getter(spec)

        def compare(ev: Record, m: Any) -> bool | None:
            v = get(ev, m)
            if v is None or v != v:
                return None
            return cmp(v, value)

        return compare
    if isinstance(node, Not):
        inner = _compile(node.child)

        def negate(ev: Record, m: Any) -> bool | None:
            r = inner(ev, m)
            return None if r is None else not r

        return negate
    tests = tuple(_compile(c) for c in node.children)
    if isinstance(node, AllOf):

        def all_of(ev: Record, m: Any) -> bool | None:
            unknown = False
            for t in tests:
                r = t(ev, m)
                if r is False:
                    return False
                if r is None:
                    unknown = True
            return None if unknown else True

        return all_of

    def any_of(ev: Record, m: Any) -> bool | None:
        unknown = False
        for t in tests:
            r = t(ev, m)
            if r is True:
                return True
            if r is None:
                unknown = True
        return None if unknown else False

    return any_of


def referenced(node: Condition) -> list[FieldSpec]:
    """Fields a condition reads, in first-use order."""
    out: dict[str, FieldSpec] = {}

    def walk(n: Condition) -> None:
        if isinstance(n, Compare):
            spec = lookup_field(n.field)
            assert spec is not None
            out.setdefault(spec.name, spec)
        elif isinstance(n, Not):
            walk(n.child)
        else:
            for c in n.children:
                walk(c)

    walk(node)
    return list(out.values())


@dataclass(frozen=True, slots=True)
class Atom:
    """One comparison usable in a guard; holds for some mug (or the image) whenever its clause must."""

    field: str
    op: str
    value: Any


Clause = tuple[Atom, ...]  # a disjunction: one of its atoms holds
MAX_CLAUSES = 4


def guard_clauses(node: Condition, negated: bool = False) -> list[Clause]:
    """Clauses that must *all* hold (each: some atom holds) whenever ``node`` is true; [] when none apply.

    Computed on the negation normal form: ``not`` is pushed down with De Morgan and flips comparison
    operators, which is sound under three-valued logic because a comparison is false only on a known value.
    """
    if isinstance(node, Compare):
        if not negated:
            return [(Atom(node.field, node.op, node.value),)]
        if node.op in _NEGATED:
            return [(Atom(node.field, _NEGATED[node.op], node.value),)]
        return []  # "not in" has no threshold form
    if isinstance(node, Not):
        return guard_clauses(node.child, not negated)
    options = [guard_clauses(c, negated) for c in node.children]
    if isinstance(node, AllOf) != negated:  # a conjunction: every child's clauses are needed
        return [clause for clauses in options for clause in clauses][:MAX_CLAUSES]
    if any(not clauses for clauses in options):
        return []  # some alternative has no guard, so nothing is necessary
    # a disjunction: one child holds, so the union of one clause from each child is necessary
    return [tuple(atom for clauses in options for atom in min(clauses, key=len))]


# -- compiled rules and the shared index -----------------------------------------------------------


class CompiledRule:
    """A rule as closures: its Kleene test, the fields it reads and its guard atoms."""

    __slots__ = ("clauses", "exact", "getters", "rule", "specs", "test", "uses_mugs")

    def __init__(self, rule: Rule) -> None:
        self.rule = rule
        self.specs = referenced(rule.condition)
        self.getters = [(spec.name, _getter(spec)) for spec in self.specs]
        self.uses_mugs = any(s.scope == "mug" for s in self.specs)
        self.test = _compile(rule.condition)
        self.clauses = guard_clauses(rule.condition)
        self.exact = _guards_are_exact(rule.condition, self.uses_mugs)

    def match(self, ev: Record) -> Match | None:
        """Full evaluation; the first mug that makes the condition true is the witness."""
        test = self.test
        if not self.uses_mugs:
            return Match(self, ev, None) if test(ev, None) is True else None
        for m in ev["mugs"]:
            if test(ev, m) is True:
                return Match(self, ev, m)
        return None

    def witnesses(self, ev: Record, known: Any = _UNRESOLVED) -> tuple[Any, list[Any]]:
        """The witness (first mug making the condition true; ``known`` if already found) and the
        detection indices of every such mug, in one pass. (None, []) for image-only rules."""
        if not self.uses_mugs:
            return None, []
        test = self.test
        matching = [m for m in ev["mugs"] if test(ev, m) is True]
        witness = known if known is not _UNRESOLVED else (matching[0] if matching else None)
        return witness, [m.get("index") for m in matching]

    def evidence(self, ev: Record, mug: Any, matching: Sequence[Any]) -> dict[str, str]:
        """The values behind a match, as text (ActionEvent.evidence is a string map)."""
        evidence: dict[str, str] = {}
        if mug is not None:
            evidence["mug.index"] = format_value(mug.get("index"))
            evidence["mugs.matching"] = ",".join([format_value(i) for i in matching])
        for name, get in self.getters:
            evidence[name] = format_value(get(ev, mug))
        return evidence


def _guards_are_exact(node: Condition, uses_mugs: bool) -> bool:
    """Whether passing guard clauses already proves the rule true (so the full test can be skipped).

    True for one comparison (possibly negated: under three-valued logic ``not (v < 5)`` holds exactly
    when ``v >= 5`` does), and for an all/any of comparisons on image fields, whose clauses are the
    formula itself. Mug conditions with several comparisons need one mug for all of them: not exact.
    """
    while isinstance(node, Not) and isinstance(node.child, Not):
        node = node.child.child
    if isinstance(node, Compare):
        return True
    if isinstance(node, Not):
        return isinstance(node.child, Compare) and node.child.op in _NEGATED
    if uses_mugs or not all(isinstance(c, Compare) for c in node.children):
        return False
    return isinstance(node, AnyOf) or len(node.children) <= MAX_CLAUSES


class _Group:
    """Every guard atom on one field with one operator; answers all of them in one step per event."""

    __slots__ = ("by_value", "entries", "op", "passing", "rules", "spec", "thresholds")

    def __init__(self, spec: FieldSpec, op: str, entries: list[tuple[Any, int]]) -> None:
        self.spec = spec
        self.op = op
        if op in ("<", "<=", ">", ">="):
            entries = sorted(entries, key=lambda e: e[0])
        self.entries = entries
        self.thresholds = [e[0] for e in entries]
        self.rules = [e[1] for e in entries]
        self.by_value: dict[Any, list[int]] = defaultdict(list)
        if op == "==":
            for value, i in entries:
                self.by_value[value].append(i)
        self.by_value = dict(self.by_value)

        # one specialised closure per operator: this runs for every group on every event
        self.passing: Callable[[list[Any], set[int]], None] = getattr(self, _PASSING[op])

    def _lt(self, values: list[Any], out: set[int]) -> None:  # some v < t  <=>  min(v) < t
        k = bisect_right(self.thresholds, min(values))
        if k < len(self.rules):
            out.update(self.rules[k:])

    def _le(self, values: list[Any], out: set[int]) -> None:
        k = bisect_left(self.thresholds, min(values))
        if k < len(self.rules):
            out.update(self.rules[k:])

    def _gt(self, values: list[Any], out: set[int]) -> None:  # some v > t  <=>  max(v) > t
        k = bisect_left(self.thresholds, max(values))
        if k:
            out.update(self.rules[:k])

    def _ge(self, values: list[Any], out: set[int]) -> None:
        k = bisect_right(self.thresholds, max(values))
        if k:
            out.update(self.rules[:k])

    def _eq(self, values: list[Any], out: set[int]) -> None:
        by_value = self.by_value
        for v in values:
            hit = by_value.get(v)
            if hit is not None:
                out.update(hit)

    def _ne(self, values: list[Any], out: set[int]) -> None:
        present = set(values)
        out.update(i for t, i in self.entries if len(present) > 1 or t not in present)

    def _in(self, values: list[Any], out: set[int]) -> None:
        present = set(values)
        out.update(i for t, i in self.entries if not present.isdisjoint(t))


_PASSING = {"<": "_lt", "<=": "_le", ">": "_gt", ">=": "_ge", "==": "_eq", "!=": "_ne", "in": "_in"}

Probe = Callable[[Record, set[int]], None]


def _probe(spec: FieldSpec, groups: tuple[_Group, ...]) -> Probe:
    """Read one field of an event and add the clause ids its groups pass; raises to skip (see evaluate).

    Numeric fields whose groups are all thresholds (the common case) get a fused loop: one pass
    over the mugs keeps the min and max, without a list, and each group is a bound check plus,
    rarely, a bisect. Everything else collects the known values and lets each group look.
    """
    collect = _collector(spec)
    ordering = all(g.op in ("<", "<=", ">", ">=") for g in groups)
    if not (spec.type is FieldType.NUMBER and spec.key is None and spec.scale is None and ordering):

        def probe_values(ev: Record, passed: set[int]) -> None:
            values = collect(ev)
            if values:
                for group in groups:
                    group.passing(values, passed)

        return probe_values

    attr = spec.attr
    # (thresholds, rule ids, bisect, is_low, bound): "low" ops test the minimum, "high" the maximum
    checks = []
    for g in groups:
        if g.op in ("<", "<="):
            checks.append((g.thresholds, g.rules, bisect_right if g.op == "<" else bisect_left, True, g.op == "<"))
        else:
            checks.append((g.thresholds, g.rules, bisect_left if g.op == ">" else bisect_right, False, g.op == ">"))

    def answer(mn: Any, mx: Any, passed: set[int]) -> None:
        for thresholds, rules, find, low, strict in checks:
            if low:  # some v < t (or <=): thresholds above the minimum
                top = thresholds[-1]
                if mn > top or (strict and mn == top):
                    continue
                passed.update(rules[find(thresholds, mn) :])
            else:
                bottom = thresholds[0]
                if mx < bottom or (strict and mx == bottom):
                    continue
                passed.update(rules[: find(thresholds, mx)])

    if spec.scope == "image":

        def probe_image_number(ev: Record, passed: set[int]) -> None:
            v = ev[attr]
            if v is None:
                return
            t = type(v)
            if t is not int and (t is not float or v != v):
                if t is float:
                    return  # NaN: unknown
                raise _WrongType
            answer(v, v, passed)

        return probe_image_number

    def probe_mug_number(ev: Record, passed: set[int]) -> None:
        mugs = ev["mugs"]
        if type(mugs) is not list:
            raise _WrongType
        mn = mx = None
        for m in mugs:
            v = m[attr]
            if v is None:
                continue
            t = type(v)
            if t is float:
                if v != v:
                    continue
            elif t is not int:
                raise _WrongType
            if mn is None:
                mn = mx = v
            elif v < mn:
                mn = v
            elif v > mx:
                mx = v
        if mn is not None and groups:
            answer(mn, mx, passed)

    if len(checks) != 1 or not checks[0][3]:
        return probe_mug_number
    # the commonest shape of all, "some mug has x < N" rules only: the minimum alone, the check inlined
    thresholds, rules, find, _, strict = checks[0]
    top = thresholds[-1]

    def probe_mug_below(ev: Record, passed: set[int]) -> None:
        mugs = ev["mugs"]
        if type(mugs) is not list:
            raise _WrongType
        mn = None
        for m in mugs:
            v = m[attr]
            if v is None:
                continue
            t = type(v)
            if t is float:
                if v != v:
                    continue
            elif t is not int:
                raise _WrongType
            if mn is None or v < mn:
                mn = v
        if mn is None or mn > top or (strict and mn == top):
            return
        passed.update(rules[find(thresholds, mn) :])

    return probe_mug_below


class _Plan:
    """The rules that apply to one source, with their guard index.

    Each guard clause gets an id; groups report the ids of clauses with a passing atom, and a rule
    is a candidate only when all of its clause ids passed. Rules without clauses always run.
    """

    __slots__ = ("needs", "owner", "probes", "rules", "unguarded", "users")

    def __init__(self, rules: Sequence[CompiledRule]) -> None:
        self.rules = list(rules)
        specs: dict[str, FieldSpec] = {}
        users: dict[str, list[int]] = defaultdict(list)
        atoms: dict[tuple[str, str], list[tuple[Any, int]]] = defaultdict(list)
        self.unguarded: list[int] = []
        self.owner: list[int] = []  # clause id -> rule index
        self.needs: list[frozenset[int]] = []  # rule index -> its clause ids
        for i, compiled in enumerate(self.rules):
            for spec in compiled.specs:
                specs.setdefault(spec.name, spec)
                users[spec.name].append(i)
            ids = []
            for clause in compiled.clauses:
                cid = len(self.owner)
                self.owner.append(i)
                ids.append(cid)
                for atom in clause:
                    value = frozenset(atom.value) if atom.op == "in" else atom.value
                    atoms[(atom.field, atom.op)].append((value, cid))
            self.needs.append(frozenset(ids))
            if not ids:
                self.unguarded.append(i)
        self.users = dict(users)
        groups: dict[str, list[_Group]] = defaultdict(list)
        for (name, op), entries in atoms.items():
            groups[name].append(_Group(specs[name], op, entries))
        # every referenced field is read (and type-checked) once per event by one probe, which also
        # answers all the guard groups on that field
        self.probes = [(name, _probe(spec, tuple(groups.get(name, ())))) for name, spec in specs.items()]

    def evaluate(self, ev: Record) -> Evaluation:
        passed: set[int] = set()
        bad: dict[str, str] | None = None
        for name, probe in self.probes:
            try:
                probe(ev, passed)
            except (KeyError, AttributeError):
                bad = bad or {}
                bad[name] = MISSING_FIELD
            except (_WrongType, TypeError):
                bad = bad or {}
                bad[name] = WRONG_TYPE
        if not passed and not bad and not self.unguarded:
            return NOTHING
        owner, needs = self.owner, self.needs
        candidates = {owner[c] for c in passed}
        candidates = {i for i in candidates if needs[i] <= passed}
        candidates.update(self.unguarded)
        if not candidates and not bad:
            return NOTHING
        skips: list[Skip] = []
        skipped: set[int] = set()
        if bad:
            for name, reason in bad.items():
                for i in self.users[name]:
                    if i not in skipped:
                        skipped.add(i)
                        skips.append(Skip(self.rules[i].rule, reason, name))
        matches: list[Match] = []
        rules = self.rules
        for i in sorted(candidates):
            if i in skipped:
                continue
            compiled = rules[i]
            if compiled.exact:  # its guards are the condition: it fired; the witness is found on demand
                matches.append(Match(compiled, ev))
                continue
            try:
                match = compiled.match(ev)
            except (KeyError, AttributeError) as exc:  # safety net: the checks above make this unreachable
                skips.append(Skip(rules[i].rule, MISSING_FIELD, str(exc)[:64]))
                continue
            except TypeError as exc:
                skips.append(Skip(rules[i].rule, WRONG_TYPE, str(exc)[:64]))
                continue
            if match is not None:
                matches.append(match)
        return Evaluation(tuple(matches), tuple(skips))


def condition_key(node: Condition) -> str:
    """Short stable name of a condition (the same on every worker and release), for state keys."""
    return hashlib.sha256(describe(node).encode()).hexdigest()[:12]


class StatefulIndex:
    """The stateful rules in scope of one source, indexed for ``rules.episodes``: by rule id (with
    their order, so transitions come out in a stable order), and the ones judged on every frame."""

    __slots__ = ("appears", "becomes", "by_id", "disappears", "lasts", "order", "rules")

    def __init__(self, rules: Iterable[CompiledRule]) -> None:
        self.rules = tuple(rules)
        self.by_id = {c.rule.rule_id: (i, c) for i, c in enumerate(self.rules)}
        self.order = {rid: i for rid, (i, _) in self.by_id.items()}
        kinds: dict[str, list[CompiledRule]] = defaultdict(list)
        for c in self.rules:
            kinds[c.rule.temporal.kind if c.rule.temporal else ""].append(c)
        # "lasts" rules by id, each with the number of its condition: rules with equal conditions
        # (the same test) share one judgement of it per frame
        conditions: dict[Condition, int] = {}
        self.lasts = {
            c.rule.rule_id: (c, conditions.setdefault(c.rule.condition, len(conditions))) for c in kinds["lasts"]
        }
        self.appears = tuple(kinds["appears"])
        self.disappears = tuple(kinds["disappears"])
        # "becomes" rules grouped by condition: each tracked mug's value of a condition is judged once
        # per frame and remembered per (source, track, condition); rules fire on its false -> true change
        groups: dict[str, list[CompiledRule]] = defaultdict(list)
        for c in kinds["becomes"]:
            groups[condition_key(c.rule.condition)].append(c)
        self.becomes = tuple((key, tuple(rules)) for key, rules in groups.items())

    def __len__(self) -> int:
        return len(self.rules)

    def __iter__(self) -> Iterator[CompiledRule]:
        return iter(self.rules)


class RuleSet:
    """An immutable, compiled set of rules. Rebuild it when rules change (cheap: milliseconds)."""

    def __init__(self, rules: Iterable[Rule], *, include_disabled: bool = False) -> None:
        chosen = sorted(
            (r for r in rules if r.enabled or include_disabled),
            key=lambda r: r.rule_id,
        )
        self.rules: tuple[Rule, ...] = tuple(chosen)
        compiled = [CompiledRule(r) for r in chosen]
        unscoped = [c for c in compiled if not c.rule.sources]
        sources = {s for c in compiled for s in c.rule.sources}
        # transitions are judged per tracked mug by rules.episodes, never by the index
        indexed = [c for c in unscoped if c.rule.temporal is None or c.rule.temporal.kind == "lasts"]
        self._default = _Plan(indexed)
        scoped = {source: [c for c in compiled if not c.rule.sources or source in c.rule.sources] for source in sources}
        self._plans = {
            source: _Plan([c for c in rules if c.rule.temporal is None or c.rule.temporal.kind == "lasts"])
            for source, rules in scoped.items()
        }
        # stateful rules share the index (a match says "true for some mug": worth judging per track)
        self._stateful_default = StatefulIndex(c for c in unscoped if c.rule.temporal is not None)
        self._stateful = {
            source: StatefulIndex(c for c in rules if c.rule.temporal is not None) for source, rules in scoped.items()
        }
        #: Whether some rule needs the registry of tracks seen (mugs appearing or disappearing).
        self.watches_tracks = any(c.rule.temporal is not None and c.rule.temporal.kind != "lasts" for c in compiled)
        self.has_stateful = any(c.rule.temporal is not None for c in compiled)

    def __len__(self) -> int:
        return len(self.rules)

    def stateful_for(self, source: str) -> StatefulIndex:
        """The stateful rules in scope of ``source`` (judged by ``rules.episodes``, not per image)."""
        return self._stateful.get(source, self._stateful_default)

    def evaluate(self, event: Record) -> Evaluation:
        """Every rule in scope of the event's source that fires on it, and every one that had to be skipped.

        Stateful rules are among the matches when their condition holds for some mug of this frame;
        whether that starts an episode is for ``rules.episodes`` to say."""
        source = event.get("source") if isinstance(event, Mapping) else None
        plan = self._plans.get(source, self._default) if isinstance(source, str) else self._default
        return plan.evaluate(event)


EMPTY = RuleSet(())
