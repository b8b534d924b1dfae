"""The OCR engine's detect/recognise split, its two runtimes, and how run_ocr merges lines."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from mpr.ocr import detect_scale, get_engine, line_image
from tasks.run_ocr import Line, distinct


def text_image(words: list[str], size: tuple[int, int] = (360, 640)) -> np.ndarray:
    img = np.full((*size, 3), 235, np.uint8)
    for n, word in enumerate(words):
        cv2.putText(img, word, (40, 80 + 90 * n), cv2.FONT_HERSHEY_DUPLEX, 1.6, (20, 20, 20), 3, cv2.LINE_AA)
    return img


@pytest.mark.parametrize("runtime", ["openvino", "onnxruntime"])
def test_both_runtimes_find_and_read_the_same_lines(runtime):
    engine = get_engine("rapidocr", runtime=runtime)
    image = text_image(["KESTREL", "NORDLYS 2024"])
    quads = engine.detect(image)
    texts = [t for t, score in engine.recognize([line_image(image, q) for q in quads]) if score > 0.8]
    assert texts == ["KESTREL", "NORDLYS 2024"]
    assert all(q.shape == (4, 2) for q in quads)


def test_detect_maps_quads_back_to_the_image_at_any_scale():
    engine = get_engine("rapidocr", runtime="openvino")
    image = text_image(["KESTREL"])
    full, half = engine.detect(image), engine.detect(image, 2.0)
    assert len(full) == len(half) == 1
    assert np.abs(full[0] - half[0]).max() < 6  # same place in image pixels


def test_recognize_nothing_is_nothing():
    assert get_engine("rapidocr", runtime="openvino").recognize([]) == []


def test_detect_scale_enlarges_small_frames_only_and_caps_the_long_side():
    assert detect_scale((360, 640), 960) == pytest.approx(960 / 360)
    assert detect_scale((1080, 1920), 960) == 1.0
    assert detect_scale((360, 6400), 960, max_long_side=2000) == pytest.approx(2000 / 6400)


def test_lines_two_images_found_are_kept_once_from_the_larger_view():
    px = np.zeros((10, 40, 3), np.uint8)
    frame = Line(px, (100, 100, 200, 120), 1.0, "frame")
    band = Line(px, (102, 99, 199, 121), 2.5, "board_band")
    elsewhere = Line(px, (400, 100, 500, 120), 1.0, "frame")
    assert distinct([frame, band, elsewhere], 0.5) == [band, elsewhere]
    assert len(distinct([frame, band, elsewhere], 1.0)) == 3  # 1: every line is recognised
