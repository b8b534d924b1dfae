"""The vision building blocks on drawn scenes with known geometry."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from mpr.records import Region, TextRead
from mpr.vision.detector import letterbox, nms
from mpr.vision.lines import board_band, board_lines, fixed_on_screen, overlay_boxes
from mpr.vision.pitch import calibrate_grass, pitch_mask, to_hsv
from mpr.vision.rectify import crop_box, map_box, rectify_quad
from tasks.detect_objects import DetectObjectsConfig, _vet_overlays, merge_regions
from tasks.run_ocr import dedupe

W, H = 640, 360


def stadium(grass_bgr=(60, 150, 80), slope=0.1, board_h=24, seed=0) -> tuple[np.ndarray, float]:
    """Crowd above, a dark board row standing on a slanted grass edge, striped grass below.
    Returns the image and the grass edge's y at x=0 (it falls by `slope` per pixel)."""
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 255, (H, W, 3), dtype=np.uint8)  # crowd: colourful noise
    y0 = 140.0
    xs = np.arange(W)
    edge = (y0 + slope * xs).astype(int)
    for x in xs:
        img[edge[x]:, x] = grass_bgr
        img[edge[x] - board_h:edge[x], x] = (40, 30, 20)
        img[edge[x] - board_h:edge[x] - board_h + 2, x] = (250, 250, 250)  # bright board top
    stripes = (xs // 60) % 2 == 0
    img[:, stripes] = np.where((img[:, stripes] == grass_bgr).all(-1, keepdims=True),
                               (np.array(grass_bgr) * 0.85).astype(np.uint8), img[:, stripes])
    return img, y0


@pytest.mark.parametrize("grass", [(60, 150, 80), (70, 165, 150), (40, 100, 55)])  # green, yellowish, shadowed
def test_pitch_mask_calibrates_to_the_grass_of_the_frame(grass):
    img, y0 = stadium(grass)
    hsv, scale = to_hsv(img, 320)
    mask = pitch_mask(hsv, calibrate_grass(hsv))
    expected = 1 - (y0 + 0.1 * W / 2) / H  # share of the frame below the slanted edge
    assert abs(mask.mean() / 255 - expected) < 0.05


def test_close_up_without_grass_has_no_pitch():
    img = np.random.default_rng(1).integers(0, 255, (H, W, 3), dtype=np.uint8)
    img[:, :, 1] //= 3  # nothing green
    hsv, _ = to_hsv(img, 320)
    assert calibrate_grass(hsv) is None
    assert pitch_mask(hsv, None).max() == 0


def test_board_line_and_band_follow_the_slanted_grass_edge():
    img, y0 = stadium(slope=0.1, board_h=24)
    hsv, scale = to_hsv(img, 320)
    lines = board_lines(pitch_mask(hsv, calibrate_grass(hsv)), scale)
    assert lines, "no board line found"
    line = lines[0]
    assert abs(line.angle - np.degrees(np.arctan(0.1))) < 1.5
    assert abs(line.y_at(320) - (y0 + 32)) < 4
    quad, board_h = board_band(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY), line, 8, 60, margin=0.2, rows=1)
    assert abs(board_h - 24) <= 3
    (_, top_left), (_, top_right) = quad[0], quad[1]
    assert top_left < y0 - 24 + 2 and top_right < y0 + 0.1 * W - 24 + 2  # band covers the boards


def test_steady_overlay_is_found_in_moving_pictures():
    rng = np.random.default_rng(2)
    frames = []
    for _ in range(6):
        g = cv2.GaussianBlur(rng.integers(0, 255, (180, 320), dtype=np.uint8), (0, 0), 2)
        cv2.rectangle(g, (10, 8), (110, 30), 255, -1)  # the score bug, in every frame
        cv2.putText(g, "1-0", (20, 26), cv2.FONT_HERSHEY_SIMPLEX, 0.5, 0, 1)
        frames.append(g)
    boxes = overlay_boxes(frames, scale=0.5)
    assert len(boxes) == 1
    x1, y1, x2, y2 = boxes[0]
    assert abs(x1 - 20) <= 6 and abs(y1 - 16) <= 6 and abs(x2 - 222) <= 8 and abs(y2 - 62) <= 8


def test_too_few_frames_give_no_overlays():
    assert overlay_boxes([np.zeros((90, 160), np.uint8)] * 3, scale=0.5) == []


def panning(shift: int, seed: int = 3) -> np.ndarray:
    """A textured scene seen by a camera panned `shift` px right, with a score bug fixed on screen."""
    scene = cv2.GaussianBlur(np.random.default_rng(seed).integers(0, 255, (H, W + 200), dtype=np.uint8), (5, 5), 0)
    cv2.putText(scene, "BANNER", (300, 60), cv2.FONT_HERSHEY_SIMPLEX, 1.0, 255, 3)
    view = scene[:, shift:shift + W].copy()
    cv2.rectangle(view, (10, 8), (110, 30), 200, -1)
    cv2.putText(view, "1-0", (20, 26), cv2.FONT_HERSHEY_SIMPLEX, 0.5, 0, 1)
    cv2.putText(view, "LIVE", (500, 330), cv2.FONT_HERSHEY_SIMPLEX, 1.0, 255, 3)  # no box: the picture shows through
    return view


def test_an_overlay_stays_put_while_a_banner_moves_with_the_camera():
    previous, frame, following = panning(0), panning(40), panning(80)
    bug, banner, live = (8, 6, 112, 32), (255, 30, 420, 70), (495, 300, 580, 340)  # banner: its place in `frame`
    assert fixed_on_screen(bug, frame, [previous, following])
    assert fixed_on_screen(live, frame, [previous, following])
    assert not fixed_on_screen(banner, frame, [previous, following])
    assert fixed_on_screen(banner, frame, [panning(40)])  # a still camera: cannot be told, kept
    assert fixed_on_screen(banner, frame, [])  # no neighbour (a still image, a one-frame chunk)
    assert fixed_on_screen((0, 200, 60, 260), np.full((H, W), 90, np.uint8), [previous])  # flat: kept
    regions = [Region(t=1, frame_key="f", kind=k, box=b, source="yolo")
               for k, b in (("overlay", bug), ("overlay", banner), ("board", banner))]
    bgr = [cv2.cvtColor(g, cv2.COLOR_GRAY2BGR) for g in (frame, previous, following)]
    assert [r.kind for r in _vet_overlays(regions, bgr[0], bgr[1:])] == ["overlay", "board", "board"]


def test_rectified_band_maps_back_to_its_quad():
    img = np.zeros((H, W, 3), np.uint8)
    quad = ((100.0, 100.0), (500.0, 140.0), (500.0, 180.0), (100.0, 130.0))
    strip, to_frame = rectify_quad(img, quad, 64)
    assert strip.shape[0] == 64
    box = map_box(to_frame, (0, 0, strip.shape[1], strip.shape[0]))
    assert np.allclose(box, (100, 100, 500, 180), atol=1.0)


def test_small_crops_are_upscaled_and_map_back():
    img = np.zeros((H, W, 3), np.uint8)
    crop, to_frame = crop_box(img, (200, 100, 260, 110), padding=0.5, min_height=40, max_upscale=4)
    assert crop.shape[0] == 40  # 20 px (10 + 2 x 5 padding) upscaled 2x
    assert np.allclose(map_box(to_frame, (0, 0, crop.shape[1], crop.shape[0])), (195, 95, 265, 115), atol=0.5)
    tilted, to_frame = crop_box(img, (200, 100, 260, 110), 0.5, 40, 4, angle=8)
    centre = map_box(to_frame, (tilted.shape[1] / 2, tilted.shape[0] / 2, tilted.shape[1] / 2, tilted.shape[0] / 2))
    assert np.allclose(centre[:2], (230, 105), atol=1.0)
    big, _ = crop_box(img, (200, 100, 260, 180), 0.0, 40, 4, min_scale=2.0)  # a low-resolution frame's box
    assert big.shape[:2] == (160, 120)


def test_letterbox_keeps_aspect():
    canvas, scale, (left, top) = letterbox(np.zeros((360, 640, 3), np.uint8), 320)
    assert canvas.shape == (320, 320, 3) and scale == 0.5 and (left, top) == (0, 70)


def test_nms_is_class_aware():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 10, 10], [0, 0, 10, 10]], float)
    keep = nms(boxes, np.array([0.9, 0.8, 0.7]), np.array([0, 0, 1]), 0.1, 0.5)
    assert sorted(keep.tolist()) == [0, 2]


def test_merge_drops_yolo_boards_inside_a_band_and_keeps_logos():
    def region(kind, box, source="yolo", score=0.9):
        return Region(t=0, frame_key="f", kind=kind, box=box, source=source, score=score)
    band = region("board_band", (0, 100, 640, 160), "edges", 1.0)
    merged = merge_regions([band, region("board", (10, 110, 200, 150)), region("logo", (20, 120, 80, 140)),
                            region("board", (10, 10, 200, 50)), region("logo", (21, 121, 80, 140), score=0.5)],
                           DetectObjectsConfig())
    kinds = sorted((r.kind, r.box[1]) for r in merged)
    assert kinds == [("board", 10), ("board_band", 100), ("logo", 120)]


def test_ocr_reads_of_one_text_from_overlapping_crops_are_deduplicated():
    def read(text, box, score):
        return TextRead(t=0, frame_key="f", text=text, score=score, box=box)
    out = dedupe([read("Coop", (10, 10, 50, 20), 0.8), read("COOP", (11, 10, 50, 21), 0.9),
                  read("Coop", (300, 10, 340, 20), 0.7)])
    assert [(r.text, r.box[0]) for r in out] == [("COOP", 11), ("Coop", 300)]


def test_the_shipped_detector_finds_the_same_boxes_on_both_runtimes():
    from mpr.settings import PROJECT_DIR
    from mpr.vision.detector import OnnxYolo, resolve_weights

    video = cv2.VideoCapture(str(PROJECT_DIR / "samples" / "demo.mp4"))  # the bundled synthetic clip
    video.set(cv2.CAP_PROP_POS_FRAMES, 125)
    ok, frame = video.read()
    assert ok
    weights = resolve_weights("models/detector/mpr-det.onnx")
    found = {rt: OnnxYolo(weights, 0, rt).detect(frame, 0.25, 0.5) for rt in ("openvino", "onnxruntime")}
    assert found["openvino"] and len(found["openvino"]) == len(found["onnxruntime"])
    for a, b in zip(found["openvino"], found["onnxruntime"]):
        assert a.name == b.name and abs(a.score - b.score) < 0.01 and np.abs(np.subtract(a.box, b.box)).max() < 1.0


@pytest.mark.parametrize("runtime", ["openvino", "onnxruntime"])
def test_weights_that_are_not_a_model_are_one_clear_error(tmp_path, runtime):
    from mpr.errors import InputError
    from mpr.vision.detector import OnnxYolo

    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(InputError, match=r"^detector weights are not a loadable ONNX model: bad.onnx: \S") as err:
        OnnxYolo(bad, 0, runtime)
    assert "\n" not in str(err.value)
