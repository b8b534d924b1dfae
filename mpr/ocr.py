"""OCR engines behind one small interface, so others (PaddleOCR on a GPU host) can plug in.

Detection and recognition are separate calls: run_ocr finds text lines in every image it
reads (whole frame, board strips, boxes), drops lines that several images saw, and then
recognises each remaining line once, in batches. Engines load once per process.
"""

from __future__ import annotations

import threading
from pathlib import Path
from functools import lru_cache
from typing import Literal, Protocol

import cv2
import numpy as np

from mpr.errors import MprError

Runtime = Literal["openvino", "onnxruntime"]


class OcrEngine(Protocol):
    def detect(self, image: np.ndarray, scale: float = 1.0) -> list[np.ndarray]:
        """Quadrilaterals (4x2, image pixels) of the text lines in a BGR image, seen at `scale`."""

    def recognize(self, lines: list[np.ndarray]) -> list[tuple[str, float]]:
        """Text and confidence 0-1 of each image holding one line of text."""


class RapidOcrEngine:
    """PP-OCR text detection and recognition through RapidOCR, with the models its wheel ships (offline).

    `runtime` picks the library the models run on: RapidOCR's onnxruntime sessions, or
    the same ONNX files compiled by OpenVINO, faster on x86 CPUs
    (`python scripts/bench_ocr.py` measures both on the same frames).
    """

    def __init__(self, runtime: Runtime = "openvino", threads: int = 0):
        from rapidocr import RapidOCR

        params = {
            "Global.log_level": "error",
            # run_ocr sizes images itself: the detector only rounds them to multiples of 32
            "Det.limit_type": "max",
            "Det.limit_side_len": 1 << 16,
            "EngineConfig.onnxruntime.intra_op_num_threads": threads or -1,
        }
        ocr = RapidOCR(params=params)
        self._det, self._rec = ocr._load_det_model(), ocr._load_rec_model()
        if runtime == "openvino":
            self._det.session = _OpenVinoSession(_model_path(ocr.cfg.Det, self._det), threads)
            self._rec.session = _OpenVinoSession(_model_path(ocr.cfg.Rec, self._rec), threads)
        self._lock = threading.Lock()  # one inference at a time: the runtime already uses every core

    def detect(self, image: np.ndarray, scale: float = 1.0) -> list[np.ndarray]:
        """Quadrilaterals (4x2, image pixels) of the text lines in a BGR image, seen at `scale`."""

    def recognize(self, lines: list[np.ndarray]) -> list[tuple[str, float]]:
        """Text and confidence 0-1 of each image holding one line of text."""


class RapidOcrEngine:
    """PP-OCR text detection and recognition through RapidOCR, with the models its wheel ships (offline).

    `runtime` picks the library the models run on: RapidOCR's onnxruntime sessions, or
    the same ONNX files compiled by OpenVINO, faster on x86 CPUs
    (`python scripts/bench_ocr.py` measures both on the same frames).
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


class _OpenVinoSession:
    """A PP-OCR model compiled by OpenVINO for the CPU, at fp32.

    OpenVINO's CPU default on bf16-capable processors is bf16, which misreads small
    board text (measured: three brands lost on the dev clips), so precision is pinned.
    """

    def __init__(self, model_path: Path, threads: int):
        try:
            import openvino
        except ImportError:
            raise MprError("OCR runtime 'openvino' is not installed (pip install openvino)") from None
        config = {"INFERENCE_PRECISION_HINT": "f32"} | ({"INFERENCE_NUM_THREADS": threads} if threads else {})
        self._request = openvino.Core().compile_model(str(model_path), "CPU", config).create_infer_request()

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        self._request.infer([batch])
        return self._request.get_output_tensor().data.copy()


def _model_path(cfg, model) -> Path:
    """Where RapidOCR keeps the model its onnxruntime session loaded (inside the wheel)."""
    from rapidocr.inference_engine.base import FileInfo

    info = FileInfo(engine_type=cfg.engine_type, ocr_version=cfg.ocr_version, task_type=cfg.task_type,
                    lang_type=cfg.lang_type, model_type=cfg.model_type)
    if cfg.get("model_path"):
        return Path(cfg.model_path)
    return Path(cfg.model_root_dir) / Path(model.session.get_model_url(info)["model_dir"]).name


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


@lru_cache(maxsize=4)
def get_engine(name: str, **options) -> OcrEngine:
    try:
        return ENGINES[name](**options)
    except KeyError:
        raise MprError(f"unknown OCR engine {name!r} (known: {', '.join(ENGINES)})") from None
