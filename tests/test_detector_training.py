"""The detector's training half: real-label parsing, the even/odd split, the real sets, and no Prefect needed."""

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np

from mpr import detector_training as dt
from mpr.detector_data import LOGO

HEADER = "label_name,bbox_x,bbox_y,bbox_width,bbox_height,image_name,image_width,image_height\n"


def _real_set(tmp_path: Path, names: list[str]) -> Path:
    images = tmp_path / "real" / "foocus_dataset_images"
    images.mkdir(parents=True)
    rows = []
    for n, name in enumerate(names):
        cv2.imwrite(str(images / name), np.zeros((72, 128, 3), np.uint8))
        rows.append(f"Coop,{10 + n},20,30,10,{name},128,72\n")
    rows.append(f"Altibox,64,36,32,18,{names[0]},128,72\n")
    csv = tmp_path / "real" / "labels.csv"
    csv.write_text(HEADER + "".join(rows))
    return csv


def test_real_labels_map_every_brand_to_logo(tmp_path: Path) -> None:
    labels = dt.read_real_labels(_real_set(tmp_path, ["a.jpg", "b.jpg"]))
    assert labels["a.jpg"] == [(LOGO, 10.0, 20.0, 40.0, 30.0, 128, 72), (LOGO, 64.0, 36.0, 96.0, 54.0, 128, 72)]
    assert labels["b.jpg"] == [(LOGO, 11.0, 20.0, 41.0, 30.0, 128, 72)]


def test_split_is_by_sorted_name_even_positions_train() -> None:
    assert dt.split_real(["d", "a", "c", "b", "e"]) == (["a", "c", "e"], ["b", "d"])


def test_real_split_oversamples_train_and_keeps_held_out_apart(tmp_path: Path) -> None:
    csv = _real_set(tmp_path, ["1.jpg", "2.jpg", "3.jpg"])
    work = tmp_path / "work"
    (work / "dataset" / "images" / "train").mkdir(parents=True)
    (work / "dataset" / "labels" / "train").mkdir(parents=True)
    real = dt.add_real_split(work, csv, oversample=3)
    assert real["train"] == ["1.jpg", "3.jpg"] and real["heldout"] == ["2.jpg"] and real["train_copies"] == 6
    train_images = sorted(p.name for p in (work / "dataset" / "images" / "train").iterdir())
    assert len(train_images) == 6 and not any(name.startswith("real_2") for name in train_images)
    held = work / "real_heldout"
    assert [p.name for p in (held / "images" / "val").iterdir()] == ["real_2.jpg"]
    assert (held / "labels" / "val" / "real_2.txt").read_text().split()[0] == str(LOGO)
    assert real["sets"]["real_all"]["boxes"] == 4
    # a second split with less oversampling leaves no stale copies behind
    assert dt.add_real_split(work, csv, oversample=1)["train_copies"] == 2
    assert len(list((work / "dataset" / "images" / "train").iterdir())) == 2


def test_trained_info_comes_from_the_record_next_to_the_weights(tmp_path: Path) -> None:
    weights = tmp_path / "runs" / "train" / "weights" / "best.pt"
    weights.parent.mkdir(parents=True)
    (weights.parent / "train_info.json").write_text(json.dumps({"weights": "/elsewhere/best.pt", "seconds": 378.0,
                                                                 "epochs_done": 28, "device": "0"}))
    info = dt.trained_info(str(weights))
    assert info["weights"] == str(weights) and info["epochs_done"] == 28 and info["seconds"] == 378.0
    (weights.parent.parent / "results.csv").write_text("epoch,loss\n1,2\n2,1\n")
    assert dt.epochs_done(weights) == 2


def test_training_module_needs_no_prefect() -> None:
    """A bare GPU host (torch and ultralytics, no project services) runs this module."""
    code = ("import sys; sys.modules['prefect'] = None; sys.modules['imageio_ffmpeg'] = None; "
            "import mpr.detector_training, mpr.detector_data; mpr.detector_data.render_sample(0, 'train', 0)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
