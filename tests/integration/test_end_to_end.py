"""End to end on the real services: drawn scenes -> `images` -> detect -> `detections` -> position
-> `positions` -> rules -> `actions`, in one real `mugpos worker --role all`, with the four example
rules added through the real CLI.

The scenes come from ``models.synth.render_scene`` (style ``holdout``, which no training run sees,
640x480), and every expectation comes from the renderer's ground truth, never from a model's output:

* ``on_coaster`` per mug: the truth's ``on_coaster`` (detected mugs are matched to drawn ones by IoU);
* the rules: "not on a coaster" fires when a drawn mug stands off its coaster; "within 5 cm of the
  edge" when a mug's rim is near an edge; "closer than 2 cm to another mug" when two bases are that
  close; "more than 3 mugs ... in camera kitchen-1" when the kitchen-1 scene holds more than 3 mugs;
* the verdict: ``violation`` when a mug stands off a coaster while coasters are in the picture,
  ``ok`` when every mug is on its coaster, far from every edge and from the other mugs.

A scene is only used when the truth is unambiguous: every edge distance is at most ``NEAR_CM`` or
at least ``FAR_CM`` and every mug-to-mug gap below ``CLOSE_CM`` or at least ``APART_CM``, both as
the renderer measures them (table plane, cm) and as the positioning rules measure them on the
renderer's own boxes with the camera's scale (so no case sits on a threshold that only the box
geometry could tip). The indices in ``SCENES`` were chosen once by these criteria (the first index
of ``SEED`` that meets each case, see ``Pick.why``) and are fixed; the test re-derives and checks
each one's expectations from the truth on every run.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cv2
import pytest
from aiokafka import AIOKafkaProducer

from mugpos.core.codec import codec
from mugpos.core.settings import Settings, settings_env
from mugpos.core.topics import ensure_topics
from mugpos.models.positioning import position_event
from mugpos.streams.consumer import consume_events
from mugpos.streams.producer import ImageProducer
from mugpos.training.synth import CLASS_NAMES, Scene, render_scene
from tests.integration.worker import rules_cli, running_worker
from tests.rules.conftest import mug, position

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
COCO_WEIGHTS = ROOT / "models" / "weights" / "yolo26n.pt"
COASTER_HEAD = ROOT / "models" / "weights" / "mugpos-coaster-head.pt"
#: Another coaster head to run the second test against (e.g. a candidate).
COASTER_OVERRIDE = "MUGPOS_E2E_COASTER_HEAD"

SEED, STYLE, SIZE = 2026, "holdout", (640, 480)
NEAR_CM, FAR_CM = 3.0, 8.0  # the edge rule's threshold is 5 cm
CLOSE_CM, APART_CM = 1.5, 4.0  # the spacing rule's threshold is 2 cm
OFFSET_OK = 0.4  # the verdict warns above 0.5 (mug off-centre on its coaster)

RULES = {  # rule id: the sentence, added with `mugpos rules add SENTENCE --id ID`
    "coaster": "alert when a mug is not on a coaster",
    "edge": "warn if any mug is within 5 cm of the table edge",
    "crowd": "notify me when more than 3 mugs are on the table in camera kitchen-1",
    "close": "critical if a mug is closer than 2 cm to another mug",
}


@dataclass(frozen=True)
class Pick:
    name: str
    index: int
    source: str
    verdict: str  # what the truth implies; checked against the truth on every run
    rules: frozenset[str]
    why: str


SCENES = (
    Pick(
        name="on-coaster",
        index=27,
        source="cam-on",
        verdict="ok",
        rules=frozenset(),
        why="first index with one mug, on its coaster (offset <= 0.4), >= 8 cm from every edge",
    ),
    Pick(
        name="off-coaster-near-edge",
        index=1,
        source="cam-edge",
        verdict="violation",
        rules=frozenset({"coaster", "edge"}),
        why="first index with a mug off its coaster <= 3 cm from the edge while coasters are visible "
        "(a second mug stands beside it)",
    ),
    Pick(
        name="crowded",
        index=48,
        source="kitchen-1",
        verdict="violation",
        rules=frozenset({"coaster", "edge", "crowd", "close"}),
        why="first index with two mugs < 1.5 cm apart (the rarest case); it has 5 mugs, 4 of them off a "
        "coaster and 2 at the edge, so it also is the crowded kitchen-1 scene",
    ),
    Pick(
        name="several-compliant",
        index=4,
        source="cam-tidy",
        verdict="ok",
        rules=frozenset(),
        why="first index with >= 2 mugs, all on their coasters (offset <= 0.4), >= 8 cm from the edges "
        "and >= 4 cm apart",
    ),
)


# -- expectations from the renderer's truth ---------------------------------------------------------


@dataclass(frozen=True)
class Expected:
    boxes: list[list[float]]
    on_coaster: list[bool]
    verdict: str | None  # None: the truth does not settle it (never for a picked scene)
    rules: frozenset[str]
    px_per_cm: float


def truth_detection_event(scene: Scene) -> dict[str, Any]:
    """The renderer's own boxes as a DetectionEvent of a perfect coaster-aware detector."""
    truth = scene.truth
    return {
        "image_id": f"truth-{truth['index']}",
        "source": "truth",
        "captured_at": datetime.now(UTC),
        "image_width": truth["width"],
        "image_height": truth["height"],
        "model": {"model_id": "truth", "name": "truth", "labels": list(CLASS_NAMES)},
        "detections": [
            {"label": CLASS_NAMES[cls], "confidence": 1.0, "box": dict(zip(("x1", "y1", "x2", "y2"), box, strict=True))}
            for cls, box in scene.labels
        ],
        "metadata": {"px_per_cm": str(truth["camera"]["px_per_cm"])},
    }


def expected_from_truth(scene: Scene, source: str) -> Expected:
    """What the pipeline must report for a scene, from the truth; fails when the truth is ambiguous."""
    truth = scene.truth
    mugs = truth["mugs"]
    on_boxes = position_event(truth_detection_event(scene), processed_at=datetime.now(UTC))["mugs"]
    assert len(on_boxes) == len(mugs)
    ambiguous, near, close = [], [], []
    for i, (m, b) in enumerate(zip(mugs, on_boxes, strict=True)):
        edge, edge_boxes = m["edge_distance_cm"], b["edge_distance_cm"]
        if edge <= NEAR_CM and edge_boxes is not None and edge_boxes <= NEAR_CM:
            near.append(i)
        elif not (edge >= FAR_CM and (edge_boxes is None or edge_boxes >= FAR_CM)):
            ambiguous.append(f"mug {i}: {edge} cm from the edge, {edge_boxes} cm on the true boxes")
        gaps = [
            math.dist(m["base_cm"], o["base_cm"]) - m["radius_cm"] - o["radius_cm"]
            for j, o in enumerate(mugs)
            if j != i
        ]
        gap, gap_boxes = min(gaps, default=math.inf), b["nearest_mug_cm"]
        if gap < CLOSE_CM and gap_boxes is not None and gap_boxes < CLOSE_CM:
            close.append(i)
        elif not (gap >= APART_CM and (gap_boxes is None or gap_boxes >= APART_CM)):
            ambiguous.append(f"mug {i}: {gap:.2f} cm from the next mug, {gap_boxes} cm on the true boxes")
    assert not ambiguous, f"scene {truth['index']} is ambiguous: " + "; ".join(ambiguous)

    off = [i for i, m in enumerate(mugs) if not m["on_coaster"]]
    verdict: str | None = None
    if off and truth["coasters"]:
        verdict = "violation"
    elif not off and not near and not close and all(b["coaster_offset_frac"] <= OFFSET_OK for b in on_boxes):
        verdict = "ok"
    rules = {"coaster"} if off else set()
    rules |= {"edge"} if near else set()
    rules |= {"crowd"} if source == "kitchen-1" and len(mugs) > 3 else set()
    rules |= {"close"} if close else set()
    return Expected(
        boxes=[m["box"] for m in mugs],
        on_coaster=[bool(m["on_coaster"]) for m in mugs],
        verdict=verdict,
        rules=frozenset(rules),
        px_per_cm=float(truth["camera"]["px_per_cm"]),
    )


def iou(a: list[float], b: list[float]) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def match_mugs(truth_boxes: list[list[float]], found: list[dict[str, Any]]) -> list[int | None]:
    """For each drawn mug, the reported mug it is (IoU >= 0.5, greedy by IoU, each used once)."""
    boxes = [[m["box"][k] for k in ("x1", "y1", "x2", "y2")] for m in found]
    pairs = sorted(((iou(t, b), i, j) for i, t in enumerate(truth_boxes) for j, b in enumerate(boxes)), reverse=True)
    out: list[int | None] = [None] * len(truth_boxes)
    used: set[int] = set()
    for overlap, i, j in pairs:
        if overlap >= 0.5 and out[i] is None and j not in used:
            out[i] = j
            used.add(j)
    return out


def jpeg(scene: Scene) -> bytes:
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(scene.image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    return buf.tobytes()


# -- the pipeline -----------------------------------------------------------------------------------


@dataclass
class Run:
    image_ids: dict[str, str]  # pick name -> image id
    positions: list[tuple[str, dict[str, Any]]]  # (key, PositionEvent) of the scenes, every copy
    actions: list[dict[str, Any]]  # ActionEvents of the scenes
    seconds: float


async def read_topic(settings: Settings, topic: str, settle_s: float) -> list[tuple[str, dict[str, Any]]]:
    """(key, event) of every message of ``topic`` from the start, until ``settle_s`` without one; for
    positions (keyed by camera) the image id stands for the key."""
    items = []
    async for item in consume_events(settings, topic, from_beginning=True, timeout_s=settle_s):
        assert item.error is None and item.event is not None, item.error
        key = (item.key or b"").decode()
        items.append((str(item.event["image_id"]) if topic == "positions" else key, item.event))
    return items


async def wait_for_keys(
    settings: Settings, topic: str, want: set[str], deadline_s: float
) -> list[tuple[str, dict[str, Any]]]:
    """Reread ``topic`` until every wanted key is there or the deadline passes."""
    deadline = time.monotonic() + deadline_s
    while True:
        items = await read_topic(settings, topic, settle_s=1.0)
        if want <= {key for key, _ in items} or time.monotonic() > deadline:
            return items
        await asyncio.sleep(0.5)


def wait_for_log(path: Path, pattern: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if re.search(pattern, path.read_text(errors="replace")):
            return
        time.sleep(0.2)
    raise AssertionError(f"worker log never said {pattern!r}:\n" + path.read_text(errors="replace")[-4000:])


async def produce_scenes(settings: Settings, scenes: dict[str, tuple[Pick, Scene]], ids: dict[str, str]) -> None:
    async with ImageProducer(settings) as producer:
        for name, (pick, scene) in scenes.items():
            await producer.produce_image(
                jpeg(scene),
                image_id=ids[name],
                source=pick.source,
                metadata={"px_per_cm": str(scene.truth["camera"]["px_per_cm"])},
            )


async def produce_barriers(settings: Settings, ids: list[str]) -> None:
    """One hand-made PositionEvent per positions partition, after every scene's: it breaks only the
    edge rule, so once its action is out, the rules agent has evaluated everything before it."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap, acks="all")
    await producer.start()
    try:
        for partition, image_id in enumerate(ids):
            event = position(
                mug(0, on_coaster=None, edge_distance_cm=1.0),
                image_id=image_id,
                source=image_id,
                captured_at=datetime.now(UTC),
            )
            value = codec.encode("PositionEvent", event)
            await producer.send_and_wait(settings.topic("positions"), value, key=image_id.encode(), partition=partition)
    finally:
        await producer.stop()


def run_pipeline(settings: Settings, weights: Path, image_size: int, tmp_path: Path, head: Path | None = None) -> Run:
    """Rules through the CLI, the drawn scenes into `images`, one worker with every role; read it all back."""
    started = time.monotonic()
    settings = settings.model_copy(
        update={
            "model": str(weights),
            "head": str(head) if head else "",
            "image_size": image_size,
            "session_timeout_s": 4.0,
            "redis_url": "",  # no shared detection cache: every run infers; cooldowns in process
            "batch_wait_ms": 50,
        }
    )
    env = settings_env(settings)
    asyncio.run(ensure_topics(settings))
    for rule_id, sentence in RULES.items():
        assert json.loads(rules_cli(env, "add", sentence, "--id", rule_id).stdout)["rule_id"] == rule_id

    scenes = {p.name: (p, render_scene(SEED, p.index, STYLE, SIZE)) for p in SCENES}
    ids = {name: f"{settings.app_id}-{name}" for name in scenes}
    barriers = [f"{settings.app_id}-barrier-{p}" for p in range(settings.partitions)]
    asyncio.run(produce_scenes(settings, scenes, ids))

    log_path = tmp_path / "worker.log"
    with running_worker(settings, log_path, role="all") as proc:
        wait_for_log(log_path, rf"rules: registry ready with {len(RULES)} rule\(s\), {len(RULES)} enabled")
        asyncio.run(wait_for_keys(settings, "positions", set(ids.values()), deadline_s=75))
        asyncio.run(produce_barriers(settings, barriers))
        barrier_actions = {f"edge:{b}" for b in barriers}
        asyncio.run(wait_for_keys(settings, "actions", barrier_actions, deadline_s=30))
        actions = asyncio.run(read_topic(settings, "actions", settle_s=2.0))
        positions = asyncio.run(read_topic(settings, "positions", settle_s=2.0))
        assert proc.poll() is None, "the worker stopped"
    log = log_path.read_text(errors="replace")
    assert barrier_actions <= {key for key, _ in actions}, "the rules agent did not catch up:\n" + log[-4000:]
    assert "Traceback" not in log, log[-4000:]
    ours = set(ids.values())
    return Run(
        image_ids=ids,
        positions=[(k, e) for k, e in positions if k in ours],
        actions=[e for _, e in actions if e["image_id"] in ours],
        seconds=time.monotonic() - started,
    )


def trained_image_size(weights: Path, default: int = 320) -> int:
    """The input size the model card says the model was trained at (``mugpos train`` writes one)."""
    card = weights.with_suffix(".md")
    if not card.is_file():
        return default
    from mugpos.training.card import read_card

    return int(read_card(card).get("training", {}).get("imgsz") or default)


def summary(run: Run) -> str:
    lines = [f"pipeline took {run.seconds:.1f} s"]
    for key, event in run.positions:
        mugs = [(m["on_coaster"], m["edge_distance_cm"], m["nearest_mug_cm"]) for m in event["mugs"]]
        lines.append(f"{key}: {event['verdict']} {event['reasons']} mugs (on_coaster, edge cm, gap cm) {mugs}")
    lines += [f"action {a['rule_id']} on {a['image_id']}: {a['evidence']}" for a in run.actions]
    return "\n".join(lines)


# -- the tests --------------------------------------------------------------------------------------


def test_stock_coco_model_reports_on_coaster_null_and_the_coaster_rule_never_fires(
    settings: Settings, tmp_path: Path
) -> None:
    run = run_pipeline(settings, COCO_WEIGHTS, 640, tmp_path)  # YOLO26n was trained at 640
    report = summary(run)
    print(report)

    assert sorted(k for k, _ in run.positions) == sorted(run.image_ids.values()), report  # exactly one each
    events = [e for _, e in run.positions]
    assert all(e["model_id"].startswith("yolo26n-") for e in events), report
    assert sum(e["mug_count"] for e in events) >= 1, "COCO saw no mug at all: nothing shows null\n" + report
    assert {m["on_coaster"] for e in events for m in e["mugs"]} == {None}, report
    assert not [r for e in events for r in e["reasons"] if "coaster" in r], report
    assert {a["rule_id"] for a in run.actions} <= set(RULES) - {"coaster"}, report


@pytest.mark.xfail(
    strict=True,
    reason="known gap, see models/weights/mugpos-coaster-head.md: with the released head the crowded scene "
    "gets 9 mugs for 5 drawn (nested boxes of the two heads that NMS does not fuse, mugs off the table) and "
    "the off-coaster scene finds no table edge near its mug; the held-out on_coaster accuracy is 0.86, below "
    "the 0.97 target",
)
def test_coaster_model_gives_the_true_on_coaster_verdicts_and_rule_actions_end_to_end(
    settings: Settings, tmp_path: Path
) -> None:
    override = os.environ.get(COASTER_OVERRIDE)
    head = Path(override) if override else COASTER_HEAD
    expected = {p.name: expected_from_truth(render_scene(SEED, p.index, STYLE, SIZE), p.source) for p in SCENES}
    for p in SCENES:  # the fixed picks still are what they were picked for
        assert (expected[p.name].verdict, expected[p.name].rules) == (p.verdict, p.rules), p

    run = run_pipeline(settings, COCO_WEIGHTS, trained_image_size(head), tmp_path, head=head)
    report = summary(run)
    print(report)

    assert sorted(k for k, _ in run.positions) == sorted(run.image_ids.values()), report  # exactly one each
    by_id = {e["image_id"]: e for _, e in run.positions}
    fired: dict[str, set[str]] = {}
    for action in run.actions:
        fired.setdefault(action["image_id"], set()).add(action["rule_id"])
    problems = []
    for pick in SCENES:
        want, image_id = expected[pick.name], run.image_ids[pick.name]
        got = by_id[image_id]
        where = f"scene {pick.index} ({pick.name})"
        if got["px_per_cm"] != pytest.approx(want.px_per_cm) or got["scale_source"] != "metadata":
            problems.append(f"{where}: scale {got['px_per_cm']} from {got['scale_source']}")
        if got["mug_count"] != len(want.boxes):
            problems.append(f"{where}: {got['mug_count']} mugs reported, {len(want.boxes)} drawn")
        for i, j in enumerate(match_mugs(want.boxes, got["mugs"])):
            if j is None:
                problems.append(f"{where}: drawn mug {i} {want.boxes[i]} not found")
            elif got["mugs"][j]["on_coaster"] is not want.on_coaster[i]:
                problems.append(
                    f"{where}: mug {i} on_coaster={got['mugs'][j]['on_coaster']}, truth {want.on_coaster[i]}"
                )
        if got["verdict"] != want.verdict:
            problems.append(f"{where}: verdict {got['verdict']}, truth {want.verdict}: {got['reasons']}")
        if fired.get(image_id, set()) != want.rules:  # compliant scenes: no action at all
            problems.append(f"{where}: rules fired {sorted(fired.get(image_id, set()))}, truth {sorted(want.rules)}")
    assert not problems, "\n".join(problems) + "\n\n" + report
