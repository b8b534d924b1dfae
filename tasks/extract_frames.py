"""extract_frames: decode the source at the profile's fps, one frame in memory at a time."""

from __future__ import annotations

from pydantic import Field, model_validator

from mpr.imaging import limit_side
from mpr.keyframes import KeyframeReader, plan_targets
from mpr.records import Frame, FrameSet, StageStats
from mpr.source import ReadResult, read_samples, sample_interval
from mpr.vision.cuts import DecodeCuts
from tasks.stage import StageConfig, StageContext, StageSpec


class ExtractFramesConfig(StageConfig):
    fps: float = Field(1.0, gt=0, le=60, description="frames sampled per source second")
    chunk_s: float = Field(60.0, ge=1, le=3600, description="seconds of video per task")
    max_side: int = Field(1920, ge=0, le=8192, description="downscale longer side to this (0: keep)")
    jpeg_quality: int = Field(95, ge=50, le=100, description="quality of stored frames")
    cut_fps: float = Field(30.0, ge=0, le=120, description=(
        "decoded frames per second examined for shot cuts (PySceneDetect AdaptiveDetector): every other "
        "frame of a 25 fps source; at or above the source's rate every frame is; 0: only filter_scenes' "
        "per-sample test"))
    keyframes: bool = Field(False, description=(
        "a video sample takes a keyframe within half a sample interval of its time where there is one, "
        "so most frames are never decoded (PyAV, skip_frame=NONKEY); needs cut_fps: 0"))

    @model_validator(mode="after")
    def _keyframes_without_cuts(self):
        if self.keyframes and self.cut_fps > 0:
            raise ValueError("keyframes: true needs cut_fps: 0 (decode-time cut detection examines every frame, "
                             "keyframe sampling decodes few)")
        return self


def extract_frames(inputs: list, config: ExtractFramesConfig, ctx: StageContext) -> FrameSet:
    chunk = ctx.chunk
    result = ReadResult()
    frames: list[Frame] = []
    previous = None
    for index, t, name, image in read_samples(ctx.source, chunk, config.fps, result, cut_fps=config.cut_fps,
                                               keyframes=config.keyframes):
        image = limit_side(image, config.max_side)
        key = ctx.store.put_image(f"frames/{ctx.key}/{index:06d}.jpg", image, config.jpeg_quality)
        frame = Frame(index=index, t=t, key=key, width=image.shape[1], height=image.shape[0], name=name)
        if index < chunk.sample_start:
            previous = frame
        else:
            frames.append(frame)
    opens_shot = set(result.cut_samples)
    frames = [f.model_copy(update={"cut": True}) if f.index in opens_shot else f for f in frames]
    return FrameSet(
        chunk=chunk.index,
        frames=frames,
        previous=previous,
        interval_s=sample_interval(ctx.source, config.fps),
        readable_until_s=result.readable_until_s,
        notes=result.notes,
        counts={"sampled": len(frames), "decode_cuts": sum(f.cut for f in frames), "keyframe_snapped": result.snapped},
        stats=StageStats(items_in=chunk.sample_stop - chunk.sample_start, items_out=len(frames)),
    )


STAGE = StageSpec("extract_frames", extract_frames, ExtractFramesConfig, accepts=None,
                  produces=FrameSet, helpers=(read_samples, limit_side, DecodeCuts, KeyframeReader, plan_targets))
