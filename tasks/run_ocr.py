"""run_ocr: read text on every kept frame (whole frames until the vision stages exist)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from mpr.ocr import get_engine
from mpr.records import FrameSet, StageStats, TextRead, TextSet
from tasks.stage import StageConfig, StageContext, StageSpec


class RunOcrConfig(StageConfig):
    engine: Literal["rapidocr"] = Field("rapidocr", description="OCR engine")
    min_text_score: float = Field(0.5, ge=0, le=1, description="drop text lines read with less confidence")
    det_limit_side_len: int = Field(736, ge=64, le=4096, description="text-detector input size")
    threads: int = Field(0, ge=0, le=64, description="onnxruntime threads (0: all cores)")


def run_ocr(inputs: list[FrameSet], config: RunOcrConfig, ctx: StageContext) -> TextSet:
    (frames_in,) = inputs
    engine = get_engine(config.engine, det_limit_side_len=config.det_limit_side_len, threads=config.threads)
    reads = []
    for frame in frames_in.kept:
        image = ctx.store.get_image(frame.key)
        for text, score, box in engine.read(image):
            if score >= config.min_text_score and text.strip():
                reads.append(TextRead(t=frame.t, frame_key=frame.key, text=text.strip(), score=score, box=box))
    return frames_in.carry(TextSet, reads=reads,
                           stats=StageStats(items_in=len(frames_in.kept), items_out=len(reads)))


STAGE = StageSpec("run_ocr", run_ocr, RunOcrConfig, accepts=FrameSet, produces=TextSet, helpers=(get_engine,))
