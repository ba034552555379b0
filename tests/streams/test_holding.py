"""At-least-once inside an agent: a batch whose outputs were not delivered is held, never acknowledged.

The agents' round functions run here on a real ``MugposApp`` (no worker started); only the topic
a round sends to is replaced, by one whose first deliveries fail as a broker that is down does.
The chaos suite (``tests/chaos``) checks the same promise against real services and real kills.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from mugpos.agents.position import handle_batch as position_batch
from mugpos.core.codec import CodecError, codec
from mugpos.core.errors import InfrastructureError
from mugpos.core.settings import Settings
from mugpos.streams import holding
from mugpos.streams.app import MugposApp, create_app
from mugpos.streams.holding import hold
from mugpos.streams.metrics import HELD_BATCHES, HOLD_RETRIES
from tests.models.test_positioning import COASTER, CUSTOM, ON_COASTER, TABLE, det, event

pytestmark = pytest.mark.asyncio


class FlakyTopic:
    """Takes sends like a Faust topic; the first ``failures`` deliveries fail (broker down)."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.attempts: list[bytes] = []  # image ids of the positions sent, keys of the dead letters
        self.delivered: list[bytes] = []

    async def send(self, *, key: bytes | None = None, value: bytes) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        try:  # a position names its image inside (positions are keyed by camera); a dead letter by its key
            image_id = str(codec.decode(value, "PositionEvent")["image_id"]).encode()
        except CodecError:
            image_id = key or b""
        self.attempts.append(image_id)
        if self.failures > 0:
            self.failures -= 1
            future.set_exception(ConnectionError("broker at 127.0.0.1:1 refused the connection"))
        else:
            self.delivered.append(image_id)
            future.set_result(None)
        return future


class RecordingStream:
    """What the agents need of a Faust stream here: ``ack``, recorded in order."""

    def __init__(self) -> None:
        self.acked: list[int] = []
        self.channel = SimpleNamespace(topics=())

    async def ack(self, event: Any) -> bool:
        self.acked.append(event.message.offset)
        return True


def message_event(offset: int, value: bytes, topic: str = "mugpos.detections") -> Any:
    message = SimpleNamespace(topic=topic, partition=0, offset=offset, key=f"k{offset}".encode(), value=value)
    return SimpleNamespace(message=message, value=value, key=message.key)


@pytest.fixture(autouse=True)
def no_real_give_up(monkeypatch: pytest.MonkeyPatch) -> None:
    """The real give-up is ``os._exit``: a test that holds by mistake must fail, not end the test run."""

    def fail(stage: str, count: int, seconds: float, exc: BaseException) -> None:
        raise AssertionError(f"{stage}: gave up holding {count} event(s) after {seconds:.1f} s: {exc!r}")

    monkeypatch.setattr(holding, "give_up", fail)


@pytest.fixture
def app() -> Iterator[MugposApp]:
    settings = Settings(hold_initial_s=0.01, hold_max_s=0.02, give_up_s=5.0, mongodb_uri="", redis_url="")
    yield create_app(settings, role="analyze")


def detections(count: int) -> list[Any]:
    record = event(det("mug", ON_COASTER), det("coaster", COASTER), det("surface", TABLE), labels=CUSTOM)
    return [message_event(i, codec.encode("DetectionEvent", {**record, "image_id": f"img-{i}"})) for i in range(count)]


async def test_a_batch_whose_sends_fail_is_not_acknowledged_until_it_is_delivered_again(app: MugposApp) -> None:
    positions = FlakyTopic(failures=3)
    app.mugpos_topics = dataclasses.replace(app.mugpos_topics, positions=positions)  # type: ignore[arg-type]
    stream = RecordingStream()
    events = detections(3)
    retries = HOLD_RETRIES.labels("position", "broker")._value.get()

    await position_batch(app, events, stream)  # type: ignore[arg-type]

    assert positions.attempts[:3] == [b"img-0", b"img-1", b"img-2"]  # the first round: all three failed
    assert sorted(positions.delivered) == [b"img-0", b"img-1", b"img-2"]  # sent again, then delivered
    assert sorted(stream.acked) == [0, 1, 2]  # each acknowledged once, after its delivery
    assert HOLD_RETRIES.labels("position", "broker")._value.get() == retries + 1
    assert HELD_BATCHES.labels("position")._value.get() == 0


async def test_only_the_undelivered_events_of_a_batch_are_sent_again(app: MugposApp) -> None:
    positions = FlakyTopic(failures=1)
    app.mugpos_topics = dataclasses.replace(app.mugpos_topics, positions=positions)  # type: ignore[arg-type]
    stream = RecordingStream()

    await position_batch(app, detections(4), stream)  # type: ignore[arg-type]

    assert positions.attempts.count(b"img-0") == 2  # the one that failed, sent again
    assert [positions.attempts.count(f"img-{i}".encode()) for i in (1, 2, 3)] == [1, 1, 1]
    assert sorted(stream.acked) == [0, 1, 2, 3]


async def test_nothing_is_acknowledged_while_held_and_a_give_up_leaves_it_so(app: MugposApp) -> None:
    app.settings = app.settings.model_copy(update={"give_up_s": 0.2})
    stream = RecordingStream()
    events = [message_event(i, b"") for i in range(2)]
    rounds = 0
    gave_up: list[tuple[str, int]] = []

    async def store_down(pending: list[Any]) -> list[tuple[Any, InfrastructureError]]:
        nonlocal rounds
        rounds += 1
        raise InfrastructureError("MongoDB at 127.0.0.1:1: connection refused", service="mongodb")

    with pytest.raises(InfrastructureError):
        await hold(app, stream, "sink", events, store_down, on_give_up=lambda s, n, t, e: gave_up.append((s, n)))  # type: ignore[arg-type]

    assert rounds > 1  # retried with backoff
    assert stream.acked == []  # never acknowledged
    assert gave_up == [("sink", 2)]


async def test_a_bad_event_is_dead_lettered_and_acknowledged_beside_held_ones(app: MugposApp) -> None:
    positions, dlq = FlakyTopic(failures=1), FlakyTopic(failures=0)
    app.mugpos_topics = dataclasses.replace(app.mugpos_topics, positions=positions, dlq=dlq)  # type: ignore[arg-type]
    stream = RecordingStream()
    events = [*detections(1), message_event(1, b"\x00not avro")]

    await position_batch(app, events, stream)  # type: ignore[arg-type]

    assert dlq.delivered == [b"k1"]  # bad input: one dead letter, not repeated while the other was held
    assert positions.delivered == [b"img-0"]
    assert sorted(stream.acked) == [0, 1]
