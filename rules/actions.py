"""From a match to an ``ActionEvent``: deterministic ids, messages, and the per-source cooldown.

Cooldowns run on *capture time* (the camera's ``captured_at``), not on the clock of whichever
worker happens to process the frame: a backlog replayed in a minute still yields one alert per
cooldown of scene time, and tests can state exactly which frames must alert. A rule fires for a
source only when its previous action for that source is at least ``cooldown_s`` away in capture
time, in either direction (frames from different partitions arrive out of order).

Replays are idempotent: the action id is ``rule_id:image_id``, and a frame whose action id is the
one that set the cooldown is admitted again (same key on the actions topic, so an upsert). The
state per (rule, source) is the latest admitted action in capture time; an old frame that arrives
late fires only if it is a whole cooldown before it, and never moves the state back.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from datetime import UTC, datetime
from typing import Any, Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError

from mugpos.rules.engine import Match, Record
from mugpos.rules.metrics import COOLDOWN_ERRORS

log = logging.getLogger(__name__)


def action_id(rule_id: str, image_id: str) -> str:
    """Deterministic id of the action of a rule on an image (rule ids never contain ':')."""
    return f"{rule_id}:{image_id}"


def event_millis(value: Any) -> int:
    """Epoch milliseconds of a decoded ``timestamp-millis`` (datetime) or a raw number; now when absent."""
    if isinstance(value, datetime):
        return int(value.timestamp() * 1000)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, str):  # JSON events (``rules test``) carry ISO-8601 times
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            pass
        else:
            return int((parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp() * 1000)
    return int(time.time() * 1000)


def message_for(match: Match, event: Record) -> str:
    """One sentence for people: which rule, which mug, where, and the values that made it true."""
    rule = match.rule
    evidence = match.evidence
    facts = ", ".join(f"{k}={v}" for k, v in evidence.items() if k not in ("mug.index", "mugs.matching"))
    subject = f"mug {evidence['mug.index']}" if "mug.index" in evidence else "image"
    return f"{rule.name}: {subject} in {event.get('source', '?')} (image {event.get('image_id', '?')}): {facts}"


def build_action(match: Match, event: Record, fired_at: datetime | None = None) -> dict[str, Any]:
    """The ``ActionEvent`` record of a match on a decoded ``PositionEvent``."""
    rule = match.rule
    image_id = str(event["image_id"])
    captured = event.get("captured_at")
    return {
        "action_id": action_id(rule.rule_id, image_id),
        "rule_id": rule.rule_id,
        "rule_name": rule.name,
        "severity": rule.severity,
        "action_type": rule.action.type,
        "target": rule.action.target,
        "message": message_for(match, event),
        "evidence": dict(match.evidence),
        "image_id": image_id,
        "source": str(event.get("source", "")),
        "captured_at": captured
        if isinstance(captured, datetime)
        else datetime.fromtimestamp(event_millis(captured) / 1000, UTC),
        "fired_at": fired_at or datetime.now(UTC),
    }


def episode_action_id(rule_id: str, episode: str, phase: str) -> str:
    """Deterministic id of the start or end of one episode (rule ids never contain ':')."""
    return f"{rule_id}:{episode}:{phase}"


def build_episode_action(transition: Any, event: Record, fired_at: datetime | None = None) -> dict[str, Any]:
    """The ``ActionEvent`` record of a stateful rule's :class:`~rules.episodes.Transition` on a frame."""
    rule = transition.rule
    source = str(event.get("source", ""))
    image_id = str(event.get("image_id", ""))
    subject = "image" if transition.track_id is None else f"mug (track {transition.track_id})"
    seconds = max(0, transition.at_ms - transition.since_ms) / 1000
    if transition.phase == "end":
        message = f"{rule.name}: over for {subject} in {source} after {seconds:g} s ({transition.why})"
    else:
        facts = ", ".join(f"{k}={v}" for k, v in transition.evidence.items() if k not in ("mug.index", "mugs.matching"))
        held = f" for {seconds:g} s" if transition.why == "lasts" else ""
        message = f"{rule.name}: {subject} in {source}{held} (image {image_id}): {facts}"
    return {
        "action_id": episode_action_id(rule.rule_id, transition.episode_id, transition.phase),
        "rule_id": rule.rule_id,
        "rule_name": rule.name,
        "severity": rule.severity,
        "action_type": rule.action.type,
        "target": rule.action.target,
        "message": message,
        "evidence": dict(transition.evidence),
        "image_id": image_id,
        "source": source,
        "captured_at": datetime.fromtimestamp(transition.at_ms / 1000, UTC),
        "fired_at": fired_at or datetime.now(UTC),
        "phase": transition.phase,
        "episode_id": transition.episode_id,
        "track_id": transition.track_id,
        "notify": transition.notify,
    }


_TIMES = ("captured_at", "fired_at")


def action_to_json(record: dict[str, Any]) -> dict[str, Any]:
    """An ActionEvent record as plain JSON (times in epoch ms), for state kept in a changelog."""
    return {k: event_millis(v) if k in _TIMES else v for k, v in record.items()}


def action_from_json(data: dict[str, Any]) -> dict[str, Any]:
    """Inverse of :func:`action_to_json`."""
    return {k: datetime.fromtimestamp(v / 1000, UTC) if k in _TIMES else v for k, v in data.items()}


# -- cooldown ------------------------------------------------------------------------------------


class Cooldown(Protocol):
    """Decides whether a fire becomes an action."""

    async def admit(self, rule_id: str, source: str, at_ms: int, cooldown_s: int, action: str) -> bool:
        """True when ``action`` may be emitted; records it as the latest for (rule, source) if so."""
        ...

    async def close(self) -> None: ...


class MemoryCooldown:
    """Per-process cooldown state: exact for one worker, and the fallback when Redis is down."""

    def __init__(self, max_keys: int = 200_000) -> None:
        self._last: OrderedDict[tuple[str, str], tuple[int, str]] = OrderedDict()
        self._max = max_keys

    def check(self, rule_id: str, source: str, at_ms: int, cooldown_s: int, action: str) -> bool:
        """Whether the local state allows the action (without recording it)."""
        last = self._last.get((rule_id, source))
        if last is None or cooldown_s <= 0:
            return True
        last_ms, last_action = last
        return last_action == action or abs(at_ms - last_ms) >= cooldown_s * 1000

    def remember(self, rule_id: str, source: str, at_ms: int, action: str) -> None:
        key = (rule_id, source)
        self._last[key] = (at_ms, action)
        self._last.move_to_end(key)
        while len(self._last) > self._max:  # bounded: sources x rules, oldest forgotten first
            self._last.popitem(last=False)

    async def admit(self, rule_id: str, source: str, at_ms: int, cooldown_s: int, action: str) -> bool:
        if cooldown_s <= 0:
            return True
        if not self.check(rule_id, source, at_ms, cooldown_s, action):
            return False
        last = self._last.get((rule_id, source))
        if last is None or at_ms >= last[0]:  # the state is the latest action in capture time
            self.remember(rule_id, source, at_ms, action)
        return True

    async def close(self) -> None:
        return None


# KEYS[1] = state key; ARGV = at_ms, cooldown_ms, action id, ttl_ms. Returns {admitted, last_ms, last_action}
# where last_* is the state after the call: the latest admitted action in capture time.
_ADMIT_LUA = """
local v = redis.call('GET', KEYS[1])
local at = tonumber(ARGV[1])
if v then
  local sep = string.find(v, ' ', 1, true)
  local last_text = string.sub(v, 1, sep - 1)
  local last = tonumber(last_text)
  local last_action = string.sub(v, sep + 1)
  if last_action == ARGV[3] then
    return {1, last_text, last_action}
  end
  if math.abs(at - last) < tonumber(ARGV[2]) then
    return {0, last_text, last_action}
  end
  if at < last then
    redis.call('PEXPIRE', KEYS[1], ARGV[4])
    return {1, last_text, last_action}
  end
end
redis.call('SET', KEYS[1], ARGV[1] .. ' ' .. ARGV[3], 'PX', ARGV[4])
return {1, ARGV[1], ARGV[3]}
"""


class RedisCooldown:
    """Cooldown shared by every worker through Redis (positions are keyed by image, not source,
    so frames of one camera spread over workers). One atomic script per admitted-looking fire; a
    local copy answers the frames of a stuck scene without a round trip. Redis down: local only."""

    def __init__(self, url: str, namespace: str, timeout_s: float = 0.5) -> None:
        self._redis = Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
        self._script = self._redis.register_script(_ADMIT_LUA)
        self._namespace = namespace
        self._local = MemoryCooldown()
        self._down = False

    def key(self, rule_id: str, source: str) -> str:
        return f"{self._namespace}rules:cooldown:{rule_id}:{source}"

    async def admit(self, rule_id: str, source: str, at_ms: int, cooldown_s: int, action: str) -> bool:
        if cooldown_s <= 0:
            return True
        if not self._local.check(rule_id, source, at_ms, cooldown_s, action):
            return False  # a fire this worker knows of is within the cooldown: no need to ask
        ttl_ms = cooldown_s * 1000 + 600_000
        try:
            admitted, last_ms, last_action = await self._script(
                keys=[self.key(rule_id, source)], args=[at_ms, cooldown_s * 1000, action, ttl_ms]
            )
        except (RedisError, OSError, TimeoutError) as exc:
            COOLDOWN_ERRORS.inc()
            if not self._down:
                log.warning("cooldown store unavailable, using this worker's memory only: %r", exc)
                self._down = True
            return await self._local.admit(rule_id, source, at_ms, cooldown_s, action)
        if self._down:
            log.info("cooldown store reachable again")
            self._down = False
        self._local.remember(rule_id, source, int(last_ms), _text(last_action))
        return bool(int(admitted))

    async def close(self) -> None:
        await self._redis.aclose()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
