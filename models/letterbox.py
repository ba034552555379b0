"""Letterboxing so images of any size can share one batched forward pass.

Square (the default) gives every image the same ``size`` x ``size`` input, so any batch is one
forward pass. With ``stride``, the padding stops at the next multiple of the stride, as in
``YOLO.predict(rect=True)``: a 4:3 camera then costs 640x480 instead of 640x640 pixels (25 % less
compute), and a batch runs one forward pass per distinct shape.

The geometry copies Ultralytics' ``LetterBox`` (centred padding, grey 114 fill,
per-side rounding) so a model sees exactly what ``YOLO.predict`` would feed it,
and ``unletterbox`` inverts it the way ``ultralytics.utils.ops.scale_boxes`` does.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class Letterboxed:
    """A model-ready square image plus what is needed to map boxes back to the original.

    ``scale`` is model pixels per original pixel, ``pad`` the (left, top) padding in model
    pixels and ``orig_size`` the original (width, height).
    """

    image: np.ndarray
    scale: float
    pad: tuple[float, float]
    orig_size: tuple[int, int]

    @property
    def size(self) -> int:
        """Longest side of the model input (the square's side when square)."""
        return int(max(self.image.shape[:2]))


def _resized_size(width: int, height: int, scale: float) -> tuple[int, int]:
    """Size of the resized (unpadded) image; at least one pixel so thin images survive."""
    return max(round(width * scale), 1), max(round(height * scale), 1)


def letterbox(
    img: np.ndarray,
    size: int,
    fill: int = 114,
    interpolation: int | None = None,
    stride: int | None = None,
) -> Letterboxed:
    """Resize ``img`` (HxWx3 uint8) to fit a ``size`` square keeping aspect ratio, padding the rest.

    With ``stride``, pad each side only up to the next multiple of ``stride`` (a rectangle).

    ``interpolation`` defaults to INTER_LINEAR, the same as Ultralytics, so results match
    ``YOLO.predict``; pass ``cv2.INTER_AREA`` for less aliasing on large downscales.
    Pure numpy/OpenCV and thread-safe, meant to run in a worker pool.
    """
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 image, got shape {img.shape}")
    if size <= 0:
        raise ValueError(f"size must be positive, got {size}")
    height, width = img.shape[:2]
    if width == 0 or height == 0:
        raise ValueError("cannot letterbox an empty image")
    scale = min(size / height, size / width)
    new_w, new_h = _resized_size(width, height, scale)
    if (new_w, new_h) != (width, height):
        resized = cv2.resize(
            img, (new_w, new_h), interpolation=cv2.INTER_LINEAR if interpolation is None else interpolation
        )
    else:
        resized = img
    dw, dh = (size - new_w) / 2, (size - new_h) / 2
    if stride:
        if stride <= 0 or size % stride:
            raise ValueError(f"size {size} must be a positive multiple of stride {stride}")
        dw, dh = ((size - new_w) % stride) / 2, ((size - new_h) % stride) / 2
    top, bottom = round(dh - 0.1), round(dh + 0.1)
    left, right = round(dw - 0.1), round(dw + 0.1)
    padded = cv2.copyMakeBorder(resized, top, bottom, left, right, cv2.BORDER_CONSTANT, value=(fill, fill, fill))
    return Letterboxed(
        image=np.ascontiguousarray(padded),
        scale=float(scale),
        pad=(float(left), float(top)),
        orig_size=(int(width), int(height)),
    )


def unletterbox(boxes_xyxy: np.ndarray, lb: Letterboxed) -> np.ndarray:
    """Map (N, 4) xyxy boxes from model pixels back to original pixels, clipped to the image.

    Uses the exact per-axis gain of the rounded resize rather than ``scale`` alone,
    which keeps boxes within a fraction of a pixel on any aspect ratio.
    """
    boxes = np.asarray(boxes_xyxy, dtype=np.float64).reshape(-1, 4).copy()
    width, height = lb.orig_size
    new_w, new_h = _resized_size(width, height, lb.scale)
    gain_x, gain_y = new_w / width, new_h / height
    boxes[:, [0, 2]] = (boxes[:, [0, 2]] - lb.pad[0]) / gain_x
    boxes[:, [1, 3]] = (boxes[:, [1, 3]] - lb.pad[1]) / gain_y
    boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, width)
    boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, height)
    return boxes
