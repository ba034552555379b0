"""Fine-tuning and evaluation on a tiny rendered set (one epoch, 64 px), with the network cut off.

Also checks the released detector (models/weights/mugpos-yolo26n-coaster.pt) where it is present:
it loads in the production wrapper, says ``coaster``, and sees no mug or coaster in real photos.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from models.checksum import file_sha256
from models.evaluation import installed_photos, match, positions, score_scene, summarise_positions
from models.synth import render_scene, synthesize
from models.training import read_card
from tests.models.netguard import cut_network

RELEASE = Path(__file__).resolve().parents[2] / "models" / "weights" / "mugpos-yolo26n-coaster.pt"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tiny")
    synthesize(root, 8, seed=3, val_fraction=0.25, negatives=0.15)  # scene 2 is a negative (empty labels)
    return root


@pytest.fixture(scope="module")
def trained(tiny: Path, weights: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`mugpos train` for one epoch at 64 px on CPU, with every socket refused."""
    from streams.cli import cli

    out = tmp_path_factory.mktemp("model") / "tiny.pt"
    args = ["train", str(tiny), "--out", str(out), "--base", str(weights), "--epochs", "1", "--imgsz", "64",
            "--batch", "4", "--device", "cpu", "--run-dir", str(out.parent / "runs")]  # fmt: skip
    with pytest.MonkeyPatch.context() as patch:
        cut_network(patch)
        result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output + repr(result.exception)
    return out


def test_train_writes_weights_and_card(trained: Path) -> None:
    assert trained.is_file()
    card = read_card(trained)
    assert card["sha256"] == file_sha256(trained)
    assert card["classes"] == ["mug", "coaster", "surface"]
    assert card["data"]["seed"] == 3 and card["training"]["epochs"] == 1 and card["training"]["device"] == "cpu"
    assert set(card["metrics"]["synthetic_val"]["per_class"]) <= {"mug", "coaster", "surface"}
    text = trained.with_suffix(".md").read_text()
    assert "| mug |" in text and "sha256" in text


def test_detector_wrapper_loads_the_fine_tuned_model(trained: Path) -> None:
    from models.detector import Detector

    with pytest.MonkeyPatch.context() as patch:
        cut_network(patch)
        det = Detector(trained, device="cpu", image_size=64)
    assert det.names == {0: "mug", 1: "coaster", 2: "surface"}
    assert det.class_map.has_label("coaster") and det.class_map.label_for_id(1) == "coaster"
    assert det.class_map.class_ids("surface") == [2]
    dets = det.detect([render_scene(0, 0).image])
    assert isinstance(dets, list) and len(dets) == 1


def test_eval_command_reports_and_updates_the_card(trained: Path, tiny: Path, tmp_path: Path) -> None:
    from streams.cli import cli

    report = tmp_path / "report.json"
    args = ["eval", str(trained), str(tiny), "--imgsz", "64", "--device", "cpu", "--report", str(report)]
    with pytest.MonkeyPatch.context() as patch:
        cut_network(patch)
        result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output + repr(result.exception)
    data = json.loads(report.read_text())
    assert data["sha256"] == file_sha256(trained)
    assert "on_coaster" in data["positioning"]["accuracy"]
    assert "within 5 cm of the edge" in data["positioning"]["accuracy"]
    assert data["positioning"]["ceiling_with_true_boxes"]["on_coaster"] == 1.0
    assert set(data["photos"]["images"]) == set(installed_photos())
    assert set(data["targets"]) == {"map50_mug", "map50_coaster", "on_coaster", "all_met"}
    assert read_card(trained)["evaluation"]["data"]["seed"] == 3
    assert "targets:" in result.output


def test_eval_letterbox_option(trained: Path, tiny: Path, tmp_path: Path) -> None:
    from streams.cli import cli

    report = tmp_path / "rect.json"
    args = ["eval", str(trained), str(tiny), "--imgsz", "64", "--device", "cpu", "--no-card", "--report", str(report),
            "--letterbox", "rect"]  # fmt: skip
    with pytest.MonkeyPatch.context() as patch:
        cut_network(patch)
        result = CliRunner().invoke(cli, args)
        bad = CliRunner().invoke(cli, [*args[:-1], "diagonal"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert json.loads(report.read_text())["letterbox"] == "rect"
    assert "letterboxed rect" in result.output
    assert bad.exit_code != 0 and "letterbox must be square or rect" in bad.output


def test_installed_photos_are_found() -> None:
    photos = installed_photos()
    assert {"bus.jpg", "zidane.jpg"} <= set(photos)
    assert all(p.is_file() for p in photos.values())


def _det(label: str, box: list[float], conf: float = 0.9) -> dict[str, Any]:
    return {"label": label, "confidence": conf, "box": dict(zip(("x1", "y1", "x2", "y2"), box, strict=True))}


def test_scoring_with_perfect_detections_equals_the_ceiling() -> None:
    truths = [render_scene(21, i).truth for i in range(6)]
    records = []
    for t in truths:
        dets = [_det("mug", m["box"]) for m in t["mugs"]] + [_det("coaster", c["box"]) for c in t["coasters"]]
        dets.append(_det("surface", t["surface"]["box"]))
        records += score_scene(t, dets, (2.0, 5.0))
    summary = summarise_positions(records, (2.0, 5.0))
    assert summary["mug_recall_iou50"] == 1.0
    assert summary["accuracy"]["on_coaster"] == summary["ceiling_with_true_boxes"]["on_coaster"] == 1.0
    for key, value in summary["ceiling_with_true_boxes"].items():
        assert summary["accuracy"][key] == value


def test_missed_mugs_count_as_wrong() -> None:
    t = render_scene(21, 1).truth
    records = score_scene(t, [], (5.0,))
    summary = summarise_positions(records, (5.0,))
    assert summary["mug_recall_iou50"] == 0.0 and summary["accuracy"]["on_coaster"] == 0.0


def test_match_is_greedy_by_confidence_order() -> None:
    truth = np.array([[0, 0, 10, 10], [20, 0, 30, 10]], float)
    pred = np.array([[21, 0, 31, 10], [0, 0, 10, 9], [100, 100, 110, 110]], float)
    assert match(truth, pred) == [1, 0]


def test_edge_gap_uses_closed_sides_and_per_axis_scale() -> None:
    mugs = np.array([[50.0, 40.0, 70.0, 80.0]])  # footprint: y 70..80
    surface = np.array([[0.0, 10.0, 200.0, 100.0]])  # left edge on the frame border: open
    on, gaps = positions(mugs, np.zeros((0, 4)), surface, 200, 150, [(2.0, 4.0)])
    assert on == [False]
    assert gaps[0] == pytest.approx(min((100 - 80) / 4.0, (200 - 70) / 2.0, (70 - 10) / 4.0))


@pytest.fixture(scope="module")
def release() -> Any:
    """The committed detector in the production wrapper, at the size it was trained at."""
    from models.detector import Detector

    if not RELEASE.is_file():
        pytest.skip("release weights not built")
    card = read_card(RELEASE)
    with pytest.MonkeyPatch.context() as patch:
        cut_network(patch)
        return Detector(RELEASE, device="cpu", image_size=card["training"]["imgsz"])


def test_release_model_card_matches_the_weights(release: Any) -> None:
    card = read_card(RELEASE)
    assert card["sha256"] == file_sha256(RELEASE) == release.info["weights_sha256"]
    assert card["classes"] == ["mug", "coaster", "surface"]
    assert card["evaluation"]["targets"]["all_met"]
    assert release.class_map.labels == frozenset({"mug", "coaster", "surface"})
    assert release.class_map.label_for_id(1) == "coaster"


def test_release_model_on_a_held_out_sample(release: Any, tmp_path: Path) -> None:
    """A small slice of the held-out style (not the 550-scene benchmark): a guard against regressions."""
    from models.evaluation import positioning_accuracy

    root = tmp_path / "holdout"
    synthesize(root, 30, seed=90210, style="holdout", val_fraction=1.0, negatives=0.0)
    result = positioning_accuracy(release, root)
    assert result["mug_recall_iou50"] >= 0.95, result
    assert result["accuracy"]["on_coaster"] >= 0.9, result


def test_release_model_finds_mugs_drawn_by_another_renderer(release: Any) -> None:
    """tests/models/drawing.py draws a side view the training renderer never makes."""
    from tests.models.drawing import draw_mug_scene, iou

    for scene in (dict(width=640, height=480, mug_colour=(200, 30, 30)), dict(width=1920, height=1080, centre_x=0.6)):
        image, true_box = draw_mug_scene(**scene)
        [dets] = release.detect([image])
        mugs = [d for d in dets if d["label"] == "mug"]
        assert mugs and mugs[0]["confidence"] > 0.5, dets
        box = mugs[0]["box"]
        assert iou((box["x1"], box["y1"], box["x2"], box["y2"]), true_box) > 0.6


def test_release_model_sees_no_mug_or_coaster_where_a_person_sees_none(release: Any) -> None:
    """The evaluation photos (never trained on): people, a street, a cat, a motorbike, a cup."""
    from models.evaluation import photo_check

    result = photo_check(release)
    assert len(result["images"]) >= 3, result["images"].keys()
    for name, photo in result["images"].items():
        assert photo["phantoms"] == 0, (name, photo["expected"], photo["detections"])


@pytest.mark.xfail(
    strict=True,
    reason="known gap, see the model card: the real cup on a saucer (scikit-image coffee.png) is not found; "
    "the stock COCO model finds it (cup 0.81)",
)
def test_release_model_finds_the_real_cup(release: Any) -> None:
    from models.evaluation import photo_check

    photos = {k: v for k, v in installed_photos().items() if k == "coffee.png"}
    if not photos:
        pytest.skip("scikit-image (which ships coffee.png) is not installed")
    assert photo_check(release, photos)["real_cups_found"] == 1


def test_release_script_renders_trains_evaluates_and_writes_the_card(weights: Path, tmp_path: Path) -> None:
    """scripts/train_release.py on a tiny budget: exit 1 (targets missed), but a complete card."""
    import subprocess
    import sys

    out = tmp_path / "release.pt"
    args = [sys.executable, "scripts/train_release.py", "--work", str(tmp_path / "work"), "--out", str(out),
            "--base", str(weights), "--count", "16", "--negatives", "0.2", "--holdout-count", "6", "--epochs", "1",
            "--imgsz", "64", "--batch", "4", "--device", "cpu", "--workers", "0", "--note", "tiny run"]  # fmt: skip
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run(args, cwd=root, capture_output=True, text=True, timeout=600)
    assert result.returncode == 1, result.stdout + result.stderr
    card = read_card(out)
    assert card["sha256"] == file_sha256(out)
    assert card["notes"] == ["tiny run"]
    assert card["data"]["negatives"] == 0.2 and len(card["data"]["backdrops"]) > 0
    assert card["evaluation"]["data"]["style"] == "holdout"
    assert card["evaluation"]["photos"]["real_cups"] == 1
    assert card["evaluation"]["targets"]["all_met"] is False
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["targets"]["all_met"] is False


def test_amp_check_weights_are_the_base_copied_once(weights: Path, tmp_path: Path) -> None:
    """On CUDA, Ultralytics' AMP check loads WEIGHTS_DIR/yolo26n.pt and downloads it when missing."""
    import ultralytics.utils

    from models.training import ensure_amp_check_weights

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ultralytics.utils, "WEIGHTS_DIR", tmp_path / "w")
        other = tmp_path / "other.pt"
        other.write_bytes(b"not the official checkpoint")
        assert ensure_amp_check_weights(other) is None
        assert not (tmp_path / "w" / "yolo26n.pt").exists()
        target = ensure_amp_check_weights(weights)
        assert target == tmp_path / "w" / "yolo26n.pt" and file_sha256(target) == file_sha256(weights)
