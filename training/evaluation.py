"""Score a detector on rendered scenes and on real photos: what it finds, and what that means for positioning.

Box mAP alone does not say whether the service answers its question, so next to per-class mAP
(Ultralytics' own validator, on a split rendered with a seed and style never used in training)
this module runs the production path (``models.detector.Detector`` -> ``models.positioning``) on
every scene and compares the outcome per mug with the renderer's ground truth: on a coaster or
not, and within N cm of a table edge or not. The same rules applied to the *true* boxes give the
ceiling that a perfect detector would reach, so rule error and detector error can be told apart.

Real photos: the evaluation set of ``mugpos.training.photos`` (shipped inside installed packages, never
used for training). A mug or coaster found where a person sees none is a phantom; the one real
cup (scikit-image's coffee) must still be found as a mug.
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

import mugpos.models  # noqa: F401  (offline environment before ultralytics is imported)
from mugpos.models.checksum import file_sha256
from mugpos.training.photos import EVAL_BY_NAME, eval_photos
from mugpos.training.synth import CLASS_NAMES
from mugpos.training.ultralytics_env import ensure_font, ultralytics_device

#: Acceptance targets on the held-out rendered style: recall at IoU 0.5 of the merged output, positioning.
TARGETS: dict[str, float] = {"recall_mug": 0.97, "recall_coaster": 0.93, "on_coaster": 0.97}
IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)


def installed_photos() -> dict[str, Path]:
    """The evaluation photos installed here (``mugpos.training.photos.EVAL``): name -> path."""
    return eval_photos()


def _split_yaml(root: Path, split: str, folder: Path) -> Path:
    """A data.yaml whose train and val both point at one split, so the validator scores exactly that split."""
    lines = [f"path: {root.resolve()}", f"train: images/{split}", f"val: images/{split}", "names:"]
    lines += [f"  {i}: {n}" for i, n in enumerate(CLASS_NAMES)]
    path = folder / "data.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _root_of(data: str | Path) -> Path:
    path = Path(data)
    return path.parent if path.suffix in (".yaml", ".yml") else path


def map_per_class(
    weights: str | Path,
    data: str | Path,
    split: str = "val",
    *,
    imgsz: int = 320,
    device: str = "auto",
    batch: int = 16,
) -> dict[str, Any]:
    """Per-class precision, recall, mAP50 and mAP50-95 from Ultralytics' validator on one split."""
    from ultralytics import YOLO

    root = _root_of(data)
    if not (root / "images" / split).is_dir():
        raise FileNotFoundError(f"no split {split!r} under {root}/images")
    ensure_font()
    folder = Path(tempfile.mkdtemp(prefix="mugpos-val-"))
    try:
        yaml_path = _split_yaml(root, split, folder)
        model = YOLO(str(weights))
        result = model.val(
            data=str(yaml_path), split="val", imgsz=imgsz, batch=batch, device=ultralytics_device(device),
            plots=False, verbose=False, workers=0, project=str(folder), name="val", exist_ok=True,
        )  # fmt: skip
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    box = result.box
    names = {int(k): str(v) for k, v in result.names.items()}
    per_class: dict[str, dict[str, Any]] = {}
    nt_class = getattr(result, "nt_per_class", None)
    nt_image = getattr(result, "nt_per_image", None)
    for i, c in enumerate(box.ap_class_index):
        c = int(c)
        per_class[names[c]] = {
            "images": int(nt_image[c]) if nt_image is not None else None,
            "instances": int(nt_class[c]) if nt_class is not None else None,
            "precision": round(float(box.p[i]), 4),
            "recall": round(float(box.r[i]), 4),
            "map50": round(float(box.ap50[i]), 4),
            "map50_95": round(float(box.ap[i]), 4),
        }
    images = len(list((root / "images" / split).glob("*.jpg")))
    return {
        "split": split,
        "images": images,
        "imgsz": imgsz,
        "map50": round(float(box.map50), 4),
        "map50_95": round(float(box.map), 4),
        "per_class": per_class,
    }


# --------------------------------------------------------------------------------------------
# Positioning outcome against the renderer's ground truth.
# --------------------------------------------------------------------------------------------


def _iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if not len(a) or not len(b):
        return np.zeros((len(a), len(b)))
    ix = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    iy = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = ix * iy
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return np.asarray(inter / (area_a[:, None] + area_b[None, :] - inter + 1e-9))


def match(truth: np.ndarray, pred: np.ndarray, iou: float = 0.5) -> list[int | None]:
    """For each true box, the predicted box it is matched to (greedy, predictions in confidence order)."""
    ious = _iou_matrix(truth, pred)
    out: list[int | None] = [None] * len(truth)
    for j in range(len(pred)):
        if not len(truth):
            break
        free = [i for i in range(len(truth)) if out[i] is None]
        if not free:
            break
        best = max(free, key=lambda i: ious[i, j])
        if ious[best, j] >= iou:
            out[best] = j
    return out


def positions(
    mugs: np.ndarray,
    coasters: np.ndarray,
    surfaces: np.ndarray,
    width: int,
    height: int,
    scales: Sequence[tuple[float, float]],
) -> tuple[list[bool], list[float | None]]:
    """Per mug: on a coaster (``models.positioning``'s rule) and the gap to the nearest table edge in cm.

    The gap uses positioning's geometry (mug footprint to the closed sides of its surface box) with the
    camera's calibration per image axis (``scales``: px per cm along x and y at the mug): the renderer's
    camera looks down at an angle, so a vertical pixel covers more table than a horizontal one.
    ``None`` means no closed edge is visible (the table goes on beyond the picture).
    """
    from mugpos.models import positioning as pos

    cfg = pos.DEFAULT_CONFIG
    frame = (0.0, 0.0, float(width), float(height))
    m = pos.measure(mugs, coasters, surfaces, coasters_known=True, frame=frame, config=cfg)
    on = [bool(v) for v in (m.on_coaster if m.on_coaster is not None else np.zeros(len(mugs), bool))]
    gaps: list[float | None] = []
    feet = pos.footprints(mugs, cfg.footprint_frac)
    for row in range(len(mugs)):
        s_index = int(m.surface_index[row])
        if s_index == pos.NO_INDEX:
            gaps.append(None)
            continue
        surf = surfaces[s_index : s_index + 1]
        closed = ~pos.open_edges(surf, frame, cfg.frame_margin_frac)[0]
        f, s = feet[row], surf[0]
        sx, sy = scales[row]
        sides = [(f[0] - s[0]) / sx, (f[1] - s[1]) / sy, (s[2] - f[2]) / sx, (s[3] - f[3]) / sy]
        kept = [d for d, c in zip(sides, closed, strict=True) if c]
        gaps.append(float(min(kept)) if kept else None)
    return on, gaps


def _boxes(items: Iterable[Sequence[float]]) -> np.ndarray:
    arr = np.asarray([list(b)[:4] for b in items], np.float64)
    return arr.reshape(-1, 4)


def _by_label(detections: Sequence[Mapping[str, Any]], label: str) -> np.ndarray:
    return _boxes(
        [d["box"]["x1"], d["box"]["y1"], d["box"]["x2"], d["box"]["y2"]] for d in detections if d["label"] == label
    )


def score_scene(
    truth: Mapping[str, Any], detections: Sequence[Mapping[str, Any]], edge_cm: Sequence[float]
) -> list[dict[str, Any]]:
    """One record per true mug: truth, the detector's outcome (None when missed) and the rule's ceiling."""
    if truth.get("negative"):
        return []
    w, h = int(truth["width"]), int(truth["height"])
    true_mugs = _boxes(m["box"] for m in truth["mugs"])
    true_coasters = _boxes(c["box"] for c in truth["coasters"])
    true_surface = _boxes([truth["surface"]["box"]])
    scales: list[tuple[float, float]] = [(float(m["px_per_cm"][0]), float(m["px_per_cm"][1])) for m in truth["mugs"]]
    ceil_on, ceil_gap = positions(true_mugs, true_coasters, true_surface, w, h, scales)

    pred_mugs = _by_label(detections, "mug")
    matched = match(true_mugs, pred_mugs)
    pred_scales = [(1.0, 1.0)] * len(pred_mugs)
    for i, j in enumerate(matched):
        if j is not None:
            pred_scales[j] = scales[i]
    pred_on, pred_gap = positions(
        pred_mugs, _by_label(detections, "coaster"), _by_label(detections, "surface"), w, h, pred_scales
    )
    records = []
    for i, m in enumerate(truth["mugs"]):
        j = matched[i]
        rec: dict[str, Any] = {
            "on_coaster": bool(m["on_coaster"]),
            "edge_cm": float(m["edge_distance_cm"]),
            "detected": j is not None,
            "pred_on_coaster": pred_on[j] if j is not None else None,
            "pred_edge_cm": pred_gap[j] if j is not None else None,
            "ceiling_on_coaster": ceil_on[i],
            "ceiling_edge_cm": ceil_gap[i],
        }
        for n in edge_cm:
            rec[f"within_{n:g}cm"] = rec["edge_cm"] <= n
        records.append(rec)
    return records


def _within(value: float | None, n: float) -> bool:
    return value is not None and value <= n


def summarise_positions(records: Sequence[Mapping[str, Any]], edge_cm: Sequence[float]) -> dict[str, Any]:
    """Accuracies over all true mugs (a missed mug counts as wrong) and over the detected ones."""
    n = len(records)
    detected = [r for r in records if r["detected"]]
    acc: dict[str, float | None] = {}
    ceiling: dict[str, float | None] = {}

    def ratio(hits: int, total: int) -> float | None:
        return round(hits / total, 4) if total else None

    on_hits = sum(1 for r in detected if r["pred_on_coaster"] == r["on_coaster"])
    acc["on_coaster"] = ratio(on_hits, n)
    acc["on_coaster (detected mugs)"] = ratio(on_hits, len(detected))
    ceiling["on_coaster"] = ratio(sum(1 for r in records if r["ceiling_on_coaster"] == r["on_coaster"]), n)
    for e in edge_cm:
        key = f"within {e:g} cm of the edge"
        hits = sum(1 for r in detected if _within(r["pred_edge_cm"], e) == (r["edge_cm"] <= e))
        acc[key] = ratio(hits, n)
        acc[f"{key} (detected mugs)"] = ratio(hits, len(detected))
        ceiling[key] = ratio(sum(1 for r in records if _within(r["ceiling_edge_cm"], e) == (r["edge_cm"] <= e)), n)
    tp = sum(1 for r in detected if r["pred_on_coaster"] and r["on_coaster"])
    fp = sum(1 for r in detected if r["pred_on_coaster"] and not r["on_coaster"])
    fn = sum(1 for r in detected if not r["pred_on_coaster"] and r["on_coaster"])
    tn = sum(1 for r in detected if not r["pred_on_coaster"] and not r["on_coaster"])
    errors = [
        abs(r["pred_edge_cm"] - r["edge_cm"]) for r in detected if r["pred_edge_cm"] is not None and r["edge_cm"] <= 15
    ]
    return {
        "mugs": n,
        "mug_recall_iou50": ratio(len(detected), n),
        "on_coaster_mugs": sum(1 for r in records if r["on_coaster"]),
        "near_edge_mugs": {f"{e:g}cm": sum(1 for r in records if r["edge_cm"] <= e) for e in edge_cm},
        "accuracy": acc,
        "ceiling_with_true_boxes": ceiling,
        "on_coaster_confusion_detected": {"tp": tp, "fp": fp, "fn": fn, "tn": tn},
        "edge_abs_error_cm_median_within_15cm": round(float(np.median(errors)), 2) if errors else None,
    }


def _load_rgb(path: Path) -> np.ndarray:
    import cv2

    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise ValueError(f"cannot read image {path}")
    return np.ascontiguousarray(cv2.cvtColor(img, cv2.COLOR_BGR2RGB))


def _true_positives(truth: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """(n_pred, 10) hits at IoU 0.5..0.95: :func:`match` (greedy in confidence order) at each threshold."""
    hits = np.zeros((len(pred), len(IOU_THRESHOLDS)), bool)
    for k, t in enumerate(IOU_THRESHOLDS):
        for j in match(truth, pred, float(t)):
            if j is not None:
                hits[j, k] = True
    return hits


class BoxMetrics:
    """Per-class precision, recall and AP of the production path's detections (after both heads merge).

    Collected image by image from ``Detector`` output, so it scores exactly what the service emits,
    letterbox and merge included. AP uses Ultralytics' ``ap_per_class`` over the detections kept at the
    detector's confidence threshold, so it is a lower bound of the validator's mAP (which keeps 0.001).
    """

    def __init__(self) -> None:
        self._tp: list[np.ndarray] = []
        self._conf: list[np.ndarray] = []
        self._pred: list[np.ndarray] = []
        self._target: list[np.ndarray] = []
        self._images: dict[int, int] = {}

    def add(self, truth: Mapping[str, Any], detections: Sequence[Mapping[str, Any]]) -> None:
        for cls, name in enumerate(CLASS_NAMES):
            if name == "surface":
                true = _boxes([truth["surface"]["box"]]) if truth.get("surface") else _boxes([])
            else:
                true = _boxes(m["box"] for m in truth.get(f"{name}s", []))
            dets = sorted((d for d in detections if d["label"] == name), key=lambda d: -float(d["confidence"]))
            pred = _by_label(dets, name)
            self._tp.append(_true_positives(true, pred))
            self._conf.append(np.array([float(d["confidence"]) for d in dets]))
            self._pred.append(np.full(len(dets), cls))
            self._target.append(np.full(len(true), cls))
            self._images[cls] = self._images.get(cls, 0) + int(len(true) > 0)

    def summary(self, split: str, imgsz: int, images: int) -> dict[str, Any]:
        from ultralytics.utils.metrics import ap_per_class

        tp, conf = np.concatenate(self._tp), np.concatenate(self._conf)
        pred, target = np.concatenate(self._pred), np.concatenate(self._target)
        per_class: dict[str, dict[str, Any]] = {}
        ap50: list[float] = []
        ap: list[float] = []
        for cls, name in enumerate(CLASS_NAMES):
            n_true = int((target == cls).sum())
            sel = pred == cls
            hits = int(tp[sel, 0].sum())
            if n_true and sel.any():
                res = ap_per_class(tp[sel], conf[sel], pred[sel], target[target == cls])
                cls_ap = np.asarray(res[5]).reshape(-1, len(IOU_THRESHOLDS))[0]
                ap50.append(float(cls_ap[0]))
                ap.append(float(cls_ap.mean()))
            else:
                cls_ap = np.zeros(len(IOU_THRESHOLDS))
            per_class[name] = {
                "images": self._images.get(cls, 0),
                "instances": n_true,
                "detections": int(sel.sum()),
                "precision": round(hits / int(sel.sum()), 4) if sel.any() else None,
                "recall": round(hits / n_true, 4) if n_true else None,
                "map50": round(float(cls_ap[0]), 4),
                "map50_95": round(float(cls_ap.mean()), 4),
            }
        return {
            "split": split,
            "images": images,
            "imgsz": imgsz,
            "source": "production path (Detector, merged heads), detections at the confidence threshold",
            "map50": round(float(np.mean(ap50)), 4) if ap50 else 0.0,
            "map50_95": round(float(np.mean(ap)), 4) if ap else 0.0,
            "per_class": per_class,
        }


def positioning_accuracy(
    detector: Any,
    data: str | Path,
    split: str = "val",
    *,
    edge_cm: Sequence[float] = (2.0, 5.0),
    batch: int = 8,
    boxes: BoxMetrics | None = None,
) -> dict[str, Any]:
    """Run the detector over a rendered split and score positioning outcomes per mug (and boxes, if given)."""
    root = _root_of(data)
    truths = sorted((root / "labels" / split).glob("*.json"))
    if not truths:
        raise FileNotFoundError(f"no ground-truth files under {root}/labels/{split}")
    records: list[dict[str, Any]] = []
    negatives = phantoms = 0
    for start in range(0, len(truths), batch):
        chunk = [json.loads(p.read_text()) for p in truths[start : start + batch]]
        images = [_load_rgb(root / t["image"]) for t in chunk]
        for truth, dets in zip(chunk, detector.detect(images), strict=True):
            if truth.get("negative"):
                negatives += 1
                phantoms += sum(1 for d in dets if d["label"] in ("mug", "coaster"))
            if boxes is not None:
                boxes.add(truth, dets)
            records.extend(score_scene(truth, dets, edge_cm))
    summary = summarise_positions(records, edge_cm)
    summary["images"] = len(truths)
    summary["negative_images"] = negatives
    summary["mugs_or_coasters_in_negative_images"] = phantoms
    return summary


def photo_check(detector: Any, photos: Mapping[str, Path] | None = None) -> dict[str, Any]:
    """Detections on real photos: mugs and coasters beyond what a person sees are phantoms.

    A photo with a real cup counts as found when at least one mug is reported on it (the shipped
    photos show one cup each at most); extra mugs beyond the true count are phantoms too.
    """
    photos = dict(installed_photos() if photos is None else photos)
    out: dict[str, Any] = {}
    phantoms = cups = cups_found = 0
    for name, path in sorted(photos.items()):
        [dets] = detector.detect([_load_rgb(path)])
        counts = {label: sum(1 for d in dets if d["label"] == label) for label in CLASS_NAMES}
        known = EVAL_BY_NAME.get(name)
        true_cups, true_coasters = (known.cups, known.coasters) if known else (0, 0)
        extra = max(0, counts["mug"] - true_cups) + max(0, counts["coaster"] - true_coasters)
        phantoms += extra
        cups += true_cups
        cups_found += min(true_cups, counts["mug"])
        out[name] = {
            "path": str(path),
            "expected": known.contents if known else "unknown",
            "true_cups": true_cups,
            "counts": counts,
            "phantoms": extra,
            "detections": [
                {
                    "label": d["label"],
                    "confidence": round(float(d["confidence"]), 3),
                    "box": [round(float(v), 1) for v in d["box"].values()],
                }
                for d in dets
                if d["label"] in CLASS_NAMES
            ],
        }
    return {
        "images": out,
        "phantom_mugs_or_coasters": phantoms,
        "real_cups": cups,
        "real_cups_found": cups_found,
    }


def evaluate(
    weights: str | Path,
    data: str | Path,
    *,
    split: str = "val",
    imgsz: int = 320,
    device: str = "auto",
    conf: float = 0.25,
    edge_cm: Sequence[float] = (2.0, 5.0),
    photos: Mapping[str, Path] | None = None,
    baseline: str | Path | None = None,
    letterbox: str = "square",
    head: str | Path | None = None,
) -> dict[str, Any]:
    """Per-class box metrics, positioning accuracy and the real-photo check, as one JSON-able report.

    Box metrics (precision, recall, AP) are those of the production path: ``Detector`` with its
    ``head``, merged, letterboxed as ``letterbox`` says (square or rect). For a single checkpoint,
    Ultralytics' validator's mAP is reported beside them (``detection_validator``).
    """
    if letterbox not in ("square", "rect"):
        raise ValueError(f"letterbox must be square or rect, got {letterbox!r}")
    from mugpos.models.detector import Detector

    root = _root_of(data)
    manifest_path = root / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    detector = Detector(weights, device=device, image_size=imgsz, confidence=conf, rect=letterbox == "rect", head=head)
    boxes = BoxMetrics()
    report: dict[str, Any] = {
        "weights": str(weights),
        "sha256": file_sha256(weights),
        "head": str(head) if head is not None else None,
        "head_sha256": file_sha256(head) if head is not None else None,
        "data": {k: manifest.get(k) for k in ("generator", "seed", "style", "count")}
        | {"path": str(root), "split": split},
        "imgsz": imgsz,
        "letterbox": letterbox,
        "confidence": conf,
        "device": str(detector.device),
        "positioning_rules": "mugpos.models.positioning: footprint = bottom quarter of the mug box; "
        "on_coaster = footprint centre inside a coaster box; edge gap = footprint to closed surface-box sides",
        "positioning": positioning_accuracy(detector, root, split, edge_cm=edge_cm, boxes=boxes),
        "photos": photo_check(detector, photos),
    }
    report["detection"] = boxes.summary(split, imgsz, report["positioning"]["images"])
    if head is None:
        report["detection_validator"] = map_per_class(weights, root, split, imgsz=imgsz, device=device)
    if baseline is not None and Path(baseline).is_file():
        stock = Detector(baseline, device=device, image_size=640, confidence=conf, rect=letterbox == "rect")
        report["photos_stock_coco_640"] = photo_check(stock, photos)
    report["targets"] = targets_met(report)
    return report


def card_section(report: Mapping[str, Any]) -> dict[str, Any]:
    """The parts of an evaluation report worth keeping in the model card."""
    photos = report["photos"]
    return {
        "data": report["data"],
        "imgsz": report["imgsz"],
        "letterbox": report.get("letterbox", "square"),
        "confidence": report["confidence"],
        "head": report.get("head"),
        "head_sha256": report.get("head_sha256"),
        "detection": report["detection"],
        "positioning": {
            k: report["positioning"][k] for k in ("mugs", "mug_recall_iou50", "accuracy", "ceiling_with_true_boxes")
        },
        "photos": {
            "images": {
                n: {"counts": p["counts"], "expected": p["expected"], "phantoms": p["phantoms"]}
                for n, p in photos["images"].items()
            },
            **{k: photos[k] for k in ("phantom_mugs_or_coasters", "real_cups", "real_cups_found")},
        },
        "targets": report["targets"],
    }


def targets_met(report: Mapping[str, Any]) -> dict[str, Any]:
    """The issue's acceptance targets, each with its value and whether it is met."""
    per = report.get("detection", {}).get("per_class", {})
    values = {
        "recall_mug": per.get("mug", {}).get("recall"),
        "recall_coaster": per.get("coaster", {}).get("recall"),
        "on_coaster": report.get("positioning", {}).get("accuracy", {}).get("on_coaster"),
    }
    out: dict[str, Any] = {}
    for key, target in TARGETS.items():
        v = values[key]
        out[key] = {"value": v, "target": target, "met": v is not None and not math.isnan(v) and v >= target}
    phantoms = report.get("photos", {}).get("phantom_mugs_or_coasters")
    out["no_phantoms_on_photos"] = {"value": phantoms, "target": 0, "met": phantoms == 0}
    out["all_met"] = all(item["met"] for item in out.values() if isinstance(item, dict))
    return out
