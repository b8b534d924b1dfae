"""Per-detection measures taken from the frame: size, zone, sharpness, contrast, placement.

Every formula is documented in docs/exposure.md. A frame is read once for all the
detections in it; frames with no detection are never read.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict

import cv2
import numpy as np

from mpr.errors import MprError
from mpr.records import ZONES, Box, Detection, Frame, Placement
from mpr.store import ArtifactStore, code_digest
from mpr.vision import pitch as pitch_module
from mpr.vision.pitch import calibrate_grass, pitch_mask, to_hsv

SHARPNESS_HALF = 300.0  # Laplacian variance that scores 0.5 (crisp 30 px text is 1000+, motion-blurred < 100)
INK_LINE = 0.02  # a row or column with less ink than this is margin
SOLID_LINE = 0.9  # ... and one with more is a solid border, not text
MIN_INK_CONTRAST = 0.15  # flatter than this, no mark to find: keep the box
MIN_INK_AREA = 0.2  # an ink box smaller than this share of the read box is noise: keep the box
MASK_WIDTH = 320  # pitch mask resolution for the placement test
REGION_PLACEMENT: dict[str, Placement] = {"board_band": "perimeter_board", "board": "perimeter_board",
                                          "overlay": "overlay"}


def measure_detections(detections: list[Detection], frames: dict[float, Frame], store: ArtifactStore,
                       read_pixels: bool = True) -> list[Detection]:
    """The detections with share, zone, and (reading the frames) sharpness, contrast and placement.

    With pixels, a frame's measures are also kept in the store next to nothing else
    (`measures/<version>/<frame key>.json`, one entry per box and region): a rerun whose
    detections in that frame are all known (a replay with another match_brands config)
    reads that small file instead of decoding the frame again."""
    by_time: dict[float, list[int]] = defaultdict(list)
    for i, d in enumerate(detections):
        by_time[d.t].append(i)
    out = list(detections)
    for t, indices in by_time.items():
        frame = frames.get(t)
        if frame is None:
            continue
        if not read_pixels:
            for i in indices:
                out[i] = detections[i].model_copy(update=_measures(detections[i], frame, None, None))
            continue
        known = _known(store, frame.key)
        signatures = [_signature(detections[i]) for i in indices]
        if any(sig not in known for sig in signatures):
            image = _image(store, frame.key)
            if image is None:  # the frame is gone: what can be measured without it, not memoised
                known = {sig: known.get(sig) or _measures(detections[i], frame, None, None)
                         for sig, i in zip(signatures, indices)}
            else:
                mask = _pitch(image)
                known.update({sig: _measures(detections[i], frame, image, mask)
                              for sig, i in zip(signatures, indices) if sig not in known})
                _remember(store, frame.key, known)
        for sig, i in zip(signatures, indices):
            out[i] = detections[i].model_copy(update=known[sig])
    return out


# the memo's folder changes with this module's and the pitch mask's code
MEMO_VERSION = code_digest(sys.modules[__name__], pitch_module, size=6)


def _signature(d: Detection) -> str:
    return f"{d.region}|" + ",".join(f"{v:.2f}" for v in d.box)


def _memo_key(frame_key: str) -> str:
    return f"measures/{MEMO_VERSION}/{frame_key.rsplit('.', 1)[0]}.json"


def _known(store: ArtifactStore, frame_key: str) -> dict[str, dict]:
    try:
        return json.loads(store.get_bytes(_memo_key(frame_key)))
    except (MprError, ValueError):
        return {}


def _remember(store: ArtifactStore, frame_key: str, known: dict[str, dict]) -> None:
    store.put_bytes(_memo_key(frame_key), json.dumps(known, sort_keys=True).encode())


def _image(store: ArtifactStore, key: str) -> np.ndarray | None:
    """The frame, or None when the store no longer has it (cleaned up): the pixel measures are left out."""
    try:
        return store.get_image(key)
    except MprError:
        return None


def _measures(d: Detection, frame: Frame, image: np.ndarray | None, mask: np.ndarray | None) -> dict:
    x1, y1, x2, y2 = _clip(d.box, frame.width, frame.height)
    values = {"share": round((x2 - x1) * (y2 - y1) / max(1, frame.width * frame.height), 6),
              "zone": zone((x1 + x2) / 2 / frame.width, (y1 + y2) / 2 / frame.height),
              "placement": REGION_PLACEMENT.get(d.region, "other")}
    if image is not None and x2 - x1 >= 2 and y2 - y1 >= 2:
        grey = cv2.cvtColor(image[int(y1):int(y2), int(x1):int(x2)], cv2.COLOR_BGR2GRAY)
        values["sharpness"], values["contrast"] = sharpness(grey), contrast(grey)
        values["share"] = round(ink_area(grey) / max(1, frame.width * frame.height), 6)
        if d.region not in REGION_PLACEMENT and mask is not None:
            values["placement"] = placement_from_pitch(mask, (x1, y1, x2, y2), frame.width)
    return values


def _clip(box: Box, width: int, height: int) -> Box:
    x1, y1, x2, y2 = box
    return (min(max(x1, 0), width), min(max(y1, 0), height), min(max(x2, 0), width), min(max(y2, 0), height))


def zone(cx: float, cy: float) -> str:
    """The 3x3 grid cell of a point given as fractions of the frame width and height."""
    col, row = min(2, max(0, int(cx * 3))), min(2, max(0, int(cy * 3)))
    return ZONES[row * 3 + col]


def sharpness(grey: np.ndarray) -> float:
    """0-1 from the variance of the Laplacian: var / (var + SHARPNESS_HALF)."""
    var = float(cv2.Laplacian(grey, cv2.CV_64F).var())
    return round(var / (var + SHARPNESS_HALF), 4)


def contrast(grey: np.ndarray) -> float:
    """0-1: the spread between the 5th and 95th percentile grey levels (text against its ground)."""
    lo, hi = np.percentile(grey, (5, 95))
    return round(float(hi - lo) / 255.0, 4)


def ink_area(grey: np.ndarray) -> float:
    """Area of the brand mark inside a read box: OCR boxes carry a margin of about a third of
    the text height on every side (+20 to +100% area), so the share of screen is taken from
    the bounding box of the ink: the minority side of an Otsu threshold, rows and columns
    holding at least 2% ink. Falls back to the whole box when that finds no clear mark."""
    h, w = grey.shape
    _, binary = cv2.threshold(grey, 0, 1, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    ink = binary if binary.mean() < 0.5 else 1 - binary
    rows = _text_rows(ink.mean(axis=1))
    cols = _ink_span(ink[rows[0]:rows[1] + 1].mean(axis=0)) if rows else None
    if contrast(grey) < MIN_INK_CONTRAST or rows is None or cols is None:
        return float(h * w)
    area = float((rows[1] - rows[0] + 1) * (cols[1] - cols[0] + 1))
    return area if area >= MIN_INK_AREA * h * w else float(h * w)


def _text_rows(profile: np.ndarray) -> tuple[int, int] | None:
    """The text line: of the runs of text rows (gaps up to a tenth of the box allowed), the one
    holding the most ink. A board's edge or the stands above it make runs of their own."""
    rows = np.flatnonzero((profile >= INK_LINE) & (profile < SOLID_LINE))
    if not len(rows):
        return None
    gap = max(1, len(profile) // 10)
    runs, start = [], rows[0]
    for prev, row in zip(rows, rows[1:]):
        if row - prev > gap:
            runs.append((start, prev))
            start = row
    runs.append((start, rows[-1]))
    a, b = max(runs, key=lambda r: profile[r[0]:r[1] + 1].sum())
    return int(a), int(b)


def _ink_span(profile: np.ndarray) -> tuple[int, int] | None:
    """First and last line holding text: trimmed from both ends while a line is margin (almost
    no ink) or solid (a dark border or a neighbouring board the read box caught; strokes of
    letters never fill a line)."""
    text = np.flatnonzero((profile >= INK_LINE) & (profile < SOLID_LINE))
    return (int(text[0]), int(text[-1])) if len(text) else None


def _pitch(image: np.ndarray) -> np.ndarray:
    hsv, _ = to_hsv(image, MASK_WIDTH)
    return pitch_mask(hsv, calibrate_grass(hsv))


def placement_from_pitch(mask: np.ndarray, box: Box, frame_width: int) -> Placement:
    """Placement of text read outside any board or overlay region, from the pitch around it.

    A board stands at the pitch's far edge: pitch below, none above. A shirt is on a player
    on the pitch: pitch above the text (behind the player's head) and at its sides.
    Anything else (stands, close-ups, graphics the overlay search missed) is `other`.
    """
    s = mask.shape[1] / frame_width
    x1, y1, x2, y2 = (v * s for v in box)
    h = max(y2 - y1, 1.0)
    above = _pitch_share(mask, x1, y1 - 1.5 * h, x2, y1 - 0.25 * h)
    below = _pitch_share(mask, x1, y2 + 0.25 * h, x2, y2 + 1.5 * h)
    sides = min(_pitch_share(mask, x1 - 2 * h, y1, x1 - 0.25 * h, y2), _pitch_share(mask, x2 + 0.25 * h, y1, x2 + 2 * h, y2))
    if above < 0.2 and below >= 0.5:
        return "perimeter_board"
    if above >= 0.5 and sides >= 0.5:
        return "shirt"
    return "other"


def _pitch_share(mask: np.ndarray, x1: float, y1: float, x2: float, y2: float) -> float:
    height, width = mask.shape
    xa, xb = int(max(0, x1)), int(min(width, round(x2)))
    ya, yb = int(max(0, y1)), int(min(height, round(y2)))
    if xb <= xa or yb <= ya:
        return 0.0
    return float(mask[ya:yb, xa:xb].mean()) / 255.0
