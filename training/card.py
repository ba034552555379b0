"""Model cards: markdown for people, with one JSON block that is the source of truth for tools.

The card sits beside the weights or head file it describes, same name, ``.md``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import mugpos.models  # noqa: F401  (offline environment before ultralytics is imported)
from mugpos.training.synth import CLASS_NAMES

_JSON_BLOCK = re.compile(r"```json\n(.*?)\n```", re.S)


def card_path(weights: str | Path) -> Path:
    """The card sits beside the weights, same name, ``.md``."""
    return Path(weights).with_suffix(".md")


def read_card(weights_or_card: str | Path) -> dict[str, Any]:
    """The card's JSON block."""
    path = Path(weights_or_card)
    path = path if path.suffix == ".md" else card_path(path)
    match = _JSON_BLOCK.search(path.read_text())
    if not match:
        raise ValueError(f"{path}: no JSON block")
    data: dict[str, Any] = json.loads(match.group(1))
    return data


def _fmt(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, float) else ("-" if value is None else str(value))


def _map_table(metrics: Mapping[str, Any]) -> list[str]:
    rows = ["| class | images | instances | precision | recall | mAP50 | mAP50-95 |", "|---|---|---|---|---|---|---|"]
    for cls, m in metrics.get("per_class", {}).items():
        cells = [m.get(k) for k in ("images", "instances", "precision", "recall", "map50", "map50_95")]
        rows.append(f"| {cls} | " + " | ".join(_fmt(c) for c in cells) + " |")
    rows.append(f"| **all** | | | | | {_fmt(metrics.get('map50'))} | {_fmt(metrics.get('map50_95'))} |")
    return rows


def render_card(card: Mapping[str, Any]) -> str:
    """Markdown for a person; the JSON block at the end carries everything."""
    tr, data = card.get("training", {}), card.get("data", {})
    if card.get("kind") == "head":
        intro = (
            "A second detection head (`mug`, `coaster`, `surface`) trained on the frozen trunk of the stock COCO "
            "YOLO26n, on scenes rendered by `mugpos.training.synth` (`mugpos synth`). `models.detector.Detector(base, "
            "head=...)` runs one trunk pass and both heads: the COCO head's detections stay exactly the stock "
            "model's, and `mug` (COCO `cup` and this head's `mug`) and `surface` (COCO `dining table` and this "
            "head's `surface`) are merged by NMS; `coaster` comes from this head alone."
        )
    else:
        intro = (
            "YOLO26n fine-tuned from the COCO checkpoint on scenes rendered by `mugpos.training.synth` "
            "(`mugpos synth`), to detect `mug`, `coaster` and `surface` (table top). The class names are "
            "the domain labels of `models/classmap.py`, so `models.detector.Detector` uses it as is."
        )
    lines = [
        f"# Model card: {card.get('model')}",
        "",
        intro,
        "",
        f"- weights: `{card.get('weights')}` ({card.get('size_bytes')} bytes), sha256 `{card.get('sha256')}`",
        f"- base: `{card.get('base', {}).get('weights')}` sha256 `{card.get('base', {}).get('sha256')}`",
        f"- data: `mugpos synth` seed {data.get('seed')}, style `{data.get('style')}`, "
        + ", ".join(f"{n} {k}" for k, n in (data.get("splits") or {}).items()),
        f"- training: {tr.get('epochs_run')} of {tr.get('epochs')} epochs at {tr.get('imgsz')} px, batch "
        f"{tr.get('batch')}, on {tr.get('device')} ({tr.get('device_name')}), {tr.get('seconds')} s, "
        f"Ultralytics {tr.get('ultralytics')}, torch {tr.get('torch')}",
        f"- license: {card.get('license')}",
    ]
    for note in card.get("notes", []):
        lines.append(f"- note: {note}")
    metrics = card.get("metrics", {})
    if "synthetic_val" in metrics:
        lines += [
            "",
            "## Validation split of the training data (same style and seed; "
            + ("this head alone, Ultralytics' validator)" if card.get("kind") == "head" else "Ultralytics' validator)"),
            "",
            *_map_table(metrics["synthetic_val"]),
        ]
    ev = card.get("evaluation")
    if ev:
        ev_data = ev.get("data", {})
        lines += [
            "",
            f"## Held-out evaluation (`mugpos eval`, {ev_data.get('style')} style, seed {ev_data.get('seed')})",
            "",
            "Boxes as the service emits them (both heads merged, confidence "
            f"{ev.get('confidence')}, {ev.get('letterbox', 'square')} letterbox, {ev.get('imgsz')} px); "
            "AP over the detections above that threshold.",
            "",
        ]
        lines += _map_table(ev.get("detection", {}))
        pos = ev.get("positioning", {})
        if pos:
            ceiling = pos.get("ceiling_with_true_boxes", {})
            lines += [
                "",
                f"Positioning over {pos.get('mugs')} true mugs (share detected at IoU 0.5: "
                f"{_fmt(pos.get('mug_recall_iou50'))}; "
                "a missed mug counts as wrong except in the 'detected mugs' rows). The last column applies the same "
                "rules to the true boxes: the most a perfect detector could score.",
                "",
                "| positioning outcome | accuracy | with true boxes |",
                "|---|---|---|",
            ]
            for key, value in pos.get("accuracy", {}).items():
                lines.append(f"| {key} | {_fmt(value)} | {_fmt(ceiling.get(key))} |")
        photos = ev.get("photos", {})
        if photos:
            lines += ["", "| real photo | mugs | coasters | surfaces | what a person sees |", "|---|---|---|---|---|"]
            for name, p in photos.get("images", {}).items():
                c = p.get("counts", {})
                counts = " | ".join(str(c.get(k, 0)) for k in CLASS_NAMES)
                lines.append(f"| {name} | {counts} | {p.get('expected')} |")
            if "phantom_mugs_or_coasters" in photos:
                lines += [
                    "",
                    f"Phantom mugs or coasters (more than a person sees): {photos['phantom_mugs_or_coasters']}; "
                    f"real cups found as a mug: {photos.get('real_cups_found')} of {photos.get('real_cups')}.",
                ]
    lines += ["", "## Machine-readable", "", "```json", json.dumps(card, indent=2, sort_keys=False), "```", ""]
    return "\n".join(lines)


def write_card(weights: str | Path, card: Mapping[str, Any]) -> Path:
    path = card_path(weights)
    path.write_text(render_card(card))
    return path


def update_card(weights: str | Path, **sections: Any) -> dict[str, Any]:
    """Merge sections (e.g. ``evaluation=...``) into an existing card and rewrite it."""
    card = read_card(weights)
    card.update(sections)
    write_card(weights, card)
    return card
