"""Data sets on disk in YOLO layout (images, labels, truth sidecars, data.yaml, manifest), their
checks, and contact sheets for a person to look at.
"""

from __future__ import annotations

import json
import multiprocessing
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Final

import cv2
import numpy as np

from mugpos.models.checksum import file_sha256
from mugpos.training.synth.exceptions import DatasetError
from mugpos.training.synth.layout import is_negative, mug_base_point, render_negative, render_scene
from mugpos.training.synth.styles import BASE_FRACTION, CLASS_NAMES, COASTER, MUG, STYLES, SURFACE, Array, Box


def yolo_lines(labels: Sequence[tuple[int, Box]], width: int, height: int) -> list[str]:
    """YOLO ``class xc yc w h`` lines (normalised), rounded so that each box stays inside the image."""
    lines = []
    for cls, (x1, y1, x2, y2) in labels:
        nx1, nx2 = round(max(0.0, x1) / width, 6), round(min(float(width), x2) / width, 6)
        ny1, ny2 = round(max(0.0, y1) / height, 6), round(min(float(height), y2) / height, 6)
        if nx2 - nx1 <= 0 or ny2 - ny1 <= 0:
            continue
        lines.append(f"{cls} {(nx1 + nx2) / 2:.7f} {(ny1 + ny2) / 2:.7f} {nx2 - nx1:.6f} {ny2 - ny1:.6f}")
    return lines


def _render_one(job: tuple[int, int, str, str, str, float, tuple[str, ...]]) -> tuple[str, dict[str, int]]:
    seed, index, style, root, split, negatives, backdrops = job
    negative = is_negative(seed, index, style, negatives)
    render = render_negative if negative else render_scene
    scene = render(seed, index, style, backdrops=backdrops)
    name = f"{style}-{seed}-{index:06d}"
    rng = np.random.default_rng([seed, index, STYLES[style].code, 7])
    quality = int(rng.integers(STYLES[style].jpeg_quality[0], STYLES[style].jpeg_quality[1] + 1))
    h, w = scene.image.shape[:2]
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(scene.image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError(f"could not encode {name}")
    base = Path(root)
    (base / "images" / split / f"{name}.jpg").write_bytes(buf.tobytes())
    lines = yolo_lines(scene.labels, w, h)
    (base / "labels" / split / f"{name}.txt").write_text("\n".join(lines) + "\n")
    truth = dict(scene.truth, image=f"images/{split}/{name}.jpg")
    (base / "labels" / split / f"{name}.json").write_text(json.dumps(truth, separators=(",", ":")))
    counts = {n: 0 for n in CLASS_NAMES} | {"negative_images": int(negative)}
    for cls, _ in scene.labels:
        counts[CLASS_NAMES[cls]] += 1
    return split, counts


def synthesize(
    out: str | Path,
    count: int,
    seed: int = 0,
    style: str = "train",
    val_fraction: float = 0.1,
    workers: int = 1,
    progress: Callable[[int, int], None] | None = None,
    negatives: float = 0.1,
    backdrops: Sequence[str | Path] = (),
) -> dict[str, Any]:
    """Render ``count`` scenes into ``out`` (images/, labels/, data.yaml, manifest.json) and check every label.

    The first ``count - n_val`` indices go to ``train``, the rest to ``val``; with ``val_fraction=1``
    the whole set is a validation set (for held-out evaluation). A share ``negatives`` of the scenes
    shows no table at all (people, streets, rooms) and has empty label files. ``backdrops`` are real
    photos cropped behind tables and into negatives (see ``mugpos.training.photos``); the manifest records
    their checksums, since the scenes depend on them.
    """
    if style not in STYLES:
        raise ValueError(f"unknown style {style!r}; choose from {', '.join(STYLES)}")
    if count < 1:
        raise ValueError("count must be at least 1")
    if not 0.0 <= val_fraction <= 1.0:
        raise ValueError("val_fraction must be within [0, 1]")
    if not 0.0 <= negatives < 1.0:
        raise ValueError("negatives must be within [0, 1)")
    backdrop_paths = tuple(str(Path(b)) for b in backdrops)
    for b in backdrop_paths:
        if not Path(b).is_file():
            raise ValueError(f"backdrop photo not found: {b}")
    root = Path(out)
    n_val = min(count, max(1 if val_fraction > 0 else 0, round(count * val_fraction)))
    n_train = count - n_val
    splits = [s for s, n in (("train", n_train), ("val", n_val)) if n]
    for split in splits:
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        (root / "labels" / split).mkdir(parents=True, exist_ok=True)
    jobs = [
        (seed, i, style, str(root), "train" if i < n_train else "val", negatives, backdrop_paths) for i in range(count)
    ]
    started = time.perf_counter()
    totals = {s: {n: 0 for n in (*CLASS_NAMES, "negative_images")} for s in splits}
    if workers > 1:
        ctx = multiprocessing.get_context("fork")
        with ctx.Pool(workers) as pool:
            results: Iterable[tuple[str, dict[str, int]]] = pool.imap_unordered(_render_one, jobs, chunksize=8)
            _collect(results, totals, count, progress)
    else:
        _collect(map(_render_one, jobs), totals, count, progress)
    elapsed = time.perf_counter() - started
    write_data_yaml(root, splits)
    report = check_dataset(root)
    manifest = {
        "generator": "mugpos.training.synth",
        "seed": seed,
        "style": style,
        "count": count,
        "negatives": negatives,
        "backdrops": [{"name": Path(b).name, "sha256": file_sha256(b)} for b in backdrop_paths],
        "splits": {s: n for s, n in (("train", n_train), ("val", n_val)) if n},
        "classes": list(CLASS_NAMES),
        "instances": totals,
        "base_fraction": BASE_FRACTION,
        "seconds": round(elapsed, 2),
        "images_per_second": round(count / max(elapsed, 1e-9), 2),
        "workers": workers,
        "check": report,
    }
    (root / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def _collect(
    results: Iterable[tuple[str, dict[str, int]]],
    totals: dict[str, dict[str, int]],
    count: int,
    progress: Callable[[int, int], None] | None,
) -> None:
    for done, (split, counts) in enumerate(results, 1):
        for k, v in counts.items():
            totals[split][k] += v
        if progress is not None:
            progress(done, count)


def write_data_yaml(root: Path, splits: Sequence[str]) -> Path:
    """Ultralytics data file: absolute root, class names exactly as models/classmap.py knows them."""
    train = "images/train" if "train" in splits else "images/val"
    lines = [
        f"path: {root.resolve()}",
        f"train: {train}",
        "val: images/val" if "val" in splits else f"val: {train}",
        "names:",
        *(f"  {i}: {n}" for i, n in enumerate(CLASS_NAMES)),
    ]
    path = root / "data.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def check_dataset(root: str | Path) -> dict[str, Any]:
    """Check every label of a rendered set; raise DatasetError listing the problems.

    Checks: each image has a label file and a truth file; each line has a known class and a box
    of positive size inside the image; the JSON boxes agree; no class is empty in any split.
    """
    base = Path(root)
    problems: list[str] = []
    summary: dict[str, Any] = {}
    for split_dir in sorted((base / "images").iterdir()):
        split = split_dir.name
        counts = dict.fromkeys(CLASS_NAMES, 0)
        images = sorted(split_dir.glob("*.jpg"))
        for img in images:
            txt = base / "labels" / split / f"{img.stem}.txt"
            js = txt.with_suffix(".json")
            if not txt.is_file() or not js.is_file():
                problems.append(f"{img.name}: missing label or truth file")
                continue
            truth = json.loads(js.read_text())
            w, h = truth["width"], truth["height"]
            lines = [ln for ln in txt.read_text().splitlines() if ln.strip()]
            if not lines and not truth.get("negative"):
                problems.append(f"{txt.name}: no labels")
            if lines and truth.get("negative"):
                problems.append(f"{txt.name}: labels in a negative scene")
            for ln in lines:
                parts = ln.split()
                if len(parts) != 5:
                    problems.append(f"{txt.name}: bad line {ln!r}")
                    continue
                cls = int(parts[0])
                xc, yc, bw, bh = map(float, parts[1:])
                if cls not in range(len(CLASS_NAMES)):
                    problems.append(f"{txt.name}: unknown class {cls}")
                    continue
                eps = 1e-6
                if (
                    bw <= 0
                    or bh <= 0
                    or xc - bw / 2 < -eps
                    or yc - bh / 2 < -eps
                    or xc + bw / 2 > 1 + eps
                    or yc + bh / 2 > 1 + eps
                ):
                    problems.append(f"{txt.name}: box outside the image: {ln!r}")
                counts[CLASS_NAMES[cls]] += 1
            for kind in ("mugs", "coasters"):
                for item in truth[kind]:
                    x1, y1, x2, y2 = item["box"]
                    if not (0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h):
                        problems.append(f"{js.name}: {kind} box outside the image: {item['box']}")
            if len(truth["mugs"]) != sum(1 for ln in lines if ln.startswith("0 ")):
                problems.append(f"{js.name}: mug count differs from the label file")
        empty = [k for k, v in counts.items() if v == 0]
        if images and empty:
            problems.append(f"{split}: no instances of {', '.join(empty)}")
        summary[split] = {"images": len(images), "instances": counts}
    if problems:
        shown = "; ".join(problems[:10])
        raise DatasetError(f"{len(problems)} label problem(s) in {base}: {shown}")
    return summary


COLOURS: Final = {MUG: (230, 60, 40), COASTER: (40, 200, 80), SURFACE: (60, 120, 240)}


def draw_truth(image: Array, truth: dict[str, Any]) -> Array:
    """Boxes with short captions: mug on/off coaster and its distance to the edge."""
    out = image.copy()
    font = cv2.FONT_HERSHEY_SIMPLEX
    if truth.get("negative"):
        cv2.putText(out, "negative: nothing to label", (6, 18), font, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
        return out
    sb = [round(v) for v in truth["surface"]["box"]]
    cv2.rectangle(out, (sb[0], sb[1]), (sb[2] - 1, sb[3] - 1), COLOURS[SURFACE], 2)
    cv2.putText(
        out,
        "surface " + ",".join(truth["surface"]["edges_in_view"]),
        (sb[0] + 3, sb[1] + 14),
        font,
        0.42,
        COLOURS[SURFACE],
        1,
        cv2.LINE_AA,
    )
    for c in truth["coasters"]:
        b = [round(v) for v in c["box"]]
        cv2.rectangle(out, (b[0], b[1]), (b[2] - 1, b[3] - 1), COLOURS[COASTER], 1)
    for m in truth["mugs"]:
        b = [round(v) for v in m["box"]]
        cv2.rectangle(out, (b[0], b[1]), (b[2] - 1, b[3] - 1), COLOURS[MUG], 2)
        bx, by = mug_base_point(m["box"])
        cv2.circle(out, (round(bx), round(by)), 3, (255, 255, 0), -1)
        text = f"{'ON' if m['on_coaster'] else 'off'} {m['edge_distance_cm']:.0f}cm"
        cv2.putText(out, text, (b[0], max(10, b[1] - 3)), font, 0.4, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(out, text, (b[0], max(10, b[1] - 3)), font, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def contact_sheet(root: str | Path, dest: str | Path, count: int = 8, columns: int = 4, tile: int = 360) -> Path:
    """Tile the first ``count`` scenes of a rendered set, boxes drawn, into one PNG."""
    base = Path(root)
    truths = sorted((base / "labels").glob("*/*.json"))[:count]
    tiles = []
    for js in truths:
        truth = json.loads(js.read_text())
        bgr = cv2.imread(str(base / truth["image"]))
        if bgr is None:
            raise DatasetError(f"cannot read {base / truth['image']}")
        img = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        drawn = draw_truth(img, truth)
        scale = tile / max(drawn.shape[:2])
        drawn = cv2.resize(
            drawn, (round(drawn.shape[1] * scale), round(drawn.shape[0] * scale)), interpolation=cv2.INTER_AREA
        )
        canvas = np.full((tile, tile, 3), 255, np.uint8)
        oy, ox = (tile - drawn.shape[0]) // 2, (tile - drawn.shape[1]) // 2
        canvas[oy : oy + drawn.shape[0], ox : ox + drawn.shape[1]] = drawn
        tiles.append(canvas)
    if not tiles:
        raise DatasetError(f"no scenes in {base}")
    while len(tiles) % columns:
        tiles.append(np.full((tile, tile, 3), 255, np.uint8))
    rows = [np.concatenate(tiles[i : i + columns], 1) for i in range(0, len(tiles), columns)]
    sheet = np.concatenate(rows, 0)
    path = Path(dest)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 9])
    return path
