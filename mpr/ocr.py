"""OCR engines behind one small interface, so others (PaddleOCR on a GPU host) can plug in.

An engine turns a BGR image into text boxes; it is loaded once per process.
"""

from __future__ import annotations

import threading
from functools import lru_cache
from typing import Protocol

import numpy as np

from mpr.errors import MprError
from mpr.records import Box


class OcrEngine(Protocol):
    def read(self, image: np.ndarray) -> list[tuple[str, float, Box]]:
        """Text, confidence 0-1 and axis-aligned box for every text line found."""

    def recognize(self, image: np.ndarray) -> tuple[str, float]:
        """Text and confidence of an image holding one line of text (no detection)."""


class RapidOcrEngine:
    """RapidOCR: PP-OCR detection + recognition as ONNX models shipped in the wheel (offline).

    Whole frames use the default sizing: the text detector sees the short side scaled
    to `det_limit_side_len`. Crops (`crops=True`) are read at their own size: their
    long side is capped instead, and wide strips are not padded to a squarer shape.
    """

    def __init__(self, det_limit_side_len: int = 736, threads: int = 0, crops: bool = False):
        from rapidocr import RapidOCR

        params = {
            "Global.log_level": "error",
            "Det.limit_side_len": det_limit_side_len,
            "EngineConfig.onnxruntime.intra_op_num_threads": threads or -1,
        }
        if crops:
            params |= {"Det.limit_type": "max", "Global.max_side_len": det_limit_side_len,
                       "Global.width_height_ratio": -1}
        self._ocr = RapidOCR(params=params)
        self._lock = threading.Lock()  # one inference at a time: onnxruntime already uses every core

    def recognize(self, image: np.ndarray) -> tuple[str, float]:
        with self._lock:
            out = self._ocr(image, use_det=False, use_cls=False, use_rec=True)
        if not out.txts:
            return "", 0.0
        return str(out.txts[0]), float(out.scores[0])

    def read(self, image: np.ndarray) -> list[tuple[str, float, Box]]:
        with self._lock:
            out = self._ocr(image, use_det=True, use_cls=False, use_rec=True)  # broadcast text is upright
        if out.boxes is None or out.txts is None:
            return []
        results = []
        for quad, text, score in zip(out.boxes, out.txts, out.scores):
            xs, ys = quad[:, 0], quad[:, 1]
            box = (float(xs.min()), float(ys.min()), float(xs.max()), float(ys.max()))
            results.append((str(text), float(score), box))
        return results


ENGINES = {"rapidocr": RapidOcrEngine}


@lru_cache(maxsize=4)
def get_engine(name: str, **options) -> OcrEngine:
    try:
        return ENGINES[name](**options)
    except KeyError:
        raise MprError(f"unknown OCR engine {name!r} (known: {', '.join(ENGINES)})") from None
