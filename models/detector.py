"""Batched YOLO detection on the raw torch module, returning Avro-shaped ``Detection`` dicts.

Ultralytics' ``YOLO.predict`` re-letterboxes, re-decodes and builds ``Results``
objects per call; a stream processor wants one forward pass per micro-batch
with decoding and letterboxing already done in worker threads. So this class
loads the checkpoint through Ultralytics (to get the exact model and class
names), then drives the torch module itself and reuses Ultralytics' own
non-max-suppression for post-processing, exactly as ``DetectionPredictor`` does.

Importing ``models`` (this package) first pins the offline environment variables
that Ultralytics reads at import time.
"""

from __future__ import annotations

import platform
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import ultralytics
from ultralytics import YOLO
from ultralytics.utils import nms

from mugpos.models.checksum import file_sha256
from mugpos.models.classmap import ClassMap
from mugpos.models.heads import TwoHeads, load_head, merge_rows
from mugpos.models.letterbox import Letterboxed, letterbox, unletterbox


def resolve_device(device: str) -> torch.device:
    """``auto`` means the first CUDA GPU when there is one, else the CPU."""
    if device == "auto":
        return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r} requested but CUDA is not available")
        if resolved.index is None:
            resolved = torch.device("cuda:0")
    return resolved


class Detector:
    """A YOLO detector (Ultralytics ``.pt``) that runs one forward pass per batch of letterboxed images.

    ``rect`` letterboxes to the smallest stride-aligned rectangle instead of a square, like
    ``YOLO.predict``'s default: fewer pixels per image, one forward pass per distinct shape.

    ``prepare`` is pure CPU and thread-safe (run it in a pool); ``infer`` runs the model and is
    serialised by a lock, so call it from one inference thread or task.

    ``end2end`` picks the detection head of NMS-free models such as YOLO26: None keeps the
    installed Ultralytics' default (in 8.4 that is the one-to-many head followed by NMS, the
    same as ``YOLO.predict()``), True uses the one-to-one head (no NMS, top-k only).

    ``head`` adds a second detection head (a ``models.heads`` file trained on this checkpoint's
    frozen trunk, e.g. coasters): one trunk pass per batch feeds both heads, whose outputs are merged
    (``models.heads.merge_rows``). The first head's detections stay exactly those of ``weights`` alone.
    """

    device: torch.device
    half: bool
    stride: int
    image_size: int
    rect: bool
    confidence: float
    iou: float
    max_det: int
    _model: torch.nn.Module
    _end2end: bool
    _names: dict[int, str]
    _class_map: ClassMap
    _lock: threading.Lock
    _info: dict[str, Any]

    def __init__(
        self,
        weights: str | Path,
        device: str = "auto",
        image_size: int = 640,
        confidence: float = 0.25,
        iou: float = 0.7,
        class_map: ClassMap | None = None,
        *,
        max_det: int = 300,
        end2end: bool | None = None,
        rect: bool = False,
        head: str | Path | None = None,
    ) -> None:
        path = Path(weights).expanduser()
        if not path.is_file():
            # Checked first: Ultralytics would try to download a missing file named like an official asset.
            raise FileNotFoundError(f"YOLO weights file not found: {path}")
        if path.suffix.lower() != ".pt":
            raise ValueError(f"YOLO weights must be an Ultralytics .pt checkpoint, got {path}")
        if not 0.0 <= confidence <= 1.0 or not 0.0 <= iou <= 1.0:
            raise ValueError(f"confidence and iou must be within [0, 1], got {confidence} and {iou}")
        self._path = path.resolve()
        self._sha256 = file_sha256(self._path)
        try:
            yolo = YOLO(str(self._path), task="detect")
        except Exception as exc:  # ultralytics raises KeyError/TypeError/... for damaged files
            reason = f"{type(exc).__name__}: {exc}"
            raise ValueError(f"not a loadable Ultralytics checkpoint: {self._path} ({reason})") from exc
        module = yolo.model
        if not isinstance(module, torch.nn.Module) or getattr(yolo, "task", None) != "detect":
            raise ValueError(f"not a YOLO detection checkpoint: {self._path} (task={getattr(yolo, 'task', None)})")

        self.device = resolve_device(device)
        self.half = self.device.type == "cuda"
        if end2end is not None and hasattr(module, "end2end"):
            module.end2end = end2end  # select the head before fusing drops the other one
        self._head_info: dict[str, Any] | None = None
        self._head_offset: int = 0
        self._names = {int(k): str(v) for k, v in dict(yolo.names).items()}
        extra = None
        if head is not None:
            extra, head_names, self._head_info = load_head(head, module, self._sha256, end2end=end2end)
            self._head_offset = max(self._names) + 1
            self._names.update({self._head_offset + i: name for i, name in enumerate(head_names)})
        if hasattr(module, "fuse"):
            module = module.fuse(verbose=False)
        if extra is not None:
            module = TwoHeads(module, extra)
        module = module.to(self.device).eval()
        if (
            self.device.type == "cpu"
            and platform.machine() in ("x86_64", "AMD64")
            and torch.backends.mkldnn.is_available()
        ):
            # As Ultralytics' AutoBackend does (keeps results identical to YOLO.predict); a BHWC batch
            # permuted to BCHW already has this layout, so the input needs no copy.
            module = module.to(memory_format=torch.channels_last)
        module = module.half() if self.half else module.float()
        for param in module.parameters():
            param.requires_grad_(False)
        heads = [module.head, module.base.model[-1]] if isinstance(module, TwoHeads) else []
        if not heads and hasattr(module, "model"):
            heads = [module.model[-1]]
        for last in heads:
            if hasattr(last, "max_det"):
                last.max_det = max(max_det, 300)  # like the predictor: top-k before confidence filtering
        self._model = module
        self._end2end = bool(getattr(module.base if isinstance(module, TwoHeads) else module, "end2end", False))
        self.stride = max(int(module.stride.max()), 32) if hasattr(module, "stride") else 32
        if image_size <= 0 or image_size % self.stride:
            raise ValueError(f"image_size must be a positive multiple of {self.stride}, got {image_size}")
        self.image_size = image_size
        self.rect = rect
        self.confidence = confidence
        self.iou = iou
        self.max_det = max_det
        self._class_map = (class_map or ClassMap()).bind(self._names)
        # Domain label of every class index of both heads, for the merge (computed once, not per batch).
        self._row_labels: list[str] = [
            self._class_map.label(self._names.get(i, str(i))) for i in range(max(self._names) + 1)
        ]
        self._lock = threading.Lock()
        name = self._path.stem
        model_id = f"{name}-{self._sha256[:12]}"
        if head is not None and self._head_info is not None:  # both set together; narrows for mypy
            head_name = Path(head).stem
            name = f"{name}+{head_name}"
            model_id = f"{model_id}+{head_name}-{self._head_info['sha256'][:12]}"
        self._info = {
            "model_id": model_id,
            "name": name,
            "version": ultralytics.__version__,
            "weights_sha256": self._sha256,
            "device": str(self.device),
            "labels": sorted(self._class_map.labels),
        }

    @property
    def info(self) -> dict[str, Any]:
        """Identity of this model, shaped like the Avro ``ModelInfo`` record (labels: what it can see)."""
        return {**self._info, "labels": list(self._info["labels"])}

    @property
    def names(self) -> dict[int, str]:
        """The model's classes, index -> name."""
        return dict(self._names)

    @property
    def class_map(self) -> ClassMap:
        """The class map bound to this model's classes."""
        return self._class_map

    @property
    def cache_scope(self) -> str:
        """Model id plus the settings that change its output: a cached result is only reused under the same."""
        shape = "rect" if self.rect else "square"
        run = f"{self.image_size}{shape}:c{self.confidence:g}:i{self.iou:g}:e{int(self._end2end)}"
        return f"{self._info['model_id']}:{run}"

    @property
    def head_info(self) -> dict[str, Any] | None:
        """The second head's sha256, class names and training notes; None without one."""
        return None if self._head_info is None else dict(self._head_info)

    @property
    def end2end(self) -> bool:
        """Whether the NMS-free one-to-one head is in use."""
        return self._end2end

    def prepare(self, img: np.ndarray) -> Letterboxed:
        """Letterbox one decoded RGB image to the model's input size (CPU only, thread-safe)."""
        return letterbox(img, self.image_size, stride=self.stride if self.rect else None)

    def warmup(self, batch_size: int = 1) -> None:
        """Run throw-away passes so the first real batch does not pay for allocator and kernel setup."""
        blank = np.full((self.image_size, self.image_size, 3), 114, dtype=np.uint8)
        batch = [letterbox(blank, self.image_size)] * max(1, batch_size)
        for _ in range(2 if self.device.type == "cuda" else 1):
            self.infer(batch)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def detect(self, images: Sequence[np.ndarray]) -> list[list[dict[str, Any]]]:
        """Convenience: prepare and infer in one call."""
        return self.infer([self.prepare(image) for image in images])

    def infer(self, batch: Sequence[Letterboxed]) -> list[list[dict[str, Any]]]:
        """Detect objects in each letterboxed image; one list of detections per image.

        One forward pass per distinct input shape: always one for square letterboxing, and one per
        camera aspect ratio with ``rect``.
        """
        rows = self._rows(batch)
        if self._head_info is not None:
            merged = [merge_rows(a, b, self._row_labels, self.iou, self.max_det) for a, b in rows]
        else:
            merged = [a for a, _ in rows]
        return [self._to_detections(r, item) for r, item in zip(merged, batch, strict=True)]

    def infer_heads(self, batch: Sequence[Letterboxed]) -> list[tuple[list[dict[str, Any]], list[dict[str, Any]]]]:
        """Each head's detections before the merge, per image: (first head, second head or empty)."""
        return [
            (self._to_detections(a, item), self._to_detections(b, item))
            for (a, b), item in zip(self._rows(batch), batch, strict=True)
        ]

    def _rows(self, batch: Sequence[Letterboxed]) -> list[tuple[np.ndarray, np.ndarray]]:
        """Rows of (x1, y1, x2, y2, score, class) per image and head, in model pixels."""
        if not batch:
            return []
        groups: dict[tuple[int, ...], list[int]] = {}
        for index, item in enumerate(batch):
            shape = item.image.shape
            if (
                len(shape) != 3
                or shape[2] != 3
                or max(shape[:2]) != self.image_size
                or any(side % self.stride for side in shape[:2])
            ):
                raise ValueError(
                    f"expected images letterboxed to {self.image_size}px (sides multiples of {self.stride}), "
                    f"got {shape}"
                )
            groups.setdefault(shape, []).append(index)
        empty = np.empty((0, 6), np.float32)
        rows: list[tuple[np.ndarray, np.ndarray]] = [(empty, empty)] * len(batch)
        for indices in groups.values():
            for index, found in zip(indices, self._forward([batch[i].image for i in indices]), strict=True):
                rows[index] = found
        return rows

    def _forward(self, images: Sequence[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
        """One forward pass and NMS per head over same-shaped HxWx3 uint8 inputs."""
        pixels = torch.from_numpy(np.stack(images))
        if self.device.type == "cuda":
            pixels = pixels.pin_memory().to(self.device, non_blocking=True)  # ship uint8, convert on the GPU
        with self._lock, torch.inference_mode():
            tensor = pixels.permute(0, 3, 1, 2)  # BHWC -> BCHW (RGB already)
            tensor = (tensor.half() if self.half else tensor.float()).div_(255.0)
            outputs = self._model(tensor)
            per_head = outputs if self._head_info is not None else (outputs,)
            kept = [
                nms.non_max_suppression(
                    preds,
                    self.confidence,
                    self.iou,
                    None,
                    False,
                    max_det=self.max_det,
                    nc=0,
                    end2end=self._end2end,
                )
                for preds in per_head
            ]
            first = [k.float().cpu().numpy() for k in kept[0]]
            if len(kept) == 1:
                return [(a, np.empty((0, 6), np.float32)) for a in first]
            second = [k.float().cpu().numpy() for k in kept[1]]
            for rows in second:
                rows[:, 5] += self._head_offset
            return list(zip(first, second, strict=True))

    def _to_detections(self, rows: np.ndarray, item: Letterboxed) -> list[dict[str, Any]]:
        """Rows of (x1, y1, x2, y2, score, class) in model pixels -> Avro ``Detection`` dicts."""
        if rows.size == 0:
            return []
        rows = rows[np.argsort(-rows[:, 4], kind="stable")]
        boxes = unletterbox(rows[:, :4], item)
        width, height = item.orig_size
        detections: list[dict[str, Any]] = []
        for (x1, y1, x2, y2), score, cls in zip(boxes.tolist(), rows[:, 4].tolist(), rows[:, 5].tolist(), strict=True):
            if x2 <= x1 or y2 <= y1:
                continue  # a box that lay entirely in the padding
            class_id = int(cls)
            class_name = self._names.get(class_id, str(class_id))
            detections.append(
                {
                    "label": self._class_map.label(class_name),
                    "class_id": class_id,
                    "class_name": class_name,
                    "confidence": float(score),
                    "box": {"x1": x1, "y1": y1, "x2": x2, "y2": y2},
                    "box_norm": {"x1": x1 / width, "y1": y1 / height, "x2": x2 / width, "y2": y2 / height},
                    "attributes": {},
                    "attribute_scores": {},
                }
            )
        return detections
