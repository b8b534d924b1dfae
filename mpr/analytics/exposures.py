"""Exposure metrics: quality, media value, per-brand figures and the source summary.

The formulas are documented (with their reasons) in docs/exposure.md; keep the two in step.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Annotated

from pydantic import Field

from mpr.records import BrandExposure, Detection, Exposure, Placement, SourceSummary
from tasks.stage import StageConfig

ZONE_WEIGHT = {"centre": 1.0, "top-centre": 0.85, "bottom-centre": 0.85, "middle-left": 0.85,
               "middle-right": 0.85, "top-left": 0.7, "top-right": 0.7, "bottom-left": 0.7, "bottom-right": 0.7}
STATIC_SAMPLES = 3  # samples an exposure must last to be judged fixed on screen
STATIC_MOVE = 0.15  # fixed on screen: the box centre moves less than this many text heights
SOURCE_ORDER = {"match_brands": 0, "escalate_vlm": 1, "escalate_cloud": 2}


class ValueConfig(StageConfig):
    """Quality and media-value settings (flat, so `--set compile_report.spot_30s=5000` reaches them)."""

    full_size_share: float = Field(0.02, gt=0, le=1, description="share of screen that counts as full size (size 1)")
    clutter_weight: float = Field(0.25, ge=0, le=10, description="quality lost per other brand on screen at once")
    currency: str = Field("spot30", min_length=1, max_length=16,
                          description="unit of media values; the default counts 30-second-spot equivalents")
    spot_30s: float = Field(1.0, ge=0, le=1e9, description="price of a 30 s spot (the rate of a full-quality exposure)")
    cpm: float | None = Field(None, ge=0, le=1e6, description="cost per thousand viewers of a 30 s spot (with audience)")
    audience: int | None = Field(None, ge=0, le=10**10, description="viewers: with cpm, spot_30s = cpm * audience / 1000")
    placement_rates: dict[Placement, Annotated[float, Field(ge=0, le=1e9)]] = Field(
        default_factory=dict, description="rate card: 30 s price per placement, replacing spot_30s for that placement")

    def rate_per_s(self, placement: Placement) -> float:
        spot = self.cpm * self.audience / 1000 if self.cpm is not None and self.audience is not None else self.spot_30s
        return self.placement_rates.get(placement, spot) / 30.0


def build_exposure(eid: int, brand: str, shot: int, hits: list[Detection], others: dict[float, set[str]],
                   interval: float, limit: float, config: ValueConfig) -> Exposure:
    """One exposure from its detections (time order); `others` = brands on screen per sample time."""
    per_t: dict[float, list[Detection]] = defaultdict(list)
    for d in hits:
        per_t[d.t].append(d)
    # one box per sample: the best read (repeats of the same words may be partial or loose)
    samples = [max(ds, key=lambda d: (d.match_score, d.confidence)) for _, ds in sorted(per_t.items())]
    start, end = samples[0].t, samples[-1].t
    duration = round(max(0.0, min(end + interval, limit) - start), 3) if interval > 0 else 0.0
    shares = [d.share for d in samples]
    zones = Counter(d.zone for d in samples)
    position = _mean([ZONE_WEIGHT.get(d.zone, 0.7) for d in samples])
    size = min(1.0, (_mean(shares) / config.full_size_share) ** 0.5)
    sharp = _mean([d.sharpness for d in samples if d.sharpness is not None], default=1.0)
    contr = _mean([d.contrast for d in samples if d.contrast is not None], default=1.0)
    conf = _mean([d.confidence for d in samples])
    clarity = (sharp + contr + conf) / 3
    clutter = _mean([len(others.get(d.t, set()) - {brand}) for d in samples])
    q = clarity * size * position / (1 + config.clutter_weight * clutter)
    placement = _placement(samples)
    sources = [d.source for d in hits]
    return Exposure(
        id=eid, brand=brand, start=start, end=end, duration_s=duration, shot=shot, detections=len(hits),
        placement=placement, share_mean=round(_mean(shares), 6), share_max=round(max(shares), 6),
        zone=zones.most_common(1)[0][0], central=round(zones["centre"] / len(samples), 4), position=round(position, 4),
        size=round(size, 4), sharpness=round(sharp, 4), contrast=round(contr, 4), confidence=round(conf, 4),
        clarity=round(clarity, 4), clutter=round(clutter, 4), share_of_voice=round(1 / (1 + clutter), 4),
        quality=round(q, 4), media_value=round(duration * q * config.rate_per_s(placement), 4),
        source=max(sorted(set(sources), key=lambda s: SOURCE_ORDER.get(s, 9)), key=sources.count))


def _placement(samples: list[Detection]) -> Placement:
    """Most frequent placement of the samples, except that text fixed on screen for several
    samples while not on a board is a graphic: an overlay the steady-overlay search missed
    (shown for only part of the chunk). Boards and shirts move with the camera and players."""
    placement = Counter(d.placement or "other" for d in samples).most_common(1)[0][0]
    if placement in ("shirt", "other") and len(samples) >= STATIC_SAMPLES and _static(samples):
        return "overlay"
    return placement


def _static(samples: list[Detection]) -> bool:
    height = min(d.box[3] - d.box[1] for d in samples)
    xs = [(d.box[0] + d.box[2]) / 2 for d in samples]
    ys = [(d.box[1] + d.box[3]) / 2 for d in samples]
    return max(max(xs) - min(xs), max(ys) - min(ys)) <= STATIC_MOVE * height


def brand_figures(brand: BrandExposure, exposures: list[Exposure], total_exposure_s: float) -> BrandExposure:
    seconds = sum(e.duration_s for e in exposures)
    return brand.model_copy(update={
        "exposures": exposures, "exposure_count": len(exposures),
        "quality": round(sum(e.quality * e.duration_s for e in exposures) / seconds, 4) if seconds else 0.0,
        "media_value": round(sum(e.media_value for e in exposures), 4),
        "share_of_voice": round(brand.exposure_s / total_exposure_s, 4) if total_exposure_s else 0.0})


def summarize(brands: list[BrandExposure], sample_times: set[float], interval: float, limit: float,
              currency: str) -> SourceSummary:
    """Totals over the source; `sample_times` are the samples with at least one brand on screen."""
    on_screen = sum(max(0.0, min(t + interval, limit) - t) for t in sample_times)
    ranked = sorted(brands, key=lambda b: (-b.media_value, -b.exposure_s, b.brand))
    return SourceSummary(exposure_s=round(sum(b.exposure_s for b in brands), 3), on_screen_s=round(on_screen, 3),
                         exposures=sum(b.exposure_count for b in brands),
                         media_value=round(sum(b.media_value for b in brands), 4), currency=currency,
                         ranking=[b.brand for b in ranked])


def _mean(values: list[float], default: float = 0.0) -> float:
    return sum(values) / len(values) if values else default
