"""match_brands: OCR text -> brand detections; the rest stays as unresolved candidates.

Candidates are what escalation looks at: text that matched no brand (cropped from its
frame), and regions (the detector's logo and board boxes, board bands) in which no brand
was read, each with a perceptual hash so near-identical ones are asked about once.
"""

from __future__ import annotations

from collections import defaultdict

from pydantic import Field

from mpr.escalation.candidates import dhash
from mpr.imaging import crop
from mpr.matching import BrandMatcher, Spotted, place_box, union
from mpr.ocr_models import readable
from mpr.folding import fold_char
from mpr.spotting import Spotter
from mpr.records import Candidate, Crop, Detection, DetectionSet, RegionKind, StageStats, TextRead, TextSet
from mpr.errors import MprError
from mpr.store import code_digest, decode_image, encode_image
from mpr.vision.rectify import covered
from tasks.stage import StageConfig, StageContext, StageSpec


class MatchBrandsConfig(StageConfig):
    min_score: float = Field(80.0, ge=0, le=100, description="rapidfuzz score (0-100) a match needs")
    unresolved_min_letters: int = Field(3, ge=1, le=50, description="letters unmatched text needs to be kept")
    unresolved_min_score: float = Field(0.7, ge=0, le=1, description="OCR confidence unmatched text needs")
    max_unresolved: int = Field(500, ge=0, le=10000, description="unresolved candidates kept per chunk")
    crop_padding: float = Field(0.25, ge=0, le=5, description="padding around unresolved crops, x text height")
    region_kinds: list[RegionKind] = Field(["logo", "board", "board_band"],
                                           description="regions with no brand read in them that become candidates")
    spot_cost: float = Field(0.75, ge=0, le=5, description=(
        "brand spotting in the recogniser's scores, for what fuzzy matching missed: a name is found where its best "
        "alignment loses at most this many nats per character (plus one) to the greedy reading; 0: off"))
    spot_min_probability: float = Field(0.3, ge=0, le=1, description=(
        "brand spotting: geometric mean probability the name's characters need at the places they align to"))
    verify_cost: float = Field(0.75, ge=0, le=5, description=(
        "an inexact fuzzy match within one read needs the recogniser's scores of that read to support the name "
        "at most this many nats per character (plus one) worse than its greedy reading; 0: not checked"))


def match_brands(inputs: list[TextSet], config: MatchBrandsConfig, ctx: StageContext) -> DetectionSet:
    (texts,) = inputs
    matcher = BrandMatcher(ctx.brands, config.min_score)
    by_frame: dict[str, list[TextRead]] = defaultdict(list)
    for read in texts.reads:
        by_frame[read.frame_key].append(read)
    faint: dict[str, list[TextRead]] = defaultdict(list)
    for read in texts.faint:
        faint[read.frame_key].append(read)
    detections, leftovers = [], []
    names = {f.key: f.name for f in texts.frames}
    for frame_key in dict.fromkeys([*by_frame, *faint]):
        reads = by_frame[frame_key]
        matches = matcher.match_frame(reads, config.verify_cost)
        used = {i for m in matches for i in m.reads}
        found = [_detection(m, reads, names.get(frame_key, "")) for m in matches]
        everything = reads + faint[frame_key]
        spotted = matcher.spot_frame(everything, [d.box for d in found], config.spot_cost,
                                     config.spot_min_probability)
        used |= {s.read for s in spotted}
        detections += found + [_spotted(s, everything[s.read], names.get(frame_key, "")) for s in spotted]
        leftovers += [r for i, r in enumerate(reads) if i not in used and _worth_escalating(r, config)]
    unresolved = _candidates(leftovers[:config.max_unresolved], names, config, ctx)
    room = config.max_unresolved - len(unresolved)
    unresolved += _region_candidates(texts.crops, detections, names, config, ctx)[:max(room, 0)]
    counts = {**texts.counts, "matched": len(detections), "unresolved": len(unresolved)}
    # what follows reads the text, not the recogniser's scores: the manifests stay small
    reads = [r.model_copy(update={"trace": b""}) for r in texts.reads]
    return texts.carry(DetectionSet, reads=reads, detections=detections, unresolved=unresolved, counts=counts,
                       charset=texts.charset, notes=texts.notes + _unreadable_names(ctx.brands, texts.charset),
                       stats=StageStats(items_in=len(texts.reads), items_out=len(detections)))


def _unreadable_names(brands, charset: str) -> list[str]:
    """A warning for each brand name or alias with letters OCR's charset cannot output."""
    return [f"brand {brand.name!r}: {name!r} has letters run_ocr.charset {charset!r} cannot read "
            "(set run_ocr.charset: full)"
            for brand in brands.brands for name in [brand.name, *brand.aliases] if not readable(name, charset)]


def _detection(m, reads: list[TextRead], frame_name: str) -> Detection:
    """The brand where its characters are: a read holding more than the name (a board row read as
    one line, a wide logo box) gives the box of the name's part only."""
    parts = [reads[i] for i in m.reads]
    ocr_score = sum(r.score for r in parts) / len(parts)
    return Detection(t=parts[0].t, brand=m.brand, confidence=round(ocr_score * m.score / 100, 4),
                     box=union([place_box(reads[i], a, b) for i, a, b in m.spans]), text=m.text,
                     match_score=m.score, region=parts[0].region, frame=frame_name)


def _spotted(s: Spotted, read: TextRead, frame_name: str) -> Detection:
    return Detection(t=read.t, brand=s.brand, confidence=round(s.probability, 4), box=s.box, text=s.text,
                     resolver="spotting", match_score=s.score, region=read.region, frame=frame_name)


def _worth_escalating(read: TextRead, config: MatchBrandsConfig) -> bool:
    letters = sum(c.isalpha() for c in read.text)
    return letters >= config.unresolved_min_letters and read.score >= config.unresolved_min_score


def _candidates(reads: list[TextRead], names: dict[str, str], config: MatchBrandsConfig,
                ctx: StageContext) -> list[Candidate]:
    """Crop each unresolved text from its frame into the store, for escalation.

    A crop's key is its frame's key, box and padding, not this stage's key: a rerun with
    another match_brands config (a lower min_score, a new alias) finds the crops it shares
    with the last run and reads those small images instead of decoding their frames again."""
    out, images = [], {}
    for read in reads:
        key = _crop_key(read, config.crop_padding)
        try:
            pixels = ctx.store.get_image(key)
        except MprError:  # not cropped yet
            if read.frame_key not in images:
                images = {read.frame_key: ctx.store.get_image(read.frame_key)}  # reads come frame by frame
            data = encode_image(key, crop(images[read.frame_key], read.box, config.crop_padding))
            ctx.store.put_bytes(key, data)
            pixels = decode_image(key, data)  # hashed as stored, so both paths hash alike
        out.append(Candidate(t=read.t, text=read.text, score=read.score, box=read.box, crop_key=key,
                             frame_key=read.frame_key, frame=names.get(read.frame_key, ""), region=read.region,
                             hash=dhash(pixels)))
    return out


def _crop_key(read: TextRead, padding: float) -> str:
    """`text-crops/<crop code>/<frame key without .jpg>/<x1>_<y1>_<x2>_<y2>_p<padding>.jpg`; frame
    keys name their extract_frames task, so the key changes whenever the frame's pixels can."""
    box = "_".join(str(round(v)) for v in read.box)
    return f"text-crops/{CROP_VERSION}/{read.frame_key.rsplit('.', 1)[0]}/{box}_p{padding:g}.jpg"


CROP_VERSION = code_digest(crop, size=4)  # a changed crop() must not reuse old crops


def _region_candidates(crops: list[Crop], detections: list[Detection], names: dict[str, str],
                       config: MatchBrandsConfig, ctx: StageContext) -> list[Candidate]:
    """Regions in which no brand was read: their preprocessed crop is the candidate image."""
    found: dict[str, list[Detection]] = defaultdict(list)
    for d in detections:
        found[d.frame or str(d.t)].append(d)
    out = []
    for c in crops:
        if c.kind not in config.region_kinds:
            continue
        mine = found[names.get(c.frame_key) or str(c.t)]
        if c.kind != "board_band" and any(covered(d.box, c.box) > 0.5 for d in mine):
            continue  # a brand was read in this board or logo (bands hold several brands: always searched)
        out.append(Candidate(t=c.t, text="", score=1.0, box=c.box, crop_key=c.crop_key, kind="region",
                             frame_key=c.frame_key, frame=names.get(c.frame_key, ""), region=c.kind,
                             to_frame=c.to_frame, hash=c.hash or dhash(ctx.store.get_image(c.crop_key))))
    return out


STAGE = StageSpec("match_brands", match_brands, MatchBrandsConfig, accepts=TextSet, produces=DetectionSet,
                  uses_brands=True, helpers=(BrandMatcher, Spotter, fold_char, crop, dhash, encode_image, readable))
