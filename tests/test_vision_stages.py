"""The vision stages chained by hand on one drawn stadium frame, with the real OCR."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from mpr.records import Frame, FrameSet
from mpr.source import SourceInfo
from tasks.detect_edges import DetectEdgesConfig, detect_edges
from tasks.field_segmentation import FieldSegmentationConfig, field_segmentation
from tasks.preprocess import PreprocessConfig, preprocess
from tasks.run_ocr import RunOcrConfig, run_ocr
from tasks.stage import StageContext

W, H = 1280, 720


def stadium_frame() -> np.ndarray:
    """Crowd, a white board with dark text standing on a slanted grass edge, grass."""
    rng = np.random.default_rng(3)
    img = cv2.GaussianBlur(rng.integers(0, 255, (H, W, 3), dtype=np.uint8), (0, 0), 3)
    edge = lambda x: 330 + 0.06 * x  # noqa: E731
    grass = np.array([[[60, 150, 80]]], np.uint8)
    ys = np.arange(H)[:, None]
    img[ys >= edge(np.arange(W))[None, :]] = grass
    board = np.float32([[0, edge(0) - 40], [W, edge(W) - 40], [W, edge(W)], [0, edge(0)]])
    tex = np.full((40, 1280, 3), 245, np.uint8)
    for x, word in ((60, "NORDLYS"), (520, "KESTREL"), (960, "SOLBERG")):
        cv2.putText(tex, word, (x, 32), cv2.FONT_HERSHEY_DUPLEX, 1.0, (30, 30, 30), 2, cv2.LINE_AA)
    warp = cv2.getPerspectiveTransform(np.float32([[0, 0], [1280, 0], [1280, 40], [0, 40]]), board)
    cv2.warpPerspective(tex, warp, (W, H), dst=img, borderMode=cv2.BORDER_TRANSPARENT)
    return img


@pytest.fixture
def ctx(tmp_path):
    info = SourceInfo(uri="frame.png", kind="image", fingerprint="f", local_path="frame.png", frame_count=1)
    return StageContext(source=info, store_root=str(tmp_path / "store"), key="test")


def test_board_text_is_read_from_the_rectified_band_only(ctx):
    key = ctx.store.put_image("frames/0.png", stadium_frame())
    frames = FrameSet(chunk=0, frames=[Frame(index=0, t=0.0, key=key, width=W, height=H)])
    fields = field_segmentation([frames], FieldSegmentationConfig(), ctx)
    assert not fields.fields[0].low_pitch and 0.4 < fields.fields[0].coverage < 0.6
    regions = detect_edges([fields], DetectEdgesConfig(overlays=False, band_rows=1.0), ctx)
    bands = [r for r in regions.regions if r.kind == "board_band"]
    assert len(bands) == 1 and abs(bands[0].board_height - 40) <= 6
    crops = preprocess([regions], PreprocessConfig(), ctx)
    assert [c.kind for c in crops.crops] == ["board_band"]
    texts = run_ocr([crops], RunOcrConfig(full_frame="never"), ctx)
    words = {r.text.upper(): r for r in texts.reads}
    assert {"NORDLYS", "KESTREL", "SOLBERG"} <= set(words)
    assert all(r.region == "board_band" for r in texts.reads)
    x1, y1, x2, y2 = words["KESTREL"].box  # mapped back to the frame, on the slanted board
    assert 500 < x1 < 560 and abs((y1 + y2) / 2 - (330 + 0.06 * (x1 + x2) / 2 - 18)) < 12
    # the line's corners in the frame follow the slanted board; every character has its place on it
    (tl, tr, br, bl), places = words["KESTREL"].quad, words["KESTREL"].places
    assert abs((tr[1] - tl[1]) / (tr[0] - tl[0]) - 0.06) < 0.02 and bl[1] > tl[1]
    assert all(x1 - 1 <= x <= x2 + 1 and y1 - 1 <= y <= y2 + 1 for x, y in (tl, tr, br, bl))
    assert len(places) == 7 and list(places) == sorted(places) and 0 <= places[0] < places[-1] <= 1


def test_close_up_is_flagged_low_pitch_and_read_whole(ctx):
    img = np.full((H, W, 3), (200, 120, 40), np.uint8)  # a blue shirt filling the frame
    cv2.putText(img, "POLARIS", (400, 380), cv2.FONT_HERSHEY_DUPLEX, 3.0, (255, 255, 255), 6, cv2.LINE_AA)
    key = ctx.store.put_image("frames/1.png", img)
    frames = FrameSet(chunk=0, frames=[Frame(index=0, t=0.0, key=key, width=W, height=H)])
    fields = field_segmentation([frames], FieldSegmentationConfig(), ctx)
    assert fields.fields[0].low_pitch and fields.fields[0].coverage == 0
    crops = preprocess([detect_edges([fields], DetectEdgesConfig(), ctx)], PreprocessConfig(), ctx)
    assert crops.crops == []
    read = run_ocr([crops], RunOcrConfig(full_frame="low_pitch"), ctx)
    assert [(r.text, r.region) for r in read.reads] == [("POLARIS", "frame")]
    assert run_ocr([crops], RunOcrConfig(full_frame="never"), ctx).reads == []
