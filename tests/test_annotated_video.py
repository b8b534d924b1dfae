"""annotated.mp4: boxes scaled and timed right, counters, atomic write, bad input."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from mpr.outputs.video import (
    _Overlay,
    brand_colour,
    brand_colours,
    frame_at,
    write_annotated_video,
)
from mpr.records import BrandExposure, Detection, Exposure, Report
from tests.media import level_of, level_video

W, H, FPS, SECONDS = 320, 180, 25, 6
BOX = (200.0, 120.0, 440.0, 280.0)  # in frame_size (640x360) pixels: (100, 60, 220, 140) in the video


def _report() -> Report:
    detections = [Detection(t=t, brand="Acme", confidence=0.9, box=BOX, exposure=1, placement="perimeter_board")
                  for t in (1.0, 2.0, 3.0)]
    exposure = Exposure(id=1, brand="Acme", start=1.0, end=3.0, duration_s=3.0, shot=0, detections=3,
                        placement="perimeter_board", share_mean=0.17, share_max=0.17, zone="centre", central=1,
                        position=1, size=0.5, sharpness=0.8, contrast=0.8, confidence=0.9, clarity=0.8,
                        clutter=0, share_of_voice=1, quality=0.3, media_value=1.0)
    brand = BrandExposure(brand="Acme", exposure_s=3.0, detections=3, segments=[], exposures=[exposure],
                          exposure_count=1)
    return Report(duration_s=SECONDS, frames_analyzed=6, frames_kept=6, brands=[brand], detections=detections,
                  frame_size=(640, 360), sample_interval_s=1.0, source="clip.mp4", profile="test")


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("annotated")
    source = level_video(folder / "clip.mp4", SECONDS, fps=FPS, size=(W, H))
    out = write_annotated_video(_report(), str(source), folder / "out" / "annotated.mp4")
    return source, out


def _has_colour(image: np.ndarray, x: int, y: int, colour, tol: float = 60.0) -> bool:
    """Some pixel within 2 px of (x, y) is within `tol` of the BGR colour (H.264 blurs chroma)."""
    patch = image[y - 2:y + 3, x - 2:x + 3].reshape(-1, 3).astype(float)
    return bool(np.linalg.norm(patch - np.array(colour, float), axis=1).min() < tol)


def _box_drawn(image: np.ndarray) -> bool:
    colour = brand_colour("Acme")
    # the middle of each edge of the scaled box (100, 60)-(220, 140); the tag sits above the top edge
    edges = [(100, 100), (220, 100), (160, 140)]
    return all(_has_colour(image, x, y, colour) for x, y in edges)


def test_output_matches_source(made):
    out = made[1]
    assert out.exists() and out.name == "annotated.mp4"
    assert [p.name for p in out.parent.iterdir()] == ["annotated.mp4"]  # no temporary file left
    cap = cv2.VideoCapture(str(out))
    try:
        assert cap.isOpened()
        assert abs(cap.get(cv2.CAP_PROP_FPS) - FPS) < 0.01
        assert abs(cap.get(cv2.CAP_PROP_FRAME_COUNT) - SECONDS * FPS) <= 1
        assert (cap.get(cv2.CAP_PROP_FRAME_WIDTH), cap.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (W, H)
    finally:
        cap.release()


def test_boxes_scaled_and_held_for_one_sample(made):
    _, out = made
    for t, drawn in ((0.5, False), (1.0, True), (2.5, True), (3.96, True), (4.04, False), (5.0, False)):
        image = frame_at(out, t)
        assert image.shape == (H, W, 3)
        assert _box_drawn(image) is drawn, t
        assert level_of(image[90:130, 20:60]) == int(t)  # frame_at landed on the right second


def test_counters_run_with_time():
    overlay = _Overlay(_report(), (W, H), (W, H), FPS)
    assert overlay.counters(0.5) == []
    assert overlay.counters(2.5) == [("Acme", 1.5, 1)]
    assert overlay.counters(5.0) == [("Acme", 3.0, 1)]  # clipped at the exposure's duration


def test_colours_stable_and_distinct():
    assert brand_colour("Acme") == brand_colour("Acme")
    names = [f"Brand {i}" for i in range(12)]
    colours = brand_colours(names)
    assert len(set(colours.values())) == 12
    assert brand_colours(reversed(names)) == colours


def test_max_width_downscales_to_even_size(made, tmp_path):
    source, _ = made
    out = write_annotated_video(_report(), str(source), tmp_path / "small.mp4", max_width=150)
    image = frame_at(out, 2.5)
    assert image.shape == (84, 150, 3)  # 150 x 84.375 -> even height


def test_truncated_source_writes_what_was_read(made, tmp_path):
    source, _ = made
    data = source.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) * 2 // 3])
    out = write_annotated_video(_report(), str(cut), tmp_path / "cut_annotated.mp4")
    count = cv2.VideoCapture(str(out)).get(cv2.CAP_PROP_FRAME_COUNT)
    assert 0 < count < SECONDS * FPS


def test_unreadable_source_raises_and_writes_nothing(tmp_path):
    missing = tmp_path / "missing.mp4"
    with pytest.raises(ValueError, match="cannot read video"):
        write_annotated_video(_report(), str(missing), tmp_path / "annotated.mp4")
    assert list(tmp_path.iterdir()) == []
