"""ClassMap: model class names -> domain labels, with overrides, and what a model can see."""

from __future__ import annotations

import pytest

from mugpos.models.classmap import ClassMap, normalise, parse_overrides

COCO_SUBSET = {0: "person", 41: "cup", 60: "dining table", 63: "laptop"}
CUSTOM = ["mug", "coaster", "table"]


@pytest.mark.parametrize(
    ("overrides", "class_name", "label"),
    [
        ({}, "cup", "mug"),
        ({}, "dining table", "surface"),
        ({}, "Dining_Table", "surface"),
        ({}, "mug", "mug"),
        ({}, "Coffee-Mug", "mug"),
        ({}, "coaster", "coaster"),
        ({}, "table", "surface"),
        ({}, "surface", "surface"),
        ({}, "laptop", "laptop"),
        ({}, "Wine Glass", "Wine Glass"),
        ({"wine glass": "mug"}, "wine glass", "mug"),
        ({"cup": "vessel"}, "cup", "vessel"),
        ({"Dining Table": "desk"}, "dining table", "desk"),
        ({"bowl": "coaster"}, "cup", "mug"),
    ],
    ids=[
        "coco_cup_is_mug",
        "coco_dining_table_is_surface",
        "separators_and_case_ignored",
        "custom_mug",
        "coffee_mug_alias",
        "custom_coaster",
        "custom_table_is_surface",
        "custom_surface",
        "unknown_keeps_own_name",
        "unknown_keeps_original_spelling",
        "override_adds_mapping",
        "override_beats_default",
        "override_key_normalised",
        "override_leaves_others_alone",
    ],
)
def test_label(overrides: dict[str, str], class_name: str, label: str) -> None:
    assert ClassMap(overrides).label(class_name) == label


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("cup=mug,dining table=surface", {"cup": "mug", "dining table": "surface"}),
        (" cup = mug , , Dining_Table=surface ", {"cup": "mug", "dining table": "surface"}),
        ("", {}),
        ("bowl=coaster", {"bowl": "coaster"}),
    ],
    ids=["two_pairs", "whitespace_and_empty_items", "empty", "one_pair"],
)
def test_parse_overrides(spec: str, expected: dict[str, str]) -> None:
    assert parse_overrides(spec) == expected
    assert ClassMap.parse(spec).overrides == expected


@pytest.mark.parametrize(
    "spec", ["cupmug", "=mug", "cup=", "cup=mug,table"], ids=["no_equals", "no_name", "no_label", "one_bad"]
)
def test_parse_rejects_malformed(spec: str) -> None:
    with pytest.raises(ValueError, match="class mapping"):
        parse_overrides(spec)


@pytest.mark.parametrize(
    ("names", "spec", "label", "expected"),
    [
        (COCO_SUBSET, "", "mug", True),
        (COCO_SUBSET, "", "surface", True),
        (COCO_SUBSET, "", "coaster", False),
        (COCO_SUBSET, "", "laptop", True),
        (COCO_SUBSET, "laptop=coaster", "coaster", True),
        (CUSTOM, "", "coaster", True),
        (CUSTOM, "", "surface", True),
        (None, "", "mug", False),
    ],
    ids=[
        "coco_sees_mugs",
        "coco_sees_surfaces",
        "coco_cannot_see_coasters",
        "coco_other_class",
        "override_gives_coco_coasters",
        "custom_sees_coasters",
        "custom_table_is_surface",
        "unbound_sees_nothing",
    ],
)
def test_has_label(names: dict[int, str] | list[str] | None, spec: str, label: str, expected: bool) -> None:
    assert ClassMap.parse(spec, names).has_label(label) is expected


def test_bind_and_lookups() -> None:
    unbound = ClassMap({"laptop": "screen"})
    bound = unbound.bind(COCO_SUBSET)
    assert unbound.names == {}
    assert bound.names == COCO_SUBSET
    assert bound.overrides == {"laptop": "screen"}
    assert bound.label_for_id(41) == "mug"
    assert bound.label_for_id(60) == "surface"
    assert bound.label_for_id(63) == "screen"
    assert bound.class_ids("mug") == [41]
    assert bound.labels == frozenset({"person", "mug", "surface", "screen"})
    with pytest.raises(KeyError, match="class id 7"):
        bound.label_for_id(7)
    assert ClassMap(names=CUSTOM).names == {0: "mug", 1: "coaster", 2: "table"}
    assert bound == unbound.bind(COCO_SUBSET)
    assert hash(bound) == hash(unbound.bind(COCO_SUBSET))
    assert bound != unbound


def test_normalise() -> None:
    assert normalise("  Dining__Table ") == "dining table"
    assert normalise("coffee-mug") == "coffee mug"
