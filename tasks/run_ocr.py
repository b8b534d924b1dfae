"""run_ocr: find text lines in crops, board strips and whole frames, then recognise each line once.

Per frame, every image read (the crops preprocess made and, per `full_frame`, the whole
frame) goes through the text detector; the lines found are mapped to frame pixels, lines
that two images saw are kept once (from the image that shows them largest), and the rest
are recognised in one batch. Single-line logo crops skip detection. In board strips,
long stretches of a text row that no found line covers are recognised too (`read_gaps`), and
whole-frame lines the detector is unsure of for brand spotting only (`weak_lines`).
Without crops (a profile without vision stages) whole frames are read. Each read keeps its
line's corners in the frame and where the recogniser placed each character on it, so that
match_brands can box a name read inside longer text.
"""

from __future__ import annotations

from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np
from pydantic import Field

from mpr.matching import tokens
from mpr.ocr import (LineText, Runtime, default_streams, det_batch, detect_scale, get_engine, line_image,
                     reading_quad)
from mpr.ocr_models import Charset, charset_indices
from mpr.records import Box, CropSet, FrameSet, Quad, RegionKind, StageStats, TextRead, TextSet
from mpr.folding import fold_char
from mpr.spotting import encode
from mpr.vision import debug
from mpr.vision.rectify import covered, iou, map_box
from tasks.stage import StageConfig, StageContext, StageSpec


BATCHED_PIXELS = 1 << 18  # largest crop whose detection is batched across frames (a 1024x256 strip)


class RunOcrConfig(StageConfig):
    engine: Literal["rapidocr"] = Field("rapidocr", description="OCR engine")
    runtime: Runtime = Field("openvino", description="inference library the OCR models run on")
    min_text_score: float = Field(0.5, ge=0, le=1, description="drop text lines read with less confidence")
    det_limit_side_len: int = Field(736, ge=64, le=4096, description=(
        "whole frames: the text detector sees frames with a shorter short side enlarged to this"))
    det_max_side: int = Field(2000, ge=64, le=4096, description="whole frames: longest side the text detector sees")
    crop_limit_side_len: int = Field(2048, ge=64, le=8192, description="longest crop side the text detector sees")
    full_frame: Literal["never", "low_pitch", "no_band", "always"] = Field(
        "always", description="with crops, also read whole frames: never; low_pitch frames; frames without a "
                               "board band (low_pitch ones included: close-ups and medium shots, where shirts "
                               "carry the brands); always")
    banded_long_side: int = Field(0, ge=0, le=4096, description=(
        "with full_frame no_band: frames that have a board band are also read whole, downscaled to this long "
        "side, for large text the crops miss (shirts in medium shots, graphics); 0: not read"))
    same_line_iou: float = Field(0.5, gt=0, le=1, description=(
        "lines two images found that overlap this much in the frame are recognised once (1: always twice)"))
    weak_lines: float = Field(0, ge=0, le=1, description=(
        "whole frames: lines the text detector scores at least this but under its box threshold (small or faint "
        "text it is unsure of) are recognised for brand spotting and near misses only, never read as text; 0: off"))
    max_weak_lines: int = Field(8, ge=0, le=100, description="weak_lines: at most this many per frame, largest first")
    read_gaps: float = Field(0, ge=0, le=100, description=(
        "board strips: stretches of a text row the detector left empty, at least this many row heights long, "
        "are recognised too (small board words between detected ones); 0: off"))
    charset: Charset = Field("full", description=(
        "characters the recogniser chooses from: full (PP-OCR's Chinese, Japanese, Korean and Latin) or latin "
        "(Latin script, digits, punctuation: about 2.5x faster recognition on OpenVINO; other scripts read "
        "as nothing or as a few Latin signs)"))
    threads: int = Field(0, ge=0, le=64, description="inference threads (0: all cores)")
    streams: int = Field(0, ge=0, le=16, description=(
        "frames read at once, each inference on its own OpenVINO stream with its share of the threads "
        "(0: 2 on OpenVINO with 2 cores or more: two single-threaded inferences at once keep both cores busier "
        "than one on both; 1 on onnxruntime)"))
    debug: bool = Field(False, description="write OCR text overlays to the artifact store")


@dataclass
class Line:
    """A text line found in one image, before recognition."""

    pixels: np.ndarray  # the straightened line, from the image that found it
    box: Box  # frame pixels
    zoom: float  # image pixels per frame pixel: lines seen larger are recognised in preference
    region: RegionKind
    quad: Quad | None = None  # frame pixels, along the reading direction (None: the line image was turned)
    weak: bool = False  # scored under the detector's box threshold: for brand spotting only


def run_ocr(inputs: list[FrameSet], config: RunOcrConfig, ctx: StageContext) -> TextSet:
    (frames_in,) = inputs
    crops = frames_in.crops if isinstance(frames_in, CropSet) else None
    crops_of: dict[str, list] = defaultdict(list)
    for crop in crops or []:
        crops_of[crop.frame_key].append(crop)
    streams = config.streams or default_streams(config.runtime)
    options = {"runtime": config.runtime, "threads": config.threads, "charset": config.charset, "streams": streams}
    engine = get_engine(config.engine, **options)

    with ThreadPoolExecutor(streams) as pool:  # frames are independent; the engine has a request per stream
        found = _detect_repeated_crops(crops or [], engine, config, ctx, pool)

        def read(frame) -> FrameRead:
            return _read_frame(frames_in, frame, crops_of[frame.key], engine, config, ctx, found)

        done = list(pool.map(read, frames_in.kept))
    reads = [r for d in done for r in d.reads]
    overlays = [d.overlay for d in done if d.overlay]
    return frames_in.carry(TextSet, reads=reads, faint=[r for d in done for r in d.faint], crops=crops or [],
                           overlays=frames_in.overlays + overlays,
                           charset=config.charset, engine={"name": config.engine, **options},
                           stats=StageStats(items_in=sum(d.images for d in done), items_out=len(reads)))


@dataclass
class FrameRead:
    reads: list[TextRead]
    faint: list[TextRead]  # lines read below min_text_score or as nothing, kept for brand spotting
    images: int  # images read: crops, and the frame when it was read whole
    overlay: str | None = None  # debug overlay key


def _detect_repeated_crops(crops: list, engine, config: RunOcrConfig, ctx: StageContext, pool) -> dict[str, tuple]:
    """Crop key -> (image, quads) for small crops whose region recurs at the same place in
    several frames (steady overlays: detect_edges gives them one box per chunk): they are cropped
    alike, so their text detection runs in batches of one size instead of a call per frame.
    Large ones (a board band of a still camera) are left to their frame: held for a whole chunk,
    they added 550 MB to the peak of a 10-minute run."""
    if not hasattr(engine, "detect_same_size"):
        return {}
    places = defaultdict(list)
    for crop in crops:
        if not crop.single_line:
            places[(crop.kind, *(round(v) for v in crop.box))].append(crop)
    groups = defaultdict(list)  # (shape) -> [(key, image)]
    for same in (c for c in places.values() if len(c) > 1):
        for crop in same:
            image = ctx.store.get_image(crop.crop_key)
            if image.shape[0] * image.shape[1] <= BATCHED_PIXELS:  # the images wait in memory for their frame
                groups[image.shape].append((crop.crop_key, image))
    batches = [group[i:i + n] for group in groups.values()
               for n in [det_batch(*group[0][1].shape[:2])] for i in range(0, len(group), n)]
    found = {}
    for batch, quads in zip(batches, pool.map(lambda b: engine.detect_same_size([im for _, im in b]), batches)):
        found.update({key: (image, q) for (key, image), q in zip(batch, quads)})
    return found


def _read_frame(frames_in: FrameSet, frame, crops: list, engine, config: RunOcrConfig,
                ctx: StageContext, found: dict[str, tuple]) -> FrameRead:
    lines = [line for crop in crops for line in _crop_lines(crop, engine, config, ctx, found.get(crop.crop_key))]
    image = None
    scale = _frame_scale(frames_in, frame, crops, config)
    weak = []
    if scale:
        image = ctx.store.get_image(frame.key)
        sure, weak = _frame_lines(image, scale, engine, config)
        lines += sure
    lines = distinct(lines, config.same_line_iou)
    if weak:
        lines += _weak_lines(image, weak, lines, config.max_weak_lines)
    texts = engine.read([line.pixels for line in lines])
    read = [_text_read(frame, line, text) for line, text in zip(lines, texts)]
    clear = [r.score >= config.min_text_score and r.text != "" and not line.weak for r, line in zip(read, lines)]
    reads = dedupe([r for r, ok in zip(read, clear) if ok])
    faint = [r for r, ok in zip(read, clear) if not ok and r.trace]
    overlay = None
    if config.debug and reads:
        image = image if image is not None else ctx.store.get_image(frame.key)
        overlay = ctx.store.put_image(f"debug/{ctx.key}/{frame.index:06d}.jpg", debug.draw_reads(image, reads))
    return FrameRead(reads, faint, len(crops) + bool(scale), overlay)


def _text_read(frame, line: Line, read: LineText) -> TextRead:
    text = read.text.strip()
    lead = len(read.text) - len(read.text.lstrip())
    places = read.places[lead:lead + len(text)] if line.quad and len(read.places) == len(read.text) else ()
    return TextRead(t=frame.t, frame_key=frame.key, text=text, score=read.score, box=line.box, region=line.region,
                    quad=line.quad, places=places, trace=read.trace)


def _frame_scale(frames_in: FrameSet, frame, crops: list, config: RunOcrConfig) -> float:
    """How the whole frame is read too: 0 (crops only), or the text detector's scale for it."""
    shape = (frame.height, frame.width)
    whole = detect_scale(shape, config.det_limit_side_len, config.det_max_side)
    if not isinstance(frames_in, CropSet) or config.full_frame == "always":
        return whole
    if config.full_frame == "never":
        return 0
    info = frames_in.field(frame.key)
    if info is None or info.low_pitch:
        return whole
    if config.full_frame == "no_band":
        if not any(c.kind == "board_band" for c in crops):
            return whole
        return min(1.0, config.banded_long_side / max(shape[:2])) if config.banded_long_side else 0
    return 0


def _frame_lines(image: np.ndarray, scale: float, engine, config: RunOcrConfig) -> tuple[list[Line], list]:
    """The whole frame's lines the detector is sure of and, with `weak_lines`, the quads of the weak ones."""
    if config.weak_lines and config.max_weak_lines and hasattr(engine, "detect_weak"):
        sure, weak = engine.detect_weak(image, scale, config.weak_lines)
    else:
        sure, weak = engine.detect(image, scale), []
    return [Line(line_image(image, q), _quad_box(q), 1.0, "frame", reading_quad(q)) for q in sure], weak


def _weak_lines(image: np.ndarray, weak: list, lines: list[Line], most: int) -> list[Line]:
    """The weak quads no other line covers, the largest `most` (tiny specks are rarely a name), as
    lines: only those are cut from the frame."""
    boxes = [(q, _quad_box(q)) for q in weak]
    free = [(q, b) for q, b in boxes if not any(iou(b, ln.box) > 0.1 or covered(b, ln.box) > 0.5 for ln in lines)]
    chosen = sorted(free, key=lambda qb: -(qb[1][2] - qb[1][0]) * (qb[1][3] - qb[1][1]))[:most]
    return [Line(line_image(image, q), b, 1.0, "frame", reading_quad(q), weak=True) for q, b in chosen]


def _crop_lines(crop, engine, config: RunOcrConfig, ctx: StageContext, detected: tuple | None = None) -> list[Line]:
    """The crop's lines in frame pixels; `detected`: its (image, quads) when already found."""
    image = detected[0] if detected else ctx.store.get_image(crop.crop_key)
    to_frame = np.array(crop.to_frame)
    h, w = image.shape[:2]
    if crop.single_line:
        quads = [np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32)]
        pixels = [image]
    else:
        quads = list(detected[1]) if detected else \
            engine.detect(image, min(1.0, config.crop_limit_side_len / max(h, w)))
        pixels = [line_image(image, q) for q in quads]
        if crop.kind == "board_band" and config.read_gaps:
            gaps = row_gaps(quads, w, h, config.read_gaps)
            quads += gaps
            pixels += [image[round(y1):round(y2), round(x1):round(x2)] for x1, y1, x2, y2 in map(_quad_box, gaps)]
    lines = []
    for quad, px in zip(quads, pixels):
        in_crop = _quad_box(quad)
        box = map_box(to_frame, in_crop)
        along = reading_quad(quad)
        if along is not None:  # the same corners in the frame
            along = tuple((float(x), float(y)) for x, y in cv2.perspectiveTransform(np.float32([along]), to_frame)[0])
        lines.append(Line(px, box, (in_crop[3] - in_crop[1]) / max(box[3] - box[1], 1e-6), crop.kind, along))
    return lines


def row_gaps(quads: list[np.ndarray], width: int, height: int, min_gap: float,
             window: float = 24.0) -> list[np.ndarray]:
    """Stretches of each text row (found lines of a rectified strip that share their height) that
    no line covers, at least `min_gap` row heights long, as quads to recognise; long ones are cut
    into overlapping pieces of at most `window` row heights. The text detector misses small words
    between found ones on a board row; the recogniser often reads them."""
    rows: list[list[Box]] = []
    for box in sorted(map(_quad_box, quads), key=lambda b: b[1] + b[3]):
        row = rows[-1] if rows else None
        if row and _same_row(row, box):
            row.append(box)
        else:
            rows.append([box])
    out = []
    for row in rows:
        y1, y2 = float(np.median([b[1] for b in row])), float(np.median([b[3] for b in row]))
        h = y2 - y1
        if h < 4:
            continue
        y1, y2 = max(0.0, y1 - 0.2 * h), min(float(height), y2 + 0.2 * h)
        edge = 0.0
        for x1, _, x2, _ in sorted(row) + [(width, 0, width, 0)]:
            if x1 - edge >= min_gap * h:
                out += _pieces(max(0.0, edge - 0.25 * h), min(float(width), x1 + 0.25 * h), y1, y2, window * h)
            edge = max(edge, x2)
    return out


def _same_row(row: list[Box], box: Box) -> bool:
    top, bottom = np.median([b[1] for b in row]), np.median([b[3] for b in row])
    overlap = min(bottom, box[3]) - max(top, box[1])
    return overlap > 0.5 * min(bottom - top, box[3] - box[1])


def _pieces(x1: float, x2: float, y1: float, y2: float, longest: float) -> list[np.ndarray]:
    count = max(1, int(np.ceil((x2 - x1) / longest)))
    step = (x2 - x1) / count
    overlap = 0.1 * longest
    return [np.array([[a, y1], [b, y1], [b, y2], [a, y2]], np.float32)
            for a, b in ((max(x1, x1 + i * step - overlap), min(x2, x1 + (i + 1) * step + overlap))
                         for i in range(count))]


def _quad_box(quad: np.ndarray) -> Box:
    return (float(quad[:, 0].min()), float(quad[:, 1].min()), float(quad[:, 0].max()), float(quad[:, 1].max()))


def distinct(lines: list[Line], same_iou: float) -> list[Line]:
    """Drop lines another image found at the same place, keeping the one seen largest."""
    if same_iou >= 1:
        return lines
    kept: list[Line] = []
    for line in sorted(lines, key=lambda ln: -ln.zoom):
        if all(iou(k.box, line.box) < same_iou for k in kept):
            kept.append(line)
    return kept


def dedupe(reads: list[TextRead]) -> list[TextRead]:
    """One read per text instance: overlapping crops (a logo inside a band) read it twice."""
    kept: list[tuple[TextRead, list[str]]] = []  # with their tokens, folded once
    for read in sorted(reads, key=lambda r: -r.score):
        same = tokens(read.text)
        if not any(toks == same and (iou(k.box, read.box) > 0.3 or covered(read.box, k.box) > 0.7)
                   for k, toks in kept):
            kept.append((read, same))
    return sorted((k for k, _ in kept), key=lambda r: (r.box[1], r.box[0]))


STAGE = StageSpec("run_ocr", run_ocr, RunOcrConfig, accepts=FrameSet, produces=TextSet,
                  gpu=True, helpers=(get_engine, charset_indices, encode, fold_char, line_image, detect_scale,
                                     map_box, debug.draw_reads))
