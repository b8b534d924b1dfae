"""Small image helpers shared by stages."""

from __future__ import annotations

import cv2
import numpy as np

from mpr.records import Box


def limit_side(image: np.ndarray, max_side: int) -> np.ndarray:
    """Downscale so the longer side is at most `max_side` (0 keeps the size)."""
    h, w = image.shape[:2]
    scale = max_side / max(h, w) if max_side else 1.0
    if scale >= 1.0:
        return image
    return cv2.resize(image, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)


def crop(image: np.ndarray, box: Box, padding: float = 0.0) -> np.ndarray:
    """Crop `box` grown by `padding` x its height on every side, clipped to the image."""
    h, w = image.shape[:2]
    x1, y1, x2, y2 = box
    pad = padding * (y2 - y1)
    x1, y1 = max(0, int(x1 - pad)), max(0, int(y1 - pad))
    x2, y2 = min(w, int(np.ceil(x2 + pad))), min(h, int(np.ceil(y2 + pad)))
    return image[y1:max(y2, y1 + 1), x1:max(x2, x1 + 1)]
