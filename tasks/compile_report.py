"""compile_report: per-frame detections -> segments and tracked exposures per brand over the source.

Segments are closed intervals of sample times: one sampled frame at t gives [t, t].
A segment stands for `end - start + interval` seconds of exposure (each sample stands
for one sampling interval), clipped to the source's readable duration. A brand's
exposure seconds are the union of its segments. Exposures (mpr.analytics) are the
tracked placements behind them, each with size, position, placement, clarity, clutter,
quality and media value; docs/exposure.md has the formulas.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from pydantic import Field

from mpr import analytics
from mpr.analytics import ExposureConfig, analyse, shot_starts
from mpr.analytics.exposures import brand_figures, summarize
from mpr.analytics.measures import measure_detections
from mpr.analytics.tracking import stitch, track_detections
from mpr.records import BrandExposure, Detection, DetectionSet, Frame, ReportBody, Segment, SourceSummary, StageStats
from tasks.stage import StageContext, StageSpec


class CompileReportConfig(ExposureConfig):
    max_gap_s: float = Field(2.0, ge=0, le=3600, description="hits at most this far apart join one segment")
    min_confidence: float = Field(0.0, ge=0, le=1, description="ignore detections below this confidence")
    measure_pixels: bool = Field(True, description="read frames for sharpness, contrast and placement")


def compile_report(inputs: list[DetectionSet], config: CompileReportConfig, ctx: StageContext) -> ReportBody:
    frames = {f.t: f for m in inputs for f in m.frames}
    interval = max(m.interval_s for m in inputs)
    found = [d for m in inputs for d in m.detections if d.confidence >= config.min_confidence]
    found = sorted(found + _repeat_for_duplicates(found, frames), key=lambda d: (d.t, d.brand))
    readable = [m.readable_until_s for m in inputs if m.readable_until_s is not None]
    limit = min(readable) + interval if readable else _duration(ctx, len(frames), interval)
    measured = measure_detections(found, frames, ctx.store, config.measure_pixels)
    shots = shot_starts(list(frames.values()), config.ignore, ctx.source.kind != "video")
    detections, brands, summary = exposure_figures(measured, shots, interval, limit, config)
    counts = _counts(inputs)
    first = next(iter(frames.values()), None)
    return ReportBody(
        duration_s=_duration(ctx, len(frames), interval),
        frames_analyzed=len(frames),
        frames_kept=sum(f.dropped is None for f in frames.values()),
        brands=brands,
        counts=dict(counts),
        unresolved=counts.get("unresolved", 0),  # counted upstream: routing may hide the candidates
        truncated=bool(readable),
        readable_until_s=min(readable) if readable else None,
        warnings=list(dict.fromkeys(n for m in inputs for n in m.notes)),
        detections=detections,
        summary=summary,
        shots=shots,
        ignored=config.ignore,
        frame_size=(first.width, first.height) if first else (0, 0),
        sample_interval_s=interval,
        overlays=[ctx.store.url(k) for k in dict.fromkeys(k for m in inputs for k in m.overlays)],
        escalation=sum_usage(m.usage for m in inputs),
        skipped={m.stage: m.skipped for m in inputs if m.skipped},
        stats=StageStats(items_in=len(found), items_out=len(brands)),
    )


def exposure_figures(measured: list[Detection], shots: list[float], interval: float, limit: float,
                     config: CompileReportConfig) -> tuple[list[Detection], list[BrandExposure], SourceSummary]:
    """Segments, exposures and per-brand figures from measured detections (also used by timelines)."""
    analysis = analyse(measured, shots, interval, limit, config)
    segments = [_exposure(brand, hits, interval, limit, config.max_gap_s) for brand, hits in _by_brand(analysis.detections)]
    total = sum(b.exposure_s for b in segments)
    brands = [brand_figures(b, analysis.exposures.get(b.brand, []), total) for b in segments]
    brands.sort(key=lambda b: (-b.exposure_s, b.brand))
    summary = summarize(brands, {d.t for d in analysis.detections}, interval, limit,
                        config.currency)
    return analysis.detections, brands, summary


def _counts(inputs: list[DetectionSet]) -> dict[str, int]:
    """Counts summed over chunks per upstream stage. A stage carries the counts of the stages
    before it and overwrites those it updates (`unresolved`), so later stages win."""
    per_stage: dict[str, dict[str, int]] = {}
    for m in inputs:  # upstream-most stage first (Profile.upstream)
        totals = per_stage.setdefault(m.stage, defaultdict(int))
        for name, value in m.counts.items():
            totals[name] += value
    merged: dict[str, int] = {}
    for totals in per_stage.values():
        merged.update(totals)
    return merged


def sum_usage(usages: Iterable[dict[str, dict[str, float]]]) -> dict[str, dict[str, float]]:
    """Escalation calls, tokens and estimated cost per provider:model, summed (over chunks or runs)."""
    out: dict[str, dict[str, float]] = {}
    for usage in usages:
        for provider, figures in usage.items():
            total = out.setdefault(provider, defaultdict(float))
            for name, value in figures.items():
                total[name] = round(total[name] + value, 6)
    return {p: dict(f) for p, f in sorted(out.items())}


def _duration(ctx: StageContext, samples: int, interval: float) -> float:
    return ctx.source.duration_s if ctx.source.kind == "video" else round(samples * interval, 3)


def _repeat_for_duplicates(found: list[Detection], frames: dict[float, Frame]) -> list[Detection]:
    """A dropped near-duplicate shows what the frame it repeats shows."""
    at: dict[float, list[Detection]] = defaultdict(list)
    for d in found:
        at[d.t].append(d)
    repeats = []
    for frame in frames.values():
        if frame.dropped == "duplicate":
            origin = _origin(frame, frames)
            repeats += [d.model_copy(update={"t": frame.t}) for d in at.get(origin, [])]
    return repeats


def _origin(frame: Frame, frames: dict[float, Frame]) -> float | None:
    seen = set()
    while frame.dropped == "duplicate" and frame.same_as in frames and frame.t not in seen:
        seen.add(frame.t)
        frame = frames[frame.same_as]
    return frame.t if frame.dropped is None else None


def _by_brand(detections: list[Detection]):
    grouped: dict[str, list[Detection]] = defaultdict(list)
    for d in detections:
        grouped[d.brand].append(d)
    return grouped.items()


def _exposure(brand: str, hits: list[Detection], interval: float, limit: float, max_gap: float) -> BrandExposure:
    best: dict[float, float] = {}
    count: dict[float, int] = defaultdict(int)
    sources: dict[float, list[str]] = defaultdict(list)
    for d in hits:
        best[d.t] = max(best.get(d.t, 0.0), d.confidence)
        count[d.t] += 1
        sources[d.t].append(d.source)
    segments: list[list[float]] = []
    for t in sorted(best):
        if segments and t - segments[-1][-1] <= max_gap:
            segments[-1].append(t)
        else:
            segments.append([t])
    out = [Segment(start=ts[0], end=ts[-1], confidence=round(sum(best[t] for t in ts) / len(ts), 4),
                   detections=sum(count[t] for t in ts), source=_majority([s for t in ts for s in sources[t]]),
                   exposure_s=round(max(0.0, min(ts[-1] + interval, limit) - ts[0]), 3))
           for ts in segments]
    exposure = sum(max(0.0, min(s.end + interval, limit) - s.start) for s in out)
    return BrandExposure(brand=brand, exposure_s=round(exposure, 3), detections=len(hits), segments=out)


def _majority(sources: list[str]) -> str:
    """The stage that resolved most detections; ties go to the cheapest (earliest) stage."""
    order = {"match_brands": 0, "escalate_vlm": 1, "escalate_cloud": 2}
    return max(sorted(set(sources), key=lambda s: order.get(s, 9)), key=sources.count)


STAGE = StageSpec("compile_report", compile_report, CompileReportConfig, accepts=DetectionSet,
                  produces=ReportBody, scope="source",
                  helpers=(analytics.analyse, measure_detections, track_detections, stitch, brand_figures))
