"""filter_scenes: mark shot changes, drop blank frames and near-duplicates of the last kept frame.

Shot changes are the union of the cuts extract_frames found at frame rate and a colour
histogram test between consecutive samples (which also covers images and dissolves).

Dropped duplicates keep a pointer (`same_as`) to the frame they repeat, so the report
can still count them as seen without reading them again.
"""

from __future__ import annotations

import cv2
import numpy as np
from pydantic import Field

from mpr.records import Frame, FrameSet, StageStats
from mpr.store import ArtifactStore
from tasks.stage import StageConfig, StageContext, StageSpec

THUMB = (64, 36)


class FilterScenesConfig(StageConfig):
    shot_threshold: float = Field(0.5, ge=0, le=1, description=(
        "Bhattacharyya distance of HSV histograms above which two samples are different shots"))
    duplicate_threshold: float = Field(2.5, ge=0, le=255, description=(
        "mean absolute grey difference (64x36 thumbnails, 0-255) below which a frame repeats the last kept one"))
    min_detail: float = Field(6.0, ge=0, le=128, description="grey std-dev below which a frame is blank")


class _Look:
    """What the filter compares: a grey thumbnail and an HSV histogram."""

    def __init__(self, store: ArtifactStore, frame: Frame):
        image = store.get_image(frame.key)
        self.t = frame.t
        self.thumb = cv2.resize(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), THUMB,
                                interpolation=cv2.INTER_AREA).astype(np.float32)
        hsv = cv2.cvtColor(cv2.resize(image, (160, 90), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2HSV)
        hist = cv2.calcHist([hsv], [0, 1], None, [16, 8], [0, 180, 0, 256])
        self.hist = cv2.normalize(hist, hist).flatten()

    def distance(self, other: _Look) -> float:
        return float(cv2.compareHist(self.hist, other.hist, cv2.HISTCMP_BHATTACHARYYA))

    def difference(self, other: _Look) -> float:
        return float(np.mean(np.abs(self.thumb - other.thumb)))


def filter_scenes(inputs: list[FrameSet], config: FilterScenesConfig, ctx: StageContext) -> FrameSet:
    (frames_in,) = inputs
    store = ctx.store
    prev = _Look(store, frames_in.previous) if frames_in.previous else None
    last_kept = prev if prev is not None and prev.thumb.std() >= config.min_detail else None
    dedupe = frames_in.interval_s > 0
    out, counts = [], {"kept": 0, "duplicate": 0, "blank": 0, "cuts": 0}
    for frame in frames_in.frames:
        look = _Look(store, frame)
        # a cut found while decoding (extract_frames) or a colour change between samples
        cut = frame.cut or (prev is not None and look.distance(prev) > config.shot_threshold)
        update: dict = {"cut": cut}
        if look.thumb.std() < config.min_detail:
            update["dropped"] = "blank"
        elif dedupe and not cut and last_kept is not None and look.difference(last_kept) < config.duplicate_threshold:
            update.update(dropped="duplicate", same_as=last_kept.t)
        else:
            last_kept = look
        counts[update.get("dropped") or "kept"] += 1
        counts["cuts"] += cut
        out.append(frame.model_copy(update=update))
        prev = look
    return frames_in.model_copy(update={
        "frames": out,
        "counts": {**frames_in.counts, **counts},
        "stats": StageStats(items_in=len(frames_in.frames), items_out=counts["kept"]),
    })


STAGE = StageSpec("filter_scenes", filter_scenes, FilterScenesConfig, accepts=FrameSet, produces=FrameSet)
