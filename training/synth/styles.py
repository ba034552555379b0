"""Styles: named bundles of palette, texture, lighting and camera ranges, and the class names.

"holdout" is never used for training, so the held-out evaluation measures generalisation to
colours, textures and coaster materials the model never saw.
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass
from typing import Final

import numpy as np

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
