"""YOLO object detection behind one interface, two backends.

- `onnx`: an exported YOLO (ultralytics export, output (1, 4+nc, N)) on OpenVINO or
  onnxruntime (`runtime`), no torch needed; the default, and what the project ships.
- `ultralytics`: the ultralytics package (torch) for .pt/.onnx/.engine weights, meant
  for the GPU host.

Both adapt into `ObjectBox` (class name, box in frame pixels, score); NMS is OpenCV's
`cv2.dnn.NMSBoxesBatched` (class-aware), not hand-written.
"""

from __future__ import annotations

import ast
import hashlib
import threading
from pathlib import Path
from typing import NamedTuple, Protocol

import cv2
import numpy as np

from mpr.errors import InputError, MprError
from mpr.loading import load_once
from mpr.records import Box
from mpr.settings import project_path

DEFAULT_WEIGHTS = "models/detector/mpr-det.onnx"


class ObjectBox(NamedTuple):
    name: str
    box: Box
    score: float


class ObjectDetector(Protocol):
    names: dict[int, str]

    def detect(self, image: np.ndarray, conf: float, iou: float) -> list[ObjectBox]: ...


def resolve_weights(weights: str) -> Path:
    """Relative paths are relative to the project (where the shipped model lives)."""
    path = project_path(weights)
    if not path.is_file():
        raise InputError(f"detector weights not found: {weights}")
    return path


def weights_digest(weights: str) -> str:
    """Content hash of the weights: a retrained model invalidates cached detections."""
    h = hashlib.blake2b(digest_size=8)
    with resolve_weights(weights).open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def nms(boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, conf: float, iou: float) -> np.ndarray:
    """Indexes kept by class-aware NMS (boxes x1, y1, x2, y2)."""
    if len(boxes) == 0:
        return np.zeros(0, int)
    xywh = np.c_[boxes[:, :2], boxes[:, 2:] - boxes[:, :2]].tolist()
    keep = cv2.dnn.NMSBoxesBatched(xywh, scores.tolist(), classes.astype(int).tolist(), conf, iou)
    return np.asarray(keep, int).reshape(-1)


def letterbox(image: np.ndarray, size: int) -> tuple[np.ndarray, float, tuple[int, int]]:
    """Resize keeping aspect into a size x size canvas (grey 114), as YOLO was trained."""
    h, w = image.shape[:2]
    scale = min(size / h, size / w)
    nh, nw = round(h * scale), round(w * scale)
    top, left = (size - nh) // 2, (size - nw) // 2
    canvas = np.full((size, size, 3), 114, np.uint8)
    canvas[top:top + nh, left:left + nw] = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR)
    return canvas, scale, (left, top)


def providers(ort) -> list[str]:
    """CUDA where onnxruntime-gpu offers it (the GPU worker), else the CPU."""
    available = ort.get_available_providers()
    return [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]


class OnnxYolo:
    """An ultralytics-exported YOLO detector (ONNX) run with OpenVINO or onnxruntime.

    `runtime` auto: onnxruntime where it offers CUDA (the GPU worker), else OpenVINO, which
    on these CPUs runs the shipped detector in 18 ms a frame against 25 (it takes the
    letterboxed uint8 BGR image and converts it inside the graph, at full precision: bf16
    would move boxes by several pixels)."""

    def __init__(self, weights: Path, threads: int = 0, runtime: str = "auto"):
        if runtime == "auto":
            runtime = "onnxruntime" if "CUDAExecutionProvider" in _ort_providers() else "openvino"
        try:
            self._run, meta, self.input_size = (_openvino if runtime == "openvino" else _onnxruntime)(weights, threads)
        except Exception as exc:  # both runtimes raise their own untyped errors
            why = [line for line in str(exc).splitlines() if line.strip()] or [type(exc).__name__]
            raise InputError(f"detector weights are not a loadable ONNX model: {weights.name}: {why[-1].strip()}") \
                from None
        self.runtime = runtime
        self.names = {int(k): v for k, v in ast.literal_eval(meta.get("names", "{}")).items()}
        imgsz = ast.literal_eval(meta["imgsz"]) if "imgsz" in meta else self.input_size
        self.size = int(imgsz[0]) if isinstance(imgsz, (list, tuple)) else int(imgsz)
        self._lock = threading.Lock()

    def detect(self, image: np.ndarray, conf: float, iou: float) -> list[ObjectBox]:
        canvas, scale, (left, top) = letterbox(image, self.size)
        with self._lock:
            pred = self._run(canvas).T  # (N, 4 + nc): cx, cy, w, h, class scores
        scores_all = pred[:, 4:]
        classes = scores_all.argmax(1)
        scores = scores_all[np.arange(len(pred)), classes]
        sel = scores >= conf
        pred, classes, scores = pred[sel], classes[sel], scores[sel]
        cx, cy, bw, bh = pred[:, 0], pred[:, 1], pred[:, 2], pred[:, 3]
        boxes = np.stack([cx - bw / 2 - left, cy - bh / 2 - top, cx + bw / 2 - left, cy + bh / 2 - top], 1) / scale
        h, w = image.shape[:2]
        boxes = np.clip(boxes, 0, [w, h, w, h])
        return [ObjectBox(self.names.get(int(classes[i]), str(classes[i])), tuple(map(float, boxes[i])),
                          float(scores[i])) for i in nms(boxes, scores, classes, conf, iou)]


def _ort_providers() -> list[str]:
    import onnxruntime as ort

    return ort.get_available_providers()


def _onnxruntime(weights: Path, threads: int):
    """(canvas -> (4 + nc, N) predictions, metadata, input size) on onnxruntime."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.log_severity_level = 3
    session = ort.InferenceSession(str(weights), options, providers=providers(ort))
    name = session.get_inputs()[0].name

    def run(canvas: np.ndarray) -> np.ndarray:
        blob = np.ascontiguousarray(canvas[:, :, ::-1].transpose(2, 0, 1)[None], np.float32) / 255.0
        return session.run(None, {name: blob})[0][0]

    return run, session.get_modelmeta().custom_metadata_map, session.get_inputs()[0].shape[2:]


def _openvino(weights: Path, threads: int):
    """The same on OpenVINO: uint8 BGR NHWC in, RGB float NCHW / 255 inside the graph."""
    import openvino as ov
    from openvino.frontend import FrontEndManager

    from mpr.openvino_input import uint8_bgr_input

    onnx = FrontEndManager().load_by_framework("onnx")  # only ONNX: read_model would try every format
    model = onnx.convert(onnx.load(str(weights)))
    framework = model.get_rt_info()["framework"] if model.has_rt_info(["framework"]) else {}
    meta = {key: str(model.get_rt_info(["framework", key]).astype(str)) for key in ("names", "imgsz")
            if key in framework}
    size = [int(d) for d in model.inputs[0].get_partial_shape().get_min_shape()[2:]]
    config = {"INFERENCE_PRECISION_HINT": "f32", **({"INFERENCE_NUM_THREADS": threads} if threads else {})}
    compiled = ov.Core().compile_model(uint8_bgr_input(model, scale=255.0, rgb=True), "CPU", config)
    request = compiled.create_infer_request()

    def run(canvas: np.ndarray) -> np.ndarray:
        request.infer({0: np.ascontiguousarray(canvas[None])})
        return request.get_output_tensor(0).data[0]

    return run, meta, size


class UltralyticsYolo:
    """ultralytics YOLO (.pt, .onnx, .engine); needs torch, meant for the GPU host."""

    def __init__(self, weights: Path, device: str = ""):
        try:
            from ultralytics import YOLO
        except ImportError:
            raise MprError("detect_objects backend 'ultralytics' needs the ultralytics package "
                           "(pip install 'mpr[train]' on a host with torch)") from None
        self.model = YOLO(str(weights), task="detect")
        self.device = device or None
        self.names = dict(self.model.names)
        self._lock = threading.Lock()

    def detect(self, image: np.ndarray, conf: float, iou: float) -> list[ObjectBox]:
        with self._lock:
            result = self.model.predict(image, conf=conf, iou=iou, device=self.device, verbose=False)[0]
        boxes = result.boxes
        return [ObjectBox(self.names[int(c)], tuple(map(float, b)), float(s))
                for b, s, c in zip(boxes.xyxy.tolist(), boxes.conf.tolist(), boxes.cls.tolist())]


@load_once(maxsize=4)
def get_detector(backend: str, weights: str, threads: int = 0, device: str = "", runtime: str = "auto") -> ObjectDetector:
    """One loaded model per process and configuration."""
    path = resolve_weights(weights)
    if backend == "onnx":
        return OnnxYolo(path, threads, runtime)
    if backend == "ultralytics":
        return UltralyticsYolo(path, device)
    raise MprError(f"unknown detector backend {backend!r} (known: onnx, ultralytics)")
