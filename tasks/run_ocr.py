"""run_ocr: read text on crops and board bands, or on whole frames.

With crops from preprocess, single-line crops get recognition only and bands/boxes get
detection + recognition at their own size; boxes are mapped back to frame pixels.
Whole frames are read when the input has no crops (a profile without vision stages)
and, per `full_frame`, as a fallback for frames the vision stages could not cover.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Literal

import numpy as np
from pydantic import Field

from mpr.matching import tokens
from mpr.ocr import get_engine
from mpr.records import CropSet, FrameSet, StageStats, TextRead, TextSet
from mpr.vision import debug
from mpr.vision.rectify import covered, iou, map_box
from tasks.stage import StageConfig, StageContext, StageSpec


class RunOcrConfig(StageConfig):
    engine: Literal["rapidocr"] = Field("rapidocr", description="OCR engine")
    min_text_score: float = Field(0.5, ge=0, le=1, description="drop text lines read with less confidence")
    det_limit_side_len: int = Field(736, ge=64, le=4096, description="text-detector input size for whole frames")
    crop_limit_side_len: int = Field(2048, ge=64, le=8192, description="longest crop side the text detector sees")
    full_frame: Literal["never", "low_pitch", "no_band", "always"] = Field(
        "always", description="with crops, also read whole frames: never; low_pitch frames; frames without a "
                               "board band (low_pitch ones included: close-ups and medium shots, where shirts "
                               "carry the brands); always")
    banded_long_side: int = Field(0, ge=0, le=4096, description=(
        "with full_frame no_band: frames that have a board band are also read whole, downscaled to this long "
        "side, for large text the crops miss (shirts in medium shots, graphics); 0: not read"))
    threads: int = Field(0, ge=0, le=64, description="onnxruntime threads (0: all cores)")
    debug: bool = Field(False, description="write OCR text overlays to the artifact store")


def run_ocr(inputs: list[FrameSet], config: RunOcrConfig, ctx: StageContext) -> TextSet:
    (frames_in,) = inputs
    crops = frames_in.crops if isinstance(frames_in, CropSet) else None
    crops_of: dict[str, list] = defaultdict(list)
    for crop in crops or []:
        crops_of[crop.frame_key].append(crop)
    reads, overlays, items = [], [], 0
    for frame in frames_in.kept:
        frame_reads = []
        mine = crops_of[frame.key]
        for crop in mine:
            frame_reads += _read_crop(crop, config, ctx)
        image = None
        size, long_side = (config.det_limit_side_len, False) if crops is None else \
            _full_frame_size(frames_in, frame.key, mine, config)
        if size:
            image = ctx.store.get_image(frame.key)
            frame_reads += _read_frame(image, frame, size, long_side, config)
        items += len(mine) + (image is not None)
        frame_reads = dedupe(frame_reads)
        reads += frame_reads
        if config.debug and frame_reads:
            image = image if image is not None else ctx.store.get_image(frame.key)
            overlays.append(ctx.store.put_image(f"debug/{ctx.key}/{frame.index:06d}.jpg",
                                                debug.draw_reads(image, frame_reads)))
    return frames_in.carry(TextSet, reads=reads, overlays=frames_in.overlays + overlays,
                           stats=StageStats(items_in=items, items_out=len(reads)))


def _full_frame_size(frames_in: CropSet, frame_key: str, crops: list, config: RunOcrConfig) -> tuple[int, bool]:
    """Text-detector size for reading this whole frame too (0: crops only), and whether it caps the long side."""
    whole = (config.det_limit_side_len, False)
    if config.full_frame in ("always", "never"):
        return whole if config.full_frame == "always" else (0, False)
    info = frames_in.field(frame_key)
    if info is None or info.low_pitch:
        return whole
    if config.full_frame == "no_band":
        has_band = any(c.kind == "board_band" for c in crops)
        return (config.banded_long_side, True) if has_band else whole
    return 0, False


def _read_frame(image: np.ndarray, frame, size: int, long_side: bool, config: RunOcrConfig) -> list[TextRead]:
    if long_side:  # downscaled whole frame: the crop engine caps the long side
        engine = get_engine(config.engine, det_limit_side_len=size, threads=config.threads, crops=True)
    else:
        engine = get_engine(config.engine, det_limit_side_len=size, threads=config.threads)
    return [TextRead(t=frame.t, frame_key=frame.key, text=text.strip(), score=score, box=box)
            for text, score, box in engine.read(image) if score >= config.min_text_score and text.strip()]


def _read_crop(crop, config: RunOcrConfig, ctx: StageContext) -> list[TextRead]:
    engine = get_engine(config.engine, det_limit_side_len=config.crop_limit_side_len, threads=config.threads,
                        crops=True)
    image = ctx.store.get_image(crop.crop_key)
    to_frame = np.array(crop.to_frame)
    if crop.single_line:
        text, score = engine.recognize(image)
        found = [(text, score, (0.0, 0.0, float(image.shape[1]), float(image.shape[0])))]
    else:
        found = engine.read(image)
    return [TextRead(t=crop.t, frame_key=crop.frame_key, text=text.strip(), score=score,
                     box=map_box(to_frame, box), region=crop.kind)
            for text, score, box in found if score >= config.min_text_score and text.strip()]


def dedupe(reads: list[TextRead]) -> list[TextRead]:
    """One read per text instance: overlapping crops (a logo inside a band) read it twice."""
    kept: list[TextRead] = []
    for read in sorted(reads, key=lambda r: -r.score):
        same = tokens(read.text)
        if not any(tokens(k.text) == same and (iou(k.box, read.box) > 0.3 or covered(read.box, k.box) > 0.7)
                   for k in kept):
            kept.append(read)
    return sorted(kept, key=lambda r: (r.box[1], r.box[0]))


STAGE = StageSpec("run_ocr", run_ocr, RunOcrConfig, accepts=FrameSet, produces=TextSet,
                  helpers=(get_engine, map_box, debug.draw_reads))
