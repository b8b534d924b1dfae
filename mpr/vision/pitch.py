"""Pitch segmentation: an HSV grass mask whose ranges come from the frame's own histogram.

Grass is the dominant saturated hue of a broadcast wide shot, but its hue, saturation
and brightness change with the stadium, the light and the shadows. So the range is
not fixed: the hue peak inside a broad green band is found in the histogram, widened
while the histogram stays high, and the saturation/value floors are taken from
percentiles of the pixels at that hue (shadowed grass is darker, not another hue).
"""

from __future__ import annotations

from typing import NamedTuple

import cv2
import numpy as np

GREEN_BAND = (25, 100)  # OpenCV hue (0-180) where any grass peak must lie
MIN_GREEN_SHARE = 0.04  # less saturated green than this: no pitch to calibrate on


class GrassRange(NamedTuple):
    low: tuple[int, int, int]
    high: tuple[int, int, int]


def calibrate_grass(hsv: np.ndarray) -> GrassRange | None:
    """The HSV range of the grass in this image, or None when there is too little green."""
    h, s, v = (hsv[..., i].ravel() for i in range(3))
    candidate = (h >= GREEN_BAND[0]) & (h <= GREEN_BAND[1]) & (s >= 40) & (v >= 35)
    if candidate.mean() < MIN_GREEN_SHARE:
        return None
    hist = np.bincount(h[candidate], minlength=180).astype(np.float32)
    hist = np.convolve(hist, np.ones(5) / 5, mode="same")
    peak = int(np.argmax(hist))
    lo, hi = peak, peak
    while lo > GREEN_BAND[0] and hist[lo - 1] > 0.06 * hist[peak] and peak - lo < 22:
        lo -= 1
    while hi < GREEN_BAND[1] and hist[hi + 1] > 0.06 * hist[peak] and hi - peak < 22:
        hi += 1
    at_peak = candidate & (h >= lo) & (h <= hi)
    s_floor = int(max(25, np.percentile(s[at_peak], 3) * 0.8))
    v_floor = int(max(25, np.percentile(v[at_peak], 1) * 0.8))
    return GrassRange((max(0, lo - 3), s_floor, v_floor), (min(179, hi + 3), 255, 255))


def pitch_mask(hsv: np.ndarray, grass: GrassRange | None) -> np.ndarray:
    """255 where the pitch is: the grass range, cleaned, small blobs dropped, holes filled.

    Holes (players, lines, the ball) are filled because they are on the pitch; only
    large grass components count, so a green shirt or a hedge is not a pitch.
    """
    height, width = hsv.shape[:2]
    mask = np.zeros((height, width), np.uint8)
    if grass is None:
        return mask
    raw = cv2.inRange(hsv, np.array(grass.low, np.uint8), np.array(grass.high, np.uint8))
    raw = cv2.morphologyEx(raw, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    raw = cv2.morphologyEx(raw, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (9, 9)))
    contours, _ = cv2.findContours(raw, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    big = [c for c in contours if cv2.contourArea(c) >= 0.02 * height * width]
    cv2.drawContours(mask, big, -1, 255, thickness=cv2.FILLED)
    return mask


def to_hsv(image: np.ndarray, width: int) -> tuple[np.ndarray, float]:
    """The frame downscaled to `width` (the mask resolution) in HSV, and the scale used."""
    scale = min(1.0, width / image.shape[1])
    small = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 1 else image
    return cv2.cvtColor(small, cv2.COLOR_BGR2HSV), scale
