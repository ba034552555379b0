"""The scene renderer: deterministic, labels inside the image, ground truth that the box rules reproduce."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from mugpos.models import positioning
from mugpos.training.synth import (
    BASE_FRACTION,
    CLASS_NAMES,
    COASTER_RIM_CM,
    STYLES,
    DatasetError,
    check_dataset,
    contact_sheet,
    is_negative,
    on_coaster_from_boxes,
    render_negative,
    render_scene,
    synthesize,
    yolo_lines,
)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("synth")
    manifest = synthesize(root, 24, seed=11, val_fraction=0.25, negatives=0.2)
    return root, manifest


def test_same_seed_same_scene_other_seed_other_scene() -> None:
    a, b, c = render_scene(3, 5), render_scene(3, 5), render_scene(4, 5)
    assert np.array_equal(a.image, b.image)
    assert a.truth == b.truth and a.labels == b.labels
    assert not np.array_equal(
        a.image[: c.image.shape[0], : c.image.shape[1]], c.image[: a.image.shape[0], : a.image.shape[1]]
    )


def test_styles_differ_for_the_same_seed() -> None:
    train, holdout = render_scene(3, 0, "train"), render_scene(3, 0, "holdout")
    assert train.truth["style"] == "train" and holdout.truth["style"] == "holdout"
    assert train.truth != holdout.truth
    assert set(STYLES) == {"train", "holdout"}


def test_negative_scenes_replace_some_scenes_and_leave_the_others_alone(tmp_path: Path) -> None:
    flags = [is_negative(8, i, "train", 0.3) for i in range(40)]
    assert 4 <= sum(flags) <= 20
    assert not any(is_negative(8, i, "train", 0.0) for i in range(40))
    neg = render_negative(8, 0)
    assert neg.labels == [] and neg.truth["negative"] and neg.image.dtype == np.uint8
    plain = synthesize(tmp_path / "plain", 8, seed=8, val_fraction=0.0, negatives=0.0)
    mixed = synthesize(tmp_path / "mixed", 8, seed=8, val_fraction=0.0, negatives=0.3)
    assert plain["instances"]["train"]["negative_images"] == 0
    assert mixed["instances"]["train"]["negative_images"] == sum(flags[:8])
    for i in range(8):
        name = f"images/train/train-8-{i:06d}.jpg"
        same = (tmp_path / "plain" / name).read_bytes() == (tmp_path / "mixed" / name).read_bytes()
        assert same != flags[i]


def test_output_is_identical_whatever_the_worker_count(tmp_path: Path) -> None:
    one = synthesize(tmp_path / "one", 6, seed=2, workers=1)
    two = synthesize(tmp_path / "two", 6, seed=2, workers=2)
    assert one["instances"] == two["instances"]
    for img in sorted((tmp_path / "one" / "images").glob("*/*.jpg")):
        other = tmp_path / "two" / img.relative_to(tmp_path / "one")
        assert img.read_bytes() == other.read_bytes()
        label = img.parents[2] / "labels" / img.parent.name / f"{img.stem}.txt"
        assert label.read_text() == (tmp_path / "two" / label.relative_to(tmp_path / "one")).read_text()


def test_layout_data_yaml_and_manifest(dataset: tuple[Path, dict]) -> None:
    import yaml

    root, manifest = dataset
    spec = yaml.safe_load((root / "data.yaml").read_text())
    assert spec["names"] == dict(enumerate(CLASS_NAMES)) == {0: "mug", 1: "coaster", 2: "surface"}
    assert Path(spec["path"]) == root.resolve()
    assert manifest["splits"] == {"train": 18, "val": 6}
    assert len(list((root / "images" / "train").glob("*.jpg"))) == 18
    assert len(list((root / "labels" / "val").glob("*.txt"))) == 6
    assert json.loads((root / "manifest.json").read_text())["seed"] == 11


def test_every_label_is_inside_its_image_and_no_class_is_empty(dataset: tuple[Path, dict]) -> None:
    root, _ = dataset
    summary = check_dataset(root)
    for split in ("train", "val"):
        assert all(n > 0 for n in summary[split]["instances"].values()), summary
    negatives = 0
    for txt in (root / "labels").glob("*/*.txt"):
        if json.loads(txt.with_suffix(".json").read_text()).get("negative"):
            negatives += 1
            assert not txt.read_text().strip()  # nothing to label: an empty label file
            continue
        rows = np.array([list(map(float, ln.split())) for ln in txt.read_text().splitlines()])
        assert set(rows[:, 0].astype(int)) <= {0, 1, 2}
        xc, yc, w, h = rows[:, 1], rows[:, 2], rows[:, 3], rows[:, 4]
        assert (w > 0).all() and (h > 0).all()
        assert (xc - w / 2 >= -1e-6).all() and (xc + w / 2 <= 1 + 1e-6).all()
        assert (yc - h / 2 >= -1e-6).all() and (yc + h / 2 <= 1 + 1e-6).all()
        assert (rows[:, 0] == 2).sum() == 1  # exactly one table top per scene
    assert negatives >= 1


def test_truth_sidecar_describes_every_mug(dataset: tuple[Path, dict]) -> None:
    root, _ = dataset
    mugs = 0
    for js in (root / "labels").glob("*/*.json"):
        truth = json.loads(js.read_text())
        assert (root / truth["image"]).is_file()
        if truth.get("negative"):
            assert truth["mugs"] == truth["coasters"] == [] and truth["surface"] is None
            continue
        assert truth["surface"]["edges_in_view"], "every table shows at least one edge"
        for m in truth["mugs"]:
            mugs += 1
            assert isinstance(m["on_coaster"], bool)
            assert (m["coaster"] is not None) == m["on_coaster"]
            assert m["edge_distance_cm"] == pytest.approx(m["edge_centre_distance_cm"] - m["radius_cm"], abs=0.02)
            assert min(m["px_per_cm"]) > 0 and m["handle"] in ("left", "right", "front", "back", "none")
            if m["on_coaster"]:  # a rim of coaster stays visible around the mug
                assert m["radius_cm"] <= truth["coasters"][m["coaster"]]["size_cm"] / 2 - COASTER_RIM_CM + 0.01
    assert mugs >= 24


def test_on_coaster_truth_is_reproducible_from_boxes(dataset: tuple[Path, dict]) -> None:
    """The physical truth and the box rules agree on the true boxes, so eval errors are detector errors."""
    assert positioning.DEFAULT_CONFIG.footprint_frac / 2 == BASE_FRACTION
    root, _ = dataset
    seen = {True: 0, False: 0}
    for js in (root / "labels").glob("*/*.json"):
        truth = json.loads(js.read_text())
        if truth.get("negative"):
            continue
        coasters = [c["box"] for c in truth["coasters"]]
        mugs = np.array([m["box"] for m in truth["mugs"]], float).reshape(-1, 4)
        m = positioning.measure(
            mugs,
            np.array(coasters, float).reshape(-1, 4),
            np.array([truth["surface"]["box"]], float),
            coasters_known=True,
        )
        for row, mug in enumerate(truth["mugs"]):
            rule = on_coaster_from_boxes(mug["box"], coasters)
            assert (rule is not None) == mug["on_coaster"]
            assert rule == mug["coaster"]
            assert m.on_coaster is not None and bool(m.on_coaster[row]) == mug["on_coaster"]
            seen[mug["on_coaster"]] += 1
    assert seen[True] and seen[False]


def test_check_dataset_rejects_bad_labels(tmp_path: Path) -> None:
    root = tmp_path / "bad"
    synthesize(root, 3, seed=1, val_fraction=0.0)
    label = next((root / "labels" / "train").glob("*.txt"))
    label.write_text(label.read_text() + "0 0.99 0.5 0.2 0.2\n")  # sticks out on the right
    with pytest.raises(DatasetError, match="outside the image"):
        check_dataset(root)
    for txt in (root / "labels" / "train").glob("*.txt"):
        txt.write_text("".join(ln + "\n" for ln in txt.read_text().splitlines() if not ln.startswith("1 ")))
    with pytest.raises(DatasetError, match="no instances of coaster"):
        check_dataset(root)


def test_yolo_lines_clip_to_the_image() -> None:
    lines = yolo_lines([(0, (-5.0, 10.0, 50.0, 120.0)), (1, (90.0, 90.0, 90.0, 95.0))], 100, 100)
    assert len(lines) == 1  # the zero-width box is dropped
    cls, xc, yc, w, h = lines[0].split()
    assert (
        cls == "0" and float(xc) - float(w) / 2 == pytest.approx(0.0) and float(yc) + float(h) / 2 == pytest.approx(1.0)
    )


def test_contact_sheet(dataset: tuple[Path, dict], tmp_path: Path) -> None:
    root, _ = dataset
    path = contact_sheet(root, tmp_path / "sheet.png", count=6, columns=3, tile=200)
    sheet = cv2.imread(str(path))
    assert sheet is not None and sheet.shape == (400, 600, 3)


def test_cli_synth(tmp_path: Path) -> None:
    from mugpos.cli.main import cli

    out = tmp_path / "cli"
    args = ["synth", str(out), "--count", "5", "--seed", "9", "--style", "holdout", "--val-fraction", "1",
            "--contact-sheet", str(tmp_path / "s.png"), "--sheet-count", "2"]  # fmt: skip
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert (out / "data.yaml").is_file() and (tmp_path / "s.png").is_file()
    assert json.loads((out / "manifest.json").read_text())["splits"] == {"val": 5}
    bad = CliRunner().invoke(cli, ["synth", str(tmp_path / "x"), "--count", "2", "--style", "nope"])
    assert bad.exit_code == 2
