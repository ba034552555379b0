"""Detector with the real COCO YOLO26n weights on CPU: drawn mugs, batching, Avro shape, identity."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import ultralytics
from fastavro import parse_schema
from fastavro.validation import validate

from mugpos import schemas
from mugpos.models.classmap import ClassMap
from mugpos.models.detector import Detector
from mugpos.models.letterbox import letterbox
from tests.models.drawing import draw_mug_scene, iou

SCENES: dict[str, dict[str, Any]] = {
    "landscape_red_640x480": dict(width=640, height=480, mug_colour=(200, 30, 30)),
    "portrait_white_480x640": dict(width=480, height=640, mug_colour=(240, 240, 235), centre_x=0.35),
    "full_hd_blue_1920x1080": dict(width=1920, height=1080, mug_colour=(30, 60, 200), centre_x=0.6),
}


def box_of(det: dict[str, Any]) -> tuple[float, float, float, float]:
    b = det["box"]
    return (b["x1"], b["y1"], b["x2"], b["y2"])


@pytest.mark.parametrize("scene", list(SCENES.values()), ids=list(SCENES))
def test_finds_the_drawn_mug(detector: Detector, scene: dict[str, Any]) -> None:
    image, true_box = draw_mug_scene(**scene)
    [detections] = detector.detect([image])
    mugs = [d for d in detections if d["label"] == "mug"]
    assert mugs, detections
    best = mugs[0]
    assert best["class_name"] == "cup"
    assert best["class_id"] == 41
    assert best["confidence"] > 0.5
    assert iou(box_of(best), true_box) > 0.6


def test_detection_is_an_avro_detection_record(detector: Detector) -> None:
    image, _ = draw_mug_scene()
    [detections] = detector.detect([image])
    assert detections
    assert set(detections[0]) == {
        "label", "class_id", "class_name", "confidence", "box", "box_norm", "attributes", "attribute_scores",
    }  # fmt: skip
    event = {
        "image_id": "img-1",
        "source": "test",
        "uri": "s3://bucket/img-1.jpg",
        "captured_at": 0,
        "processed_at": 0,
        "sha256": None,
        "model": detector.info,
        "image_width": image.shape[1],
        "image_height": image.shape[0],
        "detections": detections,
        "timings": {"fetch_ms": 0.0, "decode_ms": 0.0, "inference_ms": 0.0, "total_ms": 0.0},
        "batch_size": 1,
        "cached": False,
        "metadata": {},
    }
    schema = parse_schema(schemas.schema_json("DetectionEvent"))
    assert validate(event, schema, strict=True)
    [model] = [f for f in schemas.schema_json("DetectionEvent")["fields"] if f["name"] == "model"]
    assert set(detector.info) == {f["name"] for f in model["type"]["fields"]}  # every ModelInfo field, no other


def test_batch_of_three_sizes(detector: Detector) -> None:
    images = [draw_mug_scene(**scene)[0] for scene in SCENES.values()]
    results = detector.infer([detector.prepare(image) for image in images])
    assert len(results) == 3
    for image, detections in zip(images, results, strict=True):
        height, width = image.shape[:2]
        assert any(d["label"] == "mug" for d in detections)
        confidences = [d["confidence"] for d in detections]
        assert confidences == sorted(confidences, reverse=True)
        for d in detections:
            b, n = d["box"], d["box_norm"]
            assert 0 <= b["x1"] < b["x2"] <= width
            assert 0 <= b["y1"] < b["y2"] <= height
            assert n["x1"] == pytest.approx(b["x1"] / width)
            assert n["y2"] == pytest.approx(b["y2"] / height)
            assert all(0.0 <= v <= 1.0 for v in n.values())
            assert 0.25 <= d["confidence"] <= 1.0


def test_batched_results_equal_single_image_results(detector: Detector) -> None:
    images = [draw_mug_scene(**scene)[0] for scene in SCENES.values()]
    batched = detector.detect(images)
    for image, together in zip(images, batched, strict=True):
        [alone] = detector.detect([image])
        # ignore detections that sit on the confidence threshold (float noise may flip them)
        together = [d for d in together if d["confidence"] > detector.confidence + 0.01]
        alone = [d for d in alone if d["confidence"] > detector.confidence + 0.01]
        assert [d["class_id"] for d in together] == [d["class_id"] for d in alone]
        for a, b in zip(together, alone, strict=True):
            assert a["confidence"] == pytest.approx(b["confidence"], abs=1e-3)
            assert box_of(a) == pytest.approx(box_of(b), abs=0.5)


def test_matches_ultralytics_predict(detector: Detector, weights: Path) -> None:
    """Same detections as YOLO.predict (square letterbox, i.e. rect=False): same model, same post-processing."""
    image, _ = draw_mug_scene(**SCENES["portrait_white_480x640"])
    [ours] = detector.detect([image])
    result: Any = ultralytics.YOLO(str(weights)).predict(
        image[..., ::-1].copy(), rect=False, device="cpu", verbose=False
    )
    theirs = result[0].boxes
    assert [d["class_id"] for d in ours] == theirs.cls.int().tolist()
    assert [d["confidence"] for d in ours] == pytest.approx(theirs.conf.tolist(), abs=1e-4)
    assert np.array([box_of(d) for d in ours]) == pytest.approx(theirs.xyxy.numpy(), abs=0.05)


@pytest.fixture(scope="module")
def rect_detector(weights: Path) -> Detector:
    return Detector(weights, device="cpu", image_size=640, rect=True)


def test_rect_matches_ultralytics_predict_default(rect_detector: Detector, weights: Path) -> None:
    """rect=True feeds the model what YOLO.predict does by default (a 640x480 input for 4:3)."""
    image, _ = draw_mug_scene(**SCENES["landscape_red_640x480"])
    assert rect_detector.prepare(image).image.shape == (480, 640, 3)
    [ours] = rect_detector.detect([image])
    result: Any = ultralytics.YOLO(str(weights)).predict(image[..., ::-1].copy(), device="cpu", verbose=False)
    theirs = result[0].boxes
    assert [d["class_id"] for d in ours] == theirs.cls.int().tolist()
    assert [d["confidence"] for d in ours] == pytest.approx(theirs.conf.tolist(), abs=1e-4)
    assert np.array([box_of(d) for d in ours]) == pytest.approx(theirs.xyxy.numpy(), abs=0.05)


def test_rect_batch_of_mixed_shapes_equals_each_alone(rect_detector: Detector) -> None:
    """Three aspect ratios in one batch: one pass per shape, each result in its own image's place."""
    images = [draw_mug_scene(**scene)[0] for scene in SCENES.values()]
    shapes = {rect_detector.prepare(image).image.shape for image in images}
    assert len(shapes) == 3
    batched = rect_detector.detect(images + images[:1])
    assert len(batched) == 4
    for image, together in zip(images + images[:1], batched, strict=True):
        [alone] = rect_detector.detect([image])
        assert [d["class_id"] for d in together] == [d["class_id"] for d in alone]
        for a, b in zip(together, alone, strict=True):
            assert box_of(a) == pytest.approx(box_of(b), abs=0.5)
        assert any(d["label"] == "mug" for d in together)


def test_cache_scope_changes_with_every_setting_that_changes_the_output(
    detector: Detector, rect_detector: Detector, weights: Path
) -> None:
    """A cached detection is reused only for the same model run the same way."""
    assert detector.cache_scope.startswith(detector.info["model_id"] + ":")
    assert detector.cache_scope != rect_detector.cache_scope
    other_conf = Detector(weights, device="cpu", image_size=640, confidence=0.5)
    other_size = Detector(weights, device="cpu", image_size=320)
    same = Detector(weights, device="cpu", image_size=640)
    assert len({detector.cache_scope, other_conf.cache_scope, other_size.cache_scope}) == 3
    assert same.cache_scope == detector.cache_scope


def test_rect_refuses_inputs_of_another_size(rect_detector: Detector) -> None:
    with pytest.raises(ValueError, match="letterboxed to 640px"):
        rect_detector.infer([letterbox(np.zeros((10, 20, 3), np.uint8), 320, stride=32)])


def test_info_names_and_class_map(detector: Detector, weights: Path) -> None:
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()
    info = detector.info
    labels = info.pop("labels")
    assert info == {
        "model_id": f"yolo26n-{digest[:12]}",
        "name": "yolo26n",
        "version": ultralytics.__version__,
        "weights_sha256": digest,
        "device": "cpu",
    }
    assert labels == sorted(labels)
    assert {"mug", "surface", "person", "laptop"} <= set(labels)
    assert "coaster" not in labels and "cup" not in labels and "dining table" not in labels
    assert len(labels) == 80  # COCO names are unique, and so are their labels
    assert len(detector.names) == 80
    assert detector.names[41] == "cup"
    assert detector.names[60] == "dining table"
    assert detector.class_map.has_label("mug")
    assert detector.class_map.has_label("surface")
    assert not detector.class_map.has_label("coaster")
    assert detector.image_size == 640


def test_one_to_one_head_and_class_map_override(weights: Path, no_network: None) -> None:
    """YOLO26's NMS-free head (end2end=True) also finds the mug; overrides relabel classes."""
    nms_free = Detector(weights, device="cpu", end2end=True, class_map=ClassMap.parse("cup=vessel"))
    assert nms_free.end2end
    image, true_box = draw_mug_scene()
    [detections] = nms_free.detect([image])
    assert detections[0]["label"] == "vessel"
    assert detections[0]["class_name"] == "cup"
    assert iou(box_of(detections[0]), true_box) > 0.6
    assert not nms_free.class_map.has_label("mug")


def test_edge_cases(detector: Detector) -> None:
    assert detector.infer([]) == []
    [blank] = detector.detect([np.full((200, 300, 3), 128, np.uint8)])
    assert blank == []
    with pytest.raises(ValueError, match="640px"):
        detector.infer([letterbox(np.zeros((10, 10, 3), np.uint8), 320)])
    detector.warmup(2)


def test_bad_weights(tmp_path: Path, weights: Path) -> None:
    missing = tmp_path / "yolo26n.pt"  # named like an official asset: must not trigger a download
    with pytest.raises(FileNotFoundError, match=str(missing)):
        Detector(missing)
    text = tmp_path / "notes.pt"
    text.write_text("these are not weights")
    with pytest.raises(ValueError, match=str(text)):
        Detector(text)
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match=str(empty)):
        Detector(empty)
    onnx = tmp_path / "model.onnx"
    onnx.write_bytes(b"\x08\x07")
    with pytest.raises(ValueError, match=r"\.pt checkpoint"):
        Detector(onnx)
    with pytest.raises(ValueError, match="multiple of 32"):
        Detector(weights, device="cpu", image_size=630)
    with pytest.raises(ValueError, match="within"):
        Detector(weights, device="cpu", confidence=1.5)


def test_offline_in_a_fresh_process(tmp_path: Path, weights: Path) -> None:
    """Importing models pins the offline settings before ultralytics loads; nothing touches the network
    and Ultralytics' settings land under the user cache, not in ~/.config."""
    code = textwrap.dedent(
        f"""
        import os, socket
        def refuse(*a, **k):
            raise SystemExit(f"network access attempted: {{a[:2]}}")
        socket.socket.connect = refuse
        socket.getaddrinfo = refuse
        socket.create_connection = refuse
        import numpy as np
        from mugpos.models.detector import Detector
        detector = Detector({str(weights)!r}, device="auto")
        detector.detect([np.zeros((64, 64, 3), np.uint8)])
        for name in ("YOLO_OFFLINE", "YOLO_AUTOINSTALL", "YOLO_VERBOSE", "YOLO_CONFIG_DIR", "HF_HUB_OFFLINE"):
            print(name, os.environ[name])
        print("device", detector.info["device"])
        """
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("YOLO_", "HF_", "ULTRALYTICS_"))}
    env.update(HOME=str(tmp_path / "home"), XDG_CACHE_HOME=str(tmp_path / "cache"), CUDA_VISIBLE_DEVICES="")
    repo = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", code], cwd=repo, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = dict(line.split(" ", 1) for line in done.stdout.strip().splitlines())
    assert lines["YOLO_OFFLINE"] == "1"
    assert lines["YOLO_AUTOINSTALL"] == "0"
    assert lines["YOLO_VERBOSE"] == "0"
    assert lines["HF_HUB_OFFLINE"] == "1"
    assert lines["YOLO_CONFIG_DIR"] == str(tmp_path / "cache" / "mugpos" / "ultralytics")
    assert lines["device"] == "cpu"
    assert not (tmp_path / "home" / ".config").exists()
