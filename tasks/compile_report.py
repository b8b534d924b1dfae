"""compile_report: merge per-frame detections into segments per brand over the whole source.

Segments are closed intervals of sample times: one sampled frame at t gives [t, t].
A segment stands for `end - start + interval` seconds of exposure (each sample stands
for one sampling interval), clipped to the source's readable duration.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from pydantic import Field

from mpr.records import BrandExposure, Detection, DetectionSet, Frame, ReportBody, Segment, StageStats
from tasks.stage import StageConfig, StageContext, StageSpec


class CompileReportConfig(StageConfig):
    max_gap_s: float = Field(2.0, ge=0, le=3600, description="hits at most this far apart join one segment")
    min_confidence: float = Field(0.0, ge=0, le=1, description="ignore detections below this confidence")


def compile_report(inputs: list[DetectionSet], config: CompileReportConfig, ctx: StageContext) -> ReportBody:
    frames = {f.t: f for m in inputs for f in m.frames}
    interval = max(m.interval_s for m in inputs)
    found = [d for m in inputs for d in m.detections if d.confidence >= config.min_confidence]
    detections = sorted(found + _repeat_for_duplicates(found, frames), key=lambda d: (d.t, d.brand))
    readable = [m.readable_until_s for m in inputs if m.readable_until_s is not None]
    limit = min(readable) + interval if readable else _duration(ctx, len(frames), interval)
    brands = [_exposure(brand, hits, interval, limit, config.max_gap_s) for brand, hits in _by_brand(detections)]
    brands.sort(key=lambda b: (-b.exposure_s, b.brand))
    counts = _counts(inputs)
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
        overlays=[ctx.store.url(k) for k in dict.fromkeys(k for m in inputs for k in m.overlays)],
        escalation=sum_usage(m.usage for m in inputs),
        skipped={m.stage: m.skipped for m in inputs if m.skipped},
        stats=StageStats(items_in=len(found), items_out=len(brands)),
    )


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
                  produces=ReportBody, scope="source")
