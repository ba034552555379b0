"""Scene layout: the table, where mugs, coasters and distractors go (unambiguous to the box rule),
and the ground truth of each scene; negative scenes with nothing to label.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import cv2
import numpy as np

from mugpos.training.synth.camera import Camera, _camera, _camera_effects
from mugpos.training.synth.objects import (
    Canvas,
    Light,
    Thing,
    _blob,
    _blob_outline,
    _person,
    _room,
    _street,
    make_coaster,
    make_flat_distractor,
    make_mug,
    make_standing_distractor,
)
from mugpos.training.synth.styles import (
    BACKDROP_BEHIND_TABLE,
    BACKDROP_NEGATIVES,
    BACKDROP_TABLE_TOP,
    BASE_FRACTION,
    COASTER,
    COASTER_RIM_CM,
    MUG,
    SIZES,
    STYLES,
    SURFACE,
    Array,
    Box,
    Style,
)
from mugpos.training.synth.textures import _backdrop_rng, _background, _photo_crop, _table_texture

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
