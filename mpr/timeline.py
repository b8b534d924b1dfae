"""Running a Timeline (the ordered chunks `chunk_source` made) as one source.

Each chunk is analysed as its own source (its own cache keys, so adding a chunk to a
timeline computes only that chunk); the chunk reports are then put back on the source's
clock (times shifted by each chunk's offset) and segments rebuilt across chunk borders.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import select

from mpr.db import models as m
from mpr.db.session import session_scope
from mpr.errors import InputError
from mpr.records import ReportBody, StageRun
from mpr.storage import media_in
from tasks.compile_report import CompileReportConfig, exposure_figures, sum_usage

TIMELINE_REF = re.compile(r"^timeline:(\S+)$")


@dataclass(frozen=True)
class TimelineChunks:
    id: int
    name: str
    uris: list[str]  # each chunk's media-in URI, in order
    offsets: list[float]  # where each chunk starts on the source clock
    duration_s: float


def timeline_ref(source: str) -> str | None:
    """`timeline:ID` or `timeline:NAME` -> the id or name; None for any other source."""
    match = TIMELINE_REF.match(source.strip())
    return match.group(1) if match else None


def load_timeline(ref: str) -> TimelineChunks:
    with session_scope() as session:
        query = select(m.Timeline).where(m.Timeline.id == int(ref)) if ref.isdigit() else \
            select(m.Timeline).where(m.Timeline.name == ref)
        timeline = session.scalars(query).first()
        if timeline is None:
            raise InputError(f"timeline {ref!r}: no such timeline (run `mpr chunk` first)")
        if not timeline.chunks:
            raise InputError(f"timeline {ref!r}: has no chunks")
        root = media_in()
        uris = [root.uri(c.asset.key) for c in timeline.chunks]
        offsets = [c.offset_s for c in timeline.chunks]
        last = timeline.chunks[-1]
        duration = timeline.duration_s or last.offset_s + (last.asset.duration_s or 0.0)
        return TimelineChunks(timeline.id, timeline.name, uris, offsets, duration)


def merge_bodies(parts: list[tuple[float, ReportBody]], duration_s: float, interval: float,
                 config: CompileReportConfig) -> ReportBody:
    """One report body on the source clock from (offset, chunk body) pairs. Exposures are
    tracked again on the source clock (a chunk border is not a shot change); the chunks'
    detections keep the measures compile_report took from their frames."""
    measured = sorted((d.model_copy(update={"t": round(d.t + offset, 3)})
                       for offset, body in parts for d in body.detections), key=lambda d: (d.t, d.brand))
    shots = sorted({round(t + offset, 3) for offset, body in parts for t in body.shots[1:]} |
                   {round(parts[0][0] + (parts[0][1].shots or [0.0])[0], 3)} | {b for _, b in config.ignore})
    detections, brands, summary = exposure_figures(measured, shots, interval, duration_s, config)
    bodies = [body for _, body in parts]
    counts: dict[str, int] = {}
    for body in bodies:
        for name, value in body.counts.items():
            counts[name] = counts.get(name, 0) + value
    readable = [off + b.readable_until_s for off, b in parts if b.readable_until_s is not None]
    return ReportBody(
        duration_s=round(duration_s, 3), frames_analyzed=sum(b.frames_analyzed for b in bodies),
        frames_kept=sum(b.frames_kept for b in bodies), brands=brands, counts=counts,
        unresolved=sum(b.unresolved for b in bodies), truncated=any(b.truncated for b in bodies),
        readable_until_s=min(readable) if readable else None,
        warnings=list(dict.fromkeys(w for b in bodies for w in b.warnings)),
        overlays=[o for b in bodies for o in b.overlays], escalation=sum_usage(b.escalation for b in bodies),
        skipped={k: v for b in bodies for k, v in b.skipped.items()}, detections=detections, summary=summary,
        shots=shots, ignored=sorted({r for b in bodies for r in b.ignored}), frame_size=bodies[0].frame_size,
        sample_interval_s=interval)


def merge_stages(per_chunk: list[list[StageRun]]) -> list[StageRun]:
    """Stage rows summed over the chunk runs (a stage is cached only if it was everywhere)."""
    grouped: dict[str, list[StageRun]] = {}
    for runs in per_chunk:
        for run in runs:
            grouped.setdefault(run.name, []).append(run)
    return [StageRun(name=name, state=_merged_state({r.state for r in runs}),
                     seconds=round(sum(r.seconds for r in runs), 3), items_in=sum(r.items_in for r in runs),
                     items_out=sum(r.items_out for r in runs), chunks=sum(r.chunks for r in runs),
                     cached_chunks=sum(r.cached_chunks for r in runs),
                     compute_seconds=round(sum(r.compute_seconds for r in runs), 3))
            for name, runs in grouped.items()]


def _merged_state(states: set[str]) -> str:
    if "failed" in states:
        return "failed"
    if states == {"skipped"}:
        return "skipped"
    return "cached" if states <= {"cached", "skipped"} else "completed"
