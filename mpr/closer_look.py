"""A closer look at near misses: read a brand's surroundings again, larger and turned.

Brand spotting (mpr.spotting) finds a name in the recogniser's scores when they support it
within a budget. Some reads come close without making it: a shirt's "coop" slanted 20
degrees read "ip", a small far board's "coop" whose first letters the text detector left
out read "p", a word cut at the line's end read "COO". Those places are worth a second
look, and only those: the region around the line is cropped from the frame with room on
both sides for the rest of the name, enlarged so its text is about TEXT_HEIGHT px, and
read again (detection and recognition) upright and, when that finds no brand, turned by a
few angles. What is read there clearly goes through the same fuzzy matching as the first
reads, and is spotted for the near-missed brand only (not for every name: at several zooms
and angles, junk spells some short name too often). A name found so has two readings behind
it: the first came close, the enlarged one spells it within the spotting budget ("allbox" on
a pitch-side carpet is Altibox, 77 for fuzzy matching but 0.2 nats for spotting).

Looking closer costs a text detection per angle on a small image and the recognition of what
it finds, so match_brands does it for the best few near misses per frame only
(`closer_look`), turns only compact words, and keeps what each look read in the artifact
store, so that a rerun of match_brands alone (another min_score, an alias) reads nothing again.
"""

from __future__ import annotations

from typing import NamedTuple

import cv2
import numpy as np

from mpr.ocr import line_image, reading_quad
from mpr.records import Box

TEXT_HEIGHT = 40.0  # px: the read line's height in the enlarged crop
MAX_ZOOM = 6.0  # enlarged at most this much
MIN_TEXT_SCORE = 0.5  # confidence a line read there needs for fuzzy matching (run_ocr's default)
PAD_X, PAD_Y = 2.5, 0.8  # room around the line, x its height (the rest of a name lies beside it)
MAX_TURNED_ASPECT = 4.0  # lines wider than this x their height are read upright only
MIN_ZOOM = 1.25  # a long line enlarged less than this is not looked at again
UNCLIPPED = (1 << 16, 1 << 16)  # a frame shape that clips no region
MAX_SIDE = 1024  # px: a look's image, enlarged and turned, is no larger (a huge region is shrunk)


class Look(NamedTuple):
    """A line read in the closer look: its frame box, its corners as read (tl tr br bl; None
    where the line was read turned upright), and what the recogniser read."""

    box: Box
    quad: tuple[tuple[float, float], ...] | None
    text: str
    score: float
    places: tuple[float, ...]  # where each character of `text` is along the line (0-1)
    trace: bytes = b""  # the recogniser's scores for brand spotting (mpr.spotting.encode)


def look_closer(frame: np.ndarray, box: Box, engine, angle: float = 0.0) -> list[Look]:
    """Lines found and read around `box` (frame pixels) in the enlarged crop turned by `angle`
    (degrees, counter-clockwise), with their places in the frame."""
    (x1, y1, x2, y2), zoom = look_region(frame.shape, box)
    cos, sin = abs(np.cos(np.radians(angle))), abs(np.sin(np.radians(angle)))
    w, h = x2 - x1, y2 - y1
    zoom = min(zoom, MAX_SIDE / (w * cos + h * sin), MAX_SIDE / (w * sin + h * cos))
    patch = cv2.resize(frame[y1:y2, x1:x2], None, fx=zoom, fy=zoom, interpolation=cv2.INTER_CUBIC)
    turned, to_patch = _turn(patch, angle)
    quads = engine.detect(turned)
    corners = [cv2.transform(np.float32(q)[None], to_patch)[0] / zoom + (x1, y1) for q in quads]
    texts = engine.read([line_image(turned, q) for q in quads]) if quads else []
    return [Look(_bounds(c), reading_quad(c), t.text, t.score, t.places, t.trace) for c, t in zip(corners, texts)]


def views(box: Box, angles: list[float]) -> list[float]:
    """The angles worth reading a line's region at: turned only for a compact word (a shirt's; a
    long line turned is mostly canvas), upright only where the region is enlarged (a large long
    line read again as it was reads what the first read did)."""
    compact = box[2] - box[0] <= MAX_TURNED_ASPECT * (box[3] - box[1])
    enlarged = look_region(UNCLIPPED, box)[1] >= MIN_ZOOM
    return [a for a in angles if (compact if a else compact or enlarged)]


def look_region(shape: tuple[int, ...], box: Box) -> tuple[tuple[int, int, int, int], float]:
    """The crop around a line box, clipped to the frame, and the zoom that makes the line TEXT_HEIGHT tall."""
    h, w = shape[:2]
    bx1, by1, bx2, by2 = box
    lh = max(by2 - by1, 1.0)
    x1, x2 = max(0, int(bx1 - PAD_X * lh)), min(w, int(np.ceil(bx2 + PAD_X * lh)))
    y1, y2 = max(0, int(by1 - PAD_Y * lh)), min(h, int(np.ceil(by2 + PAD_Y * lh)))
    return (x1, y1, max(x2, x1 + 1), max(y2, y1 + 1)), float(np.clip(TEXT_HEIGHT / lh, 1.0, MAX_ZOOM))


def _turn(image: np.ndarray, angle: float) -> tuple[np.ndarray, np.ndarray]:
    """The image turned by `angle` on a canvas that holds all of it, and the 2x3 map from the
    turned image's pixels back to the original's."""
    if not angle:
        return image, np.float32([[1, 0, 0], [0, 1, 0]])
    h, w = image.shape[:2]
    rot = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
    cos, sin = abs(rot[0, 0]), abs(rot[0, 1])
    size = (int(h * sin + w * cos), int(h * cos + w * sin))
    rot[:, 2] += (size[0] / 2 - w / 2, size[1] / 2 - h / 2)
    turned = cv2.warpAffine(image, rot, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return turned, cv2.invertAffineTransform(rot)


def _bounds(corners: np.ndarray) -> Box:
    xs, ys = corners[:, 0], corners[:, 1]
    return (float(xs.min()), float(ys.min()), float(xs.max()), float(ys.max()))
