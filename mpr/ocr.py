"""OCR engines behind one small interface, so others (PaddleOCR on a GPU host) can plug in.

Detection and recognition are separate calls: run_ocr finds text lines in every image it
reads (whole frame, board strips, boxes), drops lines that several images saw, and then
recognises each remaining line once, in batches. Engines load once per process.
"""

from __future__ import annotations

import threading
from typing import Literal, Protocol

import cv2
import numpy as np

from mpr.errors import MprError
from mpr.loading import load_once

Runtime = Literal["openvino", "onnxruntime"]

# OpenVINO's CPU plugin keeps the kernels it builds for every input shape it has seen (5000
# cache entries by default: 120 detector shapes took 1.7 GB). Board strips and crops give
# hundreds of shapes on a real broadcast, so memory grew with video length (2.85 GB on a
# 5-minute dev loop). A small cache keeps the recent shapes and bounds memory: soccer_broadcast
# on the 10-minute dev loop peaked at 1262 MB with 100 entries, 1449 MB with 500, the same
# brand-seconds and speed within this machine's noise.
KERNEL_CACHE_ENTRIES = 100


class OcrEngine(Protocol):
    def detect(self, image: np.ndarray, scale: float = 1.0) -> list[np.ndarray]:
        """Quadrilaterals (4x2, image pixels) of the text lines in a BGR image, seen at `scale`."""

    def recognize(self, lines: list[np.ndarray]) -> list[tuple[str, float]]:
        """Text and confidence 0-1 of each image holding one line of text."""


class RapidOcrEngine:
    """PP-OCR text detection and recognition through RapidOCR, with the models its wheel ships (offline).

    `runtime` picks the library RapidOCR runs the models on: OpenVINO, faster on x86 CPUs
    (with OpenVINO's CPU defaults: bf16 inference where the CPU has it, fp32 elsewhere), or
    onnxruntime (`python scripts/bench_ocr.py` measures both on the same frames).
    """

    def __init__(self, runtime: Runtime = "openvino", threads: int = 0):
        from rapidocr import EngineType, RapidOCR

        engine = {"openvino": EngineType.OPENVINO, "onnxruntime": EngineType.ONNXRUNTIME}[runtime]
        params = {
            "Global.log_level": "error",
            "Det.engine_type": engine,
            "Rec.engine_type": engine,
            # run_ocr sizes images itself: the detector only rounds them to multiples of 32
            "Det.limit_type": "max",
            "Det.limit_side_len": 1 << 16,
            "EngineConfig.onnxruntime.intra_op_num_threads": threads or -1,
            "EngineConfig.openvino.inference_num_threads": threads or -1,
            "Rec.rec_batch_num": 6,
        }
        try:
            ocr = RapidOCR(params=params)
            self._det, self._rec = ocr._load_det_model(), ocr._load_rec_model()
        except ImportError as exc:
            raise MprError(f"OCR runtime {runtime!r} is not installed ({exc})") from None
        if runtime == "openvino":
            for model in (self._det, self._rec):
                _bound_kernel_cache(model.session, threads)
        self._lock = threading.Lock()  # one inference at a time: the runtime already uses every core

    def detect(self, image: np.ndarray, scale: float = 1.0) -> list[np.ndarray]:
        h, w = image.shape[:2]
        size = (max(32, round(w * scale / 32) * 32), max(32, round(h * scale / 32) * 32))  # the network's stride
        seen = image if size == (w, h) else cv2.resize(image, size)
        with self._lock:
            out = self._det(seen)
        if out.boxes is None:
            return []
        fx, fy = w / seen.shape[1], h / seen.shape[0]
        return [np.asarray(q, np.float32) * (fx, fy) for q in out.boxes]

    def recognize(self, lines: list[np.ndarray]) -> list[tuple[str, float]]:
        if not lines:
            return []
        from rapidocr.ch_ppocr_rec.typings import TextRecInput

        with self._lock:
            out = self._rec(TextRecInput(img=lines))
        return [(str(t), float(s)) for t, s in zip(out.txts, out.scores)]


def _bound_kernel_cache(session, threads: int) -> None:
    """Recompile a RapidOCR OpenVINO session with a bounded kernel cache (RapidOCR builds its
    own Core and exposes no such option, so the model it read is compiled a second time)."""
    import openvino as ov

    config = {"CPU_RUNTIME_CACHE_CAPACITY": KERNEL_CACHE_ENTRIES}
    if threads:
        config["INFERENCE_NUM_THREADS"] = threads
    session.session = ov.Core().compile_model(session.model, "CPU", config).create_infer_request()


def line_image(image: np.ndarray, quad: np.ndarray) -> np.ndarray:
    """The text line inside `quad`, straightened to a horizontal strip (PP-OCR's own cropping)."""
    from rapidocr.utils.process_img import get_rotate_crop_image

    return get_rotate_crop_image(image, np.asarray(quad, np.float32).copy())


def detect_scale(shape: tuple[int, ...], short_side: int, max_long_side: int = 2000) -> float:
    """Scale at which the text detector sees an image: small images are enlarged until their
    short side reaches `short_side` (never shrunk for it), and no side exceeds `max_long_side`."""
    h, w = shape[:2]
    scale = max(1.0, short_side / min(h, w))
    return min(scale, max_long_side / max(h, w))


ENGINES = {"rapidocr": RapidOcrEngine}


@load_once(maxsize=4)
def get_engine(name: str, **options) -> OcrEngine:
    try:
        return ENGINES[name](**options)
    except KeyError:
        raise MprError(f"unknown OCR engine {name!r} (known: {', '.join(ENGINES)})") from None
