"""A second detection head on the stock COCO trunk: one backbone + neck pass, two heads, merged outputs.

The stock YOLO26n knows real cups and tables from COCO; only rendered scenes label coasters. A
model fine-tuned end to end on renderings forgets real cups, so instead the trunk and the COCO
head stay exactly as shipped and a second ``Detect`` head (mug, coaster, surface), trained on the
frozen trunk's features, runs beside it. The COCO head's output is then bit-for-bit the stock
model's, and the merge (:func:`merge_rows`) only adds: ``mug`` = COCO ``cup`` ∪ head ``mug`` and
``surface`` = COCO ``dining table`` ∪ head ``surface``, each fused by NMS; ``coaster`` comes from
the head; every other COCO class keeps its name.

The head ships as a small file of its own (:func:`save_head` / :func:`load_head`): its weights,
the model description it was built from, its class names, and the sha256 of the trunk checkpoint
it was trained on, so that it is never run on features it has not seen.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import numpy as np
import torch
from torch import nn

from mugpos.models.checksum import file_sha256

HEAD_FORMAT: Final = "mugpos-head/1"
#: Domain labels merged across the two heads (the others are taken from one head only).
FUSED_LABELS: Final = ("mug", "surface")


class HeadError(ValueError):
    """A head file that cannot be used: damaged, another format, or trained on another trunk."""


def save_head(path: str | Path, model: Any, *, base_sha256: str, meta: Mapping[str, Any] | None = None) -> Path:
    """Write the last layer (the ``Detect`` head) of a trained Ultralytics detection model as a head file."""
    head = model.model[-1]
    names = getattr(model, "names", None) or {i: str(i) for i in range(int(head.nc))}
    blob = {
        "format": HEAD_FORMAT,
        "base_sha256": base_sha256,
        "names": [str(names[i]) for i in sorted(names)],
        "yaml": copy.deepcopy(dict(model.yaml)),
        "state_dict": {k: v.detach().float().cpu().clone() for k, v in head.state_dict().items()},
        "meta": dict(meta or {}),
    }
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(blob, out)
    return out


def read_head(path: str | Path) -> dict[str, Any]:
    """The head file's contents (torch's weights-only unpickler: tensors and plain types only)."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise FileNotFoundError(f"detection head file not found: {p}")
    try:
        blob = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, EOFError... for damaged files
        raise HeadError(f"not a loadable head file: {p} ({type(exc).__name__}: {exc})") from exc
    if not isinstance(blob, dict) or blob.get("format") != HEAD_FORMAT:
        raise HeadError(f"{p}: not a {HEAD_FORMAT} head file")
    return blob


def is_head_file(path: str | Path) -> bool:
    """Whether ``path`` is a head file (rather than a whole Ultralytics checkpoint)."""
    try:
        read_head(path)
    except (HeadError, FileNotFoundError):
        return False
    return True


def load_head(
    path: str | Path, base: Any, base_sha256: str, *, end2end: bool | None = None
) -> tuple[Any, list[str], dict[str, Any]]:
    """Build the head module from its file; refuses a head trained on another trunk than ``base_sha256``.

    ``base`` is the (unfused) trunk checkpoint's model: the head is built the way the trainer built
    it from that model (Ultralytics keeps the base's hidden widths), then takes the file's weights.
    """
    from ultralytics.nn.tasks import DetectionModel

    blob = read_head(path)
    if blob["base_sha256"] != base_sha256:
        raise HeadError(
            f"{path}: this head was trained on the trunk with sha256 {blob['base_sha256'][:12]}…, "
            f"not on the detector weights given ({base_sha256[:12]}…)"
        )
    names = [str(n) for n in blob["names"]]
    # The head's own model description: building it also computes the strides the head decodes with.
    donor: Any = DetectionModel(cfg=copy.deepcopy(blob["yaml"]), nc=len(names), verbose=False)
    donor.load(copy.deepcopy(base), verbose=False)
    try:
        donor.model[-1].load_state_dict(blob["state_dict"])
    except RuntimeError as exc:
        raise HeadError(f"{path}: the head's weights do not fit its description ({exc})") from exc
    if end2end is not None and hasattr(donor, "end2end"):
        donor.end2end = end2end  # the same head choice as the trunk's, before fusing drops the other
    donor.fuse(verbose=False)
    head = donor.model[-1]
    return head, names, {"sha256": file_sha256(path), "names": names, "meta": dict(blob.get("meta") or {})}


class TwoHeads(nn.Module):
    """The stock detection model's layers up to its head, then its head and a second one on the same features."""

    base: Any
    head: Any

    def __init__(self, base: Any, head: Any) -> None:
        super().__init__()
        self.base = base
        self.head = head
        layers = base.model
        if list(head.f) != list(layers[-1].f):
            raise HeadError(f"head reads layers {head.f}, the trunk feeds its head from {layers[-1].f}")
        self.stride = base.stride

    def forward(self, x: torch.Tensor) -> tuple[Any, Any]:
        """Exactly ``DetectionModel._predict_once`` up to the last layer, which then runs twice."""
        layers = self.base.model
        save = self.base.save
        y: list[Any] = []
        out: Any = x
        for m in layers[:-1]:
            if m.f != -1:
                out = y[m.f] if isinstance(m.f, int) else [out if j == -1 else y[j] for j in m.f]
            out = m(out)
            y.append(out if m.i in save else None)
        detect = layers[-1]
        feats = [out if j == -1 else y[j] for j in detect.f]
        return detect(list(feats)), self.head(list(feats))


#: A second-head box overlapping a kept first-head box of the same label this much (IoU) is the same object.
CROSS_IOU: Final = 0.5
#: ... or when this share of the smaller box lies inside the other (nested boxes, low IoU).
CONTAINED: Final = 0.8


def merge_rows(
    first: np.ndarray,
    second: np.ndarray,
    labels: Sequence[str],
    iou: float,
    max_det: int,
    fused: Sequence[str] = FUSED_LABELS,
    cross_iou: float = CROSS_IOU,
    contained: float = CONTAINED,
) -> np.ndarray:
    """Merge two heads' rows ``(x1, y1, x2, y2, score, class)``: NMS across heads within each fused label.

    ``labels[class]`` is the domain label of a class index (both heads' classes in one index space).
    Rows whose label is not fused pass through unchanged. Returns the rows by descending score.

    The two heads draw one object differently (the COCO cup box takes the handle, the head's mug box
    the body), so plain NMS at ``iou`` keeps both and one mug becomes two. After NMS, a second-head
    row is therefore dropped when it overlaps a kept first-head row of its label at ``cross_iou``, or
    when ``contained`` of the smaller box lies inside the other. Only second-head rows are dropped
    this way: every first-head (stock COCO) box that NMS kept stays exactly as it is.
    """
    from torchvision.ops import box_iou
    from torchvision.ops import nms as tv_nms

    rows = np.concatenate([first.reshape(-1, 6), second.reshape(-1, 6)]).astype(np.float32)
    if not len(rows):
        return rows
    from_first = np.arange(len(rows)) < len(first.reshape(-1, 6))
    row_labels = np.array([labels[int(c)] for c in rows[:, 5]], dtype=object)
    keep = np.ones(len(rows), bool)
    for label in fused:
        idx = np.flatnonzero(row_labels == label)
        if len(idx) < 2:
            continue
        kept = idx[tv_nms(torch.from_numpy(rows[idx, :4]), torch.from_numpy(rows[idx, 4]), iou).numpy()]
        keep[idx] = False
        keep[kept] = True
        ours, theirs = kept[from_first[kept]], kept[~from_first[kept]]
        if len(ours) and len(theirs):
            a, b = torch.from_numpy(rows[theirs, :4]), torch.from_numpy(rows[ours, :4])
            overlap = box_iou(a, b).numpy()
            keep[theirs[((overlap >= cross_iou) | (_contained(a, b) >= contained)).any(axis=1)]] = False
    merged = rows[keep]
    return merged[np.argsort(-merged[:, 4], kind="stable")][:max_det]


def _contained(a: torch.Tensor, b: torch.Tensor) -> np.ndarray:
    """Intersection over the smaller of the two areas, for every pair of boxes in ``a`` and ``b``."""
    lt = torch.maximum(a[:, None, :2], b[None, :, :2])
    rb = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(dim=2)
    area_a = (a[:, 2:] - a[:, :2]).clamp(min=0).prod(dim=1)
    area_b = (b[:, 2:] - b[:, :2]).clamp(min=0).prod(dim=1)
    smaller = torch.minimum(area_a[:, None], area_b[None, :]).clamp(min=1e-6)
    return (inter / smaller).numpy()
