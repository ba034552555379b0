"""Render labelled table scenes (mugs, coasters, surfaces) for training and scoring the detector.

No public data set labels coasters, and the question the project answers (is the mug on its
coaster, how far is it from the edge) needs ground truth no photo collection has. So the scenes
are drawn: a table top seen from a slightly oblique camera, described by a plane-to-image
homography, with mugs, coasters and look-alike distractors standing on it. Because the renderer
places everything on the table plane in centimetres, it knows for each mug whether it stands on a
coaster and how far it is from each table edge, in cm and in pixels; that goes into a sidecar
JSON per image next to the YOLO label file.

Everything is vectorised numpy/OpenCV drawing on small patches (no per-pixel Python), so a few
hundred images render per second-ish per core. Each image draws from its own generator seeded
with ``(seed, index, style)``, so output is identical for a seed whatever the worker count.
"""

from __future__ import annotations

import colorsys
import json
import math
import multiprocessing
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import cv2
import numpy as np

from models.checksum import file_sha256

CLASS_NAMES: Final = ("mug", "coaster", "surface")
MUG, COASTER, SURFACE = 0, 1, 2

#: The base point of a mug is this fraction of its box height above the box bottom: the centre of the
#: bottom quarter of the box, as ``models/positioning.py`` defines it (``footprint_frac / 2``). Scenes
#: are built so that this box-only rule agrees with the physical truth (see ``on_coaster_from_boxes``).
BASE_FRACTION: Final = 0.125

#: Coaster left visible around a mug standing on it (cm): the least that a person can still see.
COASTER_RIM_CM: Final = 0.8

Box = tuple[float, float, float, float]
Array = np.ndarray


# --------------------------------------------------------------------------------------------
# Styles: named bundles of palette/texture/lighting ranges. "holdout" is never used for training,
# so the held-out evaluation measures generalisation to colours and textures the model never saw.
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Style:
    """Ranges the renderer samples from; two disjoint palettes make an honest held-out set."""

    name: str
    code: int
    hue_offset: float  # mugs/coasters/cloths take hues in 30-degree bands starting here (every other band)
    table_kinds: tuple[str, ...]
    coaster_patterns: tuple[str, ...]
    elevation_deg: tuple[float, float] = (35.0, 70.0)
    px_per_cm: tuple[float, float] = (4.0, 9.0)
    brightness: tuple[float, float] = (0.75, 1.2)
    colour_cast: float = 0.08
    noise_sigma: tuple[float, float] = (0.0, 8.0)
    blur_sigma: tuple[float, float] = (0.0, 1.2)
    jpeg_quality: tuple[int, int] = (60, 95)


STYLES: Final[dict[str, Style]] = {
    "train": Style(
        name="train",
        code=1,
        hue_offset=0.0,
        table_kinds=("wood", "paint", "check", "stone"),
        coaster_patterns=("solid", "rings", "cork", "checker", "stripes", "slate", "fabric"),
    ),
    "holdout": Style(
        name="holdout",
        code=2,
        hue_offset=30.0,
        table_kinds=("wood", "paint", "stripes", "marble"),
        coaster_patterns=("solid", "rings", "cork", "dots", "weave"),
        elevation_deg=(32.0, 74.0),
        px_per_cm=(3.8, 9.5),
        brightness=(0.6, 1.35),
        colour_cast=0.14,
        noise_sigma=(0.0, 10.0),
        blur_sigma=(0.0, 1.5),
        jpeg_quality=(50, 95),
    ),
}

SIZES: Final = ((480, 360), (480, 360), (512, 288), (432, 432), (360, 480))
BACKDROP_BEHIND_TABLE: Final = 0.5  # share of table scenes with a real photo behind the table (when given)
BACKDROP_TABLE_TOP: Final = 0.25  # share of table tops textured with a real photo crop (when given)
BACKDROP_NEGATIVES: Final = 0.6  # share of negative scenes that are a real photo crop (when given)


def _style_hue(rng: np.random.Generator, style: Style) -> float:
    """A hue in [0, 1) from this style's bands only (6 bands of 30 degrees, every other one)."""
    band = int(rng.integers(0, 6))
    return ((style.hue_offset + 60.0 * band + rng.uniform(0.0, 30.0)) % 360.0) / 360.0


def _hsv(h: float, s: float, v: float) -> Array:
    return np.array(colorsys.hsv_to_rgb(h, s, v), np.float32) * 255.0


def _object_colour(rng: np.random.Generator, style: Style, neutral_p: float = 0.35) -> Array:
    """Ceramic-like colour: a style hue, or white/black/grey/cream."""
    if rng.random() < neutral_p:
        v = float(rng.choice([0.95, 0.9, 0.12, 0.5, 0.75]))
        return _hsv(rng.uniform(0.05, 0.15), rng.uniform(0.0, 0.12), v)
    return _hsv(_style_hue(rng, style), rng.uniform(0.35, 0.95), rng.uniform(0.35, 0.95))


# --------------------------------------------------------------------------------------------
# Camera: table plane (cm; x right, y away from the camera) -> image pixels.
# --------------------------------------------------------------------------------------------


@dataclass
class Camera:
    """A homography from the table plane to the image, with the elevation that sets object heights."""

    H: Array
    elevation: float  # radians above the table plane
    width: int
    height: int
    px_per_cm: float  # horizontal scale at the image centre
    perspective: float
    rotation_deg: float
    view_w: float = 0.0  # plane extent of the view at its centre line (cm)
    view_d: float = 0.0

    def project(self, pts: Array) -> Array:
        """Plane points (N, 2) in cm -> image points (N, 2) in px."""
        p = np.asarray(pts, np.float64).reshape(-1, 1, 2)
        return cv2.perspectiveTransform(p, self.H).reshape(-1, 2)

    def unproject(self, pts: Array) -> Array:
        """Image points (N, 2) -> plane points (N, 2)."""
        p = np.asarray(pts, np.float64).reshape(-1, 1, 2)
        return cv2.perspectiveTransform(p, np.linalg.inv(self.H)).reshape(-1, 2)

    def scales(self, x: float, y: float) -> tuple[float, float]:
        """Local px per cm along the plane's x (image horizontal) and y (image vertical) at a plane point."""
        h = self.H
        w = h[2, 0] * x + h[2, 1] * y + h[2, 2]
        u = (h[0, 0] * x + h[0, 1] * y + h[0, 2]) / w
        v = (h[1, 0] * x + h[1, 1] * y + h[1, 2]) / w
        dudx, dvdx = (h[0, 0] - u * h[2, 0]) / w, (h[1, 0] - v * h[2, 0]) / w
        dudy, dvdy = (h[0, 1] - u * h[2, 1]) / w, (h[1, 1] - v * h[2, 1]) / w
        return float(math.hypot(dudx, dvdx)), float(math.hypot(dudy, dvdy))


def _camera(rng: np.random.Generator, style: Style, width: int, height: int) -> Camera:
    """Slightly oblique top-down view: modest keystone and roll so boxes stay meaningful."""
    s = rng.uniform(*style.px_per_cm) * math.sqrt(width * height) / math.sqrt(480 * 360)
    el = math.radians(rng.uniform(*style.elevation_deg))
    p = rng.uniform(0.0, 0.05)
    rot = rng.uniform(-2.0, 2.0)
    vw, vd = width / s, height / (s * math.sin(el))
    src = np.array([[-vw / 2, 0], [vw / 2, 0], [vw / 2, vd], [-vw / 2, vd]], np.float32)
    cx, cy = width / 2, height / 2
    dst = np.array(
        [[cx - cx * (1 + p), height], [cx + cx * (1 + p), height], [cx + cx * (1 - p), 0], [cx - cx * (1 - p), 0]],
        np.float64,
    )
    c, si = math.cos(math.radians(rot)), math.sin(math.radians(rot))
    centre = np.array([cx, cy])
    d = dst - centre
    dst = np.stack([d[:, 0] * c - d[:, 1] * si, d[:, 0] * si + d[:, 1] * c], 1) + centre
    H = cv2.getPerspectiveTransform(src, dst.astype(np.float32)).astype(np.float64)
    return Camera(H, el, width, height, s, p, rot, vw, vd)


# --------------------------------------------------------------------------------------------
# Textures (float32 RGB in 0..255), vectorised.
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# Patch compositing.
# --------------------------------------------------------------------------------------------


def _pts(x: Iterable[float] | Array, y: Iterable[float] | Array) -> Array:
    """Float points -> int32 points at 1/16 px (cv2 ``shift=4``)."""
    return np.round(np.stack([np.asarray(x), np.asarray(y)], -1) * 16).astype(np.int32)


def _ellipse(cx: float, cy: float, a: float, b: float, t0: float = 0.0, t1: float = 2 * math.pi, n: int = 48) -> Array:
    t = np.linspace(t0, t1, n)
    return np.stack([cx + a * np.cos(t), cy + b * np.sin(t)], -1)


class Canvas:
    """Float image plus an object-id buffer (to measure how much of each object stays visible)."""

    def __init__(self, img: Array) -> None:
        self.img = img
        self.h, self.w = img.shape[:2]
        self.ids = np.zeros((self.h, self.w), np.int16)

    def patch(self, box: Box, pad: int = 2) -> tuple[int, int, int, int] | None:
        x0, y0 = max(0, math.floor(box[0]) - pad), max(0, math.floor(box[1]) - pad)
        x1, y1 = min(self.w, math.ceil(box[2]) + pad), min(self.h, math.ceil(box[3]) + pad)
        return (x0, y0, x1, y1) if x1 > x0 and y1 > y0 else None

    def mask(self, region: tuple[int, int, int, int], polys: Sequence[Array]) -> Array:
        """Anti-aliased coverage (0..1) of filled polygons (image coordinates) inside a region."""
        x0, y0, x1, y1 = region
        m = np.zeros((y1 - y0, x1 - x0), np.uint8)
        cv2.fillPoly(m, [_pts(p[:, 0] - x0, p[:, 1] - y0) for p in polys], 255, cv2.LINE_AA, shift=4)
        return m.astype(np.float32) / 255.0

    def blend(self, region: tuple[int, int, int, int], colour: Array, alpha: Array, oid: int = 0) -> None:
        """Composite a colour layer (h, w, 3) or a single colour with per-pixel alpha."""
        x0, y0, x1, y1 = region
        view = self.img[y0:y1, x0:x1]
        a = alpha[..., None]
        view *= 1.0 - a
        view += np.asarray(colour, np.float32) * a
        if oid:
            self.ids[y0:y1, x0:x1][alpha > 0.5] = oid

    def shade(self, region: tuple[int, int, int, int], factor: Array) -> None:
        x0, y0, x1, y1 = region
        self.img[y0:y1, x0:x1] *= factor[..., None]


def _grid(region: tuple[int, int, int, int]) -> tuple[Array, Array]:
    x0, y0, x1, y1 = region
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    return xx + 0.5, yy + 0.5


# --------------------------------------------------------------------------------------------
# Objects.
# --------------------------------------------------------------------------------------------


@dataclass
class Thing:
    """One object on the table: where it stands (plane cm), its image box, and how to draw it."""

    kind: str
    x: float
    y: float
    radius: float  # footprint radius in cm, for the no-overlap rule
    box: Box  # full (unclipped) image box
    flat: bool
    draw: Callable[[Canvas, int], None]
    cls: int | None = None
    params: dict[str, Any] = field(default_factory=dict)
    host: int | None = None  # index of the coaster it stands on
    oid: int = 0


@dataclass
class Light:
    azimuth: float  # -1 (from the left) .. 1 (from the right)
    shadow: float  # shadow strength
    offset: tuple[float, float]  # shadow offset per cm of object height (image px per px of height)


def _standing_geom(cam: Camera, x: float, y: float, rb: float, rt: float, height: float) -> dict[str, float]:
    """Image ellipses of the base and the top of an upright solid of revolution standing at (x, y)."""
    bx, by = cam.project(np.array([[x, y]]))[0]
    sx, sy = cam.scales(x, y)
    hpx = height * sx * math.cos(cam.elevation)
    return {"bx": bx, "by": by, "ab": rb * sx, "bb": rb * sy, "at": rt * sx, "bt": rt * sy, "h": hpx, "sx": sx}


def _silhouette(g: dict[str, float]) -> Array:
    """Convex outline: lower half of the base ellipse, upper half of the top ellipse."""
    low = _ellipse(g["bx"], g["by"], g["ab"], g["bb"], 0, math.pi, 24)
    top = _ellipse(g["bx"], g["by"] - g["h"], g["at"], g["bt"], math.pi, 2 * math.pi, 24)
    return np.concatenate([low, top])


def _cyl_shading(xx: Array, cx: float, a: float, light: Light, spec: float = 0.6) -> tuple[Array, Array]:
    """Lambert shade and specular highlight across a cylinder, from the column position."""
    t = np.clip((xx - cx) / max(a, 1e-3), -1.0, 1.0)
    nz = np.sqrt(1.0 - t * t)
    lx = light.azimuth * 0.8
    lam = np.maximum(0.0, t * lx + nz * math.sqrt(1 - lx * lx))
    shade = 0.35 + 0.72 * lam
    hi = np.exp(-(((t - lx * 0.55) / 0.13) ** 2)) * spec
    return shade, hi


def _drop_shadow(cv: Canvas, light: Light, cx: float, cy: float, a: float, b: float, height_px: float) -> None:
    """Soft shadow on the table, stretched away from the light."""
    ox, oy = light.offset
    sx, sy = cx + ox * height_px * 0.5, cy + oy * height_px * 0.3
    ea, eb = a * 1.1 + abs(ox) * height_px * 0.4, b * 1.15 + oy * height_px * 0.15
    blur = max(1.0, 0.25 * (ea + eb) * 0.5)
    region = cv.patch((sx - ea - 3 * blur, sy - eb - 3 * blur, sx + ea + 3 * blur, sy + eb + 3 * blur))
    if region is None:
        return
    m = cv.mask(region, [_ellipse(sx, sy, ea, eb)])
    m = cv2.GaussianBlur(m, (0, 0), blur)
    cv.shade(region, 1.0 - light.shadow * m)


def _pattern(rng: np.random.Generator, style: Style) -> dict[str, Any]:
    kind = str(rng.choice(["plain", "plain", "plain", "stripes", "band", "dots", "logo"]))
    return {"kind": kind, "second": _object_colour(rng, style, 0.4), "freq": rng.uniform(0.8, 2.2)}


def _apply_pattern(colour: Array, pat: dict[str, Any], xx: Array, yy: Array, g: dict[str, float]) -> Array:
    """Body colour layer (h, w, 3) with a printed pattern in body-relative coordinates."""
    base = np.broadcast_to(colour, (*xx.shape, 3)).astype(np.float32)
    kind = pat["kind"]
    if kind == "plain":
        return base
    u = (xx - g["bx"]) / max(g["ab"], 1e-3)
    v = (g["by"] - yy) / max(g["h"], 1e-3)  # 0 at the base, 1 at the rim
    if kind == "stripes":
        sel = np.sin(v * math.pi * 2 * (2 + 3 * pat["freq"])) > 0.3
    elif kind == "band":
        sel = np.abs(v - 0.5) < 0.12 * pat["freq"]
    elif kind == "dots":
        k = 3 + 2 * pat["freq"]
        sel = (np.sin(u * k * 2.2) * np.sin(v * k * 2 * math.pi) > 0.55) & (np.abs(u) < 0.95)
    else:  # logo
        sel = (np.abs(u + 0.1) < 0.35) & (np.abs(v - 0.5) < 0.2)
    out = base.copy()
    out[sel] = pat["second"]
    return out


def make_mug(
    rng: np.random.Generator,
    style: Style,
    cam: Camera,
    x: float,
    y: float,
    light: Light,
    max_radius: float | None = None,
) -> Thing:
    """A mug: straight, tapered or flared body, handle left/right/front/back or none, patterns, contents.

    ``max_radius`` shrinks a mug that stands on a coaster so that a rim of coaster stays visible
    around it: otherwise "on a coaster" would be invisible, to a person as to the model.
    """
    rb = rng.uniform(3.0, 4.4)
    rt = rb * rng.choice([1.0, 1.0, rng.uniform(0.85, 0.97), rng.uniform(1.05, 1.25)])
    if max_radius is not None and max(rb, rt) > max_radius:
        shrink = max_radius / max(rb, rt)
        rb, rt = rb * shrink, rt * shrink
    height = rng.uniform(7.0, 11.5)
    g = _standing_geom(cam, x, y, rb, rt, height)
    sides = ["right", "left", "right", "left", "front", "back", "none"]
    side = str(rng.choice(sides, p=[0.23, 0.23, 0.13, 0.13, 0.1, 0.08, 0.1]))  # none: a cup without a handle
    colour = _object_colour(rng, style)
    pat = _pattern(rng, style)
    prot = rng.uniform(0.55, 0.9) * rb * g["sx"]  # handle protrusion (px)
    hh = rng.uniform(0.28, 0.38) * height * g["sx"] * max(math.cos(cam.elevation), 0.35)
    hcy = g["by"] - g["h"] * rng.uniform(0.42, 0.58)
    thick = max(2, round(rng.uniform(0.7, 1.3) * g["sx"]))
    amid = 0.5 * (g["ab"] + g["at"])
    contents = str(rng.choice(["coffee", "tea", "milk", "empty", "empty"]))
    outline = _silhouette(g)
    x1, x2 = float(outline[:, 0].min()), float(outline[:, 0].max())
    y1, y2 = float(outline[:, 1].min()), float(outline[:, 1].max())
    hcx = 0.0
    if side in ("right", "left"):
        sign = 1 if side == "right" else -1
        hcx = g["bx"] + sign * amid * 0.9
        if sign > 0:
            x2 = max(x2, hcx + prot + thick / 2)
        else:
            x1 = min(x1, hcx - prot - thick / 2)
        y1 = min(y1, hcy - hh - thick / 2)

    def draw(cv: Canvas, oid: int) -> None:
        _drop_shadow(cv, light, g["bx"], g["by"], g["ab"], g["bb"], g["h"])
        region = cv.patch((x1, y1, x2, y2))
        if region is None:
            return
        xx, yy = _grid(region)
        shade, hi = _cyl_shading(xx, g["bx"], amid, light)
        if side in ("right", "left"):
            m = np.zeros((region[3] - region[1], region[2] - region[0]), np.uint8)
            a0, a1 = (-90, 90) if side == "right" else (90, 270)
            centre = (round((hcx - region[0]) * 16), round((hcy - region[1]) * 16))
            cv2.ellipse(m, centre, (round(prot * 16), round(hh * 16)), 0, a0, a1, 255, thick, cv2.LINE_AA, 4)
            cv.blend(region, colour * 0.82, m.astype(np.float32) / 255.0, oid)
        body = _apply_pattern(colour, pat, xx, yy, g) * shade[..., None] + 255.0 * hi[..., None]
        cv.blend(region, np.clip(body, 0, 255), cv.mask(region, [outline]), oid)
        # rim and contents
        tx, ty = g["bx"], g["by"] - g["h"]
        wall = max(1.0, 0.35 * g["sx"])
        rim = np.clip(colour * 1.08 + 12, 0, 255)
        cv.blend(region, rim, cv.mask(region, [_ellipse(tx, ty, g["at"], g["bt"])]), oid)
        ia, ib = max(g["at"] - wall, 1.0), max(g["bt"] - wall * g["bt"] / max(g["at"], 1e-3), 0.5)
        inner = cv.mask(region, [_ellipse(tx, ty, ia, ib)])
        if contents == "empty":
            depth = np.clip((yy - (ty - ib)) / max(2 * ib, 1e-3), 0, 1)
            layer = colour[None, None] * (0.45 + 0.35 * depth[..., None])
        else:
            liquid = {"coffee": (55, 32, 18), "tea": (150, 85, 30), "milk": (225, 205, 175)}[contents]
            layer = np.broadcast_to(np.array(liquid, np.float32), (*xx.shape, 3))
        cv.blend(region, layer, inner, oid)
        if side == "front":
            m = np.zeros((region[3] - region[1], region[2] - region[0]), np.uint8)
            centre = (round((g["bx"] - region[0]) * 16), round((hcy - region[1]) * 16))
            axes = (round(amid * 0.28 * 16), round(hh * 16))
            cv2.ellipse(m, centre, axes, 0, 0, 360, 255, max(2, thick - 1), cv2.LINE_AA, 4)
            cv.blend(region, colour * 0.75, m.astype(np.float32) / 255.0, oid)

    return Thing(
        "mug", x, y, max(rb, rt), (x1, y1, x2, y2), False, draw, MUG,
        {"radius_cm": round(float(rb), 2), "height_cm": round(float(height), 2), "handle": side,
         "base_px": (float(g["bx"]), float(g["by"]))},
    )  # fmt: skip


def _flat_region_uv(
    cam: Camera, region: tuple[int, int, int, int], x: float, y: float, angle: float
) -> tuple[Array, Array]:
    """Plane coordinates (cm, object-local, rotated) of every pixel in a region."""
    xx, yy = _grid(region)
    inv = np.linalg.inv(cam.H)
    w = inv[2, 0] * xx + inv[2, 1] * yy + inv[2, 2]
    px = (inv[0, 0] * xx + inv[0, 1] * yy + inv[0, 2]) / w - x
    py = (inv[1, 0] * xx + inv[1, 1] * yy + inv[1, 2]) / w - y
    c, s = math.cos(angle), math.sin(angle)
    return px * c + py * s, -px * s + py * c


def _flat_outline(cam: Camera, x: float, y: float, shape: str, size: float, angle: float, aspect: float = 1.0) -> Array:
    """Image outline of a flat round (radius ``size``) or rectangular (half side ``size``) object."""
    if shape == "round":
        t = np.linspace(0, 2 * math.pi, 48, endpoint=False)
        local = np.stack([size * np.cos(t), size * np.sin(t)], -1)
    else:
        local = np.array(
            [[-size, -size * aspect], [size, -size * aspect], [size, size * aspect], [-size, size * aspect]]
        )
    c, s = math.cos(angle), math.sin(angle)
    rot = np.stack([local[:, 0] * c - local[:, 1] * s, local[:, 0] * s + local[:, 1] * c], -1)
    return cam.project(rot + np.array([x, y]))


def _flat_thing(
    kind: str,
    cam: Camera,
    x: float,
    y: float,
    shape: str,
    size: float,
    angle: float,
    thickness: float,
    top: Callable[[Array, Array], Array],
    side_colour: Array,
    light: Light,
    cls: int | None,
    aspect: float = 1.0,
    params: dict[str, Any] | None = None,
) -> Thing:
    """A flat object (coaster, plate, phone, book, napkin): a top face plus a thin visible side."""
    outline = _flat_outline(cam, x, y, shape, size, angle, aspect)
    sx, _ = cam.scales(x, y)
    drop = thickness * sx * math.cos(cam.elevation)
    down = np.array([0.0, drop])
    hull = cv2.convexHull(np.concatenate([outline, outline + down]).astype(np.float32)).reshape(-1, 2)
    x1, y1 = float(hull[:, 0].min()), float(hull[:, 1].min())
    x2, y2 = float(hull[:, 0].max()), float(hull[:, 1].max())
    radius = size * math.hypot(1, aspect) if shape != "round" else size

    def draw(cv: Canvas, oid: int) -> None:
        cx, cy = outline.mean(0)
        _drop_shadow(cv, light, cx, cy + drop, (x2 - x1) / 2, (y2 - y1) / 2, drop * 2 + 2)
        region = cv.patch((x1, y1, x2, y2))
        if region is None:
            return
        cv.blend(region, side_colour, cv.mask(region, [hull]), oid)
        u, v = _flat_region_uv(cam, region, x, y, angle)
        cv.blend(region, np.clip(top(u, v), 0, 255), cv.mask(region, [outline]), oid)

    return Thing(kind, x, y, radius, (x1, y1, x2, y2), True, draw, cls, params or {})


def _coaster_top(
    rng: np.random.Generator, style: Style, size: float, shape: str
) -> tuple[Callable[[Array, Array], Array], str]:
    """Texture function of a coaster's top face in its own coordinates (cm)."""
    pattern = str(rng.choice(style.coaster_patterns))
    a = _object_colour(rng, style, 0.25) if rng.random() < 0.7 else _hsv(rng.uniform(0.06, 0.1), 0.5, 0.7)
    b = _object_colour(rng, style, 0.5)
    speck = rng.uniform(0.15, 0.35)
    k = rng.uniform(1.5, 3.0)
    seed = int(rng.integers(0, 2**31))
    slate = _hsv(rng.uniform(0.55, 0.65), rng.uniform(0.05, 0.2), rng.uniform(0.12, 0.28))[None, None]

    def top(u: Array, v: Array) -> Array:
        r = np.sqrt(u * u + v * v) if shape == "round" else np.maximum(np.abs(u), np.abs(v))
        if pattern == "solid":
            t = np.zeros_like(u)
        elif pattern == "rings":
            t = (np.sin(r * math.pi * k / 2) > 0).astype(np.float32)
        elif pattern == "checker":
            t = (np.sin(u * math.pi / k * 2) * np.sin(v * math.pi / k * 2) > 0).astype(np.float32)
        elif pattern == "stripes":
            t = (np.sin(u * math.pi * k / 1.5) > 0).astype(np.float32)
        elif pattern == "dots":
            t = ((np.sin(u * k * 2.5) * np.sin(v * k * 2.5)) > 0.5).astype(np.float32)
        elif pattern == "weave":
            t = (np.sin(u * 6) * np.sin(v * 6) + 0.4 * np.sin((u + v) * 3) > 0).astype(np.float32)
        elif pattern == "slate":  # dark stone: near-black, faint cleavage lines, chipped lighter rim
            g = np.random.default_rng(seed)
            grain = np.sin(u * 3.1 + 0.7 * np.sin(v * 1.3)) * 0.04 + g.normal(0, 0.03, u.shape)
            dark = slate * (1.0 + grain)[..., None]
            edge = (r > size * 0.9).astype(np.float32)[..., None]
            return np.clip(dark * (1 - edge) + slate * 1.6 * edge, 0, 255)
        elif pattern == "fabric":  # woven cloth: a fine twill, soft stitched border
            twill = np.sin((u + v) * 9.0) * np.sin((u - v) * 9.0)
            border = (np.abs(r - size * 0.85) < 0.12).astype(np.float32)
            layer = a[None, None] * (0.9 + 0.08 * twill[..., None]) * (1 - 0.25 * border[..., None])
            return np.clip(layer, 0, 255)
        else:  # cork
            g = np.random.default_rng(seed)
            t = (g.random(u.shape) < speck).astype(np.float32)
            return np.clip(a[None, None] * (0.85 + 0.3 * t[..., None]), 0, 255)
        rim = (r > size * 0.88).astype(np.float32) * 0.15
        layer = a[None, None] * (1 - t[..., None]) + b[None, None] * t[..., None]
        return layer * (1.0 - rim[..., None])

    return top, pattern


def make_coaster(rng: np.random.Generator, style: Style, cam: Camera, x: float, y: float, light: Light) -> Thing:
    """A round or square coaster, 9-12 cm across, 3-6 mm thick, patterned."""
    shape = "round" if rng.random() < 0.55 else "square"
    size = rng.uniform(4.8, 6.2) if shape == "round" else rng.uniform(4.6, 5.6)
    angle = rng.uniform(0, math.pi / 2) if shape == "square" else 0.0
    top, pattern = _coaster_top(rng, style, size, shape)
    side = _hsv(rng.uniform(0, 1), rng.uniform(0, 0.3), rng.uniform(0.2, 0.5))
    return _flat_thing(
        "coaster", cam, x, y, shape, size, angle, rng.uniform(0.3, 0.6), top, side, light, COASTER,
        params={"shape": shape, "pattern": pattern, "size_cm": round(float(2 * size), 2)},
    )  # fmt: skip


def make_flat_distractor(
    rng: np.random.Generator, style: Style, cam: Camera, x: float, y: float, light: Light
) -> Thing:
    """Flat look-alikes: plates (big discs), phones, books and napkins (rectangles)."""
    kind = str(rng.choice(["plate", "plate", "phone", "book", "napkin"]))
    angle = rng.uniform(0, math.pi)
    if kind == "plate":
        size = rng.uniform(9.5, 14.0)
        col = _object_colour(rng, style, 0.7)
        inner = rng.uniform(0.55, 0.7)

        def top(u: Array, v: Array) -> Array:
            r = np.sqrt(u * u + v * v) / size
            tone = np.where(r < inner, 0.95, 1.0) - 0.12 * np.exp(-(((r - inner) / 0.03) ** 2))
            return col[None, None] * tone[..., None]

        return _flat_thing(kind, cam, x, y, "round", size, 0.0, 1.5, top, col * 0.7, light, None)
    if kind == "phone":
        size, aspect, thick = 3.6, 2.05, 0.8
        col = np.array([20, 20, 25], np.float32) * rng.uniform(0.8, 2.5)
        scr = _hsv(rng.uniform(0.5, 0.7), rng.uniform(0.2, 0.6), rng.uniform(0.1, 0.5))

        def top(u: Array, v: Array) -> Array:
            on = (np.abs(u) < size * 0.88) & (np.abs(v) < size * aspect * 0.9)
            return np.where(on[..., None], scr[None, None], col[None, None])

    elif kind == "book":
        size, aspect, thick = rng.uniform(7, 8.5), rng.uniform(1.3, 1.5), rng.uniform(1.5, 3.0)
        col = _object_colour(rng, style, 0.3)
        bar = rng.uniform(-0.5, 0.5)

        def top(u: Array, v: Array) -> Array:
            t = (np.abs(v / (size * aspect) - bar) < 0.08).astype(np.float32)
            return col[None, None] * (1 - 0.4 * t[..., None])

    else:
        size, aspect, thick = rng.uniform(9, 12), 1.0, 0.1
        col = _hsv(rng.uniform(0, 1), rng.uniform(0, 0.25), rng.uniform(0.8, 0.98))

        def top(u: Array, v: Array) -> Array:
            fold = 1 - 0.05 * (np.abs(u) < 0.1) - 0.05 * (np.abs(v) < 0.1)
            return col[None, None] * fold[..., None]

    return _flat_thing(kind, cam, x, y, "rect", size, angle, thick, top, col * 0.6, light, None, aspect)


def make_standing_distractor(
    rng: np.random.Generator, style: Style, cam: Camera, x: float, y: float, light: Light
) -> Thing:
    """Upright look-alikes with no handle: bowls, drinking glasses, bottles."""
    kind = str(rng.choice(["bowl", "glass", "glass", "bottle"]))
    if kind == "bowl":
        rt = rng.uniform(6.0, 9.0)
        rb, height = rt * rng.uniform(0.45, 0.6), rt * rng.uniform(0.6, 0.85)
        colour = _object_colour(rng, style, 0.5)
        alpha, neck = 1.0, None
    elif kind == "glass":
        rb = rng.uniform(2.7, 3.6)
        rt, height = rb * rng.uniform(1.0, 1.25), rng.uniform(9.0, 15.0)
        colour = _hsv(rng.uniform(0.3, 0.65), rng.uniform(0.0, 0.25), rng.uniform(0.75, 0.95))
        alpha, neck = rng.uniform(0.25, 0.45), None
    else:
        rb = rng.uniform(3.0, 4.2)
        rt, height = rb, rng.uniform(19.0, 28.0)
        colour = _hsv(rng.choice([0.3, 0.08, 0.58, 0.12]), rng.uniform(0.4, 0.9), rng.uniform(0.2, 0.6))
        alpha, neck = rng.uniform(0.8, 1.0), rng.uniform(1.0, 1.5)
    g = _standing_geom(cam, x, y, rb, rt, height)
    if neck is not None:  # bottle: body to the shoulder, then a neck
        sx = g["sx"]
        shoulder, neck_h = g["by"] - g["h"] * 0.62, g["by"] - g["h"] * 0.78
        top_y = g["by"] - g["h"]
        na, nb = neck * sx, neck * g["bt"] / max(rt, 1e-3)
        low = _ellipse(g["bx"], g["by"], g["ab"], g["bb"], 0, math.pi, 24)
        left = [[g["bx"] - g["ab"], shoulder], [g["bx"] - na, neck_h]]
        right = [[g["bx"] + na, neck_h], [g["bx"] + g["ab"], shoulder]]
        outline = np.concatenate([low, left, _ellipse(g["bx"], top_y, na, nb, math.pi, 2 * math.pi, 12), right])
    else:
        outline = _silhouette(g)
    x1, y1 = float(outline[:, 0].min()), float(outline[:, 1].min())
    x2, y2 = float(outline[:, 0].max()), float(outline[:, 1].max())
    contents = float(rng.uniform(0.2, 0.8)) if kind == "glass" and rng.random() < 0.6 else 0.0
    liquid = _hsv(rng.choice([0.08, 0.12, 0.0, 0.55]), rng.uniform(0.5, 0.9), rng.uniform(0.3, 0.9))
    label_band = kind == "bottle" and rng.random() < 0.6
    label_col = _object_colour(rng, style, 0.5)

    def draw(cv: Canvas, oid: int) -> None:
        _drop_shadow(cv, light, g["bx"], g["by"], g["ab"], g["bb"], g["h"] * (0.4 if alpha < 0.6 else 1.0))
        region = cv.patch((x1, y1, x2, y2))
        if region is None:
            return
        xx, yy = _grid(region)
        shade, hi = _cyl_shading(xx, g["bx"], 0.5 * (g["ab"] + g["at"]), light, 0.9 if alpha < 0.6 else 0.5)
        m = cv.mask(region, [outline])
        layer = colour[None, None] * shade[..., None] + 255.0 * hi[..., None]
        if label_band:
            v = (g["by"] - yy) / max(g["h"], 1e-3)
            band = (v > 0.2) & (v < 0.45)
            layer[band] = label_col * shade[band][..., None]
        a = m * alpha + m * hi * (1 - alpha)
        if contents:
            v = (g["by"] - yy) / max(g["h"], 1e-3)
            a = np.where(v < contents, m * 0.75, a)
            layer = np.where((v < contents)[..., None], liquid[None, None] * shade[..., None], layer)
        cv.blend(region, np.clip(layer, 0, 255), a, oid if alpha >= 0.6 else 0)
        if neck is None:
            tx, ty = g["bx"], g["by"] - g["h"]
            rim = cv.mask(region, [_ellipse(tx, ty, g["at"], g["bt"])])
            inner = cv.mask(region, [_ellipse(tx, ty, g["at"] * 0.93, g["bt"] * 0.9)])
            if kind == "bowl":
                cv.blend(region, colour * 1.05, rim, oid)
                depth = np.clip((yy - (ty - g["bt"])) / max(2 * g["bt"], 1e-3), 0, 1)
                cv.blend(region, colour[None, None] * (0.5 + 0.4 * depth[..., None]), inner, oid)
            else:
                ring = np.clip(rim - inner, 0, 1)
                cv.blend(region, np.array([245, 245, 245], np.float32), ring * 0.7)
        else:
            cap = cv.mask(region, [_ellipse(g["bx"], g["by"] - g["h"], g["at"] * 0.42, g["bt"] * 0.42)])
            cv.blend(region, label_col * 0.8, cap, oid)

    return Thing(kind, x, y, max(rb, rt), (x1, y1, x2, y2), False, draw, None, {"kind": kind})


# --------------------------------------------------------------------------------------------
# Scene layout.
# --------------------------------------------------------------------------------------------

EDGES: Final = ("left", "right", "near", "far")


@dataclass
class Table:
    """The table top as a rectangle on the plane (cm), and which of its edges the camera sees."""

    left: float
    right: float
    near: float
    far: float
    in_view: dict[str, bool]

    def edge_distances(self, x: float, y: float) -> dict[str, float]:
        return {"left": x - self.left, "right": self.right - x, "near": y - self.near, "far": self.far - y}

    def corners(self) -> Array:
        return np.array(
            [[self.left, self.near], [self.right, self.near], [self.right, self.far], [self.left, self.far]]
        )

    def edge_segment(self, name: str) -> Array:
        c = self.corners()
        return {"near": c[[0, 1]], "right": c[[1, 2]], "far": c[[2, 3]], "left": c[[3, 0]]}[name]


def _table(rng: np.random.Generator, cam: Camera) -> Table:
    """Pick which edges are inside the frame (at least one); the others lie far outside it."""
    vw, vd = cam.view_w, cam.view_d
    while True:
        show = {
            "near": rng.random() < 0.65,
            "left": rng.random() < 0.35,
            "right": rng.random() < 0.35,
            "far": rng.random() < 0.3,
        }
        if any(show.values()):
            break
    left = -vw / 2 + rng.uniform(0.06, 0.3) * vw if show["left"] else -vw / 2 - rng.uniform(0.4, 1.0) * vw
    right = vw / 2 - rng.uniform(0.06, 0.3) * vw if show["right"] else vw / 2 + rng.uniform(0.4, 1.0) * vw
    near = rng.uniform(0.06, 0.35) * vd if show["near"] else -rng.uniform(0.4, 1.0) * vd
    far = vd * (1 - rng.uniform(0.06, 0.3)) if show["far"] else vd * (1 + rng.uniform(0.4, 1.0))
    return Table(left, right, near, far, show)


def _boxes_overlap(a: Box, b: Box) -> float:
    """Largest fraction of either box covered by their intersection."""
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    area_a = max((a[2] - a[0]) * (a[3] - a[1]), 1e-6)
    area_b = max((b[2] - b[0]) * (b[3] - b[1]), 1e-6)
    return max(inter / area_a, inter / area_b)


def _clip(box: Box, w: int, h: int) -> Box:
    return (max(0.0, box[0]), max(0.0, box[1]), min(float(w), box[2]), min(float(h), box[3]))


def _area(box: Box) -> float:
    return max(0.0, box[2] - box[0]) * max(0.0, box[3] - box[1])


def mug_base_point(box: Sequence[float]) -> tuple[float, float]:
    """Where a mug touches the table, estimated from its box alone: centre column, near the box bottom."""
    x1, y1, x2, y2 = box[:4]
    return (x1 + x2) / 2, y2 - BASE_FRACTION * (y2 - y1)


def on_coaster_from_boxes(mug_box: Sequence[float], coaster_boxes: Sequence[Sequence[float]]) -> int | None:
    """Index of the coaster whose box holds the mug's base point (the smallest such box), else None.

    The renderer only emits scenes in which this rule, applied to the true boxes, agrees with the
    physical truth, so any disagreement in evaluation comes from the detector (or from a different rule).
    """
    px, py = mug_base_point(mug_box)
    best, best_area = None, math.inf
    for i, c in enumerate(coaster_boxes):
        if c[0] <= px <= c[2] and c[1] <= py <= c[3]:
            area = (c[2] - c[0]) * (c[3] - c[1])
            if area < best_area:
                best, best_area = i, area
    return best


def _seg_distance(p: Array, a: Array, b: Array) -> float:
    d = b - a
    t = float(np.clip(np.dot(p - a, d) / max(float(np.dot(d, d)), 1e-9), 0, 1))
    return float(np.linalg.norm(p - (a + t * d)))


@dataclass
class Scene:
    image: Array  # RGB uint8
    labels: list[tuple[int, Box]]  # (class, clipped box) in pixels
    truth: dict[str, Any]


def render_scene(
    seed: int,
    index: int,
    style: Style | str = "train",
    size: tuple[int, int] | None = None,
    backdrops: Sequence[str] = (),
) -> Scene:
    """Render scene ``index`` of data set ``seed``: the same arguments always give the same scene.

    With ``backdrops`` (real photo paths), about half the scenes show a crop of one behind the table
    and a quarter a crop of one as the table top: the surface is then known by its edges and
    perspective alone, not by a texture the renderer knows.
    """
    style = STYLES[style] if isinstance(style, str) else style
    rng = np.random.default_rng([seed, index, style.code])
    width, height = size if size else SIZES[int(rng.integers(0, len(SIZES)))]
    cam = _camera(rng, style, width, height)
    table = _table(rng, cam)
    light = Light(
        azimuth=rng.uniform(-1, 1),
        shadow=rng.uniform(0.15, 0.5),
        offset=(rng.uniform(-0.6, 0.6), rng.uniform(0.0, 0.3)),
    )

    # --- background, table top (textured through the homography), front face of the near edge
    img = _background(rng, height, width)
    brng = _backdrop_rng(seed, index, style)
    if backdrops and brng.random() < BACKDROP_BEHIND_TABLE:
        img = _photo_crop(brng, backdrops, height, width)
    corners_px = cam.project(table.corners())
    vis_plane = cam.unproject(np.array([[0, 0], [width, 0], [width, height], [0, height]], np.float64))
    px0 = max(table.left, float(vis_plane[:, 0].min()) - 5)
    px1 = min(table.right, float(vis_plane[:, 0].max()) + 5)
    py0 = max(table.near, float(vis_plane[:, 1].min()) - 5)
    py1 = min(table.far, float(vis_plane[:, 1].max()) + 5)
    ppc = min(cam.px_per_cm * 1.2, 2000.0 / max(px1 - px0, py1 - py0))
    tw, th = max(2, int((px1 - px0) * ppc)), max(2, int((py1 - py0) * ppc))
    kind = str(rng.choice(style.table_kinds))
    tex = _table_texture(rng, style, kind, th, tw, ppc)
    if backdrops and brng.random() < BACKDROP_TABLE_TOP:
        tex, kind = _photo_crop(brng, backdrops, th, tw), "photo"
    raster_to_plane = np.array([[1 / ppc, 0, px0], [0, 1 / ppc, py0], [0, 0, 1]])
    warped = cv2.warpPerspective(tex, cam.H @ raster_to_plane, (width, height), flags=cv2.INTER_LINEAR)
    canvas = Canvas(img)
    full = (0, 0, width, height)
    top_mask = canvas.mask(full, [corners_px])
    mean_colour = tex.reshape(-1, 3).mean(0)
    if table.in_view["near"]:
        thick_cm = rng.uniform(2.0, 5.0)
        drop = thick_cm * cam.px_per_cm * math.cos(cam.elevation)
        a, b = corners_px[0], corners_px[1]
        down = np.array([0.0, drop])
        face = np.array([a, b, b + down, a + down])
        canvas.blend(full, mean_colour * rng.uniform(0.45, 0.7), canvas.mask(full, [face]))
    canvas.blend(full, warped, top_mask)
    ys, xs = np.nonzero(top_mask > 0.5)
    surface_box = (float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1))

    # --- objects
    things: list[Thing] = []
    margin = 0.04

    def inside_view(x: float, y: float) -> bool:
        u, v = cam.project(np.array([[x, y]]))[0]
        return margin * width < u < (1 - margin) * width and margin * height < v < (1 - margin) * height

    def fits(t: Thing, host: int | None = None, on_edge: bool = False) -> bool:
        """Inside the table and the frame, clear of the others, and unambiguous to the box rule."""
        if t.cls == COASTER and any(
            on_coaster_from_boxes(o.box, [t.box]) is not None for o in things if o.cls == MUG and o.host is None
        ):
            return False
        if t.cls == MUG and host is None and not _rule_clear(t, things):
            return False
        d = table.edge_distances(t.x, t.y)
        if on_edge:
            if min(d.values()) < 0.25 * t.radius:
                return False
        elif min(d.values()) < t.radius + 0.5:
            return False
        if _area(_clip(t.box, width, height)) < 0.6 * _area(t.box):
            return False
        return _clear_of_others(t, things, host)

    def sample_xy() -> tuple[float, float]:
        return rng.uniform(table.left, table.right), rng.uniform(table.near, table.far)

    def place(maker: Callable[..., Thing], tries: int = 30) -> Thing | None:
        for _ in range(tries):
            x, y = sample_xy()
            if not inside_view(x, y):
                continue
            t = maker(rng, style, cam, x, y, light)
            if fits(t):
                things.append(t)
                return t
        return None

    n_mugs = int(rng.choice([1, 2, 3, 4, 5], p=[0.2, 0.3, 0.25, 0.15, 0.1]))
    for _ in range(n_mugs):
        mode = rng.random()
        if mode < 0.5:  # mug on a coaster
            c = place(make_coaster)
            if c is None:
                continue
            host = len(things) - 1
            for _ in range(20):
                ang, rad = rng.uniform(0, 2 * math.pi), rng.uniform(0, 0.35) * c.radius
                cx, cy = c.x + rad * math.cos(ang), c.y + rad * math.sin(ang)
                m = make_mug(rng, style, cam, cx, cy, light, max_radius=c.params["size_cm"] / 2 - COASTER_RIM_CM)
                if fits(m, host=host) and on_coaster_from_boxes(m.box, [c.box]) == 0:
                    m.host = host
                    things.append(m)
                    break
            else:  # no mug fits on this coaster: drop it and put an empty one elsewhere
                things.pop()
                place(make_coaster)
        elif mode < 0.72:  # near or over a visible edge
            edges = [e for e in EDGES if table.in_view[e]]
            for _ in range(30):
                e = str(rng.choice(edges))
                off = 3.7 + rng.uniform(-2.0, 7.0)  # base centre to edge: overhanging by 2 cm .. 7 cm clear
                x, y = sample_xy()
                if e == "left":
                    x = table.left + off
                elif e == "right":
                    x = table.right - off
                elif e == "near":
                    y = table.near + off
                else:
                    y = table.far - off
                if not inside_view(x, y):
                    continue
                m = make_mug(rng, style, cam, x, y, light)
                if fits(m, on_edge=True):
                    things.append(m)
                    break
        else:
            for _ in range(30):
                x, y = sample_xy()
                if not inside_view(x, y):
                    continue
                m = make_mug(rng, style, cam, x, y, light)
                if fits(m):
                    things.append(m)
                    break
    if not any(t.cls == MUG for t in things):  # every scene has at least one mug
        for _ in range(60):
            x, y = sample_xy()
            if inside_view(x, y):
                m = make_mug(rng, style, cam, x, y, light)
                if fits(m):
                    things.append(m)
                    break
    for _ in range(int(rng.choice([0, 0, 1, 1, 2]))):  # empty coasters, sometimes carrying a glass
        c = place(make_coaster)
        if c is not None and rng.random() < 0.25:
            host = len(things) - 1
            g = make_standing_distractor(rng, style, cam, c.x, c.y, light)
            if g.params["kind"] == "glass" and _clear_of_others(g, things, host):
                g.host = host
                things.append(g)
    cluttered = rng.random() < 0.2  # a busy table: plates, bowls, glasses, books all around the mugs
    for _ in range(int(rng.integers(4, 8)) if cluttered else int(rng.choice([0, 1, 1, 2, 3]))):
        place(make_flat_distractor if rng.random() < 0.45 else make_standing_distractor)

    # --- clutter: irregular textured patches, clear of every mug and coaster
    labelled = [t.box for t in things if t.cls is not None]
    for _ in range(int(rng.choice([0, 0, 1, 1, 2]))):
        r = rng.uniform(0.03, 0.15) * min(width, height)
        outline = _blob_outline(rng, rng.uniform(0, width), rng.uniform(0, height), r)
        bb = (
            float(outline[:, 0].min()) - 4,
            float(outline[:, 1].min()) - 4,
            float(outline[:, 0].max()) + 4,
            float(outline[:, 1].max()) + 4,
        )
        if all(_boxes_overlap(bb, other) == 0.0 for other in labelled):
            _blob(rng, style, canvas, outline, light)

    # --- draw: flat things first, then upright ones from far to near
    order = sorted(range(len(things)), key=lambda i: (not things[i].flat, -things[i].y))
    for i in order:
        things[i].oid = i + 1
        things[i].draw(canvas, i + 1)

    # --- camera: texture, lighting, colour cast, blur, noise
    image = _camera_effects(rng, style, canvas.img)

    # --- labels and ground truth
    labels: list[tuple[int, Box]] = []
    visible = np.bincount(canvas.ids.ravel(), minlength=len(things) + 1)
    coasters_by_thing: dict[int, int] = {}
    coaster_truth: list[dict[str, Any]] = []
    for i, t in enumerate(things):
        if t.cls != COASTER:
            continue
        box = _clip(t.box, width, height)
        coasters_by_thing[i] = len(coaster_truth)
        occupant = next((things[j].kind for j in range(len(things)) if things[j].host == i), None)
        coaster_truth.append({"box": _r(box), **t.params, "occupied_by": occupant})
        labels.append((COASTER, box))
    mug_truth: list[dict[str, Any]] = []
    px_by_edge = {e: cam.project(table.edge_segment(e)) for e in EDGES if table.in_view[e]}
    for t in things:
        if t.cls != MUG:
            continue
        box = _clip(t.box, width, height)
        dist = table.edge_distances(t.x, t.y)
        nearest = min(dist, key=lambda k: dist[k])
        gap = dist[nearest] - t.params["radius_cm"]  # from the rim of the base to the edge; < 0 overhangs
        base = np.array(t.params["base_px"])
        px_d = {e: _seg_distance(base, seg[0], seg[1]) for e, seg in px_by_edge.items()}
        sx, sy = cam.scales(t.x, t.y)
        full_area = _area(t.box)
        mug_truth.append(
            {
                "box": _r(box),
                "on_coaster": t.host is not None,
                "coaster": coasters_by_thing.get(t.host) if t.host is not None else None,
                "edge_distance_cm": round(gap, 2),
                "nearest_edge": nearest,
                "edge_centre_distance_cm": round(dist[nearest], 2),
                "edge_centre_distance_px": round(min(px_d.values()), 2) if px_d else None,
                "base_px": _r(tuple(base)),
                "base_cm": [round(t.x, 2), round(t.y, 2)],
                "px_per_cm": [round(sx, 4), round(sy, 4)],
                "visible": round(float(visible[t.oid]) / max(full_area, 1.0), 3),
                **{k: v for k, v in t.params.items() if k != "base_px"},
            }
        )
        labels.append((MUG, box))
    labels.append((SURFACE, surface_box))
    distractors = [{"kind": t.kind, "box": _r(_clip(t.box, width, height))} for t in things if t.cls is None]
    truth = {
        "width": width,
        "height": height,
        "seed": seed,
        "index": index,
        "style": style.name,
        "camera": {
            "px_per_cm": round(cam.px_per_cm, 4),
            "elevation_deg": round(math.degrees(cam.elevation), 2),
            "perspective": round(cam.perspective, 4),
            "rotation_deg": round(cam.rotation_deg, 3),
            "homography": [[float(v) for v in row] for row in cam.H],
        },
        "surface": {
            "box": _r(surface_box),
            "kind": kind,
            "edges_in_view": [e for e in EDGES if table.in_view[e]],
            "table_cm": [round(table.left, 2), round(table.near, 2), round(table.right, 2), round(table.far, 2)],
        },
        "mugs": mug_truth,
        "coasters": coaster_truth,
        "distractors": distractors,
    }
    return Scene(image, labels, truth)


def _fractal(rng: np.random.Generator, h: int, w: int) -> Array:
    """Multi-octave value noise in about [-1, 1]: the uneven light and grain of real surfaces."""
    out = np.zeros((h, w), np.float32)
    for cell, amp in ((96, 1.0), (40, 0.6), (16, 0.4), (6, 0.25), (2.5, 0.15)):
        out += amp * _noise(rng, h, w, cell)
    return out / 1.4


def _camera_effects(rng: np.random.Generator, style: Style, img: Array) -> Array:
    """Photo-like finish, the same for every scene: grain, uneven light, colour cast, blur, sensor noise."""
    height, width = img.shape[:2]
    grain = img * (1 + rng.uniform(0.0, 0.15) * _fractal(rng, height, width))[..., None]
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    ang = rng.uniform(0, 2 * math.pi)
    grad = ((xx / width - 0.5) * math.cos(ang) + (yy / height - 0.5) * math.sin(ang)) * rng.uniform(0, 0.5)
    vign = 1 - rng.uniform(0, 0.35) * (((xx / width - 0.5) ** 2 + (yy / height - 0.5) ** 2) * 2)
    gain = rng.uniform(*style.brightness) * (1 + grad) * vign
    cast = 1 + rng.uniform(-style.colour_cast, style.colour_cast, 3).astype(np.float32)
    out: Array = (grain * gain[..., None] * cast[None, None]).astype(np.float32)
    sigma = rng.uniform(*style.blur_sigma)
    if rng.random() < 0.15:
        k = int(rng.integers(3, 8))
        kernel: Array = np.zeros((k, k), np.float32)
        kernel[k // 2] = 1.0 / k
        rot = cv2.getRotationMatrix2D((k / 2 - 0.5, k / 2 - 0.5), rng.uniform(0, 180), 1.0)
        kernel = cv2.warpAffine(kernel, rot, (k, k))
        kernel = (kernel / max(float(kernel.sum()), 1e-6)).astype(np.float32)
        out = cv2.filter2D(out, -1, kernel)
    elif sigma > 0.3:
        out = cv2.GaussianBlur(out, (0, 0), sigma)
    out = out + rng.normal(0, rng.uniform(*style.noise_sigma), out.shape).astype(np.float32)
    return np.clip(out, 0, 255).astype(np.uint8)


def _blob_outline(rng: np.random.Generator, cx: float, cy: float, r: float) -> Array:
    """An irregular, clearly not round or square outline (random harmonics, stretched, rotated)."""
    t = np.linspace(0, 2 * math.pi, 72, endpoint=False)
    rad = np.ones_like(t)
    for k in range(2, 6):
        rad += rng.uniform(0.06, 0.3) * np.sin(k * t + rng.uniform(0, 2 * math.pi))
    rad = np.clip(rad, 0.25, None)
    stretch, ang = rng.uniform(0.35, 1.0), rng.uniform(0, math.pi)
    x, y = rad * np.cos(t) * r, rad * np.sin(t) * r * stretch
    c, s = math.cos(ang), math.sin(ang)
    return np.stack([cx + x * c - y * s, cy + x * s + y * c], -1)


def _blob(rng: np.random.Generator, style: Style, cv: Canvas, outline: Array, light: Light) -> None:
    """Clutter with a photo-like fill: teaches the model that a textured patch is not a coaster."""
    region = cv.patch((outline[:, 0].min(), outline[:, 1].min(), outline[:, 0].max(), outline[:, 1].max()))
    if region is None:
        return
    xx, yy = _grid(region)
    h, w = xx.shape
    a, b = _object_colour(rng, style, 0.4), _object_colour(rng, style, 0.4)
    kind = int(rng.integers(0, 4))
    if kind == 0:
        t = np.clip(0.5 + 0.5 * _fractal(rng, h, w), 0, 1)
    elif kind == 1:
        ang = rng.uniform(0, math.pi)
        t = (np.sin((xx * math.cos(ang) + yy * math.sin(ang)) / rng.uniform(2, 8)) > 0).astype(np.float32)
    elif kind == 2:
        t = np.clip((yy - yy.min()) / max(float(np.ptp(yy)), 1.0), 0, 1)
    else:
        t = (_noise(rng, h, w, rng.uniform(3, 12)) > 0.2).astype(np.float32)
    layer = a[None, None] * (1 - t[..., None]) + b[None, None] * t[..., None]
    shade, _ = _cyl_shading(xx, float(xx.mean()), max(w / 2, 1.0), light, 0.0)
    layer = np.clip(layer * (0.6 + 0.45 * shade[..., None]), 0, 255)
    cv.blend(region, layer, cv.mask(region, [outline]) * rng.uniform(0.8, 1.0))


# --------------------------------------------------------------------------------------------
# Negative scenes: no table, no mug, no coaster. Without them a detector trained only on table
# tops calls a face seen from above a mug and a striped sleeve a coaster (measured on the installed
# photos). People, streets and rooms teach it what a mug is not; their label files are empty.
# --------------------------------------------------------------------------------------------


def _skin(rng: np.random.Generator) -> Array:
    return _hsv(rng.uniform(0.03, 0.09), rng.uniform(0.25, 0.6), rng.uniform(0.3, 0.95))


def _poly(cv: Canvas, pts: Sequence[Sequence[float]] | Array, colour: Array, alpha: float = 1.0) -> None:
    arr = np.asarray(pts, np.float64)
    region = cv.patch((arr[:, 0].min(), arr[:, 1].min(), arr[:, 0].max(), arr[:, 1].max()))
    if region is not None:
        cv.blend(region, colour, cv.mask(region, [arr]) * alpha)


def _shaded_ellipse(cv: Canvas, cx: float, cy: float, a: float, b: float, colour: Array, light: Light) -> None:
    region = cv.patch((cx - a, cy - b, cx + a, cy + b))
    if region is None:
        return
    xx, _ = _grid(region)
    shade, hi = _cyl_shading(xx, cx, a, light, 0.15)
    layer = np.clip(colour[None, None] * (0.45 + 0.6 * shade[..., None]) + 255 * hi[..., None] * 0.3, 0, 255)
    cv.blend(region, layer, cv.mask(region, [_ellipse(cx, cy, a, b)]))


def _person(rng: np.random.Generator, style: Style, cv: Canvas, light: Light) -> None:
    """A clothed person from the chest or waist up: head, hair, face, suit or uniform, tie, arms."""
    w, h = cv.w, cv.h
    size = rng.uniform(0.5, 2.6) * h  # head-to-waist height in px: from half-figures to close-up portraits
    cx, top = rng.uniform(0.1, 0.9) * w, rng.uniform(-0.05, 0.45) * h
    hw, hh = size * rng.uniform(0.09, 0.12), size * rng.uniform(0.12, 0.15)
    hy = top + hh
    skin, hair = _skin(rng), _hsv(rng.uniform(0.05, 0.12), rng.uniform(0.2, 0.7), rng.uniform(0.05, 0.8))
    cloth = _object_colour(rng, style, 0.6) * rng.uniform(0.3, 1.0)
    shirt = _hsv(rng.uniform(0, 1), rng.uniform(0, 0.3), rng.uniform(0.7, 1.0))
    shoulder_y, shoulder_w = hy + hh * 1.6, hw * rng.uniform(2.6, 3.6)
    waist = top + size * 1.2
    # torso, arms, collar, tie
    _poly(cv, [[cx - shoulder_w, shoulder_y + hh * 0.3], [cx - hw * 0.8, shoulder_y - hh * 0.15],
               [cx + hw * 0.8, shoulder_y - hh * 0.15], [cx + shoulder_w, shoulder_y + hh * 0.3],
               [cx + shoulder_w * 1.05, waist], [cx - shoulder_w * 1.05, waist]], cloth)  # fmt: skip
    _poly(cv, [[cx - hw * 0.55, shoulder_y - hh * 0.2], [cx + hw * 0.55, shoulder_y - hh * 0.2],
               [cx, shoulder_y + hh * rng.uniform(0.8, 2.0)]], shirt)  # fmt: skip
    if rng.random() < 0.6:
        tie = _object_colour(rng, style, 0.3)
        _poly(cv, [[cx - hw * 0.12, shoulder_y - hh * 0.1], [cx + hw * 0.12, shoulder_y - hh * 0.1],
                   [cx + hw * 0.2, shoulder_y + hh * 2.2], [cx, shoulder_y + hh * 2.5],
                   [cx - hw * 0.2, shoulder_y + hh * 2.2]], tie)  # fmt: skip
    for side in (-1, 1):
        ax = cx + side * shoulder_w * 0.92
        wrist = ax + side * hw * 0.3
        arm = [[ax - hw * 0.45, shoulder_y + hh * 0.3], [ax + hw * 0.45, shoulder_y + hh * 0.3],
               [wrist + hw * 0.5, waist], [wrist - hw * 0.5, waist]]  # fmt: skip
        _poly(cv, arm, cloth * 0.85)
        if rng.random() < 0.4:  # sleeve braid or stripes, as on a uniform
            braid = _hsv(rng.uniform(0.1, 0.16), rng.uniform(0.5, 0.9), rng.uniform(0.6, 0.95))
            for k in range(int(rng.integers(1, 5))):
                y0 = waist - hh * (0.4 + 0.35 * k)
                _poly(cv, [[ax - hw * 0.55, y0], [ax + hw * 0.55, y0], [ax + hw * 0.55, y0 + hh * 0.15],
                           [ax - hw * 0.55, y0 + hh * 0.15]], braid)  # fmt: skip
        if rng.random() < 0.3:  # a hand near the waist
            _shaded_ellipse(cv, ax + side * hw * 0.3, waist - hh * 0.1, hw * 0.35, hh * 0.3, skin, light)
    if rng.random() < 0.3:  # badge or medal ribbons on the chest
        bx, by = cx + rng.choice([-1, 1]) * shoulder_w * 0.45, shoulder_y + hh * 0.8
        for k in range(int(rng.integers(1, 4))):
            col = _object_colour(rng, style, 0.2)
            y0, y1 = by + k * hh * 0.2, by + (k + 0.8) * hh * 0.2
            _poly(cv, [[bx - hw * 0.4, y0], [bx + hw * 0.4, y0], [bx + hw * 0.4, y1], [bx - hw * 0.4, y1]], col)
    # neck, ears, head, hair, face
    _poly(cv, [[cx - hw * 0.45, hy + hh * 0.5], [cx + hw * 0.45, hy + hh * 0.5], [cx + hw * 0.5, shoulder_y],
               [cx - hw * 0.5, shoulder_y]], skin * 0.8)  # fmt: skip
    for side in (-1, 1):
        _shaded_ellipse(cv, cx + side * hw * 0.97, hy + hh * 0.05, hw * 0.18, hh * 0.25, skin * 0.9, light)
    _shaded_ellipse(cv, cx, hy, hw, hh, skin, light)
    if rng.random() < 0.85:
        region = cv.patch((cx - hw * 1.1, hy - hh * 1.15, cx + hw * 1.1, hy))
        if region is not None:
            cap = cv.mask(region, [_ellipse(cx, hy - hh * 0.1, hw * 1.05, hh * 1.05, math.pi, 2 * math.pi, 32)])
            cv.blend(
                region,
                hair,
                cap * (cv.mask(region, [_ellipse(cx, hy - hh * rng.uniform(0.35, 0.6), hw * 1.1, hh * 0.75)])),
            )
    eye_y, eye_dx = hy + hh * rng.uniform(-0.05, 0.1), hw * 0.38
    for side in (-1, 1):
        _poly(cv, _ellipse(cx + side * eye_dx, eye_y, hw * 0.14, hh * 0.05), np.array([245, 245, 240], np.float32))
        _poly(cv, _ellipse(cx + side * eye_dx, eye_y, hw * 0.06, hh * 0.045), hair * 0.5)
        ex0, ex1 = cx + side * eye_dx - hw * 0.18, cx + side * eye_dx + hw * 0.18
        brow = [[ex0, eye_y - hh * 0.13], [ex1, eye_y - hh * 0.15], [ex1, eye_y - hh * 0.11], [ex0, eye_y - hh * 0.09]]
        _poly(cv, brow, hair * 0.7)
    _poly(
        cv,
        [[cx, eye_y + hh * 0.05], [cx + hw * 0.12, eye_y + hh * 0.4], [cx - hw * 0.08, eye_y + hh * 0.42]],
        skin * 0.75,
    )
    mouth = _hsv(rng.uniform(0.97, 1.0), 0.45, rng.uniform(0.35, 0.7))
    _poly(cv, _ellipse(cx, eye_y + hh * 0.62, hw * rng.uniform(0.25, 0.4), hh * 0.05), mouth)


def _street(rng: np.random.Generator, cv: Canvas) -> None:
    """Sky, buildings with window grids, a road; sometimes a bus-sized box with windows and wheels."""
    w, h = cv.w, cv.h
    horizon = rng.uniform(0.3, 0.7) * h
    sky = _hsv(rng.uniform(0.55, 0.65), rng.uniform(0.1, 0.5), rng.uniform(0.6, 1.0))
    yy = np.arange(h, dtype=np.float32)[:, None, None] / h
    cv.img[:] = sky[None, None] * (1.1 - 0.3 * yy)
    x = -rng.uniform(0, 0.2) * w
    while x < w:
        bw = rng.uniform(0.15, 0.5) * w
        top = horizon - rng.uniform(0.1, 0.6) * h
        wall = _hsv(rng.uniform(0, 1), rng.uniform(0, 0.35), rng.uniform(0.3, 0.9))
        _poly(cv, [[x, top], [x + bw, top], [x + bw, horizon], [x, horizon]], wall)
        step_x, step_y = rng.uniform(0.04, 0.1) * w, rng.uniform(0.05, 0.12) * h
        glass = _hsv(rng.uniform(0.5, 0.7), rng.uniform(0.1, 0.4), rng.uniform(0.15, 0.6))
        for wx in np.arange(x + step_x * 0.3, x + bw - step_x * 0.6, step_x):
            for wy in np.arange(top + step_y * 0.3, horizon - step_y * 0.6, step_y):
                _poly(
                    cv,
                    [
                        [wx, wy],
                        [wx + step_x * 0.6, wy],
                        [wx + step_x * 0.6, wy + step_y * 0.6],
                        [wx, wy + step_y * 0.6],
                    ],
                    glass,
                )
        x += bw + rng.uniform(0, 0.05) * w
    road = _hsv(0, 0, rng.uniform(0.2, 0.5))
    _poly(cv, [[0, horizon], [w, horizon], [w, h], [0, h]], road)
    for k in range(int(rng.integers(0, 4))):
        ly = horizon + (h - horizon) * rng.uniform(0.2, 0.9)
        _poly(
            cv, [[0, ly], [w, ly + rng.uniform(-5, 5)], [w, ly + 3], [0, ly + 3]], np.array([230, 230, 230], np.float32)
        )
        del k
    if rng.random() < 0.5:
        bx0, bx1 = rng.uniform(-0.3, 0.4) * w, rng.uniform(0.6, 1.3) * w
        by0, by1 = horizon - rng.uniform(0.2, 0.5) * h, horizon + rng.uniform(0.05, 0.25) * h
        body = _object_colour(rng, STYLES["train"], 0.3)
        _poly(cv, [[bx0, by0], [bx1, by0], [bx1, by1], [bx0, by1]], body)
        for wx in np.linspace(bx0 + 10, bx1 - 40, int(rng.integers(3, 8))):
            _poly(cv, [[wx, by0 + 10], [wx + 30, by0 + 10], [wx + 30, (by0 + by1) / 2], [wx, (by0 + by1) / 2]],
                  _hsv(0.55, 0.2, 0.25))  # fmt: skip
        r = (by1 - by0) * 0.18
        for wx in (bx0 + (bx1 - bx0) * 0.2, bx0 + (bx1 - bx0) * 0.8):
            _poly(cv, _ellipse(wx, by1, r, r), np.array([25, 25, 25], np.float32))
            _poly(cv, _ellipse(wx, by1, r * 0.45, r * 0.45), np.array([150, 150, 150], np.float32))


def _room(rng: np.random.Generator, style: Style, cv: Canvas) -> None:
    """A wall with doors, windows, frames and shelves."""
    w, h = cv.w, cv.h
    cv.img[:] = _background(rng, h, w)
    for _ in range(int(rng.integers(1, 5))):
        x0, y0 = rng.uniform(-0.1, 0.9) * w, rng.uniform(-0.1, 0.8) * h
        x1, y1 = x0 + rng.uniform(0.1, 0.5) * w, y0 + rng.uniform(0.1, 0.6) * h
        frame = _object_colour(rng, style, 0.5) * rng.uniform(0.4, 1.0)
        _poly(cv, [[x0, y0], [x1, y0], [x1, y1], [x0, y1]], frame)
        m = min(x1 - x0, y1 - y0) * rng.uniform(0.05, 0.15)
        _poly(
            cv,
            [[x0 + m, y0 + m], [x1 - m, y0 + m], [x1 - m, y1 - m], [x0 + m, y1 - m]],
            _object_colour(rng, style, 0.5),
        )


def render_negative(
    seed: int,
    index: int,
    style: Style | str = "train",
    size: tuple[int, int] | None = None,
    backdrops: Sequence[str] = (),
) -> Scene:
    """A scene with nothing to label: people in a street or a room, with a few stray bottles and bowls.

    With ``backdrops`` (real photo paths), most negatives are a crop of one instead, with fewer
    drawn people on top.
    """
    style = STYLES[style] if isinstance(style, str) else style
    rng = np.random.default_rng([seed, index, style.code, 99])
    width, height = size if size else SIZES[int(rng.integers(0, len(SIZES)))]
    cv = Canvas(np.zeros((height, width, 3), np.float32))
    light = Light(azimuth=rng.uniform(-1, 1), shadow=rng.uniform(0.15, 0.4), offset=(rng.uniform(-0.5, 0.5), 0.1))
    brng = _backdrop_rng(seed, index, style)
    photo = bool(backdrops) and brng.random() < BACKDROP_NEGATIVES
    if photo:
        cv.img = _photo_crop(brng, backdrops, height, width)
    elif rng.random() < 0.5:
        _street(rng, cv)
    else:
        _room(rng, style, cv)
    if rng.random() < 0.35:  # stray upright objects, with no table under them
        cam = _camera(rng, style, width, height)
        for _ in range(int(rng.integers(1, 3))):
            xy = cam.unproject(np.array([[rng.uniform(0.1, 0.9) * width, rng.uniform(0.3, 0.95) * height]]))[0]
            make_standing_distractor(rng, style, cam, float(xy[0]), float(xy[1]), light).draw(cv, 0)
    for _ in range(int(rng.integers(0, 5))):
        r = rng.uniform(0.04, 0.25) * min(width, height)
        _blob(rng, style, cv, _blob_outline(rng, rng.uniform(0, width), rng.uniform(0, height), r), light)
    for _ in range(int(rng.choice([0, 0, 1, 1, 2] if photo else [1, 1, 2, 2, 3, 4]))):
        _person(rng, style, cv, light)
    image = _camera_effects(rng, style, cv.img)
    truth = {
        "width": width,
        "height": height,
        "seed": seed,
        "index": index,
        "style": style.name,
        "negative": True,
        "surface": None,
        "mugs": [],
        "coasters": [],
        "distractors": [],
    }
    return Scene(image, [], truth)


def is_negative(seed: int, index: int, style: Style | str, negatives: float) -> bool:
    """Whether scene ``index`` is a negative one; its own generator, so positives stay the same scenes."""
    style = STYLES[style] if isinstance(style, str) else style
    return negatives > 0 and float(np.random.default_rng([seed, index, style.code, 13]).random()) < negatives


def _clear_of_others(t: Thing, things: list[Thing], host_index: int | None) -> bool:
    """Clear of every placed object (apart, boxes barely overlapping) except its host coaster, if any."""
    for j, o in enumerate(things):
        if j == host_index:
            continue
        if math.hypot(t.x - o.x, t.y - o.y) < t.radius + o.radius + 0.5:
            return False
        if _boxes_overlap(t.box, o.box) > 0.35:
            return False
    return True


def _rule_clear(m: Thing, things: list[Thing]) -> bool:
    """A mug that is not on a coaster must not look like it is, to the box rule."""
    return on_coaster_from_boxes(m.box, [o.box for o in things if o.cls == COASTER]) is None


def _r(box: Iterable[float]) -> list[float]:
    return [round(float(v), 2) for v in box]


# --------------------------------------------------------------------------------------------
# Data set on disk (YOLO layout) and its checks.
# --------------------------------------------------------------------------------------------


class DatasetError(ValueError):
    """A rendered data set failed its label checks."""


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
    photos cropped behind tables and into negatives (see ``models.photos``); the manifest records
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
        "generator": "models.synth",
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


# --------------------------------------------------------------------------------------------
# Contact sheet: a few scenes with their boxes, for a person to look at.
# --------------------------------------------------------------------------------------------

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
