"""detect_objects: YOLO boxes (boards, overlays, logos) merged with detect_edges' region hints."""

from __future__ import annotations

from collections import defaultdict
from functools import lru_cache
from typing import Literal

import cv2
import numpy as np
from pydantic import Field

from mpr.records import FieldSet, FrameSet, Region, RegionSet, StageStats
from mpr.vision import debug
from mpr.vision.detector import DEFAULT_WEIGHTS, get_detector, nms, weights_digest
from mpr.vision.lines import fixed_on_screen
from mpr.vision.rectify import covered
from tasks.stage import StageConfig, StageContext, StageSpec

KINDS = ("board_band", "board", "overlay", "logo")


class DetectObjectsConfig(StageConfig):
    backend: Literal["onnx", "ultralytics"] = Field("onnx", description="onnx (onnxruntime, no torch) or ultralytics")
    weights: str = Field(DEFAULT_WEIGHTS, max_length=1000, description="model file; relative paths: the project")
    conf: float = Field(0.25, ge=0.01, le=1, description="minimum YOLO box score")
    iou: float = Field(0.5, ge=0.05, le=1, description="NMS overlap limit")
    classes: tuple[Literal["board", "overlay", "logo"], ...] = Field(("board", "overlay", "logo"),
                                                                      description="YOLO classes kept")
    max_boxes: int = Field(40, ge=0, le=1000, description="YOLO boxes kept per frame, best first")
    hint_score: float = Field(0.5, ge=0, le=1, description="score given to region hints when merging")
    band_cover: float = Field(0.8, ge=0, le=1, description="drop YOLO boards this much inside a board band")
    runtime: Literal["auto", "openvino", "onnxruntime"] = Field("auto", description=(
        "backend onnx: the library that runs the model; auto: onnxruntime where it has CUDA (a GPU worker), "
        "else OpenVINO (about 25% faster on the CPU)"))
    threads: int = Field(0, ge=0, le=64, description="inference threads (0: all cores)")
    device: str = Field("", max_length=32, description="ultralytics device, e.g. cuda:0")
    vet_overlays: bool = Field(True, description=(
        "video: an overlay box (YOLO's or a steady-overlay hint) whose picture is not at the same screen place "
        "in the previous or next sample (it moved with the camera: a banner, a board, a dugout) becomes a board box"))
    debug: bool = Field(False, description="write box overlays to the artifact store")


def detect_objects(inputs: list[FrameSet], config: DetectObjectsConfig, ctx: StageContext) -> RegionSet:
    hints = [m for m in inputs if isinstance(m, RegionSet)]
    base = hints[0] if hints else inputs[0]
    detector = get_detector(config.backend, config.weights, config.threads, config.device, config.runtime)
    hints_of: dict[str, list[Region]] = defaultdict(list)
    for region in (r for m in hints for r in m.regions):
        hints_of[region.frame_key].append(region)
    regions, overlays, found, moved = [], [], 0, 0
    kept = base.kept
    image_of = lru_cache(maxsize=3)(ctx.store.get_image)  # a frame and its neighbours, each decoded once
    for i, frame in enumerate(kept):
        image = image_of(frame.key)
        boxes = [b for b in detector.detect(image, config.conf, config.iou) if b.name in config.classes]
        boxes = sorted(boxes, key=lambda b: -b.score)[:config.max_boxes]
        found += len(boxes)
        own = [Region(t=frame.t, frame_key=frame.key, kind=b.name, box=b.box, score=round(b.score, 4), source="yolo")
               for b in boxes]
        candidates = hints_of[frame.key] + own
        if config.vet_overlays and ctx.source.kind == "video" and any(r.kind == "overlay" for r in candidates):
            neighbours = [image_of(f.key) for f in kept[max(0, i - 1):i] + kept[i + 1:i + 2]]
            vetted = _vet_overlays(candidates, image, neighbours)
            moved += sum(a.kind != b.kind for a, b in zip(candidates, vetted))
            candidates = vetted
        frame_regions = merge_regions(candidates, config)
        regions += frame_regions
        if config.debug:
            overlays.append(ctx.store.put_image(f"debug/{ctx.key}/{frame.index:06d}.jpg",
                                                debug.draw_regions(image, frame_regions)))
    fields = base.fields if isinstance(base, FieldSet) else []
    return base.carry(RegionSet, fields=fields, regions=regions, overlays=base.overlays + overlays,
                      counts={**base.counts, "yolo_boxes": found, "overlays_moved": moved},
                      stats=StageStats(items_in=len(base.kept), items_out=len(regions)))


def _vet_overlays(regions: list[Region], image: np.ndarray, neighbours: list[np.ndarray]) -> list[Region]:
    """Overlay boxes whose picture moved between samples (BGR frames) become board boxes
    (`fixed_on_screen`): advertising that moves with the camera is in the stadium, and, as
    overlays are, boards are read with text detection (a wide logo box is taken for one line)."""
    gray, around = (cv2.cvtColor(image, cv2.COLOR_BGR2GRAY),
                    [cv2.cvtColor(n, cv2.COLOR_BGR2GRAY) for n in neighbours])
    return [r.model_copy(update={"kind": "board"})
            if r.kind == "overlay" and not fixed_on_screen(r.box, gray, around) else r for r in regions]


def merge_regions(regions: list[Region], config: DetectObjectsConfig) -> list[Region]:
    """Class-aware NMS over hints and YOLO boxes, then drop YOLO boards a board band already covers."""
    if not regions:
        return []
    boxes = np.array([r.box for r in regions], float)
    scores = np.array([config.hint_score if r.source == "edges" else r.score for r in regions])
    classes = np.array([KINDS.index(r.kind) for r in regions])
    kept = [regions[i] for i in sorted(nms(boxes, scores, classes, 0.0, config.iou))]
    bands = [r.box for r in kept if r.kind == "board_band"]
    return [r for r in kept
            if not (r.kind == "board" and any(covered(r.box, b) >= config.band_cover for b in bands))]


STAGE = StageSpec("detect_objects", detect_objects, DetectObjectsConfig, accepts=FrameSet, produces=RegionSet,
                  gpu=True, helpers=(get_detector, covered, fixed_on_screen, debug.draw_regions),
                  key_extra=lambda config: weights_digest(config.weights))
