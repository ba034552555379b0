"""Two heads on one trunk: the COCO head stays the stock model, the merge only adds.

Run on every real photo installed here (scikit-image's data folder, Ultralytics' assets): the
COCO head's detections before merging are the stock model's, box for box, and after merging every
stock cup is still there as a ``mug``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mugpos.models.heads import HeadError, TwoHeads, is_head_file, load_head, merge_rows, read_head
from mugpos.training.evaluation import _iou_matrix, _load_rgb
from mugpos.training.photos import backdrop_photos, eval_photos
from tests.models.netguard import cut_network

HEAD = Path(__file__).resolve().parents[2] / "models" / "weights" / "mugpos-coaster-head.pt"
LABELS = ["person", "cup", "dining table", "mug", "coaster", "surface"]  # class index -> label below
DOMAIN = ["person", "mug", "surface", "mug", "coaster", "surface"]


def _row(box: tuple[float, float, float, float], score: float, cls: int) -> list[float]:
    return [*box, score, float(cls)]


@pytest.mark.parametrize(
    ("case", "first", "second", "expected"),
    [
        (
            "a COCO cup and the head's mug on the same mug: one mug, the higher score",
            [_row((10, 10, 50, 60), 0.8, 1)],
            [_row((11, 10, 50, 61), 0.6, 3)],
            [(0.8, 1)],
        ),
        (
            "the head's mug wins when it is more confident",
            [_row((10, 10, 50, 60), 0.4, 1)],
            [_row((10, 11, 51, 60), 0.9, 3)],
            [(0.9, 3)],
        ),
        (
            "two mugs apart both stay",
            [_row((10, 10, 50, 60), 0.8, 1)],
            [_row((200, 10, 240, 60), 0.7, 3)],
            [(0.8, 1), (0.7, 3)],
        ),
        (
            "a coaster under a cup is never fused with it",
            [_row((10, 10, 50, 60), 0.8, 1)],
            [_row((8, 40, 52, 66), 0.7, 4)],
            [(0.8, 1), (0.7, 4)],
        ),
        (
            "a dining table and the head's surface fuse",
            [_row((0, 100, 600, 400), 0.7, 2)],
            [_row((2, 102, 600, 400), 0.9, 5)],
            [(0.9, 5)],
        ),
        (
            "other COCO classes pass through, even on top of a mug",
            [_row((10, 10, 50, 60), 0.9, 0), _row((10, 10, 50, 60), 0.5, 1)],
            [],
            [(0.9, 0), (0.5, 1)],
        ),
        (
            "the head's mug drawn around the body only is the COCO cup's mug, not a second one",
            [_row((10, 10, 60, 60), 0.6, 1)],  # the cup box takes the handle
            [_row((10, 12, 45, 60), 0.8, 3)],  # IoU 0.66, nested: NMS at 0.7 alone keeps both
            [(0.6, 1)],
        ),
        (
            "a head mug half on a COCO cup is a different mug",
            [_row((10, 10, 50, 60), 0.6, 1)],
            [_row((40, 10, 80, 60), 0.8, 3)],
            [(0.8, 3), (0.6, 1)],
        ),
        ("nothing at all", [], [], []),
    ],
)
def test_merge_rows(case: str, first: list[list[float]], second: list[list[float]], expected: list[tuple]) -> None:
    rows = merge_rows(np.array(first, np.float32), np.array(second, np.float32), DOMAIN, iou=0.7, max_det=300)
    assert [(round(float(r[4]), 3), int(r[5])) for r in rows] == expected, case


def test_merge_keeps_at_most_max_det_rows() -> None:
    many = np.array([_row((i * 10, 0, i * 10 + 5, 5), 0.5 + i / 100, 0) for i in range(20)], np.float32)
    rows = merge_rows(many, np.empty((0, 6), np.float32), DOMAIN, iou=0.7, max_det=5)
    assert len(rows) == 5 and rows[0, 4] == pytest.approx(0.69)


@pytest.fixture(scope="module")
def pair(weights: Path) -> tuple[Any, Any]:
    """The stock model alone, and the same trunk with the released head, as the service runs them."""
    from mugpos.models.detector import Detector

    with pytest.MonkeyPatch.context() as patch:
        cut_network(patch)
        stock = Detector(weights, device="cpu", image_size=640, rect=True)
        both = Detector(weights, device="cpu", image_size=640, rect=True, head=HEAD)
    return stock, both


def _photos() -> dict[str, Path]:
    found = {**eval_photos(), **{p.name: p for p in backdrop_photos()}}
    assert len(found) >= 20, sorted(found)
    return found


def _box(d: dict[str, Any]) -> list[float]:
    return [d["box"]["x1"], d["box"]["y1"], d["box"]["x2"], d["box"]["y2"]]


def test_coco_head_is_the_stock_model_and_every_stock_cup_stays_a_mug(pair: tuple[Any, Any]) -> None:
    stock, both = pair
    checked_cups = 0
    for name, path in sorted(_photos().items()):
        image = _load_rgb(path)
        [alone] = stock.detect([image])
        [(coco, _head)] = both.infer_heads([both.prepare(image)])
        assert [d["class_name"] for d in coco] == [d["class_name"] for d in alone], name
        for a, b in zip(alone, coco, strict=True):
            assert np.abs(np.array(_box(a)) - np.array(_box(b))).max() <= 1.0, (name, a, b)
            assert abs(a["confidence"] - b["confidence"]) <= 1e-3, (name, a, b)
        [merged] = both.detect([image])
        cups = np.array([_box(d) for d in alone if d["class_name"] == "cup"]).reshape(-1, 4)
        mugs = np.array([_box(d) for d in merged if d["label"] == "mug"]).reshape(-1, 4)
        if len(cups):
            assert len(mugs) and _iou_matrix(cups, mugs).max(axis=1).min() >= 0.9, (name, cups, mugs)
            checked_cups += len(cups)
        others = sorted(d["class_name"] for d in alone if d["label"] not in ("mug", "surface"))
        assert sorted(d["class_name"] for d in merged if d["label"] not in ("mug", "coaster", "surface")) == others
    assert checked_cups >= 1  # coffee.png's cup at least


def test_the_real_cup_is_a_mug(pair: tuple[Any, Any]) -> None:
    _stock, both = pair
    [dets] = both.detect([_load_rgb(eval_photos()["coffee.png"])])
    assert any(d["label"] == "mug" and d["confidence"] > 0.5 for d in dets), dets


def test_a_batch_of_mixed_shapes_equals_each_image_alone(pair: tuple[Any, Any]) -> None:
    _stock, both = pair
    images = [_load_rgb(p) for p in list(eval_photos().values())[:4]]
    together = both.detect(images)
    for image, batch_dets in zip(images, together, strict=True):
        [alone] = both.detect([image])
        assert [d["class_name"] for d in batch_dets] == [d["class_name"] for d in alone]
        for a, b in zip(alone, batch_dets, strict=True):
            assert np.allclose(_box(a), _box(b), atol=0.5) and abs(a["confidence"] - b["confidence"]) < 1e-3


def test_the_head_file_names_its_trunk_and_is_refused_on_another(weights: Path, tmp_path: Path) -> None:
    from ultralytics import YOLO

    from mugpos.models.checksum import file_sha256

    blob = read_head(HEAD)
    assert blob["base_sha256"] == file_sha256(weights) and blob["names"] == ["mug", "coaster", "surface"]
    base = YOLO(str(weights)).model
    with pytest.raises(HeadError, match="trained on the trunk with sha256"):
        load_head(HEAD, base, "0" * 64)
    head, names, info = load_head(HEAD, base, file_sha256(weights))
    assert names == ["mug", "coaster", "surface"] and info["sha256"] == file_sha256(HEAD)
    assert isinstance(TwoHeads(base.fuse(verbose=False), head), TwoHeads)
    assert is_head_file(HEAD) and not is_head_file(weights)


@pytest.mark.parametrize(
    ("case", "content", "message"),
    [
        ("not a torch file", b"plain text", "not a loadable head file"),
        ("a torch file of another kind", None, "not a mugpos-head/1 head file"),
    ],
)
def test_damaged_or_foreign_head_files_are_refused(
    case: str, content: bytes | None, message: str, weights: Path, tmp_path: Path
) -> None:
    import torch

    from mugpos.models.detector import Detector

    path = tmp_path / "head.pt"
    if content is None:
        torch.save({"format": "something-else"}, path)
    else:
        path.write_bytes(content)
    with pytest.raises(HeadError, match=message):
        Detector(weights, device="cpu", head=path)
    with pytest.raises(FileNotFoundError):
        Detector(weights, device="cpu", head=tmp_path / "missing.pt")


def test_the_cost_benchmark_prints_a_table_and_one_json_line() -> None:
    import json
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    args = [sys.executable, "bench/heads_bench.py", "--batches", "1", "2", "--repeats", "1", "--imgsz", "320"]
    result = subprocess.run(args, cwd=root, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    line = json.loads(result.stdout.strip().splitlines()[-1])
    assert line["bench"] == "heads" and [r["batch"] for r in line["rows"]] == [1, 2]
    assert all(r["stock_ms"] > 0 and r["two_heads_ms"] > 0 for r in line["rows"])
    assert "two-head cost" in result.stdout
