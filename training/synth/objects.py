"""What stands on the table: patch compositing, mugs (with and without handles), coasters (cork,
slate, fabric, round, square...), flat and upright look-alikes, and the people, streets and rooms of
negative scenes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from mugpos.training.synth.camera import Camera
from mugpos.training.synth.styles import COASTER, MUG, STYLES, Array, Box, Style, _hsv, _object_colour
from mugpos.training.synth.textures import _background, _fractal, _noise


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
