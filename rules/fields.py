"""The fields a rule may compare, their types and the operators that fit each type.

One catalog serves the decoder (reject ``mug.colour > 3`` before it is stored), the compiler (how to
read a value out of a decoded ``PositionEvent``) and the docs. ``mug.*`` fields are read from each
mug of ``PositionEvent.mugs``; ``image.*`` fields from the event itself. ``mug.attributes.KEY`` and
``image.metadata.KEY`` read string maps; a key that is not there is unknown (null), not an error.
``mug.zone.NAME`` is a *membership* field: true when the camera's zone NAME holds the mug (NAME is in
the mug's ``zones``), false when the camera has that zone but the mug is elsewhere (NAME only in the
image's ``zones``), and unknown when the camera has no such zone, so a rule about a zone one camera
lacks neither fires nor, negated, fires everywhere there. Events from before zones lack both lists:
they read as empty, so every zone is unknown there.
A *derived* field (``scale`` set) is worked out when a rule reads it, from a mug field and an image
field, so rules can speak centimetres where the event carries pixels without changing the schema.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum
from typing import Literal

from mugpos.core.cameras import ZONE_NAME

Scope = Literal["mug", "image"]


class FieldType(Enum):
    """Value types of comparable fields."""

    BOOL = "boolean"
    NUMBER = "number"
    STRING = "string"


#: Operators allowed per field type. ``in`` takes a list of strings (the Avro contract's only array).
OPERATORS: dict[FieldType, tuple[str, ...]] = {
    FieldType.BOOL: ("==", "!="),
    FieldType.NUMBER: ("==", "!=", "<", "<=", ">", ">="),
    FieldType.STRING: ("==", "!=", "in"),
}
ALL_OPERATORS: tuple[str, ...] = ("==", "!=", "<", "<=", ">", ">=", "in")


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One comparable field: where it is read from and what type it holds."""

    name: str  # as written in rules, e.g. "mug.edge_distance_cm" or "mug.attributes.colour"
    scope: Scope
    attr: str  # key in the mug record (scope mug) or the event record (scope image)
    type: FieldType
    doc: str
    key: str | None = None  # map key for mug.attributes.KEY / image.metadata.KEY
    choices: tuple[str, ...] | None = None  # closed vocabulary of a string field
    scale: str | None = None  # derived: ``attr`` divided by this image field (null when either is unknown)
    #: membership: the image list naming every value the mug list ``attr`` may hold; the field is
    #: ``key in mug[attr]``, false only when ``key`` is in this list too, else unknown (mug.zone.NAME)
    listed: str | None = None

    @property
    def operators(self) -> tuple[str, ...]:
        return OPERATORS[self.type]


_N, _B, _S = FieldType.NUMBER, FieldType.BOOL, FieldType.STRING

_FIXED: tuple[FieldSpec, ...] = (
    FieldSpec("mug.index", "mug", "index", _N, "Index of the mug's detection in the DetectionEvent."),
    FieldSpec("mug.confidence", "mug", "confidence", _N, "Detection confidence of the mug, 0 to 1."),
    FieldSpec("mug.on_coaster", "mug", "on_coaster", _B, "Whether the mug stands on a coaster (null: unknown)."),
    FieldSpec("mug.coaster_index", "mug", "coaster_index", _N, "Detection index of its coaster."),
    FieldSpec("mug.coaster_offset_px", "mug", "coaster_offset_px", _N, "Mug base to coaster centre, pixels."),
    FieldSpec(
        "mug.coaster_offset_frac", "mug", "coaster_offset_frac", _N, "That offset in coaster half-axes (1: the rim)."
    ),
    FieldSpec(
        "mug.coaster_offset_cm",
        "mug",
        "coaster_offset_px",
        _N,
        "That offset in centimetres: coaster_offset_px over the image's px_per_cm (derived).",
        scale="px_per_cm",
    ),
    FieldSpec("mug.edge_distance_px", "mug", "edge_distance_px", _N, "Gap to the surface edge, pixels (<0 overhangs)."),
    FieldSpec(
        "mug.edge_distance_frac", "mug", "edge_distance_frac", _N, "That gap over the surface size (its shorter side)."
    ),
    FieldSpec("mug.edge_distance_cm", "mug", "edge_distance_cm", _N, "Gap to the surface edge, centimetres."),
    FieldSpec("mug.nearest_mug_px", "mug", "nearest_mug_px", _N, "Gap to the nearest other mug, pixels."),
    FieldSpec("mug.nearest_mug_cm", "mug", "nearest_mug_cm", _N, "Gap to the nearest other mug, centimetres."),
    FieldSpec("mug.quality", "mug", "quality", _N, "Placement quality, 0 to 100."),
    FieldSpec("mug.track_id", "mug", "track_id", _N, "Id of the mug across its camera's frames (null: untracked)."),
    FieldSpec("image.image_id", "image", "image_id", _S, "Id of the image."),
    FieldSpec("image.source", "image", "source", _S, "Source (camera) of the image."),
    FieldSpec("image.model_id", "image", "model_id", _S, "Detector that saw it."),
    FieldSpec("image.image_width", "image", "image_width", _N, "Width in pixels."),
    FieldSpec("image.image_height", "image", "image_height", _N, "Height in pixels."),
    FieldSpec("image.px_per_cm", "image", "px_per_cm", _N, "Scale in pixels per centimetre (null: unknown)."),
    FieldSpec(
        "image.scale_source",
        "image",
        "scale_source",
        _S,
        "Where the scale came from.",
        choices=("metadata", "camera", "coaster"),
    ),
    FieldSpec("image.mug_count", "image", "mug_count", _N, "Mugs found."),
    FieldSpec("image.coaster_count", "image", "coaster_count", _N, "Coasters found."),
    FieldSpec("image.surface_count", "image", "surface_count", _N, "Tables (supporting surfaces) found."),
    FieldSpec(
        "image.verdict", "image", "verdict", _S, "Overall placement verdict.", choices=("ok", "warning", "violation")
    ),
)
FIXED_FIELDS: dict[str, FieldSpec] = {spec.name: spec for spec in _FIXED}

#: Map-valued fields reachable as ``PREFIX.KEY`` (string values).
MAP_FIELDS: dict[str, tuple[Scope, str, str]] = {
    "mug.attributes": ("mug", "attributes", "The mug's attributes from detection, e.g. mug.attributes.colour."),
    "image.metadata": ("image", "metadata", "The ImageEvent's metadata, e.g. image.metadata.room."),
}
_MAP_KEY = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")

#: ``mug.zone.NAME``: whether the mug stands in the camera's zone NAME (``mugpos.core.cameras``).
ZONE_PREFIX = "mug.zone."
_ZONE_DOC = "Whether the mug's footprint is in the camera's zone NAME (null: the camera has no such zone)."

MAX_FIELD_CHARS = 128


def lookup_field(name: str) -> FieldSpec | None:
    """The spec of field ``name``, or None when no rule may compare it."""
    spec = FIXED_FIELDS.get(name)
    if spec is not None:
        return spec
    if len(name) > MAX_FIELD_CHARS:
        return None
    zone = zone_of(name)
    if zone is not None:
        return FieldSpec(name, "mug", "zones", FieldType.BOOL, _ZONE_DOC, key=zone, listed="zones")
    for prefix, (scope, attr, doc) in MAP_FIELDS.items():
        if name.startswith(prefix + "."):
            key = name[len(prefix) + 1 :]
            if _MAP_KEY.fullmatch(key):
                return FieldSpec(name, scope, attr, FieldType.STRING, doc, key=key)
    return None


def zone_field(zone: str) -> str:
    """The field of zone ``zone`` (``laptop`` -> ``mug.zone.laptop``); the name is not checked here."""
    return ZONE_PREFIX + zone


def zone_of(name: str) -> str | None:
    """The zone a ``mug.zone.NAME`` field is about, or None for any other field (or a bad zone name)."""
    if not name.startswith(ZONE_PREFIX):
        return None
    zone = name[len(ZONE_PREFIX) :]
    return zone if ZONE_NAME.fullmatch(zone) else None


def field_names() -> list[str]:
    """Every comparable field, map and zone fields shown with a placeholder (for messages and docs)."""
    return [*FIXED_FIELDS, *(f"{prefix}.KEY" for prefix in MAP_FIELDS), ZONE_PREFIX + "NAME"]
