"""detect_edges: board bands beyond the far grass edge and steady overlay graphics, as region hints."""

from __future__ import annotations

import cv2
from pydantic import Field

from mpr.records import FieldSet, Region, RegionSet, StageStats
from mpr.vision import debug
from mpr.vision.lines import board_band, board_lines, overlay_boxes, quad_box
from tasks.stage import StageConfig, StageContext, StageSpec


class DetectEdgesConfig(StageConfig):
    max_angle: float = Field(30.0, ge=0, le=80, description="steepest board line kept, degrees")
    min_extent: float = Field(0.1, ge=0.01, le=1, description="shortest board line, share of frame width")
    max_lines: int = Field(3, ge=0, le=10, description="board lines kept per frame")
    band_min_height: float = Field(0.02, ge=0.005, le=0.5, description="board height search from, share of frame height")
    band_max_height: float = Field(0.12, ge=0.01, le=0.5, description="board height search up to, share of frame height")
    band_margin: float = Field(0.2, ge=0, le=2, description="extra band above and below, x board height")
    band_rows: float = Field(2.0, ge=0.5, le=6, description="band height above the line, x board height")
    overlays: bool = Field(True, description="find steady overlay graphics (score bug, lower thirds)")
    overlay_persistence: float = Field(0.9, ge=0.5, le=1, description="share of frames an overlay edge must be in")
    debug: bool = Field(False, description="write line and band overlays to the artifact store")


def detect_edges(inputs: list[FieldSet], config: DetectEdgesConfig, ctx: StageContext) -> RegionSet:
    (field_in,) = inputs
    regions, overlays, smalls = [], [], []
    for info in field_in.fields:
        image = ctx.store.get_image(info.frame_key)
        gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        if config.overlays:  # downscaled frames for the steady-overlay search
            smalls.append(cv2.resize(gray, None, fx=info.mask_scale, fy=info.mask_scale,
                                     interpolation=cv2.INTER_AREA))
        if info.low_pitch:
            continue
        mask = ctx.store.get_image(info.mask_key, cv2.IMREAD_GRAYSCALE)
        height, width = gray.shape
        lines = board_lines(mask, info.mask_scale, config.max_angle, config.min_extent, config.max_lines)
        frame_regions = []
        for line in lines:
            quad, board_h = board_band(gray, line, config.band_min_height * height,
                                       config.band_max_height * height, config.band_margin, config.band_rows)
            frame_regions.append(Region(t=info.t, frame_key=info.frame_key, kind="board_band",
                                        box=quad_box(quad, width, height), quad=quad,
                                        board_height=round(board_h, 1), source="edges"))
        regions += frame_regions
        if config.debug:
            overlays.append(ctx.store.put_image(f"debug/{ctx.key}/{info.t:09.3f}.jpg",
                                                debug.draw_regions(image, frame_regions, lines)))
    if config.overlays and field_in.fields:
        scale = field_in.fields[0].mask_scale
        for box in overlay_boxes(smalls, scale, config.overlay_persistence):
            regions += [Region(t=i.t, frame_key=i.frame_key, kind="overlay", box=box, source="edges")
                        for i in field_in.fields]
    bands = sum(r.kind == "board_band" for r in regions)
    return field_in.carry(RegionSet, fields=field_in.fields, regions=regions, overlays=field_in.overlays + overlays,
                          counts={**field_in.counts, "board_bands": bands},
                          stats=StageStats(items_in=len(field_in.fields), items_out=len(regions)))


STAGE = StageSpec("detect_edges", detect_edges, DetectEdgesConfig, accepts=FieldSet, produces=RegionSet,
                  helpers=(board_lines, debug.draw_regions))
