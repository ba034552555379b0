"""Real photographs that ship inside installed packages, split once into two disjoint sets.

The detector is trained on rendered scenes; real photos are the only check of how it behaves on
the world, and no photo may be downloaded. The packages at hand ship a few dozen:

- ``EVAL``: photos a person can describe (people, a street, a cat, a motorbike, one real cup on a
  saucer). They are never used for training, so ``mugpos eval`` can count phantom mugs and
  coasters on them and check that the real cup is still found.
- ``BACKDROPS``: the rest (textures, scientific images, a camera man, a horse, a rocket). ``mugpos
  synth --backdrops installed`` crops them behind tables and into negative scenes, so that the
  model sees real-world pixels that hold no mug or coaster.

A photo is listed by the package that ships it; missing packages simply give fewer photos.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Final


@dataclass(frozen=True)
class Photo:
    """One shipped photo: the package-relative location and what a person sees in it."""

    package: str
    relpath: str
    contents: str
    cups: int = 0  # real cups or mugs a person sees
    coasters: int = 0

    @property
    def name(self) -> str:
        return Path(self.relpath).name

    def path(self) -> Path | None:
        """The file inside the installed package, or None when the package or file is absent."""
        spec = importlib.util.find_spec(self.package)
        if spec is None or not spec.submodule_search_locations:
            return None
        for root in spec.submodule_search_locations:
            candidate = Path(root) / self.relpath
            if candidate.is_file():
                return candidate
        return None


_NOTHING = "; no mug, coaster or table"

EVAL: Final[tuple[Photo, ...]] = (
    Photo("ultralytics", "assets/bus.jpg", "a bus and pedestrians on a street" + _NOTHING),
    Photo("ultralytics", "assets/zidane.jpg", "two men in suits, one with a tie, a crowd behind them" + _NOTHING),
    Photo("matplotlib", "mpl-data/sample_data/grace_hopper.jpg", "portrait of Grace Hopper in uniform" + _NOTHING),
    Photo("skimage", "data/astronaut.png", "portrait of an astronaut with a flag" + _NOTHING),
    Photo("skimage", "data/chelsea.png", "a tabby cat's head" + _NOTHING),
    Photo("skimage", "data/motorcycle_left.png", "a motorbike in a workshop" + _NOTHING),
    Photo("skimage", "data/coffee.png", "a cup of coffee on a saucer with a spoon, on a table; no coaster", cups=1),
)

BACKDROPS: Final[tuple[Photo, ...]] = tuple(
    Photo("skimage", f"data/{name}", "backdrop")
    for name in (
        "brick.png",
        "camera.png",
        "cell.png",
        "chessboard_RGB.png",
        "clock_motion.png",
        "coins.png",
        "color.png",
        "grass.png",
        "gravel.png",
        "horse.png",
        "hubble_deep_field.jpg",
        "ihc.png",
        "logo.png",
        "moon.png",
        "page.png",
        "retina.jpg",
        "rocket.jpg",
        "text.png",
    )
)
# skimage's motorcycle_right.png is the other half of motorcycle_left's stereo pair: in neither set.

EVAL_BY_NAME: Final[dict[str, Photo]] = {p.name: p for p in EVAL}


def eval_photos() -> dict[str, Path]:
    """The evaluation photos that are installed here: name -> path."""
    return {p.name: path for p in EVAL if (path := p.path()) is not None}


def backdrop_photos() -> list[Path]:
    """The backdrop photos that are installed here, in a fixed order (scenes depend on it)."""
    return [path for p in BACKDROPS if (path := p.path()) is not None]
