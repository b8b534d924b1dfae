"""Unresolved candidates: a perceptual hash per crop, and grouping of near-identical ones.

The same board seen in consecutive frames gives the same OCR text (or none) at about the
same place with about the same pixels: such candidates form one group, asked about once,
and the answer applies to every member.
"""

from __future__ import annotations

import cv2
import numpy as np

from mpr.matching import tokens
from mpr.records import Candidate
from mpr.vision.rectify import iou

HASH_BITS = 64
MAX_HASH_DISTANCE = 12  # of 64 bits: same board, slightly different light or framing
MIN_SAME_PLACE_IOU = 0.3


def dhash(image: np.ndarray) -> str:
    """64-bit difference hash (hex). Written here because it is three lines with OpenCV;
    `imagehash` would add Pillow and PyWavelets for it."""
    gray = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    small = cv2.resize(gray, (9, 8), interpolation=cv2.INTER_AREA).astype(np.int16)
    bits = (small[:, 1:] > small[:, :-1]).flatten()
    return f"{int(''.join('1' if b else '0' for b in bits), 2):016x}"


def hash_distance(a: str, b: str) -> int:
    if not a or not b:
        return HASH_BITS
    return (int(a, 16) ^ int(b, 16)).bit_count()


def same_thing(a: Candidate, b: Candidate) -> bool:
    """Near-identical: same kind and text, similar pixels, and the same place or a real word."""
    if a.kind != b.kind or "".join(tokens(a.text)) != "".join(tokens(b.text)):
        return False
    if hash_distance(a.hash, b.hash) > MAX_HASH_DISTANCE:
        return False
    same_place = iou(a.box, b.box) >= MIN_SAME_PLACE_IOU
    return same_place or sum(c.isalpha() for c in a.text) >= 4


def group_candidates(candidates: list[Candidate]) -> list[list[int]]:
    """Indexes of near-identical candidates, grouped greedily in order (a candidate joins the
    first group with a member like it); the best-scored member first."""
    groups: list[list[int]] = []
    for i, cand in enumerate(candidates):
        home = next((g for g in groups if any(same_thing(candidates[j], cand) for j in g)), None)
        if home is None:
            groups.append([i])
        else:
            home.append(i)
    return [sorted(g, key=lambda i: (-candidates[i].score, i)) for g in groups]
