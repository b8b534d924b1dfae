"""Tracking brand detections across sampled frames: one placement seen for 6 s is one exposure.

supervision's ByteTrack associates the boxes of one brand from sample to sample within a
shot (a fresh tracker per brand and shot, so exposures end at shot changes and two
brands never share a track). Its lost-track buffer is the gap tolerance: a placement
missed for up to `gap_s` (a player in front, a failed read) keeps its track.

At 1 sample per second a fast pan can move a board further than its own width between
samples, and ByteTrack only confirms a track on its second hit, so fragments are then
stitched by hand: a fragment that starts within the gap tolerance after another
fragment of the same brand ended, in the same shot, continues the nearest such
fragment. Two placements of one brand on screen at the same time stay two tracks.
"""

from __future__ import annotations

import bisect
import math
import warnings
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
import supervision as sv

from mpr.records import Box, Detection

EPS = 1e-6
REPEAT_OVERLAP = 0.5  # boxes of one brand overlapping this much (of the smaller) in one sample are one placement


@dataclass
class Track:
    """Indices of the detections of one exposure, in time order."""

    brand: str
    shot: int
    members: list[int] = field(default_factory=list)


def shot_of(t: float, shot_starts: list[float]) -> int:
    return max(0, bisect.bisect_right(shot_starts, t + EPS) - 1)


def track_detections(detections: list[Detection], shot_starts: list[float], interval: float, gap_s: float,
                     min_iou: float) -> list[Track]:
    """Tracks over `detections` (sampled every `interval` s), split at `shot_starts`, sorted by start."""
    groups: dict[tuple[str, int], list[int]] = defaultdict(list)
    for i, d in enumerate(detections):
        groups[(d.brand, shot_of(d.t, shot_starts))].append(i)
    tracks = []
    for (brand, shot), members in groups.items():
        fragments = _bytetrack(detections, members, interval, gap_s, min_iou)
        tracks += [Track(brand, shot, f) for f in stitch(detections, fragments, interval, gap_s)]
    return sorted(tracks, key=lambda tr: (detections[tr.members[0]].t, tr.brand))


def _bytetrack(detections: list[Detection], members: list[int], interval: float, gap_s: float,
               min_iou: float) -> list[list[int]]:
    """ByteTrack over one brand's detections in one shot -> fragments (lists of detection indices)."""
    if interval <= 0:  # still images: no time axis to track along
        return [[i] for i in members]
    gap_samples = max(0, round(gap_s / interval))
    # frame_rate=30 makes supervision's max_time_lost equal to lost_track_buffer (in samples)
    with warnings.catch_warnings():  # deprecated in favour of the `trackers` package (see pyproject.toml)
        warnings.simplefilter("ignore", FutureWarning)
        tracker = sv.ByteTrack(track_activation_threshold=0.5, lost_track_buffer=gap_samples,
                               minimum_matching_threshold=1.0 - min_iou, frame_rate=30, minimum_consecutive_frames=1)
    t0 = min(detections[i].t for i in members)
    at: dict[int, list[int]] = defaultdict(list)  # sample number on the sampling grid -> detections
    for i in members:
        at[round((detections[i].t - t0) / interval)].append(i)
    by_id: dict[int, list[int]] = defaultdict(list)
    for k in range(max(at) + 1):  # samples without a detection age the tracks too
        found, repeats = _one_per_placement(detections, at.get(k, []))
        tracked = tracker.update_with_detections(found)
        for index, tid in zip(tracked.data.get("index", []), tracked.tracker_id):
            by_id[int(tid)] += [int(index), *repeats.get(int(index), [])]
    assigned = {i for f in by_id.values() for i in f}
    # ByteTrack confirms a track on its second hit: a detection it did not report starts its own fragment
    fragments = list(by_id.values()) + [[i] for i in members if i not in assigned]
    return [part for f in fragments for part in _split_at_gaps(detections, f, gap_s + interval)]


def _split_at_gaps(detections: list[Detection], fragment: list[int], max_step: float) -> list[list[int]]:
    """A track cut wherever its samples are further apart than the gap tolerance allows
    (supervision keeps a lost track one sample longer than its buffer says)."""
    parts: list[list[int]] = []
    for i in sorted(fragment, key=lambda i: detections[i].t):
        if parts and detections[i].t - detections[parts[-1][-1]].t <= max_step + EPS:
            parts[-1].append(i)
        else:
            parts.append([i])
    return parts


def _one_per_placement(detections: list[Detection], indices: list[int]) -> tuple[sv.Detections, dict[int, list[int]]]:
    """One sample's boxes of one brand, with boxes that repeat another (the same words read
    in a band and in the whole frame) folded into it: NMS on intersection over the smaller box."""
    boxes = np.array([detections[i].box for i in indices], dtype=np.float32).reshape(-1, 4)
    found = sv.Detections(xyxy=boxes, confidence=np.array([detections[i].confidence for i in indices], np.float32),
                          data={"index": np.array(indices, dtype=int)})
    kept = found.with_nms(threshold=REPEAT_OVERLAP, class_agnostic=True, overlap_metric=sv.OverlapMetric.IOS) \
        if len(indices) > 1 else found
    repeats: dict[int, list[int]] = defaultdict(list)
    for box, index in zip(boxes, indices):
        if index not in kept.data["index"]:
            best = max(range(len(kept)), key=lambda j: _overlap(box, kept.xyxy[j]))
            repeats[int(kept.data["index"][best])].append(index)
    # every detection reaching here was accepted upstream: the tracker associates, it does not filter
    kept.confidence = np.ones(len(kept), np.float32)
    return kept, repeats


def _overlap(a: np.ndarray, b: np.ndarray) -> float:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    smaller = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return float(max(w, 0) * max(h, 0) / smaller) if smaller > 0 else 0.0


def stitch(detections: list[Detection], fragments: list[list[int]], interval: float, gap_s: float) -> list[list[int]]:
    """Join fragments that follow each other within the gap tolerance (see the module docstring)."""
    fragments = sorted((sorted(f, key=lambda i: detections[i].t) for f in fragments if f),
                       key=lambda f: detections[f[0]].t)
    chains: list[list[int]] = []
    for fragment in fragments:
        start = detections[fragment[0]].t
        open_chains = [c for c in chains if detections[c[-1]].t < start - EPS
                       and start - detections[c[-1]].t <= gap_s + interval + EPS]
        if open_chains:
            first = detections[fragment[0]].box
            min(open_chains, key=lambda c: _distance(detections[c[-1]].box, first)).extend(fragment)
        else:
            chains.append(list(fragment))
    return chains


def _distance(a: Box, b: Box) -> float:
    return math.hypot((a[0] + a[2] - b[0] - b[2]) / 2, (a[1] + a[3] - b[1] - b[3]) / 2)
