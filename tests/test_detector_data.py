"""The synthetic detector dataset: valid YOLO labels, boxes inside the image, every class present."""

from pathlib import Path

import cv2
import numpy as np
import yaml

from mpr.detector_data import CLASSES, MIN_BOX, build_dataset, clip_boxes, render_sample


def test_dataset_labels_are_valid_yolo(tmp_path: Path) -> None:
    stats = build_dataset(tmp_path, n_train=10, n_val=2, seed=3)
    data = yaml.safe_load((tmp_path / "data.yaml").read_text())
    assert data["names"] == dict(enumerate(CLASSES))
    seen = set()
    for split, n in (("train", 10), ("val", 2)):
        images = sorted((tmp_path / "images" / split).glob("*.jpg"))
        assert len(images) == n
        for img_path in images:
            img = cv2.imread(str(img_path))
            h, w = img.shape[:2]
            lines = (tmp_path / "labels" / split / f"{img_path.stem}.txt").read_text().splitlines()
            for line in lines:
                parts = line.split()
                assert len(parts) == 5
                cls, cx, cy, bw, bh = int(parts[0]), *map(float, parts[1:])
                assert 0 <= cls < len(CLASSES)
                seen.add(cls)
                x0, x1, y0, y1 = cx - bw / 2, cx + bw / 2, cy - bh / 2, cy + bh / 2
                assert -1e-5 <= x0 < x1 <= 1 + 1e-5 and -1e-5 <= y0 < y1 <= 1 + 1e-5
                assert bw * w >= MIN_BOX - 1e-3 and bh * h >= MIN_BOX - 1e-3
    assert seen == set(range(len(CLASSES)))
    assert sum(stats["boxes"].values()) > 0


def test_samples_are_deterministic() -> None:
    a, boxes_a, kind_a = render_sample(7, "train", 1)
    b, boxes_b, kind_b = render_sample(7, "train", 1)
    assert kind_a == kind_b and boxes_a == boxes_b and np.array_equal(a, b)
    c, _, _ = render_sample(7, "val", 1)
    assert not (a.shape == c.shape and np.array_equal(a, c))


def test_clip_boxes_drops_small_and_outside() -> None:
    boxes = [(2, -10, 5, 30, 20), (0, 10, 10, 12, 30), (1, 90, 90, 300, 300), (2, -100, 0, -50, 10)]
    out = clip_boxes(boxes, 100, 100)
    assert out == [(2, 0, 5, 30, 20)]


def test_shipped_onnx_detector_loads_without_torch() -> None:
    """models/detector/mpr-det.onnx runs in onnxruntime: (1, 4 + nc, N) output, names in the metadata."""
    import ast

    import onnxruntime as ort
    import pytest

    path = Path(__file__).resolve().parents[1] / "models" / "detector" / "mpr-det.onnx"
    if not path.is_file():
        pytest.skip("no shipped detector")
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    meta = sess.get_modelmeta().custom_metadata_map
    assert ast.literal_eval(meta["names"]) == dict(enumerate(CLASSES))
    size = ast.literal_eval(meta["imgsz"])
    inp = sess.get_inputs()[0]
    assert list(inp.shape) == [1, 3, *size]
    out = sess.run(None, {inp.name: np.zeros((1, 3, *size), np.float32)})[0]
    assert out.shape[:2] == (1, 4 + len(CLASSES)) and out.shape[2] > 0
