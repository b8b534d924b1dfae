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


class RapidOcrEngine:
    """RapidOCR: PP-OCR detection + recognition as ONNX models shipped in the wheel (offline)."""

    def __init__(self, det_limit_side_len: int = 736, threads: int = 0):
        from rapidocr import RapidOCR

        params = {
            "Global.log_level": "error",
            "Det.limit_side_len": det_limit_side_len,
            "EngineConfig.onnxruntime.intra_op_num_threads": threads or -1,
        }
        self._ocr = RapidOCR(params=params)
        self._lock = threading.Lock()  # one inference at a time: onnxruntime already uses every core

    def read(self, image: np.ndarray) -> list[tuple[str, float, Box]]:
        with self._lock:
            out = self._ocr(image)
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
