"""Chaos: the split pipeline (detect, analyze and sink workers) on the real local services, while
images flow and, one after the other, workers are SIGKILLed and services go away for 20 s.

A small supervisor restarts any worker process that ended, as Kubernetes would, and counts the
restarts. Images are produced at a steady rate for the whole run, each counted towards the fault
step in progress when it was announced. A webhook rule fires for every image (no cooldown) at a
local receiver that can be switched to answer 503. Afterwards the test checks what a user checks:
one result document per image in MongoDB, every action delivered to the receiver and recorded
once in MongoDB, no dead letter at all (these are good images: infrastructure trouble must hold
and retry, never dead-letter), and every worker still running (restarts after our SIGKILLs are
expected; a worker that exited on its own is a failure).

The table it prints (and writes to ``docs/chaos.md`` with ``MUGPOS_CHAOS_WRITE_DOCS=1``; the
columns are explained there) has, per fault step: images announced, complete results, duplicates
(extra copies of the step's DetectionEvents and PositionEvents on their topics: each is one more
result write that the sink upserts onto the same document), extra webhook deliveries, dead
letters, restarts, the roles that logged "holding ... retrying with backoff", the median latency,
seconds to recover (fault end until the first image announced after it has its complete result in
MongoDB, or for the webhook step its action accepted by the receiver) and seconds to catch up
(fault end until the last image announced before it got there).

Run it with ``make test-chaos`` (the services must be up: ``make services``). It never stops the
broker (memory-only: it would lose every topic); every service it stops is started again, also
when the test fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import os
import platform
import shutil
import signal
import subprocess
import threading
import time
from collections import Counter, deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from aiohttp import web
from PIL import Image
from pymongo import AsyncMongoClient, MongoClient
from pymongo.errors import PyMongoError

from mugpos.core.settings import Settings, settings_env
from mugpos.core.topics import ensure_topics
from mugpos.rules.senders import ACTION_ID_HEADER
from mugpos.streams.app import app_id
from mugpos.streams.consumer import consume_events
from mugpos.streams.producer import ImageProducer, object_key
from tests.integration.test_rules_agent import SECRET, Receiver
from tests.integration.worker import rules_cli, running_worker
from tests.models.drawing import draw_mug_scene

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(720)]

ROOT = Path(__file__).resolve().parents[2]
WEIGHTS = ROOT / "models" / "weights" / "yolo26n.pt"
SERVICES_SH = ROOT / "scripts" / "services.sh"
DOCS = ROOT / "docs" / "chaos.md"
WRITE_DOCS = "MUGPOS_CHAOS_WRITE_DOCS"

ROLES = ("detect", "analyze", "sink")
RULE_ID = "every"
HOLDING = "retrying with backoff"

RATE = 2.0  # images announced per second, for the whole run
LEAD_S = 4.0  # images flow this long in a step before its fault
OUTAGE_S = 20.0  # how long a service (or the webhook receiver) stays down
START_DEADLINE_S = 240.0  # three workers loading on a shared 2-core CPU
RECOVER_DEADLINE_S = 150.0
SETTLE_DEADLINE_S = 180.0
BUFFER = 90  # images uploaded ahead: announcing goes on while S3 is down (OUTAGE_S + LEAD_S + slack at RATE)
SIZE = (320, 240)


# -- workers ----------------------------------------------------------------------------------------


class Supervisor:
    """Runs one process per role and restarts a process that ended, as Kubernetes restarts a
    container. Our own SIGKILLs are expected; any other exit (e.g. status 75 after giving up) is
    recorded in ``unexpected``."""

    def __init__(self, settings: Settings, log_dir: Path, env: dict[str, str]) -> None:
        self.settings = settings
        self.log_dir = log_dir
        self.env = env
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.logs: dict[str, list[Path]] = {role: [] for role in ROLES}
        self.restarts: Counter[str] = Counter()
        self.unexpected: list[str] = []
        self._killed: set[int] = set()
        self._stack = contextlib.ExitStack()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="supervisor", daemon=True)

    def start(self) -> None:
        for role in ROLES:
            self._spawn(role)
        self._thread.start()

    def _spawn(self, role: str) -> None:
        with self._lock:
            path = self.log_dir / f"{role}-{len(self.logs[role]) + 1}.log"
            self.logs[role].append(path)
            self.procs[role] = self._stack.enter_context(running_worker(self.settings, path, role=role, **self.env))

    def kill(self, role: str) -> int:
        with self._lock:
            proc = self.procs[role]
            self._killed.add(proc.pid)
            proc.send_signal(signal.SIGKILL)
            return proc.pid

    def _watch(self) -> None:
        while not self._stop.wait(0.2):
            for role, proc in list(self.procs.items()):
                code = proc.poll()
                if code is None:
                    continue
                if proc.pid not in self._killed:
                    log = self.logs[role][-1]
                    tail = log.read_text(errors="replace")[-3000:]
                    self.unexpected.append(f"{role} worker pid {proc.pid} exited with status {code} ({log}):\n{tail}")
                self.restarts[role] += 1
                self._spawn(role)

    def alive(self) -> dict[str, bool]:
        return {role: proc.poll() is None for role, proc in self.procs.items()}

    def count(self, role: str, text: str) -> int:
        """Log lines of every process of ``role`` so far that contain ``text``."""
        return sum(
            line.count(text)
            for path in self.logs[role]
            if path.exists()
            for line in path.read_text(errors="replace").splitlines()
        )

    def tails(self, chars: int = 2500) -> str:
        return "\n".join(
            f"--- {path.name} ---\n{path.read_text(errors='replace')[-chars:]}"
            for role in ROLES
            for path in self.logs[role][-1:]
        )

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(10)
        for proc in self.procs.values():  # all at once, then each is waited for (SIGKILL after 20 s)
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        self._stack.close()


# -- webhook receiver -------------------------------------------------------------------------------


class Gate(list[dict[str, Any]]):
    """``Receiver.requests`` that can refuse: while ``failing`` a request is answered 503 and not
    recorded; an accepted one is stamped with its arrival time (``t``, monotonic)."""

    def __init__(self) -> None:
        super().__init__()
        self.failing = False
        self.refused = 0

    def append(self, item: dict[str, Any]) -> None:
        if self.failing:
            self.refused += 1
            raise web.HTTPServiceUnavailable(text="chaos: the receiver is failing")
        item["t"] = time.monotonic()
        super().append(item)


class FlakyReceiver(Receiver):
    """The integration tests' webhook receiver, switchable to answer 503 for a while."""

    def __init__(self) -> None:
        super().__init__()
        self.requests: Gate = Gate()

    def accepted(self) -> list[tuple[str, float]]:
        """(action id, arrival time) of every accepted delivery, duplicates included."""
        return [(r["headers"][ACTION_ID_HEADER], r["t"]) for r in list(self.requests) if r["path"] == "/hook"]


# -- services ---------------------------------------------------------------------------------------


def service(command: str, *names: str) -> None:
    """``scripts/services.sh COMMAND NAME...`` (stop/up one service); never the broker."""
    assert "broker" not in names, "the broker keeps its topics in memory: never stop it"
    result = subprocess.run(
        ["bash", str(SERVICES_SH), command, *names], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert result.returncode == 0, f"services.sh {command} {' '.join(names)}: {result.stdout}{result.stderr}"


# -- images -----------------------------------------------------------------------------------------

COLOURS = [(200, 30, 30), (30, 60, 200), (240, 240, 235), (40, 160, 60), (210, 120, 30)]


def scene_jpeg(index: int, rng: np.random.Generator) -> bytes:
    """A small drawn mug scene, unique bytes (so no cache knows it: every image is fetched)."""
    pixels, _ = draw_mug_scene(
        *SIZE, mug_colour=COLOURS[index % len(COLOURS)], centre_x=0.3 + 0.3 * rng.random(), seed=index
    )
    pixels[0, :16] = rng.integers(0, 255, size=(16, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="JPEG", quality=85)
    return buf.getvalue()


@dataclass
class Phase:
    """One step of the run: images announced while it lasts count towards it."""

    name: str
    begun: float
    measure: str = "results"  # what recovery is measured on: "results" (MongoDB) or "webhooks"
    fault_start: float | None = None
    fault_end: float | None = None
    ended: float | None = None
    holding: dict[str, int] = field(default_factory=dict)  # role -> new "holding" log lines
    restarts: int = 0


class Chaos:
    """Producer, observers and fault steps of one run."""

    def __init__(self, settings: Settings, supervisor: Supervisor, receiver: FlakyReceiver) -> None:
        self.settings = settings
        self.supervisor = supervisor
        self.receiver = receiver
        self.phases: list[Phase] = []
        self.produced: dict[str, tuple[str, float]] = {}  # image id -> (phase, announced at)
        self.results_at: dict[str, float] = {}  # image id -> first seen complete in MongoDB
        self.actions_at: dict[str, float] = {}  # action id -> first seen in MongoDB
        self.ready: deque[dict[str, Any]] = deque()
        self.stop_producing = asyncio.Event()
        self.stop_observing = asyncio.Event()
        self.rng = np.random.default_rng()
        self.uploaded = 0

    # -- the phases ----------------------------------------------------------------------------

    def begin(self, name: str, measure: str = "results") -> Phase:
        now = time.monotonic()
        if self.phases:
            self._close(self.phases[-1], now)
        phase = Phase(name, now, measure)
        phase.holding = {role: self.supervisor.count(role, HOLDING) for role in ROLES}
        phase.restarts = sum(self.supervisor.restarts.values())
        self.phases.append(phase)
        print(f"[chaos {now - self.phases[0].begun:6.1f} s] {name}", flush=True)
        return phase

    def _close(self, phase: Phase, now: float) -> None:
        phase.ended = now
        phase.holding = {role: self.supervisor.count(role, HOLDING) - before for role, before in phase.holding.items()}
        phase.restarts = sum(self.supervisor.restarts.values()) - phase.restarts

    def current(self) -> str:
        return self.phases[-1].name

    def arrivals(self, measure: str) -> dict[str, float]:
        """Image id -> when its output first arrived (its MongoDB result, or its webhook)."""
        if measure == "results":
            return dict(self.results_at)
        out: dict[str, float] = {}
        for aid, t in self.receiver.accepted():
            image_id = aid.split(":", 1)[1]
            out[image_id] = min(t, out.get(image_id, t))
        return out

    def recovery_s(self, phase: Phase) -> float | None:
        """Fault end until the first image announced after it arrived."""
        assert phase.fault_end is not None
        arrived = self.arrivals(phase.measure)
        after = [
            arrived[i]
            for i, (p, t) in self.produced.items()
            if p == phase.name and t >= phase.fault_end and i in arrived
        ]
        return min(after) - phase.fault_end if after else None

    def catch_up_s(self, phase: Phase) -> float | None:
        """Fault end until the last image announced before it arrived (0: nothing was kept back)."""
        if phase.fault_end is None:
            return None
        arrived = self.arrivals(phase.measure)
        before = [i for i, (p, t) in self.produced.items() if p == phase.name and t < phase.fault_end]
        if not before or any(i not in arrived for i in before):
            return None
        return max(0.0, max(arrived[i] for i in before) - phase.fault_end)

    async def recovered(self, phase: Phase) -> float:
        deadline = time.monotonic() + RECOVER_DEADLINE_S
        while (seconds := self.recovery_s(phase)) is None:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{phase.name}: no new output {RECOVER_DEADLINE_S:.0f} s after the fault ended\n"
                    + self.supervisor.tails()
                )
            await asyncio.sleep(0.25)
        print(f"    recovered {seconds:.1f} s after the fault ended", flush=True)
        await asyncio.sleep(2.0)  # a little steady flow before the next fault
        return seconds

    # -- producing and observing ---------------------------------------------------------------

    async def upload(self, producer: ImageProducer) -> None:
        """Keep BUFFER images uploaded ahead of announcing; waits out an S3 outage."""
        prefix = self.settings.app_id
        while not self.stop_producing.is_set():
            if len(self.ready) >= BUFFER:
                await asyncio.sleep(0.1)
                continue
            index = self.uploaded
            data = scene_jpeg(index, self.rng)
            image_id = f"{prefix}-{index:04d}"
            try:
                uri = await producer.store.put(object_key(image_id, "image/jpeg"), data, "image/jpeg")
            except Exception:  # S3 is down: announcing lives on the buffer meanwhile
                await asyncio.sleep(1.0)
                continue
            self.uploaded += 1
            self.ready.append(
                {
                    "image_id": image_id,
                    "uri": uri,
                    "source": f"cam-{index % 3}",
                    "content_type": "image/jpeg",
                    "sha256": hashlib.sha256(data).hexdigest(),
                    "width": SIZE[0],
                    "height": SIZE[1],
                    "metadata": {},
                }
            )

    async def announce(self, producer: ImageProducer) -> None:
        """Announce uploaded images at RATE, each counted towards the current phase."""
        next_at = time.monotonic()
        while not self.stop_producing.is_set():
            if not self.ready:
                await asyncio.sleep(0.05)
                continue
            event = self.ready.popleft()
            event["captured_at"] = datetime.now(UTC)
            now = time.monotonic()
            await producer.send_event(event)
            self.produced[event["image_id"]] = (self.current(), now)
            next_at = max(next_at + 1 / RATE, time.monotonic() - 1.0)
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))

    async def wait_buffer(self, count: int) -> None:
        deadline = time.monotonic() + 60
        while len(self.ready) < count:
            assert time.monotonic() < deadline, f"only {len(self.ready)} images uploaded ahead"
            await asyncio.sleep(0.2)

    async def observe(self) -> None:
        """Note when each complete result and each action first shows up in MongoDB."""
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
            self.settings.mongodb_uri, serverSelectionTimeoutMS=1000, connectTimeoutMS=1000, socketTimeoutMS=5000
        )
        db = client[self.settings.mongodb_db]
        try:
            while not self.stop_observing.is_set():
                try:
                    complete = {"detection": {"$exists": True}, "position": {"$exists": True}}
                    async for doc in db["analysis_results"].find(complete, {"_id": 1}):
                        self.results_at.setdefault(doc["_id"], time.monotonic())
                    async for doc in db["actions"].find({}, {"_id": 1}):
                        self.actions_at.setdefault(doc["_id"], time.monotonic())
                except PyMongoError:
                    pass  # MongoDB is down: what it holds is seen once it is back
                await asyncio.sleep(0.5)
        finally:
            await client.close()

    # -- the run -------------------------------------------------------------------------------

    async def kill(self, role: str, number: int) -> None:
        phase = self.begin(f"SIGKILL {role} worker #{number}")
        await asyncio.sleep(LEAD_S)
        phase.fault_start = time.monotonic()
        pid = self.supervisor.kill(role)
        phase.fault_end = time.monotonic()
        print(f"    killed {role} pid {pid}", flush=True)
        await self.recovered(phase)

    async def outage(self, name: str, label: str) -> None:
        phase = self.begin(f"{label} stopped {OUTAGE_S:.0f} s")
        await self.wait_buffer(int(RATE * (OUTAGE_S + LEAD_S)) + 10 if name == "s3" else 0)
        await asyncio.sleep(LEAD_S)
        phase.fault_start = time.monotonic()
        try:
            await asyncio.to_thread(service, "stop", name)
            await asyncio.sleep(OUTAGE_S)
        finally:
            await asyncio.to_thread(service, "up", name)
        phase.fault_end = time.monotonic()
        await self.recovered(phase)

    async def webhook_down(self) -> None:
        phase = self.begin(f"webhook receiver 503 for {OUTAGE_S:.0f} s", measure="webhooks")
        await asyncio.sleep(LEAD_S)
        phase.fault_start = time.monotonic()
        self.receiver.requests.failing = True
        try:
            await asyncio.sleep(OUTAGE_S)
        finally:
            self.receiver.requests.failing = False
        phase.fault_end = time.monotonic()
        await self.recovered(phase)

    async def settle(self) -> None:
        """Wait (with a deadline) until every announced image has its result, action and webhook."""
        deadline = time.monotonic() + SETTLE_DEADLINE_S
        while time.monotonic() < deadline:
            want = set(self.produced)
            hooks = {aid.split(":", 1)[1] for aid, _ in self.receiver.accepted()}
            actions = {aid.split(":", 1)[1] for aid in self.actions_at}
            if want <= set(self.results_at) and want <= hooks and want <= actions:
                await asyncio.sleep(3.0)  # late duplicates too
                return
            await asyncio.sleep(0.5)

    async def run(self) -> float:
        started = time.monotonic()
        observer = asyncio.create_task(self.observe())
        async with ImageProducer(self.settings) as producer:
            tasks = [asyncio.create_task(self.upload(producer)), asyncio.create_task(self.announce(producer))]
            try:
                phase = self.begin("baseline (workers starting)")
                deadline = time.monotonic() + START_DEADLINE_S
                while not (self.results_at and self.receiver.accepted()):
                    assert time.monotonic() < deadline, "the pipeline never delivered:\n" + self.supervisor.tails()
                    assert not self.supervisor.unexpected, self.supervisor.unexpected
                    dead = {role: self.supervisor.count(role, "dead letter ") for role in ROLES}
                    assert not any(dead.values()), f"dead letters at start {dead}:\n" + self.supervisor.tails()
                    await asyncio.sleep(0.5)
                print(f"    first result {time.monotonic() - phase.begun:.1f} s after the workers started", flush=True)
                await asyncio.sleep(6.0)

                for number in (1, 2):
                    await self.kill("detect", number)
                for number in (1, 2):
                    await self.kill("analyze", number)
                await self.outage("s3", "S3")
                await self.outage("mongo", "MongoDB")
                await self.outage("redis", "Redis")
                await self.webhook_down()
            finally:
                self.stop_producing.set()
                await asyncio.gather(*tasks, return_exceptions=True)
        self._close(self.phases[-1], time.monotonic())
        await self.settle()
        self.stop_observing.set()
        await observer
        return time.monotonic() - started


# -- reading back -----------------------------------------------------------------------------------


async def read_back(settings: Settings) -> tuple[dict[str, Counter[str]], list[dict[str, Any]]]:
    """Copies of each image's event on the detections and positions topics, and every dead letter."""
    copies: dict[str, Counter[str]] = {}
    for topic in ("detections", "positions"):
        copies[topic] = Counter()
        async for item in consume_events(settings, topic, from_beginning=True, timeout_s=3):
            copies[topic][str((item.event or {}).get("image_id"))] += 1  # keyed by camera: the id is inside
    letters = []
    async for item in consume_events(settings, "dlq", from_beginning=True, timeout_s=3):
        letters.append(item.event or {"stage": "?", "reason": f"undecodable dead letter: {item.error}"})
    return copies, letters


def mongo_ids(settings: Settings) -> tuple[dict[str, bool], list[str]]:
    """analysis_results: image id -> complete (detection and position); actions: their ids."""
    with MongoClient(settings.mongodb_uri, serverSelectionTimeoutMS=5000) as client:
        db = client[settings.mongodb_db]
        results = {doc["_id"]: "detection" in doc and "position" in doc for doc in db["analysis_results"].find({})}
        actions = [doc["_id"] for doc in db["actions"].find({}, {"_id": 1})]
    return results, actions


def letter_key(letter: dict[str, Any]) -> str:
    key = letter.get("original_key")
    return str(letter.get("image_id") or (key.decode(errors="replace") if isinstance(key, bytes) else key))


# -- the report -------------------------------------------------------------------------------------

#: Counted columns (summed in the total row); the others are per step.
COUNTS = ["images in", "results", "dup detections", "dup positions", "extra webhooks", "dead letters", "restarts"]
COLUMNS = ["fault", *COUNTS, "held (logged holding)", "median latency s", "s to recover", "s to catch up"]
LEFT = {"fault", "held (logged holding)"}


def seconds(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}"


def report_rows(
    chaos: Chaos, copies: dict[str, Counter[str]], letters: list[dict[str, Any]], results: dict[str, bool]
) -> list[list[str]]:
    hooks = Counter(aid.split(":", 1)[1] for aid, _ in chaos.receiver.accepted())
    dead = Counter(letter_key(letter) for letter in letters)
    rows = []
    totals: Counter[str] = Counter()
    for phase in chaos.phases:
        ids = [i for i, (p, _) in chaos.produced.items() if p == phase.name]
        cells: dict[str, Any] = {
            "fault": phase.name,
            "images in": len(ids),
            "results": sum(1 for i in ids if results.get(i)),
            "dup detections": sum(max(copies["detections"][i] - 1, 0) for i in ids),
            "dup positions": sum(max(copies["positions"][i] - 1, 0) for i in ids),
            "extra webhooks": sum(max(hooks[i] - 1, 0) for i in ids),
            "dead letters": sum(dead[i] for i in ids),
            "restarts": phase.restarts,
        }
        totals.update({c: cells[c] for c in COUNTS})
        latencies = [chaos.results_at[i] - chaos.produced[i][1] for i in ids if i in chaos.results_at]
        cells["held (logged holding)"] = ", ".join(f"{role} ({n})" for role, n in phase.holding.items() if n) or "—"
        cells["median latency s"] = seconds(float(np.median(latencies)) if latencies else None)
        cells["s to recover"] = seconds(chaos.recovery_s(phase) if phase.fault_end is not None else None)
        cells["s to catch up"] = seconds(chaos.catch_up_s(phase))
        rows.append([str(cells[c]) for c in COLUMNS])
    totals["dead letters"] += sum(n for key, n in dead.items() if key not in chaos.produced)  # unattributed
    rows.append([str(totals[c]) if c in COUNTS else ("total" if c == "fault" else "") for c in COLUMNS])
    return rows


def print_table(rows: list[list[str]], title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for column in COLUMNS:
        table.add_column(column, justify="left" if column in LEFT else "right", no_wrap=column == "fault")
    for row in rows:
        table.add_row(*row)
    Console(width=200).print(table)


def machine() -> str:
    model = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    system = f"{platform.system()} {platform.release()}"
    return f"{os.cpu_count()}-core CPU ({model}), {system}; load average before the run {load}"


def write_docs(rows: list[list[str]], runtime_s: float, total_s: float, where: str) -> None:
    table = [
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "|".join("---" if c in LEFT else "---:" for c in COLUMNS) + "|",
    ]
    table += ["| " + " | ".join(row) + " |" for row in rows]
    DOCS.write_text(
        DOCS_TEMPLATE.format(
            table="\n".join(table),
            date=datetime.now(UTC).strftime("%Y-%m-%d"),
            machine=where,
            runtime=f"{runtime_s:.0f}",
            total=f"{total_s:.0f}",
            rate=f"{RATE:g}",
            outage=f"{OUTAGE_S:.0f}",
            lead=f"{LEAD_S:.0f}",
            width=SIZE[0],
            height=SIZE[1],
        ),
        encoding="utf-8",
    )


DOCS_TEMPLATE = """\
# Chaos suite

`tests/chaos/test_chaos.py` runs the split pipeline — one `mugpos worker --role detect`, one
`--role analyze` and one `--role sink` process — against the real local services (`make services`:
the tansu broker, SeaweedFS S3, Redis, the nx-27017 MongoDB stand-in), while images flow, and
breaks things one after the other:

1. SIGKILL the detect worker, twice; SIGKILL the analyze worker, twice. A small supervisor in the
   test restarts a worker whose process ended, as Kubernetes would, and counts the restarts
   (session timeout 4 s, so the group hands the partitions over quickly).
2. Stop S3, then MongoDB, then Redis, each for {outage} s (`scripts/services.sh stop NAME`, then
   `up NAME`); then make the webhook receiver answer 503 for {outage} s. The broker is never stopped
   (it keeps its topics in memory), and every stopped service is started again even when the test
   fails.

Images ({width}x{height} JPEGs of drawn mug scenes, unique bytes so no cache knows them) are uploaded
ahead and announced at {rate} per second for the whole run; each counts towards the step that was
in progress when it was announced. A step lets images flow for {lead} s, injects its fault, and ends
once the pipeline delivers new results again. A webhook rule fires for every image (no cooldown).

Afterwards the test asserts what a user checks: every image announced is exactly one complete
result document in MongoDB `analysis_results` (no missing, no extra); every action reached the
webhook receiver at least once and is one document in MongoDB `actions`; the `dlq` topic holds no
dead letter at all (good images: infrastructure trouble is held and retried, never dead-lettered);
every worker process is still running (restarts after our SIGKILLs are expected; a worker that
exited on its own, e.g. with status 75 after `MUGPOS_GIVE_UP_S`, fails the test).

## Running it

```bash
make test-chaos                              # services up, then pytest tests/chaos -v -s
MUGPOS_CHAOS_WRITE_DOCS=1 make test-chaos    # also rewrite this page with the measured table
```

It is also part of `make test` (marked `integration` and `slow`). On the machine below the whole
test took {total} s ({runtime} s of scenario: workers starting, the faults, results settling; the
rest is setup, reading the topics back and stopping the workers). It stops shared services, so do
not run it alongside other integration tests.

## Columns

- **images in**: images announced during the step; **results**: of those, complete result
  documents (detection and position) in MongoDB at the end.
- **dup detections**, **dup positions**: extra copies of the step's DetectionEvents on the
  detections topic and PositionEvents on the positions topic (an event processed again after a
  crash, before its offset was committed; each copy is one more result write, which the sink
  upserts onto the same document, so MongoDB still holds one document per image).
  **extra webhooks**: deliveries the receiver accepted beyond one per action (at-least-once: the
  receiver deduplicates on `X-Mugpos-Action-Id`).
- **dead letters**: dead letters of the step's images on the `dlq` topic (must be 0).
- **restarts**: worker processes the supervisor restarted during the step (only after our SIGKILLs).
- **held**: worker roles that logged `holding ... retrying with backoff` during the step (held batches).
- **median latency s**: from announcing an image until its complete result showed up in MongoDB.
- **s to recover**: from the end of the fault (the SIGKILL; the service answering again; the
  receiver answering 200 again) until the first image announced after it had its complete result in
  MongoDB (for the webhook step: its action accepted by the receiver). It includes the normal
  end-to-end latency; MongoDB is polled every 0.5 s.
- **s to catch up**: from the end of the fault until the last image announced before it got there
  (0: nothing was kept back).

What drives the recovery times: after a SIGKILL, the session timeout (4 s here) before the group
hands the partitions to the restarted process, plus that process's start (the detect worker loads
YOLO26n and the coaster head on the CPU); after an outage, the held batch's retry backoff
(`MUGPOS_HOLD_INITIAL_S` 0.5 s doubling up to `MUGPOS_HOLD_MAX_S` 15 s, the defaults), so the
first retry after the service is back can be up to 15 s away.

Settings of the run: `MUGPOS_IMAGE_SIZE=320`, `MUGPOS_BATCH_MAX=8`, `MUGPOS_BATCH_WAIT_MS=50`,
`MUGPOS_SESSION_TIMEOUT_S=4`, `MUGPOS_WEBHOOK_RETRIES=1`, `MUGPOS_WEBHOOK_BACKOFF_S=0.05`, the
default hold backoff and `MUGPOS_GIVE_UP_S` (900 s), the default model and coaster head.

## Measured

{date}, {machine}. The CPU was shared with other jobs; figures vary from run to run.

{table}
"""


# -- the test ---------------------------------------------------------------------------------------


@pytest.fixture
def receiver() -> Iterator[FlakyReceiver]:
    with FlakyReceiver() as server:
        yield server


def test_pipeline_survives_worker_kills_and_service_outages_without_loss_or_dead_letters(
    settings: Settings, tmp_path: Path, receiver: FlakyReceiver
) -> None:
    began = time.monotonic()
    db = f"chaos{settings.app_id.replace('-', '')}"
    settings = settings.model_copy(
        update={
            "model": str(WEIGHTS),
            "image_size": 320,
            "batch_max": 8,
            "batch_wait_ms": 50,
            "session_timeout_s": 4.0,
            "mongodb_db": db,
        }
    )
    hook_env = {
        "MUGPOS_WEBHOOK_SECRET": SECRET,
        "MUGPOS_WEBHOOK_ALLOWLIST": f"127.0.0.1:{receiver.port}",
        "MUGPOS_WEBHOOK_ALLOW_NETWORKS": "127.0.0.1",  # the receiver listens on loopback
        "MUGPOS_WEBHOOK_RETRIES": "1",
        "MUGPOS_WEBHOOK_BACKOFF_S": "0.05",
    }
    asyncio.run(ensure_topics(settings))
    rules_cli(
        settings_env(settings) | hook_env,
        "add", "notify me when 0 or more mugs are on the table", "--id", RULE_ID, "--cooldown", "0",
        "--action", "webhook", "--target", f"http://127.0.0.1:{receiver.port}/hook",
    )  # fmt: skip
    where = machine()
    supervisor = Supervisor(settings, tmp_path, hook_env)
    chaos = Chaos(settings, supervisor, receiver)
    print(f"\nchaos: worker logs in {tmp_path}", flush=True)
    try:
        supervisor.start()
        runtime = asyncio.run(chaos.run())
        alive = supervisor.alive()
        unexpected = list(supervisor.unexpected)
        tails = supervisor.tails()
    finally:
        supervisor.close()
        receiver.requests.failing = False
        service("up", "s3", "redis", "mongo")  # whatever happened above, every service runs again
        for role in ROLES:  # Faust's data folders of this test's app ids
            shutil.rmtree(ROOT / f"{app_id(settings, role)}-data", ignore_errors=True)

    copies, letters = asyncio.run(read_back(settings))
    results, action_ids = mongo_ids(settings)
    with MongoClient(settings.mongodb_uri, serverSelectionTimeoutMS=5000) as client:
        client.drop_database(db)
    rows = report_rows(chaos, copies, letters, results)
    print_table(rows, f"chaos: {len(chaos.produced)} images in {runtime:.0f} s ({where})")

    produced = set(chaos.produced)
    expected_actions = {f"{RULE_ID}:{i}" for i in produced}
    accepted = {aid for aid, _ in receiver.accepted()}
    problems = []
    if set(results) != produced:
        missing, extra = sorted(produced - set(results)), sorted(set(results) - produced)
        problems.append(f"analysis_results: {len(missing)} missing {missing[:10]}, {len(extra)} extra {extra[:10]}")
    if incomplete := sorted(i for i, ok in results.items() if not ok):
        problems.append(f"{len(incomplete)} result(s) without detection or position: {incomplete[:10]}")
    if len(action_ids) != len(set(action_ids)) or set(action_ids) != expected_actions:
        missing, extra = sorted(expected_actions - set(action_ids)), sorted(set(action_ids) - expected_actions)
        problems.append(f"actions in MongoDB: {len(missing)} missing {missing[:10]}, {len(extra)} extra {extra[:10]}")
    if not expected_actions <= accepted:
        missing = sorted(expected_actions - accepted)
        problems.append(f"{len(missing)} action(s) never delivered to the webhook receiver: {missing[:10]}")
    if letters:
        shown = [(letter_key(d), d.get("stage"), d.get("reason"), str(d.get("message"))[:200]) for d in letters[:10]]
        problems.append(f"{len(letters)} dead letter(s) (key, stage, reason, message): {shown}")
    if not all(alive.values()):
        problems.append(f"workers not running at the end: {alive}")
    problems += unexpected
    expected_holding = {"S3": "detect", "MongoDB": "sink", "webhook": "analyze"}
    for phase in chaos.phases:
        for label, role in expected_holding.items():
            if phase.name.startswith(label) and not phase.holding.get(role):
                problems.append(f"{phase.name}: the {role} worker never logged {HOLDING!r} (did the fault bite?)")
    assert not problems, "\n".join(problems) + "\n\n" + tails

    if os.environ.get(WRITE_DOCS) == "1":
        write_docs(rows, runtime, time.monotonic() - began, where)
        print(f"chaos: wrote {DOCS}")
