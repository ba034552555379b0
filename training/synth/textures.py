"""Textures (float32 RGB in 0..255, vectorised): table tops, floors and walls, value noise, and
crops of real photos used as backdrops.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

from mugpos.training.synth.exceptions import DatasetError
from mugpos.training.synth.styles import Array, Style, _hsv, _style_hue


def _noise(rng: np.random.Generator, h: int, w: int, cell: float) -> Array:
    """Smooth value noise in about [-1, 1] with features of ``cell`` pixels."""
    gh, gw = max(2, int(h / cell) + 2), max(2, int(w / cell) + 2)
    small = rng.standard_normal((gh, gw)).astype(np.float32)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC) * 0.7


def _table_texture(rng: np.random.Generator, style: Style, kind: str, h: int, w: int, ppc: float) -> Array:
    """A table-top texture in plane raster coordinates (``ppc`` raster pixels per cm)."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32) / ppc  # cm
    fine = rng.standard_normal((h, w)).astype(np.float32)
    if kind == "wood":
        base = _hsv(rng.uniform(0.05, 0.11), rng.uniform(0.35, 0.75), rng.uniform(0.3, 0.9))
        along_x = rng.random() < 0.5
        v = yy if along_x else xx
        warp = _noise(rng, h, w, 40 * ppc / 4) * rng.uniform(2, 6)
        grain = np.sin((v + warp) * rng.uniform(0.8, 2.5))
        plank = rng.uniform(8, 20)
        seams = (np.abs(((v + 0.5) % plank) - 0.5) < 0.12).astype(np.float32)
        tone = 0.88 + 0.1 * grain + 0.05 * _noise(rng, h, w, 6 * ppc) - 0.35 * seams + 0.03 * fine
        return base[None, None] * tone[..., None]
    if kind == "paint":
        if rng.random() < 0.5:
            base = _hsv(rng.uniform(0, 1), rng.uniform(0, 0.15), rng.uniform(0.55, 0.97))
        else:
            base = _hsv(_style_hue(rng, style), rng.uniform(0.2, 0.7), rng.uniform(0.4, 0.9))
        tone = 1.0 + 0.04 * _noise(rng, h, w, 25 * ppc) + 0.02 * fine
        return base[None, None] * tone[..., None]
    if kind in ("check", "stripes"):
        a = _hsv(_style_hue(rng, style), rng.uniform(0.4, 0.9), rng.uniform(0.45, 0.9))
        b = _hsv(0.1, rng.uniform(0.0, 0.1), rng.uniform(0.85, 0.98))
        cell = rng.uniform(1.5, 5.0)
        if kind == "check":
            t = (np.sin(xx * math.pi / cell) * np.sin(yy * math.pi / cell) > 0).astype(np.float32)
        else:
            t = (np.sin((xx if rng.random() < 0.5 else yy) * math.pi / cell) > 0).astype(np.float32)
        t = cv2.GaussianBlur(t, (0, 0), 0.6)
        weave = 1.0 + 0.05 * np.sin(xx * 12) * np.sin(yy * 12) + 0.03 * fine
        return (a[None, None] * t[..., None] + b[None, None] * (1 - t[..., None])) * weave[..., None]
    if kind == "marble":
        base = _hsv(rng.uniform(0, 1), rng.uniform(0, 0.1), rng.uniform(0.75, 0.95))
        turb = _noise(rng, h, w, 12 * ppc) * 6 + _noise(rng, h, w, 4 * ppc) * 2
        veins = np.abs(np.sin((xx * 0.3 + yy * 0.2) + turb)) ** 0.3
        tone = 0.75 + 0.25 * veins + 0.02 * fine
        return base[None, None] * tone[..., None]
    # stone / speckled laminate
    base = _hsv(rng.uniform(0, 1), rng.uniform(0.0, 0.25), rng.uniform(0.35, 0.85))
    speck = (rng.random((h, w)) < 0.08).astype(np.float32) * rng.uniform(-0.35, 0.35)
    tone = 1.0 + 0.08 * _noise(rng, h, w, 3 * ppc) + speck + 0.04 * fine
    return base[None, None] * tone[..., None]


def _background(rng: np.random.Generator, h: int, w: int) -> Array:
    """Floor or wall behind and around the table."""
    base = _hsv(rng.uniform(0, 1), rng.uniform(0.0, 0.4), rng.uniform(0.15, 0.85))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    tone = 1.0 + rng.uniform(-0.25, 0.25) * (yy / h - 0.5) + 0.1 * _noise(rng, h, w, rng.uniform(20, 120))
    kind = rng.integers(0, 3)
    if kind == 1:  # tiles
        t = rng.uniform(30, 90)
        grout = ((xx % t) < 2) | ((yy % (t * rng.uniform(0.5, 1))) < 2)
        tone = tone - 0.25 * grout.astype(np.float32)
    elif kind == 2:  # carpet
        tone = tone + 0.08 * rng.standard_normal((h, w)).astype(np.float32)
    return base[None, None] * tone[..., None]


_BACKDROP_PIXELS: dict[str, Array] = {}


def _backdrop_pixels(path: str) -> Array:
    """A backdrop photo as float RGB, decoded once per process (each rendering worker keeps its own)."""
    pixels = _BACKDROP_PIXELS.get(path)
    if pixels is None:
        bgr = cv2.imread(path, cv2.IMREAD_COLOR)
        if bgr is None:
            raise DatasetError(f"cannot read backdrop photo {path}")
        pixels = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB).astype(np.float32)
        _BACKDROP_PIXELS[path] = pixels
    return pixels


def _photo_crop(rng: np.random.Generator, backdrops: Sequence[str], h: int, w: int) -> Array:
    """A random crop of a real photo, scaled to ``h`` x ``w``, flipped and re-toned.

    Real-world pixels with nothing to label: behind a table or as a whole negative scene, they teach
    the detector that fur, faces, coins and texture are not mugs or coasters, which rendered
    backgrounds alone do not.
    """
    src = _backdrop_pixels(backdrops[int(rng.integers(0, len(backdrops)))])
    sh, sw = src.shape[:2]
    fit = min(sw / w, sh / h)  # largest crop of the target's aspect ratio
    scale = fit * rng.uniform(0.35, 1.0)
    cw, ch = max(8, int(w * scale)), max(8, int(h * scale))
    x0, y0 = int(rng.integers(0, sw - cw + 1)), int(rng.integers(0, sh - ch + 1))
    out = cv2.resize(src[y0 : y0 + ch, x0 : x0 + cw], (w, h), interpolation=cv2.INTER_LINEAR)
    if rng.random() < 0.5:
        out = out[:, ::-1]
    if rng.random() < 0.2:
        out = np.repeat(out.mean(axis=2, keepdims=True), 3, axis=2)
    tone = rng.uniform(0.7, 1.2) * (1 + rng.uniform(-0.1, 0.1, 3))
    return np.ascontiguousarray(out * tone[None, None], dtype=np.float32)


def _backdrop_rng(seed: int, index: int, style: Style) -> np.random.Generator:
    """Backdrop choices draw from their own generator: with no backdrops, scenes stay as they were."""
    return np.random.default_rng([seed, index, style.code, 31])


def _fractal(rng: np.random.Generator, h: int, w: int) -> Array:
    """Multi-octave value noise in about [-1, 1]: the uneven light and grain of real surfaces."""
    out = np.zeros((h, w), np.float32)
    for cell, amp in ((96, 1.0), (40, 0.6), (16, 0.4), (6, 0.25), (2.5, 0.15)):
        out += amp * _noise(rng, h, w, cell)
    return out / 1.4
