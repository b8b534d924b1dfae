"""Turn a region of a frame into an image OCR reads well, and remember how to map back.

Every function returns the crop and the 3x3 homography from crop pixels to frame
pixels, so text boxes found in a crop land in frame coordinates.
"""

from __future__ import annotations

import cv2
import numpy as np

from mpr.records import Box, Quad


def rectify_quad(image: np.ndarray, quad: Quad, out_height: int, max_width: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Perspective-rectify a slanted band (tl, tr, br, bl) into an out_height-tall strip."""
    src = np.float32(quad)
    top_len = np.hypot(*(src[1] - src[0]))
    bottom_len = np.hypot(*(src[2] - src[3]))
    left_h = np.hypot(*(src[3] - src[0]))
    right_h = np.hypot(*(src[2] - src[1]))
    mean_h = max((left_h + right_h) / 2, 1.0)
    width = int(np.clip(round(max(top_len, bottom_len) * out_height / mean_h), 8, max_width))
    dst = np.float32([[0, 0], [width, 0], [width, out_height], [0, out_height]])
    to_crop = cv2.getPerspectiveTransform(src, dst)
    strip = cv2.warpPerspective(image, to_crop, (width, out_height), flags=cv2.INTER_CUBIC,
                                borderMode=cv2.BORDER_REPLICATE)
    return strip, np.linalg.inv(to_crop)


def crop_box(image: np.ndarray, box: Box, padding: float, min_height: int, max_upscale: float,
             angle: float = 0.0, min_scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Crop box plus padding (x its height), upscaled so it is at least min_height tall (and
    by at least min_scale), and rotated by -angle degrees (deskew along the board line)."""
    h, w = image.shape[:2]
    x1, y1, x2, y2 = box
    pad = padding * (y2 - y1)
    x1, y1 = max(0.0, x1 - pad), max(0.0, y1 - pad)
    x2, y2 = min(float(w), x2 + pad), min(float(h), y2 + pad)
    scale = float(np.clip(max(min_height / max(y2 - y1, 1.0), min_scale), 1.0, max_upscale))
    out_w, out_h = max(1, round((x2 - x1) * scale)), max(1, round((y2 - y1) * scale))
    # frame -> crop: translate, scale, then rotate about the crop centre
    to_crop = np.array([[scale, 0, -x1 * scale], [0, scale, -y1 * scale], [0, 0, 1]])
    if abs(angle) >= 1.0:
        rot = cv2.getRotationMatrix2D((out_w / 2, out_h / 2), angle, 1.0)
        to_crop = np.vstack([rot, [0, 0, 1]]) @ to_crop
    out = cv2.warpPerspective(image, to_crop, (out_w, out_h), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
    return out, np.linalg.inv(to_crop)


def enhance_contrast(image: np.ndarray, clip_limit: float) -> np.ndarray:
    """CLAHE on the lightness channel: local contrast for low-contrast or washed-out boards."""
    if clip_limit <= 0:
        return image
    lab = cv2.cvtColor(image, cv2.COLOR_BGR2LAB)
    tiles = max(1, min(8, image.shape[1] // max(image.shape[0], 1)))
    clahe = cv2.createCLAHE(clipLimit=clip_limit, tileGridSize=(tiles, 1) if tiles > 1 else (2, 2))
    lab[..., 0] = clahe.apply(lab[..., 0])
    return cv2.cvtColor(lab, cv2.COLOR_LAB2BGR)


def map_box(to_frame: np.ndarray, box: Box) -> Box:
    """Axis-aligned frame box around a crop box mapped through the homography."""
    x1, y1, x2, y2 = box
    pts = cv2.perspectiveTransform(np.float32([[[x1, y1], [x2, y1], [x2, y2], [x1, y2]]]), np.asarray(to_frame))[0]
    return (float(pts[:, 0].min()), float(pts[:, 1].min()), float(pts[:, 0].max()), float(pts[:, 1].max()))


def iou(a: Box, b: Box) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def covered(inner: Box, outer: Box) -> float:
    """Share of `inner`'s area inside `outer`."""
    ix = max(0.0, min(inner[2], outer[2]) - max(inner[0], outer[0]))
    iy = max(0.0, min(inner[3], outer[3]) - max(inner[1], outer[1]))
    area = (inner[2] - inner[0]) * (inner[3] - inner[1])
    return ix * iy / area if area > 0 else 0.0
