"""Attribute taggers: the dominant-colour fallback and CLIP through its real local-file loading path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mugpos.models.attributes import (
    COLOURS,
    HANDLE_SIDES,
    MATERIALS,
    AttributeTagger,
    ClipAttributes,
    DominantColour,
    crop,
    load_attribute_tagger,
)
from tests.models.drawing import draw_mug_scene
from tests.models.netguard import cut_network

# The smallest of open_clip's bundled configurations with the bundled tokenizer: quick to build and save.
SMALL_ARCH = "ViT-S-32-alt"

SOLID = {
    "red": (210, 25, 30),
    "orange": (240, 140, 20),
    "yellow": (240, 220, 40),
    "green": (40, 160, 60),
    "blue": (30, 60, 200),
    "purple": (120, 40, 170),
    "pink": (245, 150, 190),
    "brown": (120, 70, 30),
    "black": (15, 15, 15),
    "white": (245, 245, 245),
    "grey": (128, 128, 128),
}


@pytest.mark.parametrize(("name", "rgb"), list(SOLID.items()), ids=list(SOLID))
def test_dominant_colour_names_a_solid_crop(name: str, rgb: tuple[int, int, int]) -> None:
    image = np.zeros((100, 100, 3), np.uint8)
    image[20:80, 20:80] = rgb
    [(attributes, scores)] = DominantColour().tag(image, [(20, 20, 80, 80)])
    assert attributes == {"colour": name}
    assert scores == {"colour": 1.0}


def test_dominant_colour_of_a_drawn_red_mug_ignores_the_table() -> None:
    image, box = draw_mug_scene(mug_colour=(200, 30, 30))
    [(attributes, scores)] = DominantColour().tag(image, [box])
    assert attributes["colour"] == "red"
    assert 0.5 < scores["colour"] <= 1.0


def test_dominant_colour_batches_and_degenerate_boxes() -> None:
    red = np.full((50, 50, 3), (220, 20, 20), np.uint8)
    blue = np.full((30, 40, 3), (20, 40, 220), np.uint8)
    tagger = DominantColour()
    results = tagger.tag_many([(red, [(0, 0, 50, 50), (10, 10, 10, 10)]), (blue, []), (blue, [(-5, -5, 500, 500)])])
    assert [[a["colour"] for a, _ in r] for r in results] == [["red", "red"], [], ["blue"]]
    assert isinstance(tagger, AttributeTagger)


def test_crop_is_clipped_and_never_empty() -> None:
    image = np.zeros((10, 20, 3), np.uint8)
    assert crop(image, (-5, -5, 100, 100)).shape == (10, 20, 3)
    assert crop(image, (3, 3, 3, 3)).shape == (1, 1, 3)
    assert crop(image, (2, 2, 6, 6), margin=0.5).shape == (8, 8, 3)


@pytest.fixture(scope="module")
def clip_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised open_clip model saved the way real weights are shipped (safetensors)."""
    import open_clip
    from safetensors.torch import save_file

    model = open_clip.create_model(SMALL_ARCH, pretrained=None)
    path = tmp_path_factory.mktemp("clip") / f"{SMALL_ARCH}.safetensors"
    save_file({k: v.half().contiguous() for k, v in model.state_dict().items()}, str(path))
    return path


@pytest.fixture(scope="module")
def clip(clip_weights: Path) -> ClipAttributes:
    with pytest.MonkeyPatch.context() as patch:
        cut_network(patch)
        return ClipAttributes(clip_weights, SMALL_ARCH, device="cpu")


def test_clip_tags_come_from_the_prompt_vocabulary(clip: ClipAttributes) -> None:
    image, box = draw_mug_scene()
    small, small_box = draw_mug_scene(320, 240)
    results = clip.tag_many([(image, [box, (0, 0, 60, 40)]), (small, []), (small, [small_box])])
    assert [len(r) for r in results] == [2, 0, 1]
    vocabulary = {"colour": COLOURS, "material": MATERIALS, "handle": HANDLE_SIDES}
    assert clip.vocabulary == vocabulary
    for attributes, scores in (tags for r in results for tags in r):
        assert set(attributes) == set(vocabulary) == set(scores)
        for key, value in attributes.items():
            assert value in vocabulary[key]
            assert 0.0 <= scores[key] <= 1.0
    assert clip.model_id.startswith(f"clip-{SMALL_ARCH}-")
    assert isinstance(clip, AttributeTagger)


def test_clip_batch_equals_single(clip: ClipAttributes) -> None:
    image, box = draw_mug_scene()
    together = clip.tag(image, [box, (10, 10, 200, 150)])
    alone = clip.tag(image, [box])
    assert together[0][0] == alone[0][0]
    for key, score in alone[0][1].items():
        assert together[0][1][key] == pytest.approx(score, abs=1e-4)


def test_clip_weights_must_be_a_local_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="CLIP weights file not found"):
        ClipAttributes(tmp_path / "missing.safetensors", SMALL_ARCH)
    with pytest.raises(FileNotFoundError, match="openai"):
        ClipAttributes("openai", SMALL_ARCH)  # a pretrained *tag*: would be a download, never allowed


def test_clip_rejects_unknown_arch_and_bad_files(tmp_path: Path, clip_weights: Path) -> None:
    with pytest.raises(ValueError, match="unknown open_clip architecture"):
        ClipAttributes(clip_weights, "hf-hub:someone/some-clip")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a tensor file")
    with pytest.raises(ValueError, match=str(junk)):
        ClipAttributes(junk, SMALL_ARCH)


def test_load_attribute_tagger(clip_weights: Path) -> None:
    assert isinstance(load_attribute_tagger("", SMALL_ARCH), DominantColour)
    assert isinstance(load_attribute_tagger("   ", SMALL_ARCH), DominantColour)
    tagger = load_attribute_tagger(str(clip_weights), SMALL_ARCH)
    assert isinstance(tagger, ClipAttributes)
