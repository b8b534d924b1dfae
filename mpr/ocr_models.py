"""The two PP-OCR networks (text detector, recogniser) on OpenVINO or onnxruntime.

RapidOCR loads the ONNX files its wheel ships; here they are run with less around them:

- On OpenVINO, each network takes 8-bit BGR images (NHWC) and converts and normalises them
  inside the compiled graph (OpenVINO's PrePostProcessor): RapidOCR's numpy normalisation
  cost about a quarter of a whole-frame detection (24 of 105 ms at 1280x736).
- The recogniser's last layer scores 18,710 classes (PP-OCR's Chinese, Japanese, Korean and
  Latin characters) at every position: about 40% of its time. With `charset: latin` the
  layer keeps the Latin-script characters, digits, punctuation and CTC's blank (a few
  hundred), so the softmax is over those alone. Both runtimes decode the same way; only
  OpenVINO gets the speed (onnxruntime computes every class and drops the others).
- OpenVINO's CPU plugin keeps the kernels it builds for every input shape it has seen (5000
  cache entries by default: 120 detector shapes took 1.7 GB). Board strips and crops give
  hundreds of shapes on a real broadcast, so memory grew with video length (2.85 GB on a
  5-minute dev loop); a 100-entry cache bounds it (1262 MB on the 10-minute loop, same
  brand-seconds and speed within this machine's noise).
"""

from __future__ import annotations

import queue
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

import numpy as np

from mpr.openvino_input import uint8_bgr_input
from mpr.spotting import class_symbols, fold

Charset = Literal["full", "latin"]
KERNEL_CACHE_ENTRIES = 100


class Network:
    """One network on one runtime: uint8 NHWC BGR batch in, its first output out.

    On OpenVINO it is compiled with `streams` streams sharing `threads` and has one infer
    request per stream: that many callers infer at once, each on its share of the cores;
    further callers wait for a free request. onnxruntime runs one call at a time."""

    def __init__(self, session, runtime: str, threads: int, streams: int = 1, model=None):
        self.runtime = runtime
        self._free: queue.SimpleQueue = queue.SimpleQueue()
        if runtime == "openvino":  # RapidOCR's own compiled session is not kept (its memory is freed)
            for request in _compile(uint8_bgr_input(model or session.model, scale=127.5, mean=127.5), threads, streams):
                self._free.put(request)
        else:
            self._free.put(session)

    @contextmanager
    def output(self, batch: np.ndarray) -> Iterator[np.ndarray]:
        """The output for `batch`, valid inside the block (it is the request's own buffer)."""
        runner = self._free.get()
        try:
            if self.runtime == "openvino":
                runner.infer({0: np.ascontiguousarray(batch)})
                yield runner.get_output_tensor(0).data
            else:
                yield runner(_normalise(batch))
        finally:
            self._free.put(runner)


class DetNetwork(Network):
    """The DB text detector: (H, W, 3) uint8 BGR, sides multiples of 32 -> (1, 1, H, W) text probability."""


class RecNetwork(Network):
    """The CTC recogniser: (N, 48, W, 3) uint8 BGR lines -> [(text, confidence, character places,
    scores folded to the spotting symbols per output step)] per line."""

    def __init__(self, session, runtime: str, threads: int, characters: list[str], charset: Charset,
                 streams: int = 1):
        from rapidocr.ch_ppocr_rec.utils import CTCLabelDecode

        self._keep = charset_indices(characters, charset)
        if self._keep is None:
            self._decode = CTCLabelDecode(character=list(characters[1:-1]))
        else:  # CTCLabelDecode adds the blank (first) and the space (last) itself
            self._decode = CTCLabelDecode(character=[characters[i] for i in self._keep[1:-1]])
        self._symbols = class_symbols(self._decode.character)  # CTCLabelDecode's classes: blank first
        model = None
        if runtime == "openvino" and self._keep is not None:
            # cut before the uint8 input is added: OpenVINO fails to compile the cut layer otherwise
            model = _cut_output_layer(session.model, self._keep)
        super().__init__(session, runtime, threads, streams, model)

    def __call__(self, lines: np.ndarray) -> list[tuple[str, float, tuple[float, ...], np.ndarray]]:
        """(text, confidence, where each character is, folded scores) per line; a character's place
        is the centre of the output step that emitted it, as a share of the input width (CTC emits
        each character once, at a step over it; PaddleOCR's word boxes come from the same steps).
        The folded scores (output steps x `mpr.spotting` symbols) are what brand spotting reads."""
        with self.output(lines) as probabilities:
            if self.runtime == "onnxruntime" and self._keep is not None:
                probabilities = probabilities[..., self._keep]
                probabilities = probabilities / np.maximum(probabilities.sum(-1, keepdims=True), 1e-12)
            best = probabilities.argmax(axis=2)  # once, for CTCLabelDecode's decoding and the places
            texts, _ = self._decode.decode(best, probabilities.max(axis=2), remove_duplicate=True)
            folded = fold(probabilities, self._symbols)
        count = best.shape[1]  # output steps
        return [(str(text), float(score), tuple(float((s + 0.5) / count) for s in at) if len(at) == len(text) else (),
                 scores)
                for (text, score), at, scores in zip(texts, emitting_steps(best), folded)]


def emitting_steps(best: np.ndarray) -> list[np.ndarray]:
    """Per line (rows of best classes per output step), the steps CTC decoding emits a character
    at: a class other than the blank (0) that differs from the step before, as CTCLabelDecode
    reads them."""
    emit = best != 0
    emit[:, 1:] &= best[:, 1:] != best[:, :-1]
    return [np.flatnonzero(row) for row in emit]


def charset_indices(characters: list[str], charset: Charset) -> np.ndarray | None:
    """Output classes a charset keeps (blank first, space last, as PP-OCR orders them); None: all."""
    if charset == "full":
        return None
    inner = [i for i, c in enumerate(characters[1:-1], 1) if is_latin(c)]
    return np.array([0, *inner, len(characters) - 1])


def is_latin(char: str) -> bool:
    """Latin script and what is written with it: ASCII, Latin-1, Latin Extended A/B and
    Additional, general punctuation, currency signs and the trade mark sign."""
    if len(char) != 1:
        return False
    code = ord(char)
    return code < 0x250 or 0x1E00 <= code <= 0x1EFF or 0x2000 <= code <= 0x20CF or code == 0x2122


def readable(text: str, charset: Charset) -> bool:
    """Whether every letter of `text` is one the charset's recogniser can output."""
    return charset == "full" or all(is_latin(c) for c in text if c.isalpha())


def _normalise(batch: np.ndarray) -> np.ndarray:
    """uint8 NHWC -> float32 NCHW in [-1, 1], PP-OCR's normalisation (onnxruntime path)."""
    return (batch.astype(np.float32) / 127.5 - 1.0).transpose(0, 3, 1, 2).copy()


def _cut_output_layer(model, keep: np.ndarray):
    """The recogniser with its final linear layer (MatMul + bias before the softmax) reduced
    to the classes in `keep`, in that order."""
    import openvino as ov
    from openvino import opset13 as ops

    softmax = model.get_results()[0].input_value(0).get_node()
    logits = _skip_identity(softmax.input_value(0).get_node())
    matmul, bias = (_skip_identity(logits.input_value(i).get_node()) for i in (0, 1))
    if matmul.get_type_name() != "MatMul":
        matmul, bias = bias, matmul
    weights = _skip_identity(matmul.input_value(1).get_node())
    shapes_ok = (softmax.get_type_name() == "Softmax" and logits.get_type_name() == "Add"
                 and matmul.get_type_name() == "MatMul" and weights.get_type_name() == "Constant"
                 and bias.get_type_name() == "Constant")
    if not shapes_ok:
        raise ValueError("unexpected recogniser graph: no MatMul + Add before its Softmax")
    transpose_b = bool(matmul.get_attributes().get("transpose_b", False))
    w = weights.get_data().astype(np.float32)
    w = w[keep] if transpose_b else w[:, keep]
    b = bias.get_data().astype(np.float32).reshape(-1)[keep]
    cut = ops.matmul(matmul.input_value(0), ops.constant(np.ascontiguousarray(w)), False, transpose_b)
    out = ops.softmax(ops.add(cut, ops.constant(b)), softmax.get_attributes().get("axis", -1))
    return ov.Model([out], model.get_parameters(), "rec_" + str(len(keep)))


def _skip_identity(node):
    while node.get_type_name() in ("Identity", "Convert") and node.get_input_size() == 1:
        node = node.input_value(0).get_node()
    return node


def _compile(model, threads: int, streams: int) -> list:
    """Infer requests, one per stream, of `model` compiled for the CPU."""
    import openvino as ov

    config = {"CPU_RUNTIME_CACHE_CAPACITY": KERNEL_CACHE_ENTRIES, "NUM_STREAMS": streams}
    if threads:
        config["INFERENCE_NUM_THREADS"] = threads
    compiled = ov.Core().compile_model(model, "CPU", config)
    return [compiled.create_infer_request() for _ in range(streams)]
