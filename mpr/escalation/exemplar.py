"""Offline logo matcher: does an image crop show one of the brands' logo exemplars?

Template matching, because it needs no training data, network or GPU, and a logo is a
rigid 2-D pattern. It has to survive what broadcast footage does to logos: inverted
colours (white "coop" on a blue board vs the blue-on-white exemplar), tiny sizes (10-25
px tall on distant boards), blur, and the slant and foreshortening of pitch-side boards
seen at an angle.

* Exemplar. A logo file is cropped to its content (pixels unlike the border colour).
  When that content is a plate (Altibox: a white word on a red rounded rectangle) the
  plate is dropped and the word-mark inside kept: a bare plate matches any rectangle and
  boards often print the word without it. A margin of the surrounding colour is kept.
* Templates, rendered once per exemplar: a ladder of heights (step 1.2) times a few warps
  (squeeze/stretch, vertical shear with squeeze for boards seen at an angle, +-20 degree
  rotation), blurred a little like footage. Heights at which the logo's strokes would
  be thinner than MIN_STROKE px are left out: such a template has no detail left and
  matches clutter (a two-line word-mark squeezed into 15 px did, all over).
* Features: edge orientations, not intensities. Each pixel's gradient becomes its
  doubled-angle vector (gx^2 - gy^2, 2 gx gy) / |g|, the same for a gradient and its
  opposite, so an inverted logo matches exactly as well, whatever its colours. On the
  calibration frames this separated logos from clutter far better than |NCC| of gray
  templates (which, at its best recall, also hit a third of the negative crops).
* Score: cosine similarity of the template's and the window's orientation fields
  (TM_CCORR_NORMED), so 0-1 where it matters. The searched image is resized to a fixed
  height, so that the ladder covers the expected logo sizes. Windows with almost no
  contrast (std < MIN_STD gray levels) are no match. The best places are then refined by
  hill-climbing height and width in 3.5 % steps (the ladder and warps are coarse for long
  word-marks, whose ends drift off). search_region looks at many more places than
  match_crop, so its clutter scores run higher: it reports scores less REGION_PENALTY,
  which lets one threshold serve both. DEFAULT_MIN_SCORE is calibrated on labelled
  broadcast frames (scripts/calibrate_exemplar.py) for high precision: a wrong brand is
  worse than a miss.

Limitations: a logo must be seen whole (occluded or cut-off logos score low); rotations
beyond about 30 degrees, curved shirts and strong perspective are missed; colour is
ignored, so word-marks of the same shape are not told apart, and round-lettered text
("OBOS", floodlights in a row) comes close to "coop"; cost grows with the number of
exemplars and, for search_region, with the region's width over its height.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

DEFAULT_MIN_SCORE = 0.5  # calibrated with scripts/calibrate_exemplar.py

HEIGHTS = tuple(round(12 * 1.2 ** i) for i in range(11))  # logo heights of the templates, px: 12 .. 74
CROP_HEIGHT, CROP_RANGE = 48, (0.29, 1.0)  # match_crop: crop resized to 48 px; logo box 0.29-1 x that
REGION_HEIGHT, REGION_RANGE = 64, (0.24, 0.96)  # search_region: region resized to 64 px; logo 0.24-0.96 x
WARPS = ((1.0, 0.0, 0.0), (0.8, 0.0, 0.0), (1.25, 0.0, 0.0), (0.85, 0.15, 0.0), (0.85, -0.15, 0.0),
         (0.7, 0.3, 0.0), (0.7, -0.3, 0.0), (1.0, 0.0, 20.0), (1.0, 0.0, -20.0))  # x scale, shear, degrees
MARGIN = 0.15  # surrounding colour kept around the logo, x its height
BLUR_SIGMA = 0.7  # px, on templates and searched images alike
MIN_STROKE = 1.5  # px: no template at heights where the logo's strokes are thinner
MIN_STD = 20.0  # gray levels: flatter windows are no match (grass, sky)
REFINE_SLACK = 0.08  # places this far below min_score are refined (in-between sizes) too
REFINE_STEP, REFINE_ROUNDS = 0.035, 3  # hill-climbing of a place's template height and width
MAX_CANDIDATES = 25  # places per exemplar refined in a region
REGION_PENALTY = 0.05  # a region is searched at far more places than a crop: clutter scores higher
NMS_OVERLAP = 0.3  # intersection over the smaller box above which two hits are one


@dataclass(frozen=True)
class Template:
    field: np.ndarray  # float32 (2, h, w): orientation field (see _features), channels first
    box: tuple[float, float, float, float]  # the logo inside the template, template pixels
    norm: float  # of the field
    height: float  # the logo's height before warping, px
    warp: tuple[float, float, float]  # see WARPS


@dataclass(frozen=True)
class Exemplar:
    brand: str
    image: np.ndarray  # uint8 gray, cropped to the logo (or a plate's word-mark) plus a margin
    key: str = ""  # where it came from (path), for logs
    templates: tuple[Template, ...] = field(default=(), compare=False, repr=False)  # made if empty


@dataclass(frozen=True)
class LogoHit:
    brand: str
    score: float  # edge-orientation similarity, 0-1 (see the module's docstring); vs min_score
    box: tuple[float, float, float, float]  # x1, y1, x2, y2 in the pixels of the image searched


def prepare_exemplar(brand: str, image_bgr: np.ndarray, key: str = "") -> Exemplar:
    """Crop a logo image to its content (inner word-mark of a plate), gray, with templates."""
    if image_bgr is None or image_bgr.size == 0:
        raise ValueError(f"logo exemplar {key or brand!r}: no image")
    gray = _logo_content(_as_bgr(image_bgr))
    return Exemplar(brand, gray, key, _render_templates(gray))


def match_crop(image_bgr: np.ndarray, exemplars: list[Exemplar], min_score: float) -> LogoHit | None:
    """The best logo in a padded crop around one candidate thing (logo box 0.3-1 x the crop
    height), or None when nothing scores `min_score`."""
    hits = _search(image_bgr, exemplars, min_score, CROP_HEIGHT, CROP_RANGE, peaks=False)
    return max(hits, key=lambda h: h.score, default=None)


def search_region(image_bgr: np.ndarray, exemplars: list[Exemplar], min_score: float,
                  max_hits: int = 20) -> list[LogoHit]:
    """Non-overlapping hits (best first, at most `max_hits`) in a larger region such as a
    board strip, for logos 0.25-0.95 x its height, anywhere and repeated."""
    hits = _search(image_bgr, exemplars, min_score + REGION_PENALTY, REGION_HEIGHT, REGION_RANGE, peaks=True)
    return _nms([LogoHit(h.brand, max(0.0, h.score - REGION_PENALTY), h.box) for h in hits], max_hits)


# --- exemplar preparation ---------------------------------------------------------------

def _as_bgr(image: np.ndarray) -> np.ndarray:
    """3-channel uint8 from gray, BGR or BGRA (transparency becomes mid gray)."""
    if image.ndim == 2 or image.shape[2] == 1:
        return cv2.cvtColor(image.reshape(image.shape[:2]), cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:
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
    """The exemplar at every ladder height (with strokes of MIN_STROKE px or more) and warp."""
    min_height = MIN_STROKE * gray.shape[0] / (1 + 2 * MARGIN) / _stroke_width(gray)
    return tuple(_render(gray, h, warp) for h in HEIGHTS if h >= min_height for warp in WARPS)


def _render(gray: np.ndarray, height: float, warp: tuple[float, float, float]) -> Template:
    """One template: the logo `height` px tall, warped, blurred like footage, as a field."""
    h0, w0 = gray.shape
    s = height * (1 + 2 * MARGIN) / h0
    small = cv2.resize(gray, (max(3, round(w0 * s)), max(3, round(h0 * s))), interpolation=cv2.INTER_AREA)
    t, box = _warp(small.astype(np.float32), MARGIN * height, *warp)
    f = np.ascontiguousarray(_features(cv2.GaussianBlur(t, (0, 0), BLUR_SIGMA)).transpose(2, 0, 1))
    return Template(f, box, float(np.linalg.norm(f)), height, warp)


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

class _Searched:
    """The searched image resized to `height` px, blurred, padded by a margin in which a
    logo's margin may lie, as an orientation field with its window sums."""

    def __init__(self, image_bgr: np.ndarray, height: int):
        gray = cv2.cvtColor(_as_bgr(image_bgr), cv2.COLOR_BGR2GRAY)
        self.size = gray.shape[1], gray.shape[0]
        self.scale = height / gray.shape[0]
        gray = cv2.resize(gray, (max(1, round(self.size[0] * self.scale)), height),
                          interpolation=cv2.INTER_AREA if self.scale < 1 else cv2.INTER_LINEAR).astype(np.float32)
        p = self.pad = round(MARGIN * height)
        gray = cv2.copyMakeBorder(cv2.GaussianBlur(gray, (0, 0), BLUR_SIGMA), p, p, p, p, cv2.BORDER_REPLICATE)
        field = _features(gray)
        field[:p], field[-p:], field[:, :p], field[:, -p:] = 0, 0, 0, 0  # no edges outside the image
        self.shape = gray.shape
        self.channels = [np.ascontiguousarray(field[:, :, i]) for i in range(2)]
        self.energy = (field ** 2).sum(2)
        self.sums, self.sqsums = cv2.integral2(gray, sdepth=cv2.CV_64F, sqdepth=cv2.CV_64F)

    def fits(self, t: Template) -> bool:
        return t.field.shape[1] <= self.shape[0] and t.field.shape[2] <= self.shape[1]

    def scores(self, t: Template, x0: int = 0, y0: int = 0, x1: int | None = None, y1: int | None = None):
        """Cosine similarity of the template's field with every window (top left corners in
        [x0, x1) x [y0, y1), the whole image by default), computed per channel: TM_CCORR_NORMED
        on the 2-channel field is about twice as slow."""
        th, tw = t.field.shape[1:]
        ys, xs = slice(y0, None if y1 is None else y1 + th - 1), slice(x0, None if x1 is None else x1 + tw - 1)
        dot = sum(cv2.matchTemplate(c[ys, xs], f, cv2.TM_CCORR) for c, f in zip(self.channels, t.field))
        window = cv2.boxFilter(self.energy[ys, xs], -1, (tw, th), anchor=(0, 0), normalize=False)
        return dot / (np.sqrt(np.maximum(window[:dot.shape[0], :dot.shape[1]], 0)) * t.norm + 1e-3)

    def flat(self, t: Template, x: int, y: int) -> bool:
        """Whether the gray window under the template has a std below MIN_STD."""
        h, w = t.field.shape[1:]
        n, (s, q) = w * h, (a[y + h, x + w] - a[y, x + w] - a[y + h, x] + a[y, x] for a in (self.sums, self.sqsums))
        return q / n - (s / n) ** 2 < MIN_STD ** 2

    def box(self, t: Template, x: int, y: int) -> tuple[float, float, float, float]:
        """The logo's box in the pixels of the image searched."""
        x1, y1, x2, y2 = ((v - self.pad) / self.scale for v in (x + t.box[0], y + t.box[1], x + t.box[2], y + t.box[3]))
        return max(0.0, x1), max(0.0, y1), min(float(self.size[0]), x2), min(float(self.size[1]), y2)


@dataclass
class _Candidate:
    score: float
    ex: Exemplar
    t: Template
    x: int
    y: int
    box: tuple[float, float, float, float] = (0, 0, 0, 0)


def _search(image_bgr, exemplars, min_score, height, size_range, peaks: bool) -> list[LogoHit]:
    """Hits at or above `min_score` of templates whose logo is `size_range` x `height` tall:
    per exemplar its best place, or its local maxima (`peaks`) without overlaps; places
    within REFINE_SLACK below `min_score` are refined first and may climb above it."""
    if image_bgr.size == 0 or not exemplars:
        return []
    img = _Searched(image_bgr, height)
    floor, (lo, hi) = min_score - REFINE_SLACK, (f * height for f in size_range)
    hits = []
    for ex in exemplars:
        found = []
        for t in ex.templates or _render_templates(ex.image):
            if not lo <= t.box[3] - t.box[1] <= hi or not img.fits(t):
                continue
            score = img.scores(t)
            if score.max() < floor:
                continue
            places = _peaks(score, floor, t.field.shape[1:]) if peaks else [np.unravel_index(score.argmax(), score.shape)]
            found += [_Candidate(float(score[y, x]), ex, t, x, y, img.box(t, x, y)) for y, x in places
                      if score[y, x] >= floor and not img.flat(t, x, y)]
        rendered: dict = {}  # the refinement's templates, shared by this exemplar's places
        for c in _nms(found, MAX_CANDIDATES if peaks else 1):
            c = _refine(img, c, rendered)
            if c.score >= min_score:
                hits.append(LogoHit(ex.brand, min(1.0, c.score), c.box))
    return hits


def _refine(img: _Searched, c: _Candidate, rendered: dict) -> _Candidate:
    """Hill-climb the candidate's template height and width in REFINE_STEP steps (the ladder
    and the warps are coarser), near its place."""
    for _ in range(REFINE_ROUNDS):
        best = c
        for dh, dw in ((1, 0), (-1, 0), (0, 1), (0, -1)):
            sx, shear, angle = c.t.warp
            key = (round(c.t.height * (1 + dh * REFINE_STEP), 4), round(sx * (1 + dw * REFINE_STEP), 4), shear, angle)
            if key not in rendered:
                rendered[key] = _render(c.ex.image, key[0], key[1:])
            t = rendered[key]
            r = 2 + round(abs(t.field.shape[2] - c.t.field.shape[2]) / 2)
            x0, y0 = max(0, c.x - r), max(0, c.y - r)
            x1, y1 = min(img.shape[1] - t.field.shape[2], c.x + r) + 1, min(img.shape[0] - t.field.shape[1], c.y + r) + 1
            if x1 <= x0 or y1 <= y0:
                continue
            score = img.scores(t, x0, y0, x1, y1)
            y, x = np.unravel_index(score.argmax(), score.shape)
            if score[y, x] > best.score and not img.flat(t, x0 + x, y0 + y):
                best = _Candidate(float(score[y, x]), c.ex, t, x0 + x, y0 + y, img.box(t, x0 + x, y0 + y))
        if best is c:
            break
        c = best
    return c


def _features(gray: np.ndarray) -> np.ndarray:
    """Edge orientation field, polarity-free: the gradient (gx, gy) as its doubled-angle
    vector (gx^2 - gy^2, 2 gx gy) / |g|, which has length |g| and is the same for g and -g."""
    gx = cv2.Sobel(gray, cv2.CV_32F, 1, 0)
    gy = cv2.Sobel(gray, cv2.CV_32F, 0, 1)
    norm = np.sqrt(gx * gx + gy * gy) + 1e-6
    return np.dstack([(gx * gx - gy * gy) / norm, 2 * gx * gy / norm])


def _peaks(score: np.ndarray, min_score: float, shape) -> list[tuple[int, int]]:
    """Local maxima (within half a template) at or above min_score."""
    k = max(3, shape[0] // 2 * 2 + 1), max(3, shape[1] // 4 * 2 + 1)
    local = cv2.dilate(score, np.ones(k, np.uint8))
    ys, xs = np.nonzero((score >= local) & (score >= min_score))
    return list(zip(ys.tolist(), xs.tolist()))


def _nms(hits: list, max_hits: int) -> list:
    """Greedy, best first; a hit overlapping a kept one (of any brand) is dropped."""
    kept = []
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
    return iw * ih / max(min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1])), 1e-9)
