"""OCR engines behind one small interface, so others (PaddleOCR on a GPU host) can plug in.

Detection and recognition are separate calls: run_ocr finds text lines in every image it
reads (whole frame, board strips, boxes), drops lines that several images saw, and then
recognises each remaining line once, in batches. Engines load once per process.

The PP-OCR models are the ones the rapidocr wheel ships; RapidOCR finds them and supplies
the text detector's post-processing (DB boxes) and the recogniser's CTC decoding. The
networks themselves are run here (`mpr.ocr_models`): on OpenVINO they take 8-bit BGR
images and normalise them inside the compiled graph, and the recogniser's output layer can
be cut to the characters a run can use (`charset`), which is most of its cost.
"""

from __future__ import annotations

import copy
import math
import os
from collections import defaultdict
from typing import Literal, NamedTuple, Protocol

import cv2
import numpy as np

from mpr.errors import MprError
from mpr.loading import load_once
from mpr.ocr_models import Charset, DetNetwork, RecNetwork
from mpr.spotting import encode

Runtime = Literal["openvino", "onnxruntime"]
REC_HEIGHT = 48  # the recogniser's input height
REC_BATCH = 6  # lines per recogniser call
DET_BATCH = 16  # images per batched detector call, at most
DET_BATCH_PIXELS = 1 << 19  # and pixels per call in all: half a 720p frame
REC_MIN_WIDTH = 192  # narrowest batch; PP-OCR pads to 320: 25% more recognition time, same dev results


class LineText(NamedTuple):
    """A recognised line: its text, confidence, where each character of the text is, as
    shares of the line's width (its centre; empty when the engine does not say), and the
    recogniser's scores for brand spotting (`mpr.spotting.encode`; empty when it does not say)."""

    text: str
    score: float
    places: tuple[float, ...]
    trace: bytes = b""


class OcrEngine(Protocol):
    def detect(self, image: np.ndarray, scale: float = 1.0) -> list[np.ndarray]:
        """Quadrilaterals (4x2, image pixels) of the text lines in a BGR image, seen at `scale`."""

    def recognize(self, lines: list[np.ndarray]) -> list[tuple[str, float]]:
        """Text and confidence 0-1 of each image holding one line of text."""

    def read(self, lines: list[np.ndarray]) -> list[LineText]:
        """`recognize`, with where each character is along its line."""


class RapidOcrEngine:
    """PP-OCR text detection and recognition with the models the rapidocr wheel ships (offline).

    `runtime` picks the library the models run on: OpenVINO, faster on x86 CPUs (its CPU
    defaults: bf16 inference where the CPU has it, fp32 elsewhere), or onnxruntime
    (`python scripts/bench_ocr.py` measures both on the same frames). `charset` is the
    alphabet the recogniser chooses from: `full` (PP-OCR's 18,708 characters) or `latin`.
    """

    def __init__(self, runtime: Runtime = "openvino", threads: int = 0, charset: Charset = "full", streams: int = 1):
        from rapidocr import EngineType, RapidOCR

        engine = {"openvino": EngineType.OPENVINO, "onnxruntime": EngineType.ONNXRUNTIME}[runtime]
        params = {
            "Global.log_level": "error",
            "Det.engine_type": engine,
            "Rec.engine_type": engine,
            "EngineConfig.onnxruntime.intra_op_num_threads": threads or -1,
            "EngineConfig.openvino.inference_num_threads": threads or -1,
        }
        try:
            ocr = RapidOCR(params=params)
            det, rec = ocr._load_det_model(), ocr._load_rec_model()
        except ImportError as exc:
            raise MprError(f"OCR runtime {runtime!r} is not installed ({exc})") from None
        streams = streams if runtime == "openvino" else 1
        self._det = DetNetwork(det.session, runtime, threads, streams)
        self._det_boxes = det.postprocess_op  # DB post-processing: probability map -> quads
        self._sort_boxes = det.sorted_boxes
        self._weak_post: dict[float, object] = {}
        self._rec = RecNetwork(rec.session, runtime, threads, rec.postprocess_op.character, charset, streams)

    def detect(self, image: np.ndarray, scale: float = 1.0) -> list[np.ndarray]:
        h, w = image.shape[:2]
        return self._detect_batch([image], net_size(w * scale, h * scale))[0]

    def detect_same_size(self, images: list[np.ndarray]) -> list[list[np.ndarray]]:
        """`detect` of several images of one size at scale 1, in batched inferences: the same
        quads as one call each (the network sees each image of a batch alone), for the cost
        of far fewer calls (a steady overlay is cropped the same in every frame of a chunk)."""
        h, w = images[0].shape[:2]
        size, count = net_size(w, h), det_batch(h, w)
        return [quads for start in range(0, len(images), count)
                for quads in self._detect_batch(images[start:start + count], size)]

    def detect_weak(self, image: np.ndarray, scale: float, floor: float) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """`detect`'s quads, and those of the lines the detector scores at least `floor` but under
        its box threshold (faint or tiny text it is unsure of), from the same inference."""
        h, w = image.shape[:2]
        return self._detect_batch([image], net_size(w * scale, h * scale), floor)[0]

    def _detect_batch(self, images: list[np.ndarray], size: tuple[int, int], floor: float | None = None) -> list:
        """Quads of same-sized images seen at `size` (width, height), in image pixels; with a
        `floor`, each image's (sure, weak) quads."""
        h, w = images[0].shape[:2]
        seen = [image if size == (w, h) else cv2.resize(image, size) for image in images]
        post = self._det_boxes if floor is None else self._weak_boxes(floor)
        with self._det.output(seen[0][None] if len(seen) == 1 else np.stack(seen)) as probability:
            found = [post(probability[i:i + 1], (size[1], size[0])) for i in range(len(seen))]
        fx, fy = w / size[0], h / size[1]

        def quads(boxes) -> list[np.ndarray]:
            if not len(boxes):
                return []
            return [np.asarray(q, np.float32) * (fx, fy) for q in self._sort_boxes(np.asarray(boxes))]

        if floor is None:
            return [quads(boxes) for boxes, _ in found]
        sure = self._det_boxes.box_thresh
        return [(quads([b for b, s in zip(boxes, scores) if s >= sure]),
                 quads([b for b, s in zip(boxes, scores) if s < sure])) for boxes, scores in found]

    def _weak_boxes(self, floor: float):
        """The DB post-processing with its box threshold lowered to `floor` (a copy: the engine's
        own serves both streams at once)."""
        if floor not in self._weak_post:
            post = copy.copy(self._det_boxes)
            post.box_thresh = min(floor, self._det_boxes.box_thresh)
            self._weak_post[floor] = post
        return self._weak_post[floor]

    def recognize(self, lines: list[np.ndarray]) -> list[tuple[str, float]]:
        return [(line.text, line.score) for line in self.read(lines)]

    def read(self, lines: list[np.ndarray]) -> list[LineText]:
        """Each line is padded to its own width from a short ladder (`rec_width`), so that the
        runtime sees few shapes, and read in a batch of lines padded alike. A line's reading
        depends on its pixels alone: padded to the widest of its batch, as PP-OCR does, a line
        read differently when a change elsewhere (another crop in the frame) moved it into
        another batch."""
        out = [LineText("", 0.0, ())] * len(lines)
        by_width: dict[int, list[int]] = defaultdict(list)
        for i, line in enumerate(lines):
            by_width[rec_width(line.shape[1] / max(line.shape[0], 1))].append(i)
        for width, members in sorted(by_width.items()):
            for start in range(0, len(members), REC_BATCH):
                self._read_batch(lines, members[start:start + REC_BATCH], width, out)
        return out

    def _read_batch(self, lines: list[np.ndarray], batch: list[int], width: int, out: list[LineText]) -> None:
        texts = self._rec(rec_batch([lines[i] for i in batch], width))
        for i, (text, score, places, scores) in zip(batch, texts):
            fit = rec_fit(lines[i].shape, width)  # the line's share of the padded input
            steps = min(len(scores), math.ceil(len(scores) * fit / width))  # the rest is padding
            out[i] = LineText(text, score, tuple(min(1.0, p * width / fit) for p in places),
                              encode(scores[:steps], width / (fit * len(scores))))


def net_size(width: float, height: float) -> tuple[int, int]:
    """The text detector's input size for an image seen at width x height: multiples of 32, its stride."""
    return max(32, round(width / 32) * 32), max(32, round(height / 32) * 32)


def det_batch(height: int, width: int) -> int:
    """Images of this size per batched detector call: at most DET_BATCH and DET_BATCH_PIXELS in
    all (OpenVINO keeps the buffers of the largest inference it has run: batches of 16 large
    crops added 500 MB to the peak of a 10-minute run)."""
    return max(1, min(DET_BATCH, DET_BATCH_PIXELS // max(height * width, 1)))


def default_streams(runtime: Runtime) -> int:
    """Inferences run at once (run_ocr.streams 0): two single-threaded ones on OpenVINO with two
    cores or more (they keep both cores busier than one two-threaded inference, whose Python
    around it runs on one core), one on onnxruntime."""
    return min(2, os.cpu_count() or 1) if runtime == "openvino" else 1


def rec_width(ratio: float) -> int:
    """Input width for a batch whose widest line is `ratio` times as wide as high: at least
    REC_MIN_WIDTH, rounded up to a multiple of 64 up to 640, of 128 up to 1280, else of 256."""
    width = max(REC_MIN_WIDTH, math.ceil(REC_HEIGHT * ratio))
    step = 64 if width <= 640 else 128 if width <= 1280 else 256
    return math.ceil(width / step) * step


def rec_batch(lines: list[np.ndarray], width: int) -> np.ndarray:
    """Lines scaled to the recogniser's height (never wider than `width`), left-aligned on a
    mid-grey canvas, as PP-OCR pads them: (N, 48, width, 3) uint8 BGR."""
    batch = np.full((len(lines), REC_HEIGHT, width, 3), 128, np.uint8)
    for n, line in enumerate(lines):
        fit = rec_fit(line.shape, width)
        batch[n, :, :fit] = cv2.resize(line, (fit, REC_HEIGHT))
    return batch


def rec_fit(shape: tuple[int, ...], width: int) -> int:
    """Width a line of this shape is scaled to in a recogniser input `width` wide."""
    h, w = shape[:2]
    return min(width, math.ceil(REC_HEIGHT * w / max(h, 1)))


def line_image(image: np.ndarray, quad: np.ndarray) -> np.ndarray:
    """The text line inside `quad`, straightened to a horizontal strip (PP-OCR's own cropping)."""
    from rapidocr.utils.process_img import get_rotate_crop_image

    return get_rotate_crop_image(image, np.asarray(quad, np.float32).copy())


def reading_quad(quad: np.ndarray) -> tuple[tuple[float, float], ...] | None:
    """The quad as its line image reads it (corners tl tr br bl), or None when `line_image`
    turned the line upright (a line at least 1.5x taller than wide)."""
    q = np.asarray(quad, np.float32)
    width = max(np.linalg.norm(q[0] - q[1]), np.linalg.norm(q[2] - q[3]))
    height = max(np.linalg.norm(q[0] - q[3]), np.linalg.norm(q[1] - q[2]))
    if height >= 1.5 * width:
        return None
    return tuple((float(x), float(y)) for x, y in q[:4])


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
