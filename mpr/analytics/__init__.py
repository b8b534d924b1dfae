"""Exposure analytics: detections -> tracked exposures with size, position, placement, clarity,
clutter, quality and media value (formulas: docs/exposure.md).

`measures` reads the frames (per-detection figures), `tracking` groups detections into
exposures, `exposures` scores them. `analyse` runs the last two on measured detections;
compile_report and the timeline merge (which re-tracks chunk reports on the source clock)
both call it.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from pydantic import Field, field_validator

from mpr.analytics.exposures import ValueConfig, build_exposure
from mpr.analytics.tracking import track_detections
from mpr.records import Detection, Exposure, Frame

TimeRange = tuple[float, float]


class ExposureConfig(ValueConfig):
    """The exposure settings of compile_report."""

    track_gap_s: float = Field(2.0, ge=0, le=600, description="a placement missed this long keeps its exposure")
    track_iou: float = Field(0.2, gt=0, lt=1, description="box overlap (IoU) that continues a track between samples")
    ignore: list[TimeRange] = Field(default_factory=list, max_length=10000,
                                    description="[start, end] source seconds to leave out (replays, ad breaks)")

    @field_validator("ignore")
    @classmethod
    def _ranges(cls, ranges: list[TimeRange]) -> list[TimeRange]:
        for a, b in ranges:
            if not 0 <= a <= b < 1e7:
                raise ValueError(f"ignore range [{a}, {b}]: need 0 <= start <= end")
        return sorted(ranges)


@dataclass
class Analysis:
    detections: list[Detection]  # those kept, with their exposure ids
    exposures: dict[str, list[Exposure]]  # per brand, by start


def ignored(t: float, ranges: list[TimeRange]) -> bool:
    return any(a <= t <= b for a, b in ranges)


def shot_starts(frames: list[Frame], ranges: list[TimeRange], stills: bool) -> list[float]:
    """Start time of each shot: the first sample, each cut, the first sample after an ignored
    range; every image of a still/image-folder source is its own shot."""
    starts, skipping = [], True
    for f in sorted(frames, key=lambda f: f.t):
        if ignored(f.t, ranges):
            skipping = True
            continue
        if skipping or f.cut or stills:
            starts.append(f.t)
        skipping = False
    return starts


def analyse(detections: list[Detection], shots: list[float], interval: float, limit: float,
            config: ExposureConfig) -> Analysis:
    kept = sorted((d for d in detections if not ignored(d.t, config.ignore)), key=lambda d: (d.t, d.brand))
    tracks = track_detections(kept, shots, interval, config.track_gap_s, config.track_iou)
    on_screen: dict[float, set[str]] = defaultdict(set)
    for d in kept:
        on_screen[d.t].add(d.brand)
    exposures: dict[str, list[Exposure]] = defaultdict(list)
    ids: dict[int, int] = {}
    for eid, track in enumerate(tracks, start=1):
        hits = [kept[i] for i in track.members]
        exposures[track.brand].append(build_exposure(eid, track.brand, track.shot, hits, on_screen, interval, limit,
                                                     config))
        ids.update(dict.fromkeys(track.members, eid))
    tagged = [d.model_copy(update={"exposure": ids.get(i)}) for i, d in enumerate(kept)]
    return Analysis(tagged, dict(exposures))
