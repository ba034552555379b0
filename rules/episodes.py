"""Episodes of stateful rules: what lasts, what changes, what ends, per camera and tracked mug.

A stateful rule (``Rule.temporal`` set) does not fire on one image: :class:`EpisodeTracker` feeds it
a camera's frames in capture order and keeps, per (rule, source[, track]), how long its condition
has held. An *episode* is a stretch of capture time in which the condition holds without a break;
it starts (one ``start`` action) once the rule's duration is reached and ends (one ``end`` action)
when the condition is false again, the mug has been unseen for ``lost_s``, or the camera went
quiet (:meth:`EpisodeTracker.expire`). An unknown value (null: the model cannot tell) neither
extends nor breaks an episode. Conditions on ``mug.*`` fields are judged per tracked mug (an
untracked mug is not judged), image conditions once per frame.

Transitions are kept in the camera's registry of tracks: a "becomes" rule fires when the value of
its condition for a tracked mug goes from a known false to true, and that value is remembered per
(source, track, condition), shared by every rule with the same condition, so a transition rule costs
one test per mug and frame whatever the number of such rules.

The state of one camera is a :class:`SourceState`, plain JSON underneath, so the stream layer can
keep it in a changelogged table keyed by source; every id derived here is a function of the
frames, so replaying them after a crash yields the same episodes and the same action ids.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from mugpos.rules.actions import event_millis
from mugpos.rules.engine import CompiledRule, Evaluation, Record, RuleSet, StatefulIndex, format_value
from mugpos.rules.model import Rule

Phase = Literal["start", "end"]
FORMAT = 1
#: Frames whose actions are remembered per camera, to send them again when a frame is redelivered.
OUTBOX_FRAMES = 32

# Entry fields (short keys: this is written to the changelog on every frame that changes it).
SINCE, FRAMES, SEEN, OPEN, FIRST, MUG = "s", "n", "t", "o", "f", "m"
PENDING, STARTED, SUPPRESSED = 0, 1, 2


@dataclass(frozen=True, slots=True)
class Transition:
    """One thing a stateful rule has to say: an episode started or ended, or a moment happened."""

    rule: Rule
    phase: Phase
    episode_id: str
    track_id: int | None
    since_ms: int
    at_ms: int
    evidence: dict[str, str]
    why: str  # for ends: cleared, lost (mug unseen) or idle (camera quiet); for starts: the kind

    @property
    def notify(self) -> bool:
        """Starts are always carried out; an end only when the rule asked to hear of resolution."""
        temporal = self.rule.temporal
        return self.phase == "start" or bool(temporal and temporal.resolve)


class SourceState:
    """What one camera's stateful rules remember; JSON-serialisable (:meth:`dumps`, :meth:`loads`)."""

    __slots__ = ("cool", "last_id", "last_ms", "outbox", "rules", "tracks")

    def __init__(self) -> None:
        self.last_ms: int | None = None
        self.last_id: str | None = None
        self.rules: dict[str, dict[str, dict[str, Any]]] = {}  # rule id -> episode key -> entry
        self.cool: dict[str, int] = {}  # rule id -> capture ms of its last admitted start
        self.tracks: dict[str, list[Any]] = {}  # track -> [first seen, last seen, last mug, {condition: value}]
        self.outbox: dict[str, list[dict[str, Any]]] = {}  # image id -> its stateful actions (JSON form)

    def is_replay(self, image_id: str) -> bool:
        """True for a frame this state has already taken in (redelivered after a crash)."""
        return image_id in self.outbox or image_id == self.last_id

    def is_late(self, captured_ms: int) -> bool:
        """True for a frame older than the newest one taken in: it may not move time back."""
        return self.last_ms is not None and captured_ms < self.last_ms

    @property
    def active(self) -> bool:
        """Whether any episode is open or pending."""
        return any(self.rules.values())

    @property
    def started(self) -> bool:
        """Whether some episode has started and not ended (what the idle sweep ends)."""
        return any(e.get(OPEN) == STARTED for entries in self.rules.values() for e in entries.values())

    def dumps(self) -> bytes:
        body: dict[str, Any] = {"v": FORMAT, "ms": self.last_ms, "id": self.last_id, "r": self.rules}
        body.update({"c": self.cool, "k": self.tracks, "o": self.outbox})
        return json.dumps(body, separators=(",", ":"), default=str).encode()

    @classmethod
    def loads(cls, data: bytes) -> SourceState:
        """Read :meth:`dumps`; state of another format starts afresh (episodes then restart)."""
        state = cls()
        try:
            body = json.loads(data)
        except ValueError:
            return state
        if not isinstance(body, dict) or body.get("v") != FORMAT:
            return state
        state.last_ms, state.last_id = body.get("ms"), body.get("id")
        state.rules, state.cool = body.get("r") or {}, body.get("c") or {}
        state.tracks, state.outbox = body.get("k") or {}, body.get("o") or {}
        return state

    def remember(self, image_id: str, captured_ms: int, actions: list[dict[str, Any]]) -> None:
        """Record a frame as taken in, with the stateful actions it produced (bounded outbox)."""
        self.last_ms, self.last_id = captured_ms, image_id
        if actions:
            self.outbox[image_id] = actions
            while len(self.outbox) > OUTBOX_FRAMES:
                del self.outbox[next(iter(self.outbox))]


def episode_id(rule_id: str, source: str, key: str, first: str) -> str:
    """Deterministic: the same frames always name the same episode (replays upsert)."""
    digest = hashlib.sha256(f"{rule_id}\x1f{source}\x1f{key}\x1f{first}".encode()).hexdigest()
    return f"ep-{digest[:16]}"


def _track(key: str) -> int | None:
    return int(key) if key.lstrip("-").isdigit() else None


class EpisodeTracker:
    """Steps the stateful rules of a rule set over one camera's frames (pure: no I/O, no clock)."""

    def __init__(self, lost_s: float = 30.0) -> None:
        self.lost_ms = int(lost_s * 1000)

    def step(self, ruleset: RuleSet, ev: Record, evaluation: Evaluation, state: SourceState) -> list[Transition]:
        """Take in one frame (in capture order, not late, not a replay); returns what happened.

        Only rules with something to do are visited: ``lasts`` rules the index matched on this frame
        or with pending or open episodes here; transitions are driven by what changed per tracked mug.
        """
        source = str(ev.get("source", ""))
        index = ruleset.stateful_for(source)
        if not index:
            return []
        candidates = {m.rule.rule_id for m in evaluation.matches if m.rule.temporal is not None}
        matched = frozenset(candidates)
        candidates.update(state.rules)
        out: list[Transition] = []
        t = _millis(ev)
        image_id = str(ev.get("image_id"))
        by_track = _tracked(ev) if candidates or ruleset.watches_tracks else {}
        if ruleset.watches_tracks:
            out += self._tracks(index, ev, state, source, by_track, t, image_id)
        if not candidates:
            return out
        skipped = {s.rule.rule_id for s in evaluation.skips} if evaluation.skips else ()
        judged: dict[Any, dict[str, tuple[bool | None, Any]]] = {}  # condition -> values: rules share them
        by_id = index.by_id
        for rid in sorted(candidates, key=lambda r: by_id[r][0] if r in by_id else -1):
            found = by_id.get(rid)
            if found is None or found[1].rule.temporal.kind != "lasts":  # type: ignore[union-attr]
                state.rules.pop(rid, None)  # a rule removed (or changed kind): its episodes are gone
                continue
            if rid in skipped:
                continue
            compiled = found[1]
            entries = state.rules.get(rid)
            if rid in matched:
                condition = compiled.rule.condition
                values = judged.get(condition)
                if values is None:
                    values = judged[condition] = self._values(compiled, ev, by_track)
            else:
                assert entries is not None
                absent = compiled.uses_mugs and not any(k in by_track for k in entries)
                if absent and t - min(e[SEEN] for e in entries.values()) <= self.lost_ms:
                    continue  # only mugs not in this frame, none unseen for long: nothing to do yet
                values = self._values(compiled, ev, by_track, entries)
            if entries is None:
                entries = state.rules.setdefault(rid, {})
            out += self._lasts(compiled, ev, state, source, entries, values, t, image_id)
            if not entries:
                state.rules.pop(rid, None)
        return out

    def expire(self, state: SourceState, ruleset: RuleSet, source: str, at_ms: int) -> list[Transition]:
        """End every started episode of a camera that went quiet (nothing would ever clear it).

        Pending ones stay: if the camera comes back within ``lost_s`` they go on, else the gap breaks
        them. State of rules that no longer exist is dropped."""
        out: list[Transition] = []
        rules = {c.rule.rule_id: c for c in ruleset.stateful_for(source)}
        for rid, entries in list(state.rules.items()):
            compiled = rules.get(rid)
            if compiled is None:
                del state.rules[rid]
                continue
            for key, entry in list(entries.items()):
                if entry.get(OPEN) == STARTED:
                    out.append(self._end(compiled, source, key, entry, at_ms, "idle"))
                    del entries[key]
            if not entries:
                del state.rules[rid]
        return out

    # -- kinds ---------------------------------------------------------------------------------

    def _values(
        self,
        compiled: CompiledRule,
        ev: Record,
        by_track: Mapping[str, Any],
        only: Mapping[str, Any] | None = None,
    ) -> dict[str, tuple[bool | None, Any]]:
        """key -> (Kleene value, mug): for every tracked mug, or only the keys of ``only`` (pending ones)."""
        test = compiled.test
        if not compiled.uses_mugs:
            return {"": (test(ev, None), None)}
        keys: Iterable[str] = by_track if only is None else [k for k in only if k in by_track]
        return {key: (test(ev, by_track[key]), by_track[key]) for key in keys}

    def _lasts(
        self,
        compiled: CompiledRule,
        ev: Record,
        state: SourceState,
        source: str,
        entries: dict[str, dict[str, Any]],
        values: Mapping[str, tuple[bool | None, Any]],
        t: int,
        image_id: str,
    ) -> list[Transition]:
        rule = compiled.rule
        temporal = rule.temporal
        assert temporal is not None
        out: list[Transition] = []
        for key, (value, mug) in values.items():
            entry = entries.get(key)
            if entry is not None and t - entry[SEEN] > self.lost_ms:  # not seen for long: that is a break
                if entry[OPEN] == STARTED:
                    out.append(self._end(compiled, source, key, entry, entry[SEEN], "lost"))
                del entries[key]
                entry = None
            if value is True:
                if entry is None:
                    entry = entries[key] = {SINCE: t, FRAMES: 1, SEEN: t, OPEN: PENDING, FIRST: image_id}
                else:
                    entry[FRAMES] += 1
                    entry[SEEN] = t
                if entry[OPEN] == PENDING and _held(temporal.for_s, temporal.strict, temporal.for_frames, entry, t):
                    if self._admit(rule, state, t):
                        entry[OPEN] = STARTED
                        eid = episode_id(rule.rule_id, source, key, entry[FIRST])
                        evidence = compiled.evidence(ev, mug, [mug] if mug is not None else [])
                        evidence["episode.duration_s"] = format_value((t - entry[SINCE]) / 1000)
                        evidence["episode.frames"] = str(entry[FRAMES])
                        out.append(Transition(rule, "start", eid, _track(key), entry[SINCE], t, evidence, "lasts"))
                    else:
                        entry[OPEN] = SUPPRESSED
            elif value is False:
                if entry is not None:
                    if entry[OPEN] == STARTED:
                        out.append(self._end(compiled, source, key, entry, t, "cleared"))
                    del entries[key]
            elif entry is not None:
                entry[SEEN] = t  # unknown: seen, but neither extends nor breaks the episode
        self._lost(compiled, source, entries, values, t, out)
        return out

    def _lost(
        self,
        compiled: CompiledRule,
        source: str,
        entries: dict[str, dict[str, Any]],
        values: Mapping[str, Any],
        t: int,
        out: list[Transition],
    ) -> None:
        """Drop keys unseen for ``lost_s`` (a mug that left); an open episode of one ends."""
        if len(entries) <= len(values) and all(k in values for k in entries):
            return
        for key in [k for k in entries.keys() - values.keys() if t - entries[k][SEEN] > self.lost_ms]:
            entry = entries.pop(key)
            if entry.get(OPEN) == STARTED:
                out.append(self._end(compiled, source, key, entry, t, "lost"))

    def _tracks(
        self,
        index: StatefulIndex,
        ev: Record,
        state: SourceState,
        source: str,
        by_track: Mapping[str, Any],
        t: int,
        image_id: str,
    ) -> list[Transition]:
        """Transitions, driven by the registry of this camera's tracks: [first seen, last seen, last mug,
        {condition: last known value}]. A mug appears when first seen, disappears when unseen for
        ``lost_s``, and a "becomes" condition fires on a known false -> true change of its value."""
        out: list[Transition] = []
        tracks = state.tracks
        for key, mug in by_track.items():
            entry = tracks.get(key)
            if entry is None:
                entry = tracks[key] = [t, t, mug, {}]
                for compiled in index.appears:
                    if compiled.test(ev, mug) is True:
                        out += self._moment(compiled, ev, state, source, key, mug, t, image_id)
            else:
                entry[1], entry[2] = t, mug
            marks = entry[3]
            for ckey, group in index.becomes:
                value = group[0].test(ev, mug)
                if value is None:
                    continue  # unknown: the last known value stands
                if value is True and marks.get(ckey) is False:
                    for compiled in group:
                        out += self._moment(compiled, ev, state, source, key, mug, t, image_id)
                if marks.get(ckey) is not value:
                    marks[ckey] = value
        gone = [k for k, entry in tracks.items() if t - entry[1] > self.lost_ms]
        for key in gone:
            _first, seen, mug, _marks = tracks.pop(key)
            for compiled in index.disappears:
                if compiled.test(ev, mug) is True:
                    out += self._moment(compiled, ev, state, source, key, mug, t, f"gone@{seen}")
        return out

    # -- actions ---------------------------------------------------------------------------------

    def _moment(
        self,
        compiled: CompiledRule,
        ev: Record,
        state: SourceState,
        source: str,
        key: str,
        mug: Any,
        t: int,
        image_id: str,
    ) -> list[Transition]:
        """A transition (becomes, appears, disappears): one start action, no end, cooldown applies."""
        rule = compiled.rule
        if not self._admit(rule, state, t):
            return []
        eid = episode_id(rule.rule_id, source, key, image_id)
        evidence = compiled.evidence(ev, mug, [mug] if mug is not None else [])
        assert rule.temporal is not None
        return [Transition(rule, "start", eid, _track(key), t, t, evidence, rule.temporal.kind)]

    def _end(
        self, compiled: CompiledRule, source: str, key: str, entry: Mapping[str, Any], t: int, why: str
    ) -> Transition:
        rule = compiled.rule
        eid = episode_id(rule.rule_id, source, key, entry[FIRST])
        evidence = {
            "episode.duration_s": format_value((entry[SEEN] - entry[SINCE]) / 1000),
            "episode.frames": str(entry[FRAMES]),
            "episode.ended": why,
        }
        return Transition(rule, "end", eid, _track(key), entry[SINCE], t, evidence, why)

    @staticmethod
    def _admit(rule: Rule, state: SourceState, t: int) -> bool:
        """The rule's cooldown between episode starts, on capture time, kept with the episodes."""
        last = state.cool.get(rule.rule_id)
        if rule.cooldown_s > 0 and last is not None and abs(t - last) < rule.cooldown_s * 1000:
            return False
        state.cool[rule.rule_id] = t
        return True


def _held(for_s: float | None, strict: bool, for_frames: int | None, entry: Mapping[str, Any], t: int) -> bool:
    if for_s:
        elapsed = t - entry[SINCE]
        if (elapsed <= for_s * 1000) if strict else (elapsed < for_s * 1000):
            return False
    return not (for_frames and entry[FRAMES] < for_frames)


def _tracked(ev: Record) -> dict[str, Any]:
    return {str(m["track_id"]): m for m in ev.get("mugs") or () if m.get("track_id") is not None}


def _millis(ev: Record) -> int:
    return event_millis(ev.get("captured_at"))
