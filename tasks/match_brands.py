"""match_brands: OCR text -> brand detections; the rest stays as unresolved candidates.

Names are found by fuzzy matching the reads, by spotting them in the recogniser's scores,
and by a closer look (mpr.closer_look) around the few reads per frame that nearly spot one.

Candidates are what escalation looks at: text that matched no brand (cropped from its
frame), and regions (the detector's logo and board boxes, board bands) in which no brand
was read, each with a perceptual hash so near-identical ones are asked about once.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache

from pydantic import Field, field_validator

from mpr import closer_look, matching, spotting
from mpr.closer_look import MIN_TEXT_SCORE, UNCLIPPED, Look, look_closer, look_region, views
from mpr.escalation.candidates import dhash
from mpr.imaging import crop
from mpr.ocr import get_engine, line_image, reading_quad
from mpr.matching import BrandMatcher, Spotted, choose_spots, place_box, union
from mpr.ocr_models import readable
from mpr.folding import fold_char
from mpr.spotting import Spotter
from mpr.records import Box, Candidate, Crop, Detection, DetectionSet, RegionKind, StageStats, TextRead, TextSet
from mpr.errors import MprError
from mpr.store import code_digest, decode_image, encode_image
from mpr.vision.rectify import covered, iou
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
    closer_look: int = Field(3, ge=0, le=20, description=(
        "near misses per frame read again, enlarged and turned (mpr.closer_look): reads in which a brand spots "
        "within near_cost but not spot_cost; 0: off"))
    near_cost: float = Field(2.0, ge=0, le=10, description="closer_look: spotting cost per character of a near miss")
    closer_min_score: float = Field(90.0, ge=0, le=100, description=(
        "closer_look: rapidfuzz score a match there needs (it reads more, turned too: partial words such as "
        "'rena' for Rexona at 80 would add false brands)"))
    closer_angles: list[float] = Field([0.0, 20.0, -20.0], min_length=1, max_length=8, description=(
        "closer_look: angles (degrees) the enlarged region is read at"))

    @field_validator("closer_angles")
    @classmethod
    def _angles(cls, angles: list[float]) -> list[float]:
        if any(abs(a) > 90 for a in angles):
            raise ValueError("closer_angles must lie within -90..90 degrees")
        return angles


def match_brands(inputs: list[TextSet], config: MatchBrandsConfig, ctx: StageContext) -> DetectionSet:
    (texts,) = inputs
    matcher = BrandMatcher(ctx.brands, config.min_score)
    by_frame: dict[str, list[TextRead]] = defaultdict(list)
    for read in texts.reads:
        by_frame[read.frame_key].append(read)
    faint: dict[str, list[TextRead]] = defaultdict(list)
    for read in texts.faint:
        faint[read.frame_key].append(read)
    names = {f.key: f.name for f in texts.frames}

    def frame(frame_key: str) -> tuple[list[Detection], list[TextRead]]:
        reads = by_frame[frame_key]
        matches = matcher.match_frame(reads, config.verify_cost)
        used = {i for m in matches for i in m.reads}
        found = [_detection(m, reads, names.get(frame_key, "")) for m in matches]
        everything = reads + faint[frame_key]
        spotted = choose_spots(_spots(ctx, everything, matcher, config.spot_cost, config.spot_min_probability),
                               [d.box for d in found])
        used |= {s.read for s in spotted}
        found += [_spotted(s, everything[s.read], names.get(frame_key, "")) for s in spotted]
        if config.closer_look and texts.engine and everything:
            found += _closer_looks(everything, found, matcher, config, ctx, texts.engine, names.get(frame_key, ""))
        return found, [r for i, r in enumerate(reads) if i not in used and _worth_escalating(r, config)]

    # Frames are independent; the closer look's inferences release the GIL, so with the OCR
    # engine's streams one frame's look runs while another frame is matched or looked at.
    streams = (texts.engine or {}).get("streams", 1) if config.closer_look else 1
    with ThreadPoolExecutor(max(1, streams)) as pool:
        done = list(pool.map(frame, dict.fromkeys([*by_frame, *faint])))
    detections = [d for found, _ in done for d in found]
    leftovers = [r for _, left in done for r in left]
    unresolved = _candidates(leftovers[:config.max_unresolved], names, config, ctx)
    room = config.max_unresolved - len(unresolved)
    unresolved += _region_candidates(texts.crops, detections, names, config, ctx)[:max(room, 0)]
    counts = {**texts.counts, "matched": len(detections), "unresolved": len(unresolved)}
    # what follows reads the text, not the recogniser's scores: the manifests stay small
    reads = [r.model_copy(update={"trace": b""}) for r in texts.reads]
    return texts.carry(DetectionSet, reads=reads, detections=detections, unresolved=unresolved, counts=counts,
                       charset=texts.charset, notes=texts.notes + _unreadable_names(ctx.brands, texts.charset),
                       stats=StageStats(items_in=len(texts.reads), items_out=len(detections)))


def _closer_looks(reads: list[TextRead], found: list[Detection], matcher: BrandMatcher, config: MatchBrandsConfig,
                  ctx: StageContext, engine: dict, frame_name: str) -> list[Detection]:
    """Brands found by reading again, enlarged and turned, around the frame's best near misses:
    reads in which a brand not found there spots within `near_cost` (mpr.closer_look)."""
    reads = [r for r in reads if views(r.box, config.closer_angles)]  # first: spotting at near_cost is costly
    near = [(s.read, s.box, s.brand) for s in choose_spots(_spots(ctx, reads, matcher, config.near_cost, 0.0), [])
            if not any(_overlap(s.box, d.box) for d in found)][:config.closer_look]
    frame_key = reads[0].frame_key if reads else ""
    image = lru_cache(maxsize=1)(lambda: ctx.store.get_image(frame_key))  # decoded only when a look is new
    out: list[Detection] = []
    looked: list[Box] = []
    for i, _, brand in near:
        first = reads[i]
        if any(covered(first.box, region) > 0.8 for region in looked):
            continue  # inside an earlier look's region
        looked.append(look_region(UNCLIPPED, first.box)[0])
        for angle in views(first.box, config.closer_angles):
            clear = [_look_read(first, look) for look in _look(ctx, engine, image, first, angle)
                     if look.text.strip() and look.score >= MIN_TEXT_SCORE]
            matches = [_detection(m, clear, frame_name) for m in matcher.match_frame(clear, config.verify_cost)
                       if m.score >= config.closer_min_score]
            # the near-missed brand spelled within the spotting budget confirms it too (mpr.closer_look)
            matches += [_spotted(s, clear[s.read], frame_name)
                        for s in matcher.spot_frame(clear, [d.box for d in matches], config.spot_cost,
                                                    config.spot_min_probability) if s.brand == brand]
            out += [d.model_copy(update={"resolver": "closer_look"}) for d in matches
                    if not any(_overlap(d.box, other.box) for other in [*found, *out])]
            if matches:
                break  # upright first: turned views only where it read no brand
    return out


def _spots(ctx: StageContext, reads: list[TextRead], matcher: BrandMatcher, cost: float,
           min_probability: float) -> list[Spotted]:
    """`BrandMatcher.spots` of a frame's reads, kept in the store under the reads, the names and
    the code: it depends on nothing a rerun of this stage alone changes (min_score, verify_cost),
    and spotting is most of such a rerun's work (at near_cost, for the closer look's near misses,
    it weighs far more pairs than at spot_cost: 2.4 s of a 2-minute loop's match_brands)."""
    if not reads or cost <= 0:
        return []
    basis = hashlib.blake2b(json.dumps([matcher.names, matcher.owner, cost, min_probability]).encode(),
                            digest_size=16)
    for r in reads:
        basis.update(json.dumps([r.frame_key, r.text, r.box, r.quad, r.places]).encode() + r.trace)
    key = f"spots/{SPOT_VERSION}/{basis.hexdigest()}.json"
    try:
        return [Spotted(**{**s, "box": tuple(s["box"])}) for s in json.loads(ctx.store.get_bytes(key))]
    except (MprError, ValueError, TypeError):  # not spotted yet
        pass
    found = matcher.spots(reads, cost, min_probability)
    ctx.store.put_bytes(key, json.dumps([dataclasses.asdict(s) for s in found]).encode())
    return found


def _look(ctx: StageContext, engine: dict, image, read: TextRead, angle: float) -> list[Look]:
    """`look_closer` around a read, kept in the store under what it is computed from (the frame,
    the line's box, the angle, the engine and the code), so a rerun of this stage reads nothing again."""
    basis = json.dumps([read.frame_key, [round(v, 1) for v in read.box], angle, engine], sort_keys=True)
    key = f"closer-looks/{LOOK_VERSION}/{hashlib.blake2b(basis.encode(), digest_size=16).hexdigest()}.json"
    try:
        return [Look(tuple(b), q and tuple(map(tuple, q)), t, s, tuple(p), base64.b64decode(trace))
                for b, q, t, s, p, trace in json.loads(ctx.store.get_bytes(key))]
    except (MprError, ValueError):  # not looked at yet
        pass
    ocr = get_engine(engine["name"], **{k: v for k, v in engine.items() if k != "name"})
    looks = look_closer(image(), read.box, ocr, angle)
    ctx.store.put_bytes(key, json.dumps([[*look[:-1], base64.b64encode(look.trace).decode()]
                                         for look in looks]).encode())
    return looks


LOOK_VERSION = code_digest(closer_look, line_image, reading_quad, size=4)  # changed code must not reuse old looks
SPOT_VERSION = code_digest(matching, spotting, size=4)  # nor old spots


def _look_read(first: TextRead, look: Look) -> TextRead:
    text = look.text.strip()
    lead = len(look.text) - len(look.text.lstrip())
    places = look.places[lead:lead + len(text)] if look.quad and len(look.places) == len(look.text) else ()
    return TextRead(t=first.t, frame_key=first.frame_key, text=text, score=look.score, box=look.box,
                    region=first.region, quad=look.quad, places=places, trace=look.trace)


def _overlap(a, b) -> bool:
    return iou(a, b) > 0.3 or covered(a, b) > 0.5 or covered(b, a) > 0.5


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
                  uses_brands=True,
                  helpers=(BrandMatcher, Spotter, fold_char, crop, dhash, encode_image, readable, look_closer))
