"""Translate a model's class names into the domain's labels (mug, coaster, surface).

Positioning logic speaks in domain labels so it works unchanged whether the
detector is a stock COCO model (``cup``, ``dining table``) or a custom one
(``mug``, ``coaster``, ``table``). Classes without a mapping keep their own
name and are never dropped: downstream rules may still care about a laptop.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Final

MUG: Final = "mug"
COASTER: Final = "coaster"
SURFACE: Final = "surface"
DOMAIN_LABELS: Final = (MUG, COASTER, SURFACE)

DEFAULT_ALIASES: Final[Mapping[str, str]] = {
    "cup": MUG,
    "mug": MUG,
    "coffee mug": MUG,
    "coaster": COASTER,
    "dining table": SURFACE,
    "table": SURFACE,
    "surface": SURFACE,
}


def normalise(name: str) -> str:
    """Case- and separator-insensitive key, so ``Dining_Table`` matches ``dining table``."""
    return " ".join(name.lower().replace("_", " ").replace("-", " ").split())


def parse_overrides(spec: str) -> dict[str, str]:
    """Parse ``"cup=mug,dining table=surface"`` into ``{"cup": "mug", "dining table": "surface"}``.

    Meant for a single environment variable; raises ValueError on a malformed pair.
    """
    overrides: dict[str, str] = {}
    for raw in spec.split(","):
        pair = raw.strip()
        if not pair:
            continue
        name, sep, label = pair.partition("=")
        name, label = name.strip(), label.strip()
        if not sep or not name or not label:
            raise ValueError(f"bad class mapping {pair!r}: expected 'class name=label'")
        overrides[normalise(name)] = label
    return overrides


class ClassMap:
    """Maps model class names to domain labels; optionally bound to one model's classes.

    Unbound, it only translates names. Bound (``bind``), it also answers which labels
    the model can produce at all, e.g. ``has_label("coaster")`` is False for COCO models.
    """

    __slots__ = ("_names", "_overrides")

    def __init__(
        self,
        overrides: Mapping[str, str] | None = None,
        names: Mapping[int, str] | Iterable[str] | None = None,
    ) -> None:
        self._overrides: dict[str, str] = {normalise(k): v.strip() for k, v in (overrides or {}).items()}
        for key, value in self._overrides.items():
            if not key or not value:
                raise ValueError(f"bad class mapping {key!r}={value!r}")
        if names is None:
            self._names: dict[int, str] = {}
        elif isinstance(names, Mapping):
            self._names = {int(k): str(v) for k, v in names.items()}
        else:
            self._names = dict(enumerate(str(n) for n in names))

    @classmethod
    def parse(cls, spec: str, names: Mapping[int, str] | Iterable[str] | None = None) -> ClassMap:
        """Build from an override string such as ``"cup=mug,dining table=surface"``."""
        return cls(parse_overrides(spec), names)

    def bind(self, names: Mapping[int, str] | Iterable[str]) -> ClassMap:
        """Return a copy bound to a model's class names (index -> name)."""
        return ClassMap(self._overrides, names)

    @property
    def overrides(self) -> dict[str, str]:
        """The configured overrides (normalised class name -> label)."""
        return dict(self._overrides)

    @property
    def names(self) -> dict[int, str]:
        """The bound model's classes (empty when unbound)."""
        return dict(self._names)

    def label(self, class_name: str) -> str:
        """Domain label for a class name; an unmapped class keeps its own name."""
        key = normalise(class_name)
        if key in self._overrides:
            return self._overrides[key]
        return DEFAULT_ALIASES.get(key, class_name)

    def label_for_id(self, class_id: int) -> str:
        """Domain label for a class index of the bound model."""
        try:
            return self.label(self._names[int(class_id)])
        except KeyError:
            raise KeyError(f"class id {class_id} is not a class of the bound model") from None

    @property
    def labels(self) -> frozenset[str]:
        """Every label the bound model can produce."""
        return frozenset(self.label(name) for name in self._names.values())

    def has_label(self, label: str) -> bool:
        """Whether the bound model can produce ``label`` at all (False when unbound)."""
        return label in self.labels

    def class_ids(self, label: str) -> list[int]:
        """Class indices of the bound model that map to ``label``."""
        return sorted(i for i, name in self._names.items() if self.label(name) == label)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ClassMap):
            return NotImplemented
        return self._overrides == other._overrides and self._names == other._names

    def __hash__(self) -> int:
        return hash((tuple(sorted(self._overrides.items())), tuple(sorted(self._names.items()))))

    def __repr__(self) -> str:
        return f"ClassMap(overrides={self._overrides!r}, classes={len(self._names)})"
