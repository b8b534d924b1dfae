"""The offline logo matcher on synthetic scenes: rendered word-marks as exemplars, drawn again
at other sizes and colours (inverted too), in perspective and blurred, into noisy backgrounds."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from mpr.escalation.exemplar import DEFAULT_MIN_SCORE, match_crop, prepare_exemplar, search_region

FONT = cv2.FONT_HERSHEY_DUPLEX
BLUE, WHITE, RED = (160, 60, 20), (255, 255, 255), (40, 40, 210)


def word_image(word: str, fg, bg, scale: float = 3.0, plate=None) -> np.ndarray:
    """A logo file: bold `word` in `fg` on `bg`, or on a `plate` colour rectangle inside `bg`."""
    (w, h), base = cv2.getTextSize(word, FONT, scale, 2)
    img = np.full((h + base + 60, w + 60, 3), bg, np.uint8)
    if plate is not None:
        cv2.rectangle(img, (12, 12), (w + 48, h + base + 48), plate, -1)
    cv2.putText(img, word, (30, h + 30), FONT, scale, fg, 2, cv2.LINE_AA)
    return img


@pytest.fixture(scope="module")
def exemplars():
    return [prepare_exemplar("Kora", word_image("KORA", WHITE, WHITE, plate=RED), "kora.png"),
            prepare_exemplar("Vexa", word_image("vexa", BLUE, WHITE), "vexa.png"),
            prepare_exemplar("Milo", word_image("MILO", (0, 0, 0), WHITE), "milo.png")]


def scene(size, color=BLUE, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = np.full((*size, 3), color, np.float32) + rng.normal(0, 6, (*size, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def draw(img, word, x, y, height, color=WHITE, slant=0.0, keystone=0.0, blur=1.0):
    """Draw bold `word`, capitals `height` px tall, at (x, y) (top left), optionally as on a
    board seen at an angle (squeezed to 85 %, the right end `slant` x the width lower and
    `keystone` x the height shorter); returns the ink's box."""
    scale = height / cv2.getTextSize(word.upper(), FONT, 1.0, 2)[0][1]
    layer = np.zeros(img.shape[:2], np.uint8)
    cv2.putText(layer, word, (x, y + height), FONT, scale, 255, 2, cv2.LINE_AA)
    if slant or keystone:
        w = cv2.getTextSize(word, FONT, scale, 2)[0][0]
        src = np.float32([[x, y], [x + w, y], [x + w, y + height], [x, y + height]])
        dy, k, r = slant * w, keystone * height / 2, x + 0.85 * w
        dst = np.float32([[x, y], [r, y + dy + k], [r, y + height + dy - k], [x, y + height]])
        layer = cv2.warpPerspective(layer, cv2.getPerspectiveTransform(src, dst), layer.shape[::-1])
    ys, xs = np.nonzero(layer > 64)
    alpha = cv2.GaussianBlur(layer.astype(np.float32) / 255, (0, 0), blur)[..., None]
    img[:] = (img * (1 - alpha) + np.array(color, np.float32) * alpha).astype(np.uint8)
    return xs.min(), ys.min(), xs.max() + 1, ys.max() + 1


def iou(a, b) -> float:
    iw, ih = min(a[2], b[2]) - max(a[0], b[0]), min(a[3], b[3]) - max(a[1], b[1])
    inter = max(iw, 0) * max(ih, 0)
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def test_plate_is_dropped_for_its_word_mark(exemplars):
    file = word_image("KORA", WHITE, WHITE, plate=RED)
    kora = exemplars[0]
    assert kora.image.ndim == 2 and kora.image.shape[0] < 0.75 * file.shape[0]
    inner = kora.image[6:-6, 6:-6]
    assert inner.max() - inner.min() > 100  # white letters on the (gray) plate colour
    with pytest.raises(ValueError, match="kora.png"):
        prepare_exemplar("Kora", np.zeros((0, 0, 3), np.uint8), "kora.png")


def padded(frame, box, pad=0.25):
    """The crop the pipeline gives match_crop: a box grown by `pad` x its height."""
    x1, y1, x2, y2 = box
    p = round(pad * (y2 - y1))
    return frame[y1 - p:y2 + p, x1 - p:x2 + p], (p, p, x2 - x1 + p, y2 - y1 + p)


@pytest.mark.parametrize("word, brand, color, board", [
    ("KORA", "Kora", WHITE, BLUE),  # the plate's word-mark alone, on another colour
    ("vexa", "Vexa", WHITE, BLUE),  # inverted: white on blue vs blue on white
    ("vexa", "Vexa", BLUE, (235, 235, 235)),  # same polarity
    ("MILO", "Milo", (0, 200, 255), (30, 30, 30)),
])
def test_match_crop_finds_the_brand_and_its_box(exemplars, word, brand, color, board):
    frame = scene((100, 300), board)
    crop, truth = padded(frame, draw(frame, word, 40, 30, 24, color))
    hit = match_crop(crop, exemplars, DEFAULT_MIN_SCORE)
    assert hit is not None and hit.brand == brand
    assert iou(hit.box, truth) > 0.5, (hit, truth)


@pytest.mark.parametrize("slant", [0.15, -0.15])
def test_match_crop_small_board_seen_at_an_angle(exemplars, slant):
    frame = scene((140, 400))
    crop, truth = padded(frame, draw(frame, "vexa", 40, 50, 26, slant=slant, keystone=0.15, blur=1.5))
    small = cv2.resize(crop, None, fx=0.7, fy=0.7, interpolation=cv2.INTER_AREA)  # ink ~20 px tall
    hit = match_crop(small, exemplars, DEFAULT_MIN_SCORE)
    assert hit is not None and hit.brand == "Vexa"
    assert iou(hit.box, np.array(truth) * 0.7) > 0.5, (hit, truth)


def test_match_crop_without_a_logo_is_none(exemplars):
    rng = np.random.default_rng(3)
    for seed in range(4):
        crop = scene((40, 140), seed=seed)
        for _ in range(3):  # clutter: bars, a box outline, a blob
            p = rng.integers(0, 130, 2)
            cv2.line(crop, (int(p[0]), 5), (int(p[1]), 35), (200, 200, 200), 2)
        cv2.rectangle(crop, (20, 8), (70, 30), (230, 230, 230), 2)
        cv2.circle(crop, (110, 20), 9, (0, 0, 0), -1)
        assert match_crop(crop, exemplars, DEFAULT_MIN_SCORE) is None
    best = match_crop(scene((40, 140)), exemplars, 0.0)  # min_score 0: the best of anything
    assert best is None or best.score < DEFAULT_MIN_SCORE
    assert match_crop(np.zeros((0, 10, 3), np.uint8), exemplars, DEFAULT_MIN_SCORE) is None
    assert match_crop(scene((40, 140)), [], DEFAULT_MIN_SCORE) is None


@pytest.mark.parametrize("inverted", [False, True])
def test_search_region_finds_each_repeat(exemplars, inverted):
    board, ink = ((235, 235, 235), BLUE) if inverted else (BLUE, WHITE)  # the exemplar is blue on white
    strip = scene((60, 700), board, seed=7)
    truths = [draw(strip, "vexa", x, 16, 26, ink) for x in (20, 260, 480)]
    hits = search_region(strip, exemplars, DEFAULT_MIN_SCORE)
    assert [h.brand for h in hits] == ["Vexa"] * 3
    for truth in truths:
        assert max(iou(h.box, truth) for h in hits) > 0.5, (hits, truth)


def test_search_region_tells_brands_apart_and_respects_max_hits(exemplars):
    strip = scene((70, 640), (30, 30, 30), seed=2)
    truths = {"Milo": draw(strip, "MILO", 30, 20, 30), "Vexa": draw(strip, "vexa", 300, 18, 28)}
    hits = search_region(strip, exemplars, DEFAULT_MIN_SCORE)
    assert sorted(h.brand for h in hits) == ["Milo", "Vexa"]
    for h in hits:
        assert iou(h.box, truths[h.brand]) > 0.5
    assert len(search_region(strip, exemplars, DEFAULT_MIN_SCORE, max_hits=1)) == 1
    assert search_region(scene((60, 500), seed=5), exemplars, DEFAULT_MIN_SCORE) == []
