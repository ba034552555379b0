"""Benchmark: rule evaluation alone (no Kafka, no Avro), one core, N enabled rules.

The target: >= 50,000 PositionEvents/s on one core with 100 enabled rules, a third of them
stateful (durations, transitions, appear/disappear, judged per tracked mug with each camera's
episode state). Events are realistic decoded records: 8 cameras sending frames in capture order,
1-4 tracked mugs each, mostly compliant, a few misplaced in any frame (so episodes open and close
all the time, a worst case for the state). The rules mix every grammar shape. Prints a rich table,
then one JSON line (for CI to parse); ``--min-rate`` turns the target into an exit code.

    python bench/rules_eval.py                   # 100 rules (33 stateful), all in scope of every event
    python bench/rules_eval.py --stateful 0      # rules about single images only
    python bench/rules_eval.py --scope mixed     # 30 % of rules scoped to one of 8 cameras
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rich.console import Console
from rich.table import Table

from mugpos.core.codec import codec
from mugpos.rules.engine import RuleSet
from mugpos.rules.episodes import EpisodeTracker, SourceState
from mugpos.rules.language import compile_sentence
from mugpos.rules.model import Rule

CAMERAS = [f"cam-{i}" for i in range(8)]
COLOURS = ["red", "blue", "white", "black", "green"]

TEMPLATES = [
    (25, "warn if any mug is within {n} cm of the table edge", lambda i: 1 + i * 0.4),
    (15, "critical if a mug is closer than {n} cm to another mug", lambda i: 0.5 + i * 0.3),
    (10, "notify me when more than {n} mugs are on the table", lambda i: 3 + i),
    (10, "alert when a mug is not on a coaster and within {n} cm of the edge", lambda i: 3 + i),
    (10, "alert when a {c} mug has quality below {n} and is not on a coaster", lambda i: 20 + 3 * i),
    (10, "log when the verdict is not ok and exactly {n} coasters are visible", lambda i: i),
    (10, "alert when a mug is over the edge or has confidence below {n}", lambda i: round(0.1 + 0.03 * i, 2)),
    (10, "warn if a mug is closer than {n} px to another mug and not on a coaster", lambda i: 50 + 10 * i),
]  # fmt: skip

STATEFUL_TEMPLATES = [
    (30, "alert when a mug has been off its coaster for more than {n} seconds", lambda i: 10 + 5 * i),
    (20, "warn if a mug stays within {n} cm of the edge for 5 frames", lambda i: 1 + i * 0.4),
    (15, "warn when there have been more than {n} mugs for 2 minutes and tell me when it is resolved",
     lambda i: 3 + i),
    (10, "notify me when a mug is put back on its coaster", lambda i: i),
    (10, "notify me when a mug is taken off its coaster", lambda i: i),
    (10, "info when a {c} mug appears", lambda i: i),
    (5, "info when a mug disappears", lambda i: i),
]  # fmt: skip


def make_rules(count: int, scope: str, rng: random.Random, stateful: float = 0.0) -> list[Rule]:
    """``count`` rules, ``stateful`` of them over time, each group cycling through its templates."""
    rules: list[Rule] = []
    for templates, wanted in ((STATEFUL_TEMPLATES, round(count * stateful)), (TEMPLATES, count)):
        share = (wanted - len(rules)) / sum(amount for amount, _, _ in templates)  # every template, in proportion
        while len(rules) < wanted:
            for amount, template, param in templates:
                for i in range(max(1, round(amount * share))):
                    if len(rules) >= wanted:
                        break
                    text = template.format(n=param(i), c=COLOURS[i % len(COLOURS)])
                    sources = [rng.choice(CAMERAS)] if scope == "mixed" and rng.random() < 0.3 else []
                    rule = compile_sentence(text, rule_id=f"bench-{len(rules):04d}", sources=sources)
                    if rule.temporal is not None:  # episodes with and without a cooldown between them
                        rule = dataclasses.replace(rule, cooldown_s=rng.choice((0, 60, 300)))
                    rules.append(rule)
    return rules


def make_event(i: int, rng: random.Random, violation_rate: float) -> dict[str, Any]:
    """A decoded PositionEvent: 1-4 mugs, each one occasionally misplaced."""
    mugs = []
    count = rng.choice((1, 1, 2, 2, 3, 4))
    for index in range(count):
        bad = rng.random() < violation_rate
        on_coaster: bool | None = (not bad) if rng.random() > 0.05 else None
        edge_cm = rng.uniform(-1, 6) if bad else rng.uniform(15, 60)
        mugs.append(
            {
                "index": index,
                "confidence": rng.uniform(0.4, 0.99),
                "box": {"x1": 10.0, "y1": 10.0, "x2": 60.0, "y2": 80.0},
                "on_coaster": on_coaster,
                "coaster_index": index + 10 if on_coaster else None,
                "coaster_offset_px": 3.0,
                "coaster_offset_frac": 0.05,
                "edge_distance_px": edge_cm * 12,
                "edge_distance_frac": edge_cm / 120,
                "edge_distance_cm": edge_cm,
                "nearest_mug_px": None if count == 1 else rng.uniform(120, 600),
                "nearest_mug_cm": None if count == 1 else (rng.uniform(0.5, 3) if bad else rng.uniform(12, 50)),
                "quality": rng.uniform(10, 40) if bad else rng.uniform(70, 100),
                "attributes": {"colour": rng.choice(COLOURS)},
            }
        )
    verdict = "violation" if any(m["on_coaster"] is False for m in mugs) else "ok"
    camera = i % len(CAMERAS)  # frames of a camera in capture order, as the positions stage emits them
    for m in mugs:  # a camera's mugs keep their track ids; one in 50 frames a mug is replaced
        m["track_id"] = camera * 1000 + m["index"] + 10 * ((i // len(CAMERAS)) // 50)
    return {
        "image_id": f"img-{i}",
        "source": CAMERAS[camera],
        "captured_at": 1_780_000_000_000 + (i // len(CAMERAS)) * 1000,
        "processed_at": 1_780_000_000_100 + i,
        "model_id": "yolo26n",
        "image_width": 1280,
        "image_height": 720,
        "px_per_cm": 12.0,
        "scale_source": "coaster",
        "mug_count": count,
        "coaster_count": sum(1 for m in mugs if m["on_coaster"]),
        "surface_count": 1,
        "mugs": mugs,
        "verdict": verdict,
        "reasons": [],
        "metadata": {},
    }


def run(ruleset: RuleSet, events: list[dict[str, Any]], evidence: bool = False) -> tuple[float, float, int]:
    """Evaluate every event once; returns (wall s, CPU s, fires). CPU time is immune to a busy machine.

    Stateful rules step each camera's episode state (fresh per round), as the rules agent does;
    fires are per-image matches plus episode starts and ends."""
    evaluate = ruleset.evaluate
    step = EpisodeTracker(lost_s=30).step
    stateful = ruleset.has_stateful
    states = {camera: SourceState() for camera in CAMERAS}
    fired = 0
    wall, cpu = time.perf_counter(), time.process_time()
    for event in events:
        evaluation = evaluate(event)
        matches = [m for m in evaluation.matches if m.rule.temporal is None] if stateful else evaluation.matches
        fired += len(matches)
        if evidence:
            for match in matches:
                match.evidence  # noqa: B018  (formats the evidence, as an emitted action does)
        if stateful:
            state = states[event["source"]]
            transitions = step(ruleset, event, evaluation, state)
            state.last_ms, state.last_id = event["captured_at"], event["image_id"]
            fired += len(transitions)
    return time.perf_counter() - wall, time.process_time() - cpu, fired


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rules", type=int, default=100, help="enabled rules (default 100)")
    parser.add_argument("--events", type=int, default=50_000, help="events per round (default 50,000)")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds; the median is reported")
    parser.add_argument(
        "--scope", choices=("all", "mixed"), default="all", help="all: every rule applies to every event"
    )
    parser.add_argument("--violation-rate", type=float, default=0.05, help="chance a mug is misplaced (default 0.05)")
    parser.add_argument("--cpu", type=int, default=None, help="pin to this CPU (default: the first allowed)")
    parser.add_argument("--min-rate", type=float, default=0.0, help="exit 1 when the median events/s is below this")
    parser.add_argument("--stateful", type=float, default=1 / 3, help="share of stateful rules (default a third)")
    parser.add_argument("--seed", type=int, default=4)
    args = parser.parse_args(argv)

    if hasattr(os, "sched_setaffinity"):
        cpu = args.cpu if args.cpu is not None else min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpu})
    rng = random.Random(args.seed)
    started = time.perf_counter()
    rules = make_rules(args.rules, args.scope, rng, args.stateful)
    ruleset = RuleSet(rules)
    compile_ms = (time.perf_counter() - started) * 1000

    scenarios = {
        "clean": ("clean scenes", 0.0, False),
        "violations": (f"{args.violation_rate:.0%} of mugs misplaced", args.violation_rate, False),
        "violations_evidence": (f"{args.violation_rate:.0%} misplaced, evidence formatted", args.violation_rate, True),
    }
    results: dict[str, dict[str, float]] = {}
    for key, (_, rate, evidence) in scenarios.items():
        events = [make_event(i, random.Random(args.seed * 1000 + i), rate) for i in range(args.events)]
        run(ruleset, events[: min(2000, len(events))], evidence)  # warm-up
        walls, cpus, fired = [], [], 0
        for _ in range(args.rounds):
            wall, cpu_s, fired = run(ruleset, events, evidence)
            walls.append(len(events) / wall)
            cpus.append(len(events) / max(cpu_s, 1e-9))
        results[key] = {
            "events_per_s": round(statistics.median(cpus)),
            "events_per_s_wall": round(statistics.median(walls)),
            "events_per_s_best": round(max(cpus)),
            "us_per_event": round(1e6 / statistics.median(cpus), 2),
            "fires_per_event": round(fired / len(events), 3),
        }

    sample = [make_event(i, rng, args.violation_rate) for i in range(5000)]
    encoded = [codec.encode("PositionEvent", e) for e in sample]
    cpu0 = time.process_time()
    for data in encoded:
        ruleset.evaluate(codec.decode(data, "PositionEvent"))
    decode_rate = len(encoded) / max(time.process_time() - cpu0, 1e-9)

    headline = results["violations"]["events_per_s"]
    n_stateful = sum(1 for r in rules if r.temporal is not None)
    table = Table(
        title=f"rule evaluation: {len(ruleset)} enabled rules ({n_stateful} stateful, {args.scope} in scope), one core"
    )
    table.add_column("scenario")
    table.add_column("events/s (CPU)", justify="right")
    table.add_column("events/s (wall)", justify="right")
    table.add_column("µs/event", justify="right")
    table.add_column("actions/event", justify="right")
    for key, (label, _, _) in scenarios.items():
        r = results[key]
        table.add_row(
            label,
            f"{r['events_per_s']:,}",
            f"{r['events_per_s_wall']:,}",
            f"{r['us_per_event']:.2f}",
            f"{r['fires_per_event']:.3f}",
        )
    table.add_row("Avro decode + evaluate", f"{decode_rate:,.0f}", "", f"{1e6 / decode_rate:.2f}", "")
    table.caption = (
        f"median of {args.rounds} rounds of {args.events:,} events; compile {compile_ms:.1f} ms; "
        f"target 50,000 events/s; CPU = events per CPU-second of this process"
    )
    Console().print(table)
    line = {
        "benchmark": "rules_eval",
        "rules": len(ruleset),
        "stateful_rules": n_stateful,
        "scope": args.scope,
        "events": args.events,
        "rounds": args.rounds,
        "events_per_s": headline,
        "target_events_per_s": 50_000,
        "meets_target": headline >= 50_000,
        "scenarios": results,
        "decode_and_evaluate_per_s": round(decode_rate),
        "compile_ms": round(compile_ms, 1),
        "python": platform.python_version(),
        "machine": platform.machine(),
    }
    print(json.dumps(line), flush=True)
    return 1 if headline < args.min_rate else 0


if __name__ == "__main__":
    raise SystemExit(main())
