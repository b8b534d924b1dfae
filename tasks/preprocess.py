"""preprocess: regions -> OCR-ready crops (rectified bands, padded and upscaled boxes, CLAHE, deskew)."""

from __future__ import annotations

import numpy as np
from pydantic import Field

from mpr.escalation.candidates import dhash
from mpr.records import Crop, CropSet, Region, RegionKind, RegionSet, StageStats
from mpr.store import decode_image, encode_image
from mpr.vision.rectify import covered, crop_box, enhance_contrast, rectify_quad
from tasks.stage import StageConfig, StageContext, StageSpec


class PreprocessConfig(StageConfig):
    kinds: tuple[RegionKind, ...] = Field(("board_band", "board", "overlay", "logo"), description="regions to crop")
    board_height: int = Field(64, ge=8, le=256, description="board-band strips are scaled so boards are this tall")
    band_height: tuple[int, int] = Field((48, 256), description="smallest and largest band strip height, pixels")
    short_side: int = Field(960, ge=0, le=4320, description=(
        "crops are enlarged at least as much as a frame enlarged to this short side (low-resolution "
        "broadcasts: board text is a few pixels tall, and a measured board height can be a whole stand tier)"))
    padding: float = Field(0.15, ge=0, le=2, description="padding around boxes, x box height")
    min_text_height: int = Field(40, ge=8, le=512, description="boxes are upscaled to at least this height")
    max_upscale: float = Field(4.0, ge=1, le=8, description="largest upscaling factor")
    max_width: int = Field(4096, ge=64, le=8192, description="widest crop, pixels")
    clahe_clip: float = Field(2.0, ge=0, le=40, description="CLAHE clip limit (0: off)")
    deskew: bool = Field(True, description="rotate boxes inside a slanted band to the band's angle")
    single_line_aspect: float = Field(1.8, ge=0, le=50,
                                      description="logo boxes at least this wide/high are read as one text line")
    max_crops: int = Field(40, ge=1, le=1000, description="crops per frame, bands first")


def preprocess(inputs: list[RegionSet], config: PreprocessConfig, ctx: StageContext) -> CropSet:
    (regions_in,) = inputs
    by_frame: dict[str, list[Region]] = {}
    for r in regions_in.regions:
        if r.kind in config.kinds:
            by_frame.setdefault(r.frame_key, []).append(r)
    crops = []
    for frame_key, regions in by_frame.items():
        image = ctx.store.get_image(frame_key)
        regions = sorted(regions, key=lambda r: (r.kind != "board_band", -r.score))[:config.max_crops]
        bands = [r for r in regions if r.quad]
        for n, region in enumerate(regions):
            pixels, to_frame = _prepare(image, region, bands, config)
            pixels = enhance_contrast(pixels, config.clahe_clip)
            key = f"crops/{ctx.key}/{region.t:09.3f}_{n:02d}.jpg"
            data = encode_image(key, pixels)
            ctx.store.put_bytes(key, data)
            crops.append(Crop(t=region.t, frame_key=frame_key, crop_key=key, kind=region.kind, box=region.box,
                              to_frame=to_frame.tolist(), single_line=_single_line(region, config),
                              hash=dhash(decode_image(key, data))))
    return regions_in.carry(CropSet, fields=regions_in.fields, regions=regions_in.regions, crops=crops,
                            counts={**regions_in.counts, "crops": len(crops)},
                            stats=StageStats(items_in=len(regions_in.regions), items_out=len(crops)))


def _prepare(image: np.ndarray, region: Region, bands: list[Region], config: PreprocessConfig):
    if region.quad:
        (x0, y0), (x1, y1), (x2, y2), (x3, y3) = region.quad
        band_h = ((y3 - y0) + (y2 - y1)) / 2
        zoom = max(1.0, config.board_height / max(region.board_height or band_h, 1.0),
                   config.short_side / min(image.shape[:2]))
        scale = min(config.max_upscale, zoom)
        lo, hi = config.band_height
        return rectify_quad(image, region.quad, int(np.clip(band_h * scale, lo, hi)), config.max_width)
    angle = 0.0
    if config.deskew:
        band = next((b for b in bands if covered(region.box, b.box) >= 0.8), None)
        if band is not None:
            (x0, y0), (x1, y1) = band.quad[3], band.quad[2]  # the band's bottom edge
            angle = float(np.degrees(np.arctan2(y1 - y0, x1 - x0)))
    return crop_box(image, region.box, config.padding, config.min_text_height, config.max_upscale, angle,
                    config.short_side / min(image.shape[:2]))


def _single_line(region: Region, config: PreprocessConfig) -> bool:
    x1, y1, x2, y2 = region.box
    return region.kind == "logo" and config.single_line_aspect > 0 and (x2 - x1) >= config.single_line_aspect * (y2 - y1)


STAGE = StageSpec("preprocess", preprocess, PreprocessConfig, accepts=RegionSet, produces=CropSet,
                  helpers=(rectify_quad, dhash, encode_image))
