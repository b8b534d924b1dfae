"""Visual continuity: a brand OCR read in one sample is looked for, as the picture OCR read it
from, in the nearby samples of the same shot where OCR did not read it.

OCR on broadcast boards is brittle from one sample to the next: the same distant, blurred
or italic word is read in one frame and misread or not found in the next, although the
board has hardly moved. Within a shot the board looks the same, so the read word's pixels
are a template for it: normalised cross-correlation (OpenCV's TM_CCOEFF_NORMED) of the gray
crop, at the scale it was read and a step either side (zoom), along a horizontal strip
around its place (the camera pans, boards stay in their row). A board that changed
(an LED rotation, an occlusion, a cut) no longer correlates. Overlay graphics stay where
they are on the screen across cuts, so an overlay read is looked for at its own place in
every sample of the chunk.

Only OCR reads are templates (no chains of found-from-found), a sample is searched only for
brands it lacks, and a place where another brand was read is not claimed. The threshold
separated found places from wrong ones on the dev clips with room on both sides (true
0.85-0.99, wrong under 0.70; see the README's "Measured").
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import cv2
import numpy as np

from mpr.records import Box, Detection, Frame
from mpr.vision.rectify import covered

SCALES = (1 / 1.15, 1.0, 1.15)  # zoom between neighbouring samples
STRIP = 1.5  # the strip searched: this many box heights above and below the box
OVERLAY_MARGIN = 1.0  # overlays: searched within this many box heights of their place
PAD = 0.15  # template: the read box plus this much of its height around it
MIN_SIZE = (12, 6)  # px, width and height a template needs
MIN_STD = 12.0  # gray levels: flatter templates correlate with anything


@dataclass(frozen=True)
class Sample:
    key: str  # frame key in the artifact store
    t: float
    shot: int


def samples(frames: list[Frame]) -> list[Sample]:
    """The analysed (not dropped) samples with their shot index (a cut starts a new one)."""
    out, shot = [], 0
    for i, f in enumerate(frames):
        shot += bool(f.cut and i)
        if f.dropped is None:
            out.append(Sample(f.key, f.t, shot))
    return out


def propagate(detections: list[Detection], frames: list[Sample], gray_of, window: int,
              min_score: float) -> list[Detection]:
    """Detections in samples within `window` samples of an OCR read of the same brand in the
    same shot (overlays: anywhere in `frames`), where the read's crop correlates at
    `min_score` or better. `gray_of(key)` returns a sample's gray image."""
    at = {round(s.t, 3): i for i, s in enumerate(frames)}
    by_sample: dict[int, list[Detection]] = defaultdict(list)
    for d in detections:
        if round(d.t, 3) in at:
            by_sample[at[round(d.t, 3)]].append(d)
    found = []
    for i, sample in enumerate(frames):
        here = by_sample.get(i, [])
        brands_here = {d.brand for d in here}
        for source_i, source in _sources(by_sample, frames, i, window, brands_here):
            box, score = _search(gray_of(frames[source_i].key), source, gray_of(sample.key))
            if score >= min_score and not any(covered(d.box, box) > 0.5 or covered(box, d.box) > 0.5
                                              for d in here if d.brand != source.brand):
                found.append(source.model_copy(update={
                    "t": sample.t, "box": box, "confidence": round(source.confidence * score, 4),
                    "source": "escalate_vlm", "resolver": "continuity", "exposure": None}))
                brands_here.add(source.brand)
    return found


def _sources(by_sample, frames: list[Sample], i: int, window: int, skip: set[str]):
    """Per brand missing from sample i: the best read of the nearest sample that has one
    (same shot, within `window`; overlay reads from any sample, nearest first)."""
    best: dict[str, tuple[int, float, Detection, int]] = {}  # brand -> (distance, -confidence, read, sample)
    for j, reads in by_sample.items():
        distance = abs(j - i)
        if j == i:
            continue
        for d in reads:
            if d.brand in skip or d.resolver not in ("ocr", "spotting"):
                continue
            overlay = d.region == "overlay"
            if not overlay and (distance > window or frames[j].shot != frames[i].shot):
                continue
            if d.brand not in best or (distance, -d.confidence) < best[d.brand][:2]:
                best[d.brand] = (distance, -d.confidence, d, j)
    return [(j, d) for _, _, d, j in sorted(best.values(), key=lambda b: b[:2])]


def _search(source_gray: np.ndarray, read: Detection, gray: np.ndarray) -> tuple[Box, float]:
    """Where the read's crop correlates best in `gray`, and how well (-1: not searchable)."""
    h_img, w_img = source_gray.shape
    x1, y1, x2, y2 = read.box
    pad = PAD * (y2 - y1)
    tx1, ty1 = max(0, round(x1 - pad)), max(0, round(y1 - pad))
    tx2, ty2 = min(w_img, round(x2 + pad)), min(h_img, round(y2 + pad))
    template = source_gray[ty1:ty2, tx1:tx2]
    if template.shape[1] < MIN_SIZE[0] or template.shape[0] < MIN_SIZE[1] or template.std() < MIN_STD:
        return read.box, -1.0
    th = ty2 - ty1
    if read.region == "overlay":
        m = OVERLAY_MARGIN * th
        sx1, sx2, scales = max(0, round(tx1 - m)), min(gray.shape[1], round(tx2 + m)), (1.0,)
    else:
        m, sx1, sx2, scales = STRIP * th, 0, gray.shape[1], SCALES
    sy1, sy2 = max(0, round(ty1 - m)), min(gray.shape[0], round(ty2 + m))
    strip = gray[sy1:sy2, sx1:sx2]
    best = (read.box, -1.0)
    for s in scales:
        t = template if s == 1.0 else cv2.resize(template, None, fx=s, fy=s, interpolation=cv2.INTER_LINEAR)
        if t.shape[0] > strip.shape[0] or t.shape[1] > strip.shape[1] or min(t.shape) < 3:
            continue
        score = cv2.matchTemplate(strip, t, cv2.TM_CCOEFF_NORMED)
        _, top, _, (x, y) = cv2.minMaxLoc(score)
        if top > best[1]:  # the read box inside the (scaled) template, in frame pixels
            bx, by = sx1 + x + (x1 - tx1) * s, sy1 + y + (y1 - ty1) * s
            best = ((float(bx), float(by), float(bx + (x2 - x1) * s), float(by + (y2 - y1) * s)), float(top))
    return best
