"""The typed records every stage exchanges (the pipeline's currency).

Stages pass small manifests: keys into the artifact store plus metadata. Image data
never travels through Prefect. Every chunk-level manifest carries the chunk's full
frame list forward, so the final stage sees every sampled frame, kept or dropped.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

Box = tuple[float, float, float, float]  # x1, y1, x2, y2 in frame pixels


class Frame(BaseModel):
    """One sampled frame; `key` points into the artifact store."""

    index: int  # sample index in the whole source (t = index / fps for video)
    t: float  # source seconds
    key: str
    width: int
    height: int
    name: str = ""  # file name for image sources
    cut: bool = False  # a shot change lies between the previous sample and this one
    dropped: Literal["duplicate", "blank"] | None = None
    same_as: float | None = None  # for duplicates: time of the frame it repeats


class StageStats(BaseModel):
    items_in: int = 0
    items_out: int = 0
    seconds: float = 0.0  # compute time when this output was produced
    worker: str = "local"  # the Dask worker that produced it, or the flow process


class Manifest(BaseModel):
    """Base of every chunk-level stage output."""

    chunk: int
    frames: list[Frame] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)  # warnings that reach the report
    counts: dict[str, int] = Field(default_factory=dict)
    overlays: list[str] = Field(default_factory=list)  # debug overlay keys (`--debug`)
    stats: StageStats = Field(default_factory=StageStats)
    stage: str = ""  # the stage that produced this manifest (set by the task wrapper)
    skipped: str | None = None  # why the stage did nothing (SKIP_CLOUD=1, no credential, ...)
    usage: dict[str, dict[str, float]] = Field(default_factory=dict)  # escalation calls per provider:model

    @property
    def kept(self) -> list[Frame]:
        return [f for f in self.frames if f.dropped is None]

    def route(self, when: str) -> Manifest:
        raise ValueError(f"{type(self).__name__} has no route '{when}'")


class FrameSet(Manifest):
    """Output of extract_frames / filter_scenes."""

    interval_s: float = 0.0  # time one sample stands for (0 for a still image)
    previous: Frame | None = None  # the sample just before this chunk, for continuity
    readable_until_s: float | None = None  # set when decoding stopped early

    def carry(self, cls: type[FrameSet], **fields) -> FrameSet:
        """A `cls` manifest carrying this one's frames and facts forward, plus `fields`."""
        own = {name: getattr(self, name) for name in FrameSet.model_fields if name != "stats"}
        return cls(**{**own, **fields})


Point = tuple[float, float]
Quad = tuple[Point, Point, Point, Point]  # corners tl, tr, br, bl in frame pixels
RegionKind = Literal["board_band", "board", "overlay", "logo", "frame"]
Placement = Literal["perimeter_board", "overlay", "shirt", "other"]
ZONES = ("top-left", "top-centre", "top-right", "middle-left", "centre", "middle-right",
         "bottom-left", "bottom-centre", "bottom-right")  # 3x3 grid of the frame, row by row


class FieldInfo(BaseModel):
    """The pitch in one kept frame (field_segmentation)."""

    t: float
    frame_key: str
    mask_key: str  # PNG at `mask_scale` of the frame; 255 = pitch
    mask_scale: float
    coverage: float  # pitch share of the frame, 0-1
    low_pitch: bool  # close-up, crowd, replay graphics: little or no pitch in view
    hsv_low: tuple[int, int, int]
    hsv_high: tuple[int, int, int]


class FieldSet(FrameSet):
    fields: list[FieldInfo] = Field(default_factory=list)

    def field(self, frame_key: str) -> FieldInfo | None:
        return next((f for f in self.fields if f.frame_key == frame_key), None)


class Region(BaseModel):
    """Where to read: a board band, a board, an overlay or a logo in one frame."""

    t: float
    frame_key: str
    kind: RegionKind
    box: Box
    quad: Quad | None = None  # slanted regions (board bands): rectify from these corners
    board_height: float | None = None  # board bands: estimated board height in pixels
    score: float = 1.0
    source: Literal["edges", "yolo"] = "edges"


class RegionSet(FieldSet):
    regions: list[Region] = Field(default_factory=list)


class Crop(BaseModel):
    """A preprocessed image of one region, ready for OCR."""

    t: float
    frame_key: str
    crop_key: str
    kind: RegionKind
    box: Box  # the region in frame pixels
    to_frame: list[list[float]]  # 3x3 homography: crop pixels -> frame pixels
    single_line: bool = False  # recognition only (no text detection)
    hash: str = ""  # dhash of the stored crop (escalation groups near-identical candidates by it)


class CropSet(RegionSet):
    crops: list[Crop] = Field(default_factory=list)


class TextRead(BaseModel):
    """One OCR text box."""

    t: float
    frame_key: str
    text: str
    score: float
    box: Box  # frame pixels
    region: RegionKind = "frame"  # what was read: the whole frame or a region of that kind
    quad: Quad | None = None  # the line's corners in frame pixels, tl tr br bl along its reading direction
    places: tuple[float, ...] = ()  # where each character of `text` is along the line (0-1; empty: unknown)
    trace: bytes = b""  # the recogniser's scores along the line, for brand spotting (mpr.spotting; empty: none)


class TextSet(FrameSet):
    reads: list[TextRead] = Field(default_factory=list)
    # lines read below run_ocr.min_text_score or as nothing: only brand spotting looks at them
    faint: list[TextRead] = Field(default_factory=list)
    crops: list[Crop] = Field(default_factory=list)  # the regions that were read (logo escalation searches them)
    charset: str = "full"  # the alphabet OCR read with (run_ocr.charset)
    engine: dict[str, Any] = Field(default_factory=dict)  # the OCR engine's options (mpr.ocr.get_engine)


class Detection(BaseModel):
    """A brand found at time t."""

    t: float
    brand: str
    confidence: float
    box: Box
    text: str = ""
    source: str = "match_brands"  # the stage that resolved it: match_brands, escalate_vlm, escalate_cloud
    resolver: str = "ocr"  # how: ocr, spotting, exemplar, continuity, or provider:model of a VLM
    match_score: float = 0.0
    region: RegionKind = "frame"  # where it was read: whole frame, board band, board, overlay, logo
    frame: str = ""  # image file name, for image and image-folder sources
    # set by compile_report (exposure analytics; see docs/exposure.md):
    exposure: int | None = None  # id of the exposure (tracked placement) it belongs to
    share: float = 0.0  # box area / frame area
    zone: str = ""  # ZONES cell of the box centre
    placement: Placement | None = None
    sharpness: float | None = None  # 0-1, of the box in the frame
    contrast: float | None = None  # 0-1, of the box in the frame


class Candidate(BaseModel):
    """Text that matched no brand, or a region where no brand was read; kept for escalation."""

    t: float
    text: str  # OCR text ("" for a region)
    score: float  # OCR confidence (the detector's score for a region)
    box: Box  # frame pixels
    crop_key: str  # the image escalation looks at
    kind: Literal["text", "region"] = "text"
    frame_key: str = ""
    frame: str = ""  # image file name, for image and image-folder sources
    region: RegionKind = "frame"  # where the text was read / what kind of region it is
    to_frame: list[list[float]] | None = None  # 3x3 homography crop pixels -> frame pixels (regions)
    hash: str = ""  # perceptual hash of the crop: near-identical candidates are asked about once


class DetectionSet(TextSet):
    detections: list[Detection] = Field(default_factory=list)
    unresolved: list[Candidate] = Field(default_factory=list)
    # on the unresolved route: what the stages before resolved (escalation's context, reported by them)
    upstream: list[Detection] = Field(default_factory=list)

    def route(self, when: str) -> DetectionSet:
        if when == "resolved":
            return self.model_copy(update={"unresolved": []})
        if when == "unresolved":
            return self.model_copy(update={"detections": [], "upstream": self.upstream + self.detections})
        return super().route(when)


ROUTES: dict[type[Manifest], tuple[str, ...]] = {DetectionSet: ("resolved", "unresolved")}


# ---- the report -----------------------------------------------------------------


class Segment(BaseModel):
    start: float
    end: float
    confidence: float
    detections: int = 0
    source: str = "match_brands"  # the stage that resolved most of its detections
    exposure_s: float = 0.0  # seconds it stands for (end - start + one sample interval, clipped to the source)


class Exposure(BaseModel):
    """One continuous appearance of one placement of a brand within a shot (a track)."""

    id: int
    brand: str
    start: float  # first sample time, source seconds
    end: float  # last sample time (closed, like segments)
    duration_s: float  # end - start + one sample interval, clipped to the source
    shot: int  # index of the shot (0 = first)
    detections: int
    placement: Placement
    share_mean: float  # box area / frame area, mean over the exposure's samples
    share_max: float
    zone: str  # most frequent ZONES cell of the box centre
    central: float  # share of samples with the box centre in the centre cell
    position: float  # 0-1 position weight (centre 1, edges and corners less)
    size: float  # 0-1 size weight from share_mean
    sharpness: float  # 0-1
    contrast: float  # 0-1
    confidence: float  # mean OCR/VLM confidence, 0-1
    clarity: float  # 0-1: mean of sharpness, contrast and confidence
    clutter: float  # mean number of other brands on screen at the same samples
    share_of_voice: float  # 1 / (1 + clutter)
    quality: float  # 0-1 quality index: clarity x size x position x clutter factor
    media_value: float  # duration_s x quality x rate per second of its placement
    source: str = "match_brands"  # the stage that resolved most of its detections


class BrandExposure(BaseModel):
    brand: str
    exposure_s: float  # seconds with the brand on screen (union over its placements)
    detections: int
    segments: list[Segment]
    exposures: list[Exposure] = Field(default_factory=list)
    exposure_count: int = 0
    quality: float = 0.0  # duration-weighted mean quality of its exposures
    media_value: float = 0.0  # sum over its exposures
    share_of_voice: float = 0.0  # its exposure seconds / all brands' exposure seconds in the source


class SourceSummary(BaseModel):
    """Totals over the whole source and the brand ranking (by media value)."""

    exposure_s: float = 0.0  # sum of the brands' exposure seconds
    on_screen_s: float = 0.0  # seconds with at least one brand on screen
    exposures: int = 0
    media_value: float = 0.0
    currency: str = ""
    ranking: list[str] = Field(default_factory=list)


class StageRun(BaseModel):
    name: str
    state: Literal["completed", "cached", "skipped", "failed"]
    seconds: float  # wall time spent computing in this run (0 when cached)
    items_in: int = 0
    items_out: int = 0
    chunks: int = 0
    cached_chunks: int = 0
    compute_seconds: float = 0.0  # compute time of the results used (cached or not)
    worker: str = "local"  # Dask worker name(s) that computed it, or the flow process


class ReportBody(BaseModel):
    """What compile_report computes; the flow adds run facts to make a Report."""

    duration_s: float
    frames_analyzed: int
    frames_kept: int
    brands: list[BrandExposure]
    counts: dict[str, int] = Field(default_factory=dict)
    unresolved: int = 0
    truncated: bool = False
    readable_until_s: float | None = None
    warnings: list[str] = Field(default_factory=list)
    overlays: list[str] = Field(default_factory=list)  # debug overlay URLs (`--debug`)
    escalation: dict[str, dict[str, float]] = Field(default_factory=dict)  # calls, tokens, cost per provider:model
    skipped: dict[str, str] = Field(default_factory=dict)  # stage -> why it was skipped
    detections: list[Detection] = Field(default_factory=list)
    summary: SourceSummary = Field(default_factory=SourceSummary)
    shots: list[float] = Field(default_factory=list)  # start time of each shot (the first is the first sample)
    ignored: list[tuple[float, float]] = Field(default_factory=list)  # time ranges left out (replays, breaks)
    frame_size: tuple[int, int] = (0, 0)  # width, height of the analysed frames (detection boxes are in these pixels)
    sample_interval_s: float = 0.0  # seconds one sample stands for
    stats: StageStats = Field(default_factory=StageStats, exclude=True)


class Report(ReportBody):
    """report.json. Fields may be added, never renamed."""

    source: str
    profile: str
    fingerprint: str = ""
    overrides: dict = Field(default_factory=dict)
    run_id: str | None = None
    created_at: str = ""
    stages: list[StageRun] = Field(default_factory=list)

    def brand(self, name: str) -> BrandExposure | None:
        return next((b for b in self.brands if b.brand == name), None)

    def to_frame(self):
        """Segments as a pandas DataFrame, one row per segment (for notebooks)."""
        import pandas as pd

        rows = [
            {
                "brand": b.brand,
                "start": s.start,
                "end": s.end,
                "duration_s": s.end - s.start,
                "confidence": s.confidence,
                "detections": s.detections,
            }
            for b in self.brands
            for s in b.segments
        ]
        columns = ["brand", "start", "end", "duration_s", "confidence", "detections"]
        return pd.DataFrame(rows, columns=columns)

    def stages_frame(self):
        import pandas as pd

        return pd.DataFrame([s.model_dump() for s in self.stages])
