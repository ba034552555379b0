"""Train a mug / coaster / surface head on the frozen COCO YOLO26n trunk.

Ultralytics does the training, with every trunk layer frozen (weights and batch-norm statistics),
so the stock COCO head keeps seeing exactly the features it was trained on and keeps finding real
cups and tables; only the new ``Detect`` head learns. This module pins what Ultralytics must not do
here (download fonts, AMP check models or data sets, write plots), mixes in a user's own labelled
photos (YOLO format) when given, and turns the run folder into one deployable artefact: a head
file (``models.heads``) with a model card beside it (data, epochs, metrics, sha256 of head and trunk).
"""


from __future__ import annotations

import json
import platform
import re
import shutil
import sys
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import models  # noqa: F401  (offline environment before ultralytics is imported)
from models.checksum import file_sha256
from models.synth import CLASS_NAMES

DEFAULT_BASE = Path(__file__).resolve().parent / "weights" / "yolo26n.pt"
YOLO26N_SHA256 = "9b09cc8bf347f0fc8a5f7657480587f25db09b34bf33b0652110fb03a8ad4fef"
DEFAULT_OUT = Path(__file__).resolve().parent / "weights" / "mugpos-coaster-head.pt"


def ensure_font() -> Path:
    """Put a TTF where Ultralytics looks for Arial.ttf, so its dataset check never tries to download one."""
    from ultralytics.utils import USER_CONFIG_DIR

    target = Path(USER_CONFIG_DIR) / "Arial.ttf"
    if target.is_file():
        return target
    import matplotlib

    source = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    if not source.is_file():
        raise FileNotFoundError(f"no TTF to stand in for Arial.ttf (looked for {source})")
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    return target


def ensure_amp_check_weights(base: Path) -> Path | None:
    """Put the base YOLO26n checkpoint where Ultralytics' CUDA AMP check loads it from.

    On CUDA the trainer compares fp32 and fp16 outputs of ``WEIGHTS_DIR/yolo26n.pt`` and downloads that
    file when it is missing; offline, that fails. The base weights are that very file (checked by
    hash against the official release), so a copy avoids the download. Other bases: nothing is done.
    """
    from ultralytics.utils import WEIGHTS_DIR

    target = Path(WEIGHTS_DIR) / "yolo26n.pt"
    if target.is_file() or file_sha256(base) != YOLO26N_SHA256:
        return target if target.is_file() else None
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(base, target)
    return target


def ultralytics_device(device: str) -> str:
    """``auto`` -> first CUDA GPU when present, else ``cpu``; ``cuda:N`` -> ``N`` (Ultralytics' spelling)."""
    import torch

    if device == "auto":
        return "0" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r} requested but CUDA is not available")
        return device.partition(":")[2] or "0"
    return device


def read_data_yaml(data: str | Path) -> tuple[Path, dict[str, Any]]:
    """Resolve a data set folder or its data.yaml, and check its class names are ours, in order."""
    import yaml

    path = Path(data)
    if path.is_dir():
        path = path / "data.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"no data.yaml at {path}")
    spec = yaml.safe_load(path.read_text())
    names = spec.get("names")
    listed = [names[k] for k in sorted(names)] if isinstance(names, dict) else list(names or [])
    if tuple(listed) != CLASS_NAMES:
        raise ValueError(f"{path}: classes must be {list(CLASS_NAMES)}, got {listed}")
    return path, spec


def mixed_data_yaml(scenes: Path, spec: Mapping[str, Any], photos: Sequence[str | Path], folder: Path) -> Path:
    """A data.yaml training on the rendered scenes plus users' labelled photo sets (YOLO format).

    Each photo set is a folder with ``images/`` and ``labels/`` (optionally split into ``train`` and
    ``val`` inside), as Label Studio, CVAT and Roboflow export it; a ``data.yaml`` in it, when
    present, must name our classes in our order. Photo val splits join the rendered val split.
    """
    root = Path(spec.get("path") or scenes.parent)
    root = root if root.is_absolute() else (scenes.parent / root).resolve()

    def listed(key: str) -> list[str]:
        value = spec.get(key) or []
        return [str(root / v) for v in ([value] if isinstance(value, str) else value)]

    train, val = listed("train"), listed("val")
    for raw in photos:
        base = Path(raw)
        if (base / "data.yaml").is_file():
            read_data_yaml(base)
        images = base / "images"
        if not images.is_dir():
            raise FileNotFoundError(f"{base}: no images/ folder (expected YOLO layout: images/ and labels/)")
        _check_labels(base)
        if not any((images / s).is_dir() for s in ("train", "val")):
            train.append(str(images))
            continue
        train += [str(images / "train")] if (images / "train").is_dir() else []
        val += [str(images / "val")] if (images / "val").is_dir() else []
    lines = ["train:", *[f"  - {t}" for t in train], "val:", *[f"  - {v}" for v in val], "names:"]
    lines += [f"  {i}: {n}" for i, n in enumerate(CLASS_NAMES)]
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / "data.yaml"
    out.write_text("\n".join(lines) + "\n")
    return out


def _check_labels(base: Path) -> None:
    """Every label line of a photo set must be ``class xc yc w h`` with a class of ours and a box inside."""
    for label in (base / "labels").rglob("*.txt"):
        for n, line in enumerate(label.read_text().splitlines(), 1):
            parts = line.split()
            if not parts:
                continue
            try:
                cls, *box = int(parts[0]), *map(float, parts[1:])
            except ValueError:
                raise ValueError(f"{label}:{n}: not a YOLO label line: {line!r}") from None
            if not 0 <= cls < len(CLASS_NAMES) or len(box) != 4 or not all(0.0 <= v <= 1.0 for v in box):
                raise ValueError(f"{label}:{n}: expected 'class xc yc w h' with class 0..{len(CLASS_NAMES) - 1}")


def trunk_layers(model: Any) -> int:
    """How many layers to freeze: all but the last (the ``Detect`` head)."""
    return len(model.model) - 1


def _manifest(data_yaml: Path) -> dict[str, Any]:
    path = data_yaml.parent / "manifest.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def train(
    data: str | Path,
    out: str | Path = DEFAULT_OUT,
    *,
    base: str | Path = DEFAULT_BASE,
    epochs: int = 20,
    imgsz: int = 320,
    batch: int = 16,
    device: str = "auto",
    workers: int = 0,
    run_dir: str | Path = ".run/train",
    name: str = "coaster",
    seed: int = 0,
    patience: int = 50,
    cache: bool = True,
    extra: Mapping[str, Any] | None = None,
    evaluate_after: bool = True,
    photos: Sequence[str | Path] = (),
) -> dict[str, Any]:
    """Train a new head on ``base``'s frozen trunk; write the head file to ``out`` and its model card.

    ``photos``: users' labelled photo sets (YOLO layout) to train on beside the rendered scenes.
    Returns the card (also written as ``out`` with a ``.md`` suffix).
    """
    from ultralytics import YOLO

    from models.heads import save_head

    base_path, out_path = Path(base), Path(out)
    if not base_path.is_file():
        raise FileNotFoundError(f"base weights not found: {base_path} (run `make weights`)")
    if out_path.suffix != ".pt":
        raise ValueError(f"output weights must end in .pt, got {out_path}")
    data_yaml, spec = read_data_yaml(data)
    train_yaml = mixed_data_yaml(data_yaml, spec, photos, Path(run_dir) / name / "data") if photos else data_yaml
    ensure_font()
    dev = ultralytics_device(device)
    if dev != "cpu":
        ensure_amp_check_weights(base_path)
    args: dict[str, Any] = {
        "data": str(train_yaml),
        "epochs": epochs,
        "imgsz": imgsz,
        "batch": batch,
        "device": dev,
        "workers": workers,
        "plots": False,  # plots fetch a font and cost time
        "amp": dev != "cpu",  # the AMP check downloads a model; it only matters on CUDA, where weights are local
        "project": str(Path(run_dir).resolve()),
        "name": name,
        "exist_ok": True,
        "val": True,
        "seed": seed,
        "patience": patience,
        "cache": "ram" if cache else False,  # decoded, resized images: skips JPEG decoding every epoch
        "close_mosaic": max(1, min(10, epochs // 4)),
        "verbose": False,
    }
    args.update(extra or {})
    started = time.perf_counter()
    model = YOLO(str(base_path))
    args["freeze"] = trunk_layers(model.model)  # backbone and neck, batch-norm statistics included
    model.train(**args)
    seconds = time.perf_counter() - started
    trainer = model.trainer
    if trainer is None:
        raise RuntimeError("Ultralytics returned no trainer")
    best = Path(trainer.best) if Path(trainer.best).is_file() else Path(trainer.last)
    trained = YOLO(str(best)).model
    base_sha = file_sha256(base_path)
    unchanged = trunk_unchanged(YOLO(str(base_path)).model, trained)
    if not unchanged:
        raise RuntimeError(f"the trunk of {best} differs from {base_path}: it was not frozen")
    save_head(out_path, trained, base_sha256=base_sha, meta={"trained_from": best.name})
    epochs_run = int(getattr(trainer, "epoch", epochs - 1)) + 1
    card: dict[str, Any] = {
        "model": out_path.stem,
        "weights": out_path.name,
        "kind": "head",
        "sha256": file_sha256(out_path),
        "size_bytes": out_path.stat().st_size,
        "classes": list(CLASS_NAMES),
        "trunk_unchanged": unchanged,
        "base": {
            "weights": base_path.name,
            "sha256": base_sha,
            "trained_on": "COCO (Ultralytics YOLO26n)",
        },
        "data": {
            "yaml": str(data_yaml),
            **_data_summary(_manifest(data_yaml)),
            "photo_sets": [str(p) for p in photos],
        },
        "training": {
            "epochs": epochs,
            "epochs_run": epochs_run,
            "imgsz": imgsz,
            "batch": batch,
            "device": "cuda" if dev != "cpu" else "cpu",
            "device_name": _device_name(dev),
            "seconds": round(seconds, 1),
            "seed": seed,
            "best_from": best.name,
            "run_dir": str(Path(trainer.save_dir)),
            "ultralytics": _version("ultralytics"),
            "torch": _version("torch"),
            "python": platform.python_version(),
            "finished": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "command": " ".join(sys.argv) if sys.argv and "mugpos" in sys.argv[0] else None,
        },
        "metrics": {},
        "license": "AGPL-3.0-or-later (derived from Ultralytics YOLO26n)",
    }
    if evaluate_after:
        from models.evaluation import map_per_class

        # The head alone (Ultralytics' validator on the trained checkpoint, trunk identical to the base).
        card["metrics"]["synthetic_val"] = map_per_class(best, data_yaml, "val", imgsz=imgsz, device=device)
    write_card(out_path, card)
    return card


def trunk_unchanged(base: Any, trained: Any) -> bool:
    """Whether every trunk tensor (weights and batch-norm statistics) of ``trained`` equals ``base``'s.

    Compared at fp16, the precision Ultralytics saves checkpoints in.
    """
    import torch

    count = trunk_layers(base)
    ref, new = base.state_dict(), trained.state_dict()
    for key, value in ref.items():
        layer = key.split(".")[1] if key.startswith("model.") else None
        if layer is None or not layer.isdigit() or int(layer) >= count:
            continue
        other = new.get(key)
        if other is None or other.shape != value.shape:
            return False
        if value.is_floating_point() and not torch.equal(value.half(), other.half()):
            return False
    return True


def _data_summary(manifest: Mapping[str, Any]) -> dict[str, Any]:
    keys = ("generator", "seed", "style", "count", "negatives", "backdrops", "splits", "instances")
    return {k: manifest[k] for k in keys if k in manifest}


def _device_name(dev: str) -> str:
    import torch

    if dev != "cpu" and torch.cuda.is_available():
        return torch.cuda.get_device_name(int(dev.split(",")[0]))
    return f"{platform.processor() or platform.machine()} ({_cpu_count()} cores)"


def _cpu_count() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)


# --------------------------------------------------------------------------------------------
# Model card: markdown for people, with one JSON block that is the source of truth for tools.
# --------------------------------------------------------------------------------------------

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
            "YOLO26n, on scenes rendered by `models/synth.py` (`mugpos synth`). `models.detector.Detector(base, "
            "head=...)` runs one trunk pass and both heads: the COCO head's detections stay exactly the stock "
            "model's, and `mug` (COCO `cup` and this head's `mug`) and `surface` (COCO `dining table` and this "
            "head's `surface`) are merged by NMS; `coaster` comes from this head alone."
        )
    else:
        intro = (
            "YOLO26n fine-tuned from the COCO checkpoint on scenes rendered by `models/synth.py` "
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
