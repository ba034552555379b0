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

Split by concern: ``styles`` (palettes, ranges, class names), ``camera`` (homography, photo
finish), ``textures``, ``objects`` (mugs, coasters, look-alikes, people), ``layout`` (scenes and their
truth) and ``dataset`` (YOLO files on disk, checks, contact sheets). This module re-exports the
public names.
"""

from __future__ import annotations

from mugpos.training.synth.camera import Camera
from mugpos.training.synth.dataset import (
    check_dataset,
    contact_sheet,
    draw_truth,
    synthesize,
    write_data_yaml,
    yolo_lines,
)
from mugpos.training.synth.exceptions import DatasetError
from mugpos.training.synth.layout import (
    EDGES,
    Scene,
    Table,
    is_negative,
    mug_base_point,
    on_coaster_from_boxes,
    render_negative,
    render_scene,
)
from mugpos.training.synth.objects import make_coaster, make_flat_distractor, make_mug, make_standing_distractor
from mugpos.training.synth.styles import (
    BACKDROP_BEHIND_TABLE,
    BACKDROP_NEGATIVES,
    BACKDROP_TABLE_TOP,
    BASE_FRACTION,
    CLASS_NAMES,
    COASTER,
    COASTER_RIM_CM,
    MUG,
    SIZES,
    STYLES,
    SURFACE,
    Style,
)

__all__ = [
    "BACKDROP_BEHIND_TABLE", "BACKDROP_NEGATIVES", "BACKDROP_TABLE_TOP", "BASE_FRACTION", "CLASS_NAMES", "COASTER",
    "COASTER_RIM_CM", "EDGES", "MUG", "SIZES", "STYLES", "SURFACE", "Camera", "DatasetError", "Scene", "Style", "Table",
    "check_dataset", "contact_sheet", "draw_truth", "is_negative", "make_coaster", "make_flat_distractor", "make_mug",
    "make_standing_distractor", "mug_base_point", "on_coaster_from_boxes", "render_negative", "render_scene",
    "synthesize", "write_data_yaml", "yolo_lines",
]  # fmt: skip
