"""field_segmentation: pitch mask and coverage per kept frame; little pitch is flagged."""

from __future__ import annotations

from pydantic import Field

from mpr.records import FieldInfo, FieldSet, FrameSet, StageStats
from mpr.vision import debug
from mpr.vision.pitch import GrassRange, calibrate_grass, pitch_mask, to_hsv
from tasks.stage import StageConfig, StageContext, StageSpec


class FieldSegmentationConfig(StageConfig):
    mask_width: int = Field(320, ge=32, le=1920, description="mask resolution (frame width in pixels)")
    min_coverage: float = Field(0.25, ge=0, le=1, description="pitch share below which a frame is low_pitch")
    debug: bool = Field(False, description="write mask overlays to the artifact store")


def field_segmentation(inputs: list[FrameSet], config: FieldSegmentationConfig, ctx: StageContext) -> FieldSet:
    (frames_in,) = inputs
    fields, overlays = [], []
    grass: GrassRange | None = None
    for frame in frames_in.kept:
        image = ctx.store.get_image(frame.key)
        hsv, scale = to_hsv(image, config.mask_width)
        if frame.cut or grass is None:  # calibrate once per shot (again if the first try found no grass)
            grass = calibrate_grass(hsv)
        mask = pitch_mask(hsv, grass)
        mask_key = ctx.store.put_image(f"masks/{ctx.key}/{frame.index:06d}.png", mask)
        coverage = round(float(mask.mean()) / 255, 4)
        low, high = grass or ((0, 0, 0), (0, 0, 0))
        fields.append(FieldInfo(t=frame.t, frame_key=frame.key, mask_key=mask_key, mask_scale=scale,
                                coverage=coverage, low_pitch=coverage < config.min_coverage,
                                hsv_low=low, hsv_high=high))
        if config.debug:
            overlays.append(ctx.store.put_image(f"debug/{ctx.key}/{frame.index:06d}.jpg",
                                                debug.draw_mask(image, mask, coverage)))
    low_pitch = sum(f.low_pitch for f in fields)
    return frames_in.carry(FieldSet, fields=fields, overlays=frames_in.overlays + overlays,
                           counts={**frames_in.counts, "low_pitch_frames": low_pitch},
                           stats=StageStats(items_in=len(frames_in.kept), items_out=len(fields) - low_pitch))


STAGE = StageSpec("field_segmentation", field_segmentation, FieldSegmentationConfig, accepts=FrameSet,
                  produces=FieldSet, helpers=(calibrate_grass, debug.draw_mask))
