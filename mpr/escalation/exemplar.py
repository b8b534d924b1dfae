"""Offline logo matcher: does an image crop show one of the brands' logo exemplars?

Method: multi-scale, polarity-invariant normalised cross-correlation (NCC) of grayscale
templates, in the spirit of classic template matching, because it needs no training
data and no network, and a logo is a rigid 2-D pattern.

* Exemplar preparation. A logo file is cropped to its content: pixels that differ from
  the border colour. When that content is a coloured plate (Altibox: white word on a red
  rounded rectangle) the plate is dropped and the inner word-mark kept, since a plain
  plate matches any rectangle, and boards often print the word without the plate. A
  margin of the surrounding colour is kept so the template sees the word's outline.
* Templates. The grayscale exemplar is rendered at a fixed ladder of heights and a few
  small distortions (horizontal squeeze/stretch for perspective foreshortening, and a
  vertical shear for the slanted baseline of pitch-side boards seen at an angle), once per
  exemplar, and slightly blurred like broadcast footage.
* Matching. The searched image is resized to a fixed height (so the ladder covers the
  expected logo sizes) and correlated with every template (cv2.TM_CCOEFF_NORMED). The
  score is |NCC|: footage often shows the logo inverted (white "coop" on a blue board
  vs the blue-on-white exemplar), and inversion only flips the sign. Windows with almost
  no contrast are ignored, since NCC normalises noise up to a full-range signal.
* Score. |NCC| in [0, 1]; DEFAULT_MIN_SCORE was chosen with scripts/calibrate_exemplar.py
  on labelled broadcast frames for high precision (a wrong brand is worse than a miss).

Limitations: a logo must be seen whole (an occluded or cut-off logo scores low), strong
rotation or curvature (shirts) beyond the small shears lowers the score, and colour is
ignored (two brands with the same shape of word-mark are not told apart).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

DEFAULT_MIN_SCORE = 0.45  # calibrated with scripts/calibrate_exemplar.py

HEIGHTS = tuple(round(12 * 1.2 ** i) for i in range(11))  # template heights, px: 12 .. 74
CROP_HEIGHT = 48  # match_crop resizes its crop to this height: logos of 0.3-1.0 x the crop
REGION_HEIGHT = 64  # search_region resizes to this height: logos of 0.25-0.95 x the region
CROP_RANGE = (0.29, 1.0)
REGION_RANGE = (0.24, 0.96)
WARPS = ((1.0, 0.0, 0.0), (0.8, 0.0, 0.0), (1.25, 0.0, 0.0), (0.85, 0.15, 0.0), (0.85, -0.15, 0.0),
         (0.7, 0.3, 0.0), (0.7, -0.3, 0.0), (1.0, 0.0, 20.0), (1.0, 0.0, -20.0))  # (x scale, vertical shear, rotation in degrees)
MARGIN = 0.15  # surrounding colour kept around the content, x its height
BLUR_SIGMA = 0.7  # px, applied to templates and searched images alike
MIN_STROKE = 1.5  # px: a template is not used at heights where its strokes are thinner
MIN_STD = 12.0  # gray levels: windows flatter than this are no match
NMS_OVERLAP = 0.3  # intersection over the smaller box above which two hits are one


@dataclass(frozen=True)
class Template:
    field: np.ndarray  # float32 orientation field (see _features)
    box: tuple[float, float, float, float]  # the logo inside the template, template pixels


@dataclass(frozen=True)
class Exemplar:
    brand: str
    image: np.ndarray  # uint8 gray, cropped to the logo (word-mark) plus a margin
    key: str = ""
    templates: tuple[Template, ...] = field(default=(), compare=False, repr=False)


@dataclass(frozen=True)
class LogoHit:
    brand: str
    score: float
    box: tuple[float, float, float, float]


def prepare_exemplar(brand: str, image_bgr: np.ndarray, key: str = "") -> Exemplar:
    """Crop a logo image to its content (inner word-mark of a plate), gray, with templates."""
    gray = _logo_content(_as_bgr(image_bgr))
    return Exemplar(brand, gray, key, _render_templates(gray))


def match_crop(image_bgr: np.ndarray, exemplars: list[Exemplar], min_score: float) -> LogoHit | None:
    """Best logo in a padded crop around one candidate thing, or None below `min_score`."""
    hits = _search(image_bgr, exemplars, min_score, CROP_HEIGHT, CROP_RANGE, peaks=False)
    return max(hits, key=lambda h: h.score, default=None)


def search_region(image_bgr: np.ndarray, exemplars: list[Exemplar], min_score: float,
                  max_hits: int = 20) -> list[LogoHit]:
    """Non-overlapping logo hits in a larger region (a board strip), best first."""
    hits = _search(image_bgr, exemplars, min_score, REGION_HEIGHT, REGION_RANGE, peaks=True)
    return _nms(hits, max_hits)


# --- exemplar preparation ---------------------------------------------------------------

def _as_bgr(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:  # transparent background -> mid gray, which the border crop drops
        alpha = image[:, :, 3:].astype(np.float32) / 255
        return (image[:, :, :3] * alpha + 127 * (1 - alpha)).astype(np.uint8)
    return image


def _logo_content(bgr: np.ndarray) -> np.ndarray:
    """Gray content of a logo: drop the background, then a plate around a word-mark."""
    x1, y1, x2, y2 = _content_box(bgr, _border_color(bgr), drop_border=False) or (0, 0, *bgr.shape[1::-1])
    logo = bgr[y1:y2, x1:x2]
    inner = _content_box(logo, _border_color(logo), drop_border=True) if _is_plate(logo) else None
    if inner and inner[3] - inner[1] >= 0.3 * logo.shape[0]:
        x1, y1, x2, y2 = inner
        logo = logo[y1:y2, x1:x2]
        pad = _pad(logo, _border_color(logo))
    else:
        pad = _pad(logo, _border_color(bgr))
    return cv2.cvtColor(pad, cv2.COLOR_BGR2GRAY)


def _border_color(bgr: np.ndarray) -> np.ndarray:
    ring = np.concatenate([bgr[0], bgr[-1], bgr[:, 0], bgr[:, -1]])
    return np.median(ring, axis=0)


def _far_from(bgr: np.ndarray, color: np.ndarray, thr: float = 60.0) -> np.ndarray:
    return np.linalg.norm(bgr.astype(np.float32) - color, axis=2) > thr


def _components(bgr, color) -> list[tuple[int, int, int, int, int, bool]]:
    """Connected parts far from `color` (specks dropped): x1, y1, x2, y2, area, touches border."""
    mask = _far_from(bgr, color).astype(np.uint8)
    n, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    h, w = mask.shape
    out = []
    for x, y, bw, bh, area in stats[1:]:
        if area >= max(4, 1e-4 * h * w):
            out.append((x, y, x + bw, y + bh, area, x == 0 or y == 0 or x + bw == w or y + bh == h))
    return out


def _content_box(bgr, color, drop_border: bool):
    """Bounding box of the parts far from `color` (inner ones only when `drop_border`), or None."""
    boxes = np.array([c[:4] for c in _components(bgr, color) if not (drop_border and c[5])]).reshape(-1, 4)
    if not len(boxes):
        return None
    return int(boxes[:, 0].min()), int(boxes[:, 1].min()), int(boxes[:, 2].max()), int(boxes[:, 3].max())


def _is_plate(bgr: np.ndarray) -> bool:
    """One colour fills most of the image and its border; what touches the border besides
    it is small (the rounded corners)."""
    color = _border_color(bgr)
    ring = np.concatenate([bgr[0], bgr[-1], bgr[:, 0], bgr[:, -1]])[None]
    corners = sum(c[4] for c in _components(bgr, color) if c[5])
    return ((~_far_from(ring, color)).mean() > 0.5 and (~_far_from(bgr, color)).mean() > 0.45
            and corners < 0.1 * bgr.shape[0] * bgr.shape[1])


def _pad(bgr: np.ndarray, color: np.ndarray) -> np.ndarray:
    m = max(1, round(MARGIN * bgr.shape[0]))
    return cv2.copyMakeBorder(bgr, m, m, m, m, cv2.BORDER_CONSTANT, value=[float(c) for c in color])


def _render_templates(gray: np.ndarray) -> tuple[Template, ...]:
    """The exemplar at every ladder height and warp, blurred like footage."""
    h0, w0 = gray.shape
    inner = h0 / (1 + 2 * MARGIN)  # the logo's height without the margin
    min_height = MIN_STROKE * inner / _stroke_width(gray)
    out = []
    for height in (h for h in HEIGHTS if h >= min_height):
        s = height / inner
        small = cv2.resize(gray, (max(3, round(w0 * s)), max(3, round(h0 * s))), interpolation=cv2.INTER_AREA)
        for warp in WARPS:
            t, box = _warp(small.astype(np.float32), MARGIN * height, *warp)
            out.append(Template(_features(cv2.GaussianBlur(t, (0, 0), BLUR_SIGMA)), box))
    return tuple(out)


def _warp(t: np.ndarray, margin: float, sx: float, shear: float, angle: float):
    """`t` squeezed horizontally by sx, sheared vertically (y += shear * x) and rotated by
    `angle` degrees; returns the image and the logo's (inside the margin) bounding box."""
    a = np.radians(angle)
    lin = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]]) @ np.array([[sx, 0], [shear * sx, 1]])
    h, w = t.shape
    corners = np.array([[0, 0], [w, 0], [0, h], [w, h]], np.float64) @ lin.T
    lo, hi = corners.min(0), corners.max(0)
    mat = np.hstack([lin, -lo[:, None]]).astype(np.float32)
    out = cv2.warpAffine(t, mat, (max(3, round(hi[0] - lo[0])), max(3, round(hi[1] - lo[1]))),
                         flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    logo = np.array([[margin, margin], [w - margin, margin], [margin, h - margin], [w - margin, h - margin]]) @ lin.T - lo
    return out, (*logo.min(0), *logo.max(0))


def _stroke_width(gray: np.ndarray) -> float:
    """Typical stroke width (px) of a logo: 2 x area / boundary length of its thinner
    polarity after Otsu thresholding, inside the margin."""
    m = max(1, round(MARGIN * gray.shape[0] / (1 + 2 * MARGIN)))
    inner = gray[m:-m, m:-m] if min(gray.shape) > 2 * m + 2 else gray
    _, mask = cv2.threshold(inner, 0, 1, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    widths = []
    for part in (mask, 1 - mask):
        boundary = part - cv2.erode(part, np.ones((3, 3), np.uint8))
        if boundary.sum():
            widths.append(2 * part.sum() / boundary.sum())
    return min(widths, default=1.0)


# --- matching -------------------------------------------------------------------------

def _search(image_bgr, exemplars, min_score, height, size_range, peaks: bool) -> list[LogoHit]:
    """Hits of every template whose logo height is within `size_range` x `height`: the best
    place per template, or every local maximum (`peaks`), at or above `min_score`."""
    gray = cv2.cvtColor(_as_bgr(image_bgr), cv2.COLOR_BGR2GRAY)
    h0, w0 = gray.shape
    scale = height / h0
    gray = cv2.resize(gray, (max(1, round(w0 * scale)), height),
                      interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR).astype(np.float32)
    pad = round(MARGIN * height)  # a logo's margin may lie outside the image
    gray = cv2.copyMakeBorder(cv2.GaussianBlur(gray, (0, 0), BLUR_SIGMA), pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    field = _features(gray)
    channels = [np.ascontiguousarray(field[:, :, i]) for i in range(2)]
    energy = cv2.integral((field ** 2).sum(2), sdepth=cv2.CV_64F)
    sums, sqsums = cv2.integral2(gray, sdepth=cv2.CV_64F, sqdepth=cv2.CV_64F)
    lo, hi = size_range[0] * height, size_range[1] * height
    hits = []
    for ex in exemplars:
        for t in ex.templates or _render_templates(ex.image):
            th, tw = t.field.shape[:2]
            if not lo <= t.box[3] - t.box[1] <= hi or th > gray.shape[0] or tw > gray.shape[1]:
                continue
            score = _correlate(channels, energy, t)
            score[_window_std(sums, sqsums, th, tw) < MIN_STD] = 0
            places = _peaks(score, min_score, (th, tw)) if peaks else [np.unravel_index(score.argmax(), score.shape)]
            for y, x in places:
                if score[y, x] >= min_score:
                    x1, y1, x2, y2 = ((v - pad) / scale for v in (x + t.box[0], y + t.box[1], x + t.box[2], y + t.box[3]))
                    box = (max(0.0, x1), max(0.0, y1), min(float(w0), x2), min(float(h0), y2))
                    hits.append(LogoHit(ex.brand, min(1.0, float(score[y, x])), box))
    return hits


def _features(gray: np.ndarray) -> np.ndarray:
    """Edge orientation field, polarity-free: the gradient (gx, gy) as its doubled-angle
    vector (gx^2 - gy^2, 2 gx gy) / |g|, which has length |g| and is the same for g and -g."""
    gx = cv2.Sobel(gray, cv2.CV_32F, 1, 0)
    gy = cv2.Sobel(gray, cv2.CV_32F, 0, 1)
    norm = np.sqrt(gx * gx + gy * gy) + 1e-6
    return np.dstack([(gx * gx - gy * gy) / norm, 2 * gx * gy / norm])


def _correlate(channels, energy, t: Template) -> np.ndarray:
    """Cosine similarity of the template's field with the image's field in every window
    (TM_CCORR_NORMED, computed per channel: several times faster than on 2 channels)."""
    th, tw = t.field.shape[:2]
    dot = sum(cv2.matchTemplate(c, np.ascontiguousarray(t.field[:, :, i]), cv2.TM_CCORR) for i, c in enumerate(channels))
    window = energy[th:, tw:] - energy[:-th, tw:] - energy[th:, :-tw] + energy[:-th, :-tw]
    return (dot / (np.sqrt(np.maximum(window, 0)) * np.linalg.norm(t.field) + 1e-3)).astype(np.float32)


def _window_std(sums, sqsums, th, tw) -> np.ndarray:
    n = th * tw
    s = sums[th:, tw:] - sums[:-th, tw:] - sums[th:, :-tw] + sums[:-th, :-tw]
    q = sqsums[th:, tw:] - sqsums[:-th, tw:] - sqsums[th:, :-tw] + sqsums[:-th, :-tw]
    return np.sqrt(np.maximum(q / n - (s / n) ** 2, 0))


def _peaks(score: np.ndarray, min_score: float, shape) -> list[tuple[int, int]]:
    """Local maxima (within half a template) at or above min_score."""
    k = max(3, shape[0] // 2 * 2 + 1), max(3, shape[1] // 4 * 2 + 1)
    local = cv2.dilate(score, np.ones(k, np.uint8))
    ys, xs = np.nonzero((score >= local) & (score >= min_score))
    return list(zip(ys.tolist(), xs.tolist()))


def _nms(hits: list[LogoHit], max_hits: int) -> list[LogoHit]:
    kept: list[LogoHit] = []
    for hit in sorted(hits, key=lambda h: -h.score):
        if all(_overlap(hit.box, k.box) <= NMS_OVERLAP for k in kept):
            kept.append(hit)
            if len(kept) == max_hits:
                break
    return kept


def _overlap(a, b) -> float:
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    return iw * ih / min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
