"""Draw detections, mug positions and the verdict onto an image, for people to look at.

Uses OpenCV's built-in Hershey fonts: no font file, nothing to download.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import cv2
import numpy as np

#: RGB colours per label and verdict.
LABEL_COLOURS: dict[str, tuple[int, int, int]] = {
    "mug": (230, 60, 60),
    "coaster": (60, 140, 240),
    "surface": (90, 200, 90),
}
VERDICT_COLOURS: dict[str, tuple[int, int, int]] = {
    "ok": (40, 170, 70),
    "warning": (240, 170, 20),
    "violation": (220, 40, 40),
}
_OTHER = (160, 160, 160)


def annotate(
    image: np.ndarray,
    detections: Sequence[Mapping[str, Any]],
    position: Mapping[str, Any] | None = None,
    max_side: int = 960,
) -> np.ndarray:
    """A copy of ``image`` (HxWx3 RGB), downscaled to ``max_side``, with boxes, labels and the verdict."""
    h, w = image.shape[:2]
    scale = min(1.0, max_side / max(h, w))
    out = (
        cv2.resize(image, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
        if scale < 1
        else image.copy()
    )
    thickness = max(1, round(min(out.shape[:2]) / 300))
    font_scale = max(0.4, min(out.shape[:2]) / 900)
    mugs = {m["index"]: m for m in (position or {}).get("mugs", [])}
    for index, det in enumerate(detections):
        box = det["box"]
        p1 = (round(box["x1"] * scale), round(box["y1"] * scale))
        p2 = (round(box["x2"] * scale), round(box["y2"] * scale))
        colour = LABEL_COLOURS.get(det["label"], _OTHER)
        cv2.rectangle(out, p1, p2, colour, thickness, cv2.LINE_AA)
        text = f"{det['label']} {det['confidence']:.2f}"
        mug = mugs.get(index)
        if mug is not None:
            if mug.get("on_coaster") is not None:
                text += " on coaster" if mug["on_coaster"] else " OFF coaster"
            if mug.get("edge_distance_cm") is not None:
                text += f" edge {mug['edge_distance_cm']:.1f}cm"
        _label(out, text, p1, colour, font_scale, thickness)
    if position is not None:
        verdict = str(position.get("verdict", ""))
        _label(
            out,
            verdict.upper(),
            (4, 4),
            VERDICT_COLOURS.get(verdict, _OTHER),
            font_scale * 1.4,
            thickness + 1,
            below=True,
        )
    return out


def encode_jpeg(image: np.ndarray, quality: int = 85) -> bytes:
    """RGB array -> JPEG bytes."""
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return buf.tobytes()


def _label(
    img: np.ndarray,
    text: str,
    origin: tuple[int, int],
    colour: tuple[int, int, int],
    font_scale: float,
    thickness: int,
    below: bool = False,
) -> None:
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font_scale, thickness)
    x, y = origin
    top = y if below or y - th - base - 4 < 0 else y - th - base - 4
    cv2.rectangle(img, (x, top), (x + tw + 6, top + th + base + 4), colour, -1)
    cv2.putText(
        img, text, (x + 3, top + th + 2), cv2.FONT_HERSHEY_SIMPLEX, font_scale, (255, 255, 255), thickness, cv2.LINE_AA
    )
