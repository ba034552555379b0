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
import sys
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import mugpos.models  # offline environment before ultralytics is imported; home of the weights
from mugpos.models.checksum import file_sha256
from mugpos.training.card import write_card
from mugpos.training.evaluation import map_per_class
from mugpos.training.synth import CLASS_NAMES
from mugpos.training.ultralytics_env import ensure_amp_check_weights, ensure_font, ultralytics_device

WEIGHTS_DIR = Path(mugpos.models.__file__).resolve().parent / "weights"
DEFAULT_BASE = WEIGHTS_DIR / "yolo26n.pt"


DEFAULT_OUT = WEIGHTS_DIR / "mugpos-coaster-head.pt"


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
    start: str | Path | None = None,
    warmup_epochs: float = 0.5,
) -> dict[str, Any]:
    """Train a new head on ``base``'s frozen trunk; write the head file to ``out`` and its model card.

    ``photos``: users' labelled photo sets (YOLO layout) to train on beside the rendered scenes.
    ``start``: an earlier run's Ultralytics checkpoint to continue from (checked: same trunk as ``base``).
    Returns the card (also written as ``out`` with a ``.md`` suffix).
    """
    from ultralytics import YOLO

    from mugpos.models.heads import save_head

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
        # Only the head learns, and its box branch starts from COCO's: a short warm-up (Ultralytics'
        # default of 3 epochs would keep the learning rate low for most of a one-hour CPU run).
        "warmup_epochs": warmup_epochs,
        "verbose": False,
    }
    args.update(extra or {})
    started = time.perf_counter()
    # ``start``: an earlier run's checkpoint (its ``best.pt``) to go on training; its trunk must be the base's.
    model = YOLO(str(start or base_path))
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
            "started_from": str(start) if start else None,
        },
        "training": {
            "epochs": epochs,
            "epochs_run": epochs_run,
            "imgsz": imgsz,
            "batch": batch,
            "warmup_epochs": warmup_epochs,
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
