"""Attributes of detected mugs (colour, material, handle side) from image crops.

Two taggers share one protocol: ``ClipAttributes`` does zero-shot CLIP
classification when an operator provides local CLIP weights, and
``DominantColour`` is the dependency-free fallback that still answers "which
colour is that mug" deterministically when there are none. Both take every
crop of a micro-batch at once, so CLIP runs a single forward pass per batch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import cv2
import numpy as np

from mugpos.models.checksum import file_sha256

Box = tuple[float, float, float, float]
Tags = tuple[dict[str, str], dict[str, float]]

COLOURS: tuple[str, ...] = (
    "red", "orange", "yellow", "green", "blue", "purple", "pink", "brown", "black", "white", "grey",
)  # fmt: skip
MATERIALS: tuple[str, ...] = ("ceramic", "glass", "metal", "plastic", "paper")
HANDLE_SIDES: tuple[str, ...] = ("left", "right", "none")

# Several phrasings per value, averaged: prompt ensembling makes zero-shot CLIP markedly steadier.
PROMPTS: Mapping[str, Mapping[str, tuple[str, ...]]] = {
    "colour": {c: (f"a photo of a {c} mug.", f"a {c} coffee mug.", f"a {c} cup.") for c in COLOURS},
    "material": {m: (f"a photo of a {m} mug.", f"a mug made of {m}.", f"a {m} cup.") for m in MATERIALS},
    "handle": {
        "left": ("a mug with its handle on the left.", "a cup whose handle points to the left."),
        "right": ("a mug with its handle on the right.", "a cup whose handle points to the right."),
        "none": ("a mug with no visible handle.", "a cup seen with its handle hidden."),
    },
}


@runtime_checkable
class AttributeTagger(Protocol):
    """Tags boxes in an image with attributes (value per key) and their confidences in [0, 1]."""

    model_id: str

    def tag(self, image: np.ndarray, boxes: Sequence[Box]) -> list[Tags]:
        """One (attributes, scores) pair per box of one HxWx3 RGB image (boxes in its pixels, xyxy)."""
        ...

    def tag_many(self, items: Sequence[tuple[np.ndarray, Sequence[Box]]]) -> list[list[Tags]]:
        """``tag`` for several images at once, so one forward pass covers every crop."""
        ...


def crop(image: np.ndarray, box: Box, margin: float = 0.0) -> np.ndarray:
    """Pixels of ``box`` (xyxy, grown by ``margin`` of its size), clipped to the image, never empty."""
    height, width = image.shape[:2]
    x1, y1, x2, y2 = (float(v) for v in box)
    dx, dy = (x2 - x1) * margin, (y2 - y1) * margin
    left = int(np.clip(np.floor(x1 - dx), 0, max(width - 1, 0)))
    top = int(np.clip(np.floor(y1 - dy), 0, max(height - 1, 0)))
    right = int(np.clip(np.ceil(x2 + dx), left + 1, width))
    bottom = int(np.clip(np.ceil(y2 + dy), top + 1, height))
    return image[top:bottom, left:right]


class DominantColour:
    """Names the dominant colour of a box's central region; score is that colour's share of pixels.

    Cheap and deterministic: the centre (half the width and height) avoids the table
    and wall around the mug; each pixel is binned by hue/saturation/value rules.
    """

    model_id = "dominant-colour-v1"

    def __init__(self, centre_fraction: float = 0.5, max_side: int = 64) -> None:
        if not 0.0 < centre_fraction <= 1.0:
            raise ValueError("centre_fraction must be in (0, 1]")
        self.centre_fraction = centre_fraction
        self.max_side = max_side

    def tag(self, image: np.ndarray, boxes: Sequence[Box]) -> list[Tags]:
        return [self._tag_one(image, box) for box in boxes]

    def tag_many(self, items: Sequence[tuple[np.ndarray, Sequence[Box]]]) -> list[list[Tags]]:
        return [self.tag(image, boxes) for image, boxes in items]

    def _tag_one(self, image: np.ndarray, box: Box) -> Tags:
        x1, y1, x2, y2 = (float(v) for v in box)
        shrink = (1.0 - self.centre_fraction) / 2
        w, h = x2 - x1, y2 - y1
        region = crop(image, (x1 + w * shrink, y1 + h * shrink, x2 - w * shrink, y2 - h * shrink))
        name, share = dominant_colour(region, self.max_side)
        return {"colour": name}, {"colour": share}


def colour_names(rgb: np.ndarray) -> np.ndarray:
    """Per-pixel palette index into ``COLOURS`` for an HxWx3 uint8 RGB array."""
    hsv = cv2.cvtColor(rgb.astype(np.float32) / 255.0, cv2.COLOR_RGB2HSV)
    hue, sat, val = hsv[..., 0], hsv[..., 1], hsv[..., 2]  # hue in degrees, sat/val in [0, 1]
    index = {name: i for i, name in enumerate(COLOURS)}
    by_hue = np.select(
        [hue < 15, hue < 40, hue < 70, hue < 170, hue < 255, hue < 290, hue < 335],
        [index["red"], index["orange"], index["yellow"], index["green"], index["blue"], index["purple"], index["pink"]],
        default=index["red"],
    )
    reddish = (by_hue == index["red"]) | (by_hue == index["orange"])
    out = by_hue
    out = np.where(reddish & (val < 0.55) & (sat > 0.25), index["brown"], out)
    out = np.where((by_hue == index["red"]) & (sat < 0.5) & (val > 0.7), index["pink"], out)
    out = np.where(sat < 0.18, np.where(val > 0.8, index["white"], index["grey"]), out)
    out = np.where(val < 0.18, index["black"], out)
    return out.astype(np.int64)


def dominant_colour(rgb: np.ndarray, max_side: int = 64) -> tuple[str, float]:
    """The most frequent palette colour of an RGB region and its share of pixels."""
    height, width = rgb.shape[:2]
    if height == 0 or width == 0:
        return "grey", 0.0
    factor = max_side / max(height, width)
    if factor < 1.0:
        size = (max(1, round(width * factor)), max(1, round(height * factor)))
        rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    counts = np.bincount(colour_names(rgb).ravel(), minlength=len(COLOURS))
    best = int(np.argmax(counts))
    return COLOURS[best], float(counts[best] / counts.sum())


class ClipAttributes:
    """Zero-shot CLIP tagging of colour, material and handle side from a LOCAL open_clip checkpoint.

    Text embeddings of every prompt are computed once here; ``tag_many`` then needs a
    single image forward pass per call. Nothing is ever downloaded: ``weights_path``
    must be an existing file (open_clip would treat a bare tag like ``openai`` as a
    download request) and ``arch`` one of open_clip's built-in configurations.
    """

    def __init__(
        self,
        weights_path: str | Path,
        arch: str = "ViT-B-32",
        device: str = "auto",
        max_batch: int = 64,
        crop_margin: float = 0.08,
    ) -> None:
        import open_clip  # heavy; only paid for when CLIP tagging is configured
        import torch

        path = Path(weights_path).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"CLIP weights file not found: {path}")
        if arch not in open_clip.list_models():
            raise ValueError(f"unknown open_clip architecture {arch!r} (only built-in names work offline)")
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self._torch = torch
        self.device = torch.device(device)
        self.arch = arch
        self.max_batch = max_batch
        self.crop_margin = crop_margin
        try:
            model, _, _ = open_clip.create_model_and_transforms(
                arch,
                pretrained=str(path.resolve()),
                precision="fp16" if self.device.type == "cuda" else "fp32",
                device=self.device,
                pretrained_image=False,
                pretrained_text=False,
            )
        except Exception as exc:  # wrong arch for the file, damaged file, ...
            raise ValueError(f"cannot load CLIP weights {path} as {arch}: {type(exc).__name__}: {exc}") from exc
        model.eval()
        self._model: Any = model
        cfg = open_clip.get_model_preprocess_cfg(model)
        size = cfg.get("size", 224)
        self.input_size = int(size if isinstance(size, int) else size[0])
        self._mean = np.asarray(cfg.get("mean", (0.48145466, 0.4578275, 0.40821073)), dtype=np.float32)
        self._std = np.asarray(cfg.get("std", (0.26862954, 0.26130258, 0.27577711)), dtype=np.float32)
        self._fill = tuple(round(float(m) * 255) for m in self._mean)
        self.model_id = f"clip-{arch}-{file_sha256(path)[:12]}"

        tokenizer = open_clip.get_tokenizer(arch)
        self._vocab: dict[str, tuple[str, ...]] = {key: tuple(values) for key, values in PROMPTS.items()}
        self._text: dict[str, Any] = {}
        with torch.inference_mode():
            for key, values in PROMPTS.items():
                prompts = [p for value in values.values() for p in value]
                counts = [len(value) for value in values.values()]
                feats = model.encode_text(tokenizer(prompts).to(self.device)).float()
                feats = feats / feats.norm(dim=-1, keepdim=True)
                per_value = torch.stack([chunk.mean(0) for chunk in feats.split(counts)])
                self._text[key] = per_value / per_value.norm(dim=-1, keepdim=True)
        scale = getattr(model, "logit_scale", None)
        self._logit_scale = float(scale.exp().item()) if scale is not None else 100.0
        self._logit_scale = min(self._logit_scale, 100.0)

    @property
    def vocabulary(self) -> dict[str, tuple[str, ...]]:
        """Every attribute key and the values it can take."""
        return dict(self._vocab)

    def tag(self, image: np.ndarray, boxes: Sequence[Box]) -> list[Tags]:
        return self.tag_many([(image, boxes)])[0]

    def tag_many(self, items: Sequence[tuple[np.ndarray, Sequence[Box]]]) -> list[list[Tags]]:
        crops = [self._prepare(image, box) for image, boxes in items for box in boxes]
        tags = self._classify(crops)
        out: list[list[Tags]] = []
        start = 0
        for _, boxes in items:
            out.append(tags[start : start + len(boxes)])
            start += len(boxes)
        return out

    def _prepare(self, image: np.ndarray, box: Box) -> np.ndarray:
        """Crop with a margin, pad to a square (keeps the handle, unlike a centre crop), resize, normalise."""
        region = crop(image, box, self.crop_margin)
        height, width = region.shape[:2]
        side = max(height, width)
        top, left = (side - height) // 2, (side - width) // 2
        square = cv2.copyMakeBorder(
            region, top, side - height - top, left, side - width - left, cv2.BORDER_CONSTANT, value=self._fill
        )
        interpolation = cv2.INTER_AREA if side > self.input_size else cv2.INTER_CUBIC
        resized = cv2.resize(square, (self.input_size, self.input_size), interpolation=interpolation)
        normalised = (resized.astype(np.float32) / 255.0 - self._mean) / self._std
        return np.ascontiguousarray(normalised.transpose(2, 0, 1))

    def _classify(self, crops: list[np.ndarray]) -> list[Tags]:
        if not crops:
            return []
        torch = self._torch
        dtype = next(self._model.parameters()).dtype
        results: list[Tags] = []
        with torch.inference_mode():
            for start in range(0, len(crops), self.max_batch):
                pixels = torch.from_numpy(np.stack(crops[start : start + self.max_batch]))
                feats = self._model.encode_image(pixels.to(self.device, dtype=dtype)).float()
                feats = feats / feats.norm(dim=-1, keepdim=True)
                probs = {
                    key: (self._logit_scale * feats @ text.T).softmax(dim=-1).cpu().numpy()
                    for key, text in self._text.items()
                }
                for row in range(feats.shape[0]):
                    values: dict[str, str] = {}
                    scores: dict[str, float] = {}
                    for key, p in probs.items():
                        best = int(np.argmax(p[row]))
                        values[key] = self._vocab[key][best]
                        scores[key] = float(p[row][best])
                    results.append((values, scores))
        return results


def load_attribute_tagger(weights: str, arch: str = "ViT-B-32") -> AttributeTagger:
    """CLIP tagging when a weights file is configured, else the dominant-colour fallback."""
    if weights and weights.strip():
        return ClipAttributes(weights.strip(), arch)
    return DominantColour()
