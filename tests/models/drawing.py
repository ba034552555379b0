"""Scenes the tests draw for themselves: no image files, no downloads."""

from __future__ import annotations

import cv2
import numpy as np

Box = tuple[float, float, float, float]


def draw_mug_scene(
    width: int = 640,
    height: int = 480,
    mug_colour: tuple[int, int, int] = (200, 30, 30),
    centre_x: float = 0.45,
    seed: int = 0,
) -> tuple[np.ndarray, Box]:
    """An RGB photo-like scene: wall, wooden table top, a shaded cylindrical mug with a handle on the right.

    Drawn at twice the size and downscaled (anti-aliased edges), with everything scaled to the
    image height so the model sees the same scene at any size. Returns the image and the mug's
    true box (body, rim and handle). The real COCO yolo26n finds ``cup`` on it at 0.5-0.9 for
    sizes from 300x500 to 1920x1080 and red, white or blue mugs.
    """
    ss = 2  # supersampling
    big_w, big_h = width * ss, height * ss
    rng = np.random.default_rng(seed)
    img = np.zeros((big_h, big_w, 3), np.uint8)
    s = big_h / 480
    horizon = int(big_h * 0.45)
    wall = np.linspace(235, 205, horizon)[:, None, None] * np.array([1.0, 0.97, 0.9])
    img[:horizon] = wall.astype(np.uint8)
    yy = np.arange(big_h - horizon)[:, None] / s
    xx = np.arange(big_w)[None, :] / s
    grain = 12 * np.sin(xx / 9.0 + 3 * np.sin(yy / 23.0)) + rng.normal(0, 3, (big_h - horizon, big_w))
    wood = np.array([150, 100, 60], float)[None, None] + grain[..., None] * np.array([1, 0.8, 0.5])
    img[horizon:] = np.clip(wood, 0, 255).astype(np.uint8)
    cv2.line(img, (0, horizon), (big_w, horizon), (110, 70, 40), max(1, int(3 * s)), cv2.LINE_AA)

    s *= 1.5  # the mug fills a good part of the frame, as in a close-up photo
    cx = int(big_w * centre_x)
    w, h = int(90 * s), int(120 * s)
    ry = int(w * 0.28)
    bottom = int(big_h * 0.78)
    top = bottom - h
    colour = np.array(mug_colour, float)
    shadow_axes = (int(w * 0.75), int(ry * 0.9))
    cv2.ellipse(img, (cx + int(20 * s), bottom + int(4 * s)), shadow_axes, 0, 0, 360, (95, 62, 38), -1, cv2.LINE_AA)
    # handle: half a thick ring on the right
    handle_centre = (cx + w // 2 + int(2 * s), top + h // 2)
    handle_axes = (int(34 * s), int(38 * s))
    thickness = int(16 * s)
    handle_colour = tuple(int(c * 0.8) for c in colour)
    cv2.ellipse(img, handle_centre, handle_axes, 0, -90, 90, handle_colour, thickness, cv2.LINE_AA)
    # body with cylindrical shading and a curved bottom edge
    for x in range(cx - w // 2, cx + w // 2 + 1):
        t = (x - cx) / (w / 2)
        shade = 0.55 + 0.55 * np.cos(np.clip(t, -1, 1) * 1.3 - 0.35)
        c = tuple(int(v) for v in np.clip(colour * shade, 0, 255))
        cv2.line(img, (x, top), (x, bottom + int(ry * np.sqrt(max(0.0, 1 - t * t)))), c, 1)
    # rim with coffee inside, and a highlight
    rim = tuple(int(c) for c in np.clip(colour * 1.15, 0, 255))
    cv2.ellipse(img, (cx, top), (w // 2, ry), 0, 0, 360, rim, -1, cv2.LINE_AA)
    cv2.ellipse(img, (cx, top), (w // 2 - int(6 * s), ry - int(4 * s)), 0, 0, 360, (60, 35, 20), -1, cv2.LINE_AA)
    highlight = tuple(int(v) for v in np.clip(colour * 1.4 + 40, 0, 255))
    cv2.line(
        img, (cx - w // 4, top + int(12 * s)), (cx - w // 4, bottom - int(6 * s)), highlight, int(6 * s), cv2.LINE_AA
    )
    scene = cv2.resize(img, (width, height), interpolation=cv2.INTER_AREA)
    right = handle_centre[0] + handle_axes[0] + thickness // 2
    box = (float(cx - w // 2) / ss, float(top - ry) / ss, float(right) / ss, float(bottom + ry) / ss)
    return scene, box


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two xyxy boxes."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0
