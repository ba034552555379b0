"""letterbox/unletterbox: Ultralytics-identical geometry and an exact inverse for boxes."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mugpos.models.letterbox import Letterboxed, letterbox, unletterbox


def gains(lb: Letterboxed) -> tuple[float, float]:
    """The exact per-axis scale of the resized content (sides are rounded to whole pixels)."""
    width, height = lb.orig_size
    return max(round(width * lb.scale), 1) / width, max(round(height * lb.scale), 1) / height


@pytest.mark.parametrize(
    ("width", "height", "size", "pad"),
    [
        (640, 480, 640, (0.0, 80.0)),
        (480, 640, 640, (80.0, 0.0)),
        (1920, 1080, 640, (0.0, 140.0)),
        (300, 300, 320, (0.0, 0.0)),
        (100, 37, 64, (0.0, 20.0)),
        (1, 1000, 640, (319.0, 0.0)),
    ],
    ids=["landscape", "portrait", "full_hd", "square_upscale", "odd_padding", "one_pixel_wide"],
)
def test_geometry(width: int, height: int, size: int, pad: tuple[float, float]) -> None:
    img = np.full((height, width, 3), 255, np.uint8)
    lb = letterbox(img, size)
    assert lb.image.shape == (size, size, 3)
    assert lb.image.dtype == np.uint8
    assert lb.orig_size == (width, height)
    assert lb.scale == pytest.approx(min(size / width, size / height))
    assert lb.pad == pad
    # content where the geometry says, fill everywhere else
    gx, gy = gains(lb)
    left, top = int(lb.pad[0]), int(lb.pad[1])
    new_w, new_h = round(width * gx), round(height * gy)
    mask = np.zeros((size, size), bool)
    mask[top : top + new_h, left : left + new_w] = True
    assert (lb.image[mask] == 255).all()
    assert (lb.image[~mask] == 114).all()


@pytest.mark.parametrize(("width", "height"), [(640, 480), (333, 517), (1280, 720), (64, 64)], ids=str)
def test_matches_ultralytics_letterbox(width: int, height: int) -> None:
    """Same pixels as the preprocessing of YOLO.predict(rect=False), so detections match it."""
    from ultralytics.data.augment import LetterBox

    img = np.random.default_rng(width).integers(0, 256, (height, width, 3), dtype=np.uint8)
    theirs: Any = LetterBox((640, 640), auto=False, stride=32)(image=img)
    assert np.array_equal(letterbox(img, 640).image, theirs)


def test_fill_value_and_rejects_bad_input() -> None:
    lb = letterbox(np.zeros((10, 20, 3), np.uint8), 32, fill=7)
    assert lb.image[0, 0].tolist() == [7, 7, 7]
    with pytest.raises(ValueError, match="HxWx3"):
        letterbox(np.zeros((10, 20), np.uint8), 32)
    with pytest.raises(ValueError, match="positive"):
        letterbox(np.zeros((10, 20, 3), np.uint8), 0)


def test_unletterbox_clips_to_the_image() -> None:
    lb = letterbox(np.zeros((480, 640, 3), np.uint8), 640)
    boxes = unletterbox(np.array([[-50.0, 0.0, 700.0, 640.0]]), lb)
    assert boxes.tolist() == [[0.0, 0.0, 640.0, 480.0]]
    assert unletterbox(np.zeros((0, 4)), lb).shape == (0, 4)


def test_a_drawn_rectangle_maps_back_to_where_it_was() -> None:
    img = np.zeros((517, 333, 3), np.uint8)
    img[100:300, 50:250] = 255
    lb = letterbox(img, 640)
    ys, xs = np.nonzero(lb.image[..., 0] > 127)
    found = np.array([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]], float)
    back = unletterbox(found, lb)[0]
    assert back == pytest.approx([50, 100, 250, 300], abs=1.5 / lb.scale)


@st.composite
def image_and_box(draw: st.DrawFn) -> tuple[int, int, int, tuple[float, float, float, float]]:
    width = draw(st.integers(1, 2000))
    height = draw(st.integers(1, 2000))
    size = draw(st.sampled_from([32, 320, 416, 640, 1280]))
    x1, x2 = sorted(draw(st.floats(0, width)) for _ in range(2))
    y1, y2 = sorted(draw(st.floats(0, height)) for _ in range(2))
    return width, height, size, (x1, y1, x2, y2)


@settings(max_examples=150, deadline=None)
@given(image_and_box())
def test_unletterbox_inverts_the_mapping(case: tuple[int, int, int, tuple[float, float, float, float]]) -> None:
    """Property: a box mapped into model pixels the way the content was resized comes back unchanged;
    mapped with the nominal ``scale`` instead it is off by at most the resize's rounding of a side
    (half a model pixel, unless a side was clamped to one pixel)."""
    width, height, size, box = case
    lb = letterbox(np.zeros((height, width, 3), np.uint8), size)
    gx, gy = gains(lb)
    x1, y1, x2, y2 = box
    exact = np.array([[x1 * gx + lb.pad[0], y1 * gy + lb.pad[1], x2 * gx + lb.pad[0], y2 * gy + lb.pad[1]]])
    assert unletterbox(exact, lb)[0] == pytest.approx(box, abs=1e-6 * max(width, height))

    s = lb.scale
    nominal = np.array([[x1 * s + lb.pad[0], y1 * s + lb.pad[1], x2 * s + lb.pad[0], y2 * s + lb.pad[1]]])
    back = unletterbox(nominal, lb)[0]
    rounding_x, rounding_y = abs(gx - s) * width, abs(gy - s) * height  # in model pixels
    assert rounding_x <= 0.5 + 1e-9 or round(width * gx) == 1
    assert rounding_y <= 0.5 + 1e-9 or round(height * gy) == 1
    assert np.all(np.abs(back[[0, 2]] - [x1, x2]) <= rounding_x / gx + 1e-6)
    assert np.all(np.abs(back[[1, 3]] - [y1, y2]) <= rounding_y / gy + 1e-6)


@pytest.mark.parametrize(
    ("width", "height", "shape", "pad"),
    [
        (640, 480, (480, 640), (0.0, 0.0)),
        (480, 640, (640, 480), (0.0, 0.0)),
        (1920, 1080, (384, 640), (0.0, 12.0)),
        (333, 517, (640, 416), (2.0, 0.0)),
        (64, 64, (640, 640), (0.0, 0.0)),
    ],
    ids=["4:3", "3:4", "16:9", "odd", "square"],
)
def test_rect_pads_only_to_the_stride(
    width: int, height: int, shape: tuple[int, int], pad: tuple[float, float]
) -> None:
    lb = letterbox(np.full((height, width, 3), 255, np.uint8), 640, stride=32)
    assert lb.image.shape[:2] == shape and lb.size == 640
    assert lb.pad == pad
    box = np.array([[0.0, 0.0, shape[1], shape[0]]])
    assert unletterbox(box, lb).tolist() == [[0.0, 0.0, float(width), float(height)]]


@pytest.mark.parametrize(("width", "height"), [(640, 480), (333, 517), (1280, 720), (64, 64)], ids=str)
def test_rect_matches_ultralytics_letterbox(width: int, height: int) -> None:
    """Same pixels as the preprocessing of YOLO.predict's default (rect: auto=True)."""
    from ultralytics.data.augment import LetterBox

    img = np.random.default_rng(width).integers(0, 256, (height, width, 3), dtype=np.uint8)
    theirs: Any = LetterBox((640, 640), auto=True, stride=32)(image=img)
    assert np.array_equal(letterbox(img, 640, stride=32).image, theirs)


def test_rect_needs_a_size_that_is_a_multiple_of_the_stride() -> None:
    with pytest.raises(ValueError, match="multiple of stride"):
        letterbox(np.zeros((10, 10, 3), np.uint8), 100, stride=32)
