"""The shipped real photos: two disjoint sets, backdrops in rendered scenes, and the phantom / real-cup check."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from mugpos.training.evaluation import photo_check
from mugpos.training.photos import BACKDROPS, EVAL, backdrop_photos, eval_photos
from mugpos.training.synth import render_negative, render_scene, synthesize
from tests.models.netguard import cut_network

ROOT = Path(__file__).resolve().parents[2]
COCO = ROOT / "models" / "weights" / "yolo26n.pt"


def test_evaluation_and_backdrop_sets_are_disjoint_and_installed() -> None:
    assert not {p.name for p in EVAL} & {p.name for p in BACKDROPS}
    installed = eval_photos()
    # ultralytics, matplotlib and scikit-image are all installed with the dev extras
    assert set(installed) == {p.name for p in EVAL}
    assert len(backdrop_photos()) == len(BACKDROPS)
    assert sum(p.cups for p in EVAL) == 1  # scikit-image's coffee: the one real cup


def test_backdrops_change_only_the_scenes_they_are_given_to() -> None:
    backdrops = [str(p) for p in backdrop_photos()]
    plain = [render_scene(4, i).image for i in range(6)]
    again = [render_scene(4, i, backdrops=()).image for i in range(6)]
    assert all(np.array_equal(a, b) for a, b in zip(plain, again, strict=True))
    with_photos = [render_scene(4, i, backdrops=backdrops) for i in range(6)]
    assert any(not np.array_equal(a, s.image) for a, s in zip(plain, with_photos, strict=True))
    # same labels: a photo changes pixels (behind or on the table), never the geometry
    assert [s.labels for s in with_photos] == [render_scene(4, i).labels for i in range(6)]
    twice = render_scene(4, 2, backdrops=backdrops).image
    assert np.array_equal(twice, with_photos[2].image)


def test_photo_negatives_stay_unlabelled() -> None:
    backdrops = [str(p) for p in backdrop_photos()]
    scenes = [render_negative(8, i, backdrops=backdrops) for i in range(10)]
    assert all(s.labels == [] and s.truth["negative"] for s in scenes)
    plain = [render_negative(8, i).image for i in range(10)]
    assert sum(not np.array_equal(a, s.image) for a, s in zip(plain, scenes, strict=True)) >= 3


def test_manifest_records_the_backdrops_and_a_missing_one_is_refused(tmp_path: Path) -> None:
    backdrops = backdrop_photos()[:3]
    manifest = synthesize(tmp_path / "ds", 6, seed=2, val_fraction=0, negatives=0.5, backdrops=backdrops)
    assert [b["name"] for b in manifest["backdrops"]] == [p.name for p in backdrops]
    assert all(len(b["sha256"]) == 64 for b in manifest["backdrops"])
    with pytest.raises(ValueError, match="backdrop photo not found"):
        synthesize(tmp_path / "bad", 2, backdrops=[tmp_path / "nope.png"])


def test_cli_synth_backdrops(tmp_path: Path) -> None:
    from mugpos.cli.main import cli

    ok = CliRunner().invoke(
        cli, ["synth", str(tmp_path / "a"), "--count", "4", "--negatives", "0", "--backdrops", "installed"]
    )
    assert ok.exit_code == 0, ok.output
    assert len(json.loads((tmp_path / "a" / "manifest.json").read_text())["backdrops"]) == len(BACKDROPS)
    empty = tmp_path / "empty"
    empty.mkdir()
    bad = CliRunner().invoke(cli, ["synth", str(tmp_path / "b"), "--count", "2", "--backdrops", str(empty)])
    assert bad.exit_code != 0 and "no .jpg/.jpeg/.png" in bad.output


def test_stock_coco_model_finds_the_real_cup_and_no_phantom() -> None:
    """The check can pass: COCO's `cup` maps to `mug` and is found on the coffee photo, nowhere else."""
    from mugpos.models.detector import Detector

    if not COCO.is_file():
        pytest.skip("COCO weights not fetched (make setup)")
    with pytest.MonkeyPatch.context() as patch:
        cut_network(patch)
        detector = Detector(COCO, device="cpu", image_size=640)
    result = photo_check(detector)
    assert result["real_cups"] == 1 and result["real_cups_found"] == 1, result["images"]["coffee.png"]
    assert result["phantom_mugs_or_coasters"] == 0, {n: p["detections"] for n, p in result["images"].items()}
