"""escalate_vlm: what match_brands left unresolved, to a local visual matcher or a local VLM.

Backends (`backend`):
- `exemplar` (default, offline, no model): OpenCV matching of each candidate crop against
  the brands file's `logo:` exemplars (mpr.escalation.exemplar); text crops are matched
  as one thing, regions (boards, bands, logo boxes) are searched for every occurrence.
- `openai_compatible`: a local VLM server (vLLM, Ollama, llama.cpp server) at `base_url`
  (or the VlmServer block `server_block`), asked like the cloud providers are.
- `transformers`: a VLM loaded in this process from the local folder `model_path`
  (mpr.escalation.local_vlm), on the Dask GPU worker when the run has one; asked the same way.

Near-identical candidates are grouped and asked about once. What stays unresolved flows
on (route `unresolved`); new detections flow to the report (route `resolved`).
"""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from typing import Literal

import cv2
import numpy as np
from pydantic import Field, model_validator

from mpr.brands import BrandList
from mpr.errors import MprError
from mpr.escalation import continuity, exemplar, local_vlm
from mpr.escalation.candidates import group_candidates
from mpr.escalation.resolve import VlmAskConfig, api_key, ask_vlm, detection, open_provider, region_box, skipped
from mpr.loading import load_once
from mpr.matching import BrandMatcher
from mpr.records import Detection, DetectionSet, StageStats, TextRead
from mpr.store import code_digest
from mpr.vision.rectify import covered, iou
from tasks.stage import StageContext, StageSpec


class EscalateVlmConfig(VlmAskConfig):
    backend: Literal["exemplar", "openai_compatible", "transformers"] = "exemplar"
    skip: bool = Field(False, description="do nothing (also SKIP_VLM=1)")
    min_score: float = Field(exemplar.DEFAULT_MIN_SCORE, ge=0, le=1,
                             description="exemplar: match score a logo needs (calibrated on foocus)")
    max_hits_per_region: int = Field(20, ge=1, le=200, description="exemplar: logos found per region at most")
    base_url: str | None = Field(None, description="openai_compatible: server URL, e.g. http://gpu:8000/v1")
    server_block: str | None = Field(None, description="openai_compatible: VlmServer block name (URL, model, key)")
    model: str = Field("", description="openai_compatible: model name the server serves")
    model_path: str | None = Field(None, max_length=1000, description=(
        "transformers: local model folder (save_pretrained / hub snapshot); relative paths: the project"))
    device: str = Field("auto", pattern=r"^(auto|cpu|cuda(:\d+)?)$", description="transformers: auto, cpu, cuda[:N]")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="transformers: weights' dtype (auto: bfloat16 on a GPU, float32 on the CPU)")
    max_new_tokens: int = Field(512, ge=16, le=8192, description="transformers: tokens generated per request at most")
    continuity_s: float = Field(3.0, ge=0, le=60, description=(
        "video: a brand OCR read is looked for, as the picture it was read from, in the samples this many "
        "seconds near in the same shot where it was not read (0: off; overlays: anywhere in the chunk)"))
    continuity_min_score: float = Field(0.8, ge=0, le=1, description="continuity: correlation a place needs")

    @property
    def learn_min_confidence(self) -> float:
        return self.min_score if self.backend == "exemplar" else self.min_confidence

    @model_validator(mode="after")
    def _server_named(self):
        if self.backend == "openai_compatible" and not (self.server_block or (self.base_url and self.model)):
            raise ValueError("backend openai_compatible needs base_url and model, or server_block")
        if self.backend == "transformers" and not self.model_path:
            raise ValueError("backend transformers needs model_path (a local model folder)")
        return self


def escalate_vlm(inputs: list[DetectionSet], config: EscalateVlmConfig, ctx: StageContext) -> DetectionSet:
    (found,) = inputs
    if config.skip:
        return skipped(found, "skip requested (escalate_vlm.skip or SKIP_VLM=1)")
    continued = _continuity(found, config, ctx)
    if config.backend == "exemplar":
        exemplars = load_exemplars(ctx.brands)
        if not exemplars and not continued:
            return skipped(found, "no logo exemplars in the brands file")
        detections, resolved, asked = _exemplar(found, exemplars, config, ctx) if exemplars else ([], set(), 0)
        usage = {}
    else:
        detections, resolved, asked, usage, notes = ask_vlm("escalate_vlm", found.unresolved, config, ctx,
                                                            lambda: _provider(config))
        found = found.model_copy(update={"notes": found.notes + notes})
    left = [c for i, c in enumerate(found.unresolved) if i not in resolved]
    counts = {**found.counts, "vlm_asked": asked, "vlm_resolved": len(detections), "continued": len(continued),
              "unresolved": len(left)}
    detections = continued + [d for d in detections if not any(
        c.brand == d.brand and c.t == d.t and iou(c.box, d.box) >= 0.3 for c in continued)]  # one detection a place
    return found.model_copy(update={"detections": detections, "unresolved": left, "counts": counts, "usage": usage,
                                    "stats": StageStats(items_in=len(found.unresolved), items_out=len(detections))})


def _continuity(found: DetectionSet, config: EscalateVlmConfig, ctx: StageContext) -> list[Detection]:
    """OCR reads found again, by their picture, in nearby samples that missed them (video only).

    Kept in the store under a digest of what it is computed from, not under this stage's key:
    a rerun with another config upstream (match_brands' min_score, an alias) that leaves the
    reads as they were finds the result instead of decoding the frames again."""
    window = round(config.continuity_s / found.interval_s) if found.interval_s else 0
    if not window or ctx.source.kind != "video" or not found.upstream:
        return []
    frames = continuity.samples(found.frames)
    reads = [d.model_dump(mode="json") for d in found.upstream]
    basis = json.dumps([reads, [(f.key, f.t, f.shot) for f in frames], window, config.continuity_min_score],
                       sort_keys=True)
    key = f"continuity/{CONTINUITY_VERSION}/{hashlib.blake2b(basis.encode(), digest_size=16).hexdigest()}.json"
    try:
        return [Detection.model_validate(d) for d in json.loads(ctx.store.get_bytes(key))]
    except (MprError, ValueError):  # not computed yet (or being written by a run on the same source)
        pass
    gray = lru_cache(maxsize=min(2 * window + 2, 64))(lambda key: ctx.store.get_image(key, cv2.IMREAD_GRAYSCALE))
    out = continuity.propagate(found.upstream, frames, gray, window, config.continuity_min_score)
    ctx.store.put_bytes(key, json.dumps([d.model_dump(mode="json") for d in out]).encode())
    return out


CONTINUITY_VERSION = code_digest(continuity, size=4)  # changed code must not reuse old results


def _provider(config: EscalateVlmConfig):
    if config.backend == "transformers":
        return local_vlm.TransformersProvider(config.model_path, config.device, config.dtype, config.max_new_tokens)
    return _server(config)


def _server(config: EscalateVlmConfig):
    """The local VLM server: from the VlmServer block if named, else base_url/model (+ MPR_VLM_API_KEY)."""
    base_url, model, key = config.base_url, config.model, api_key("openai_compatible", config.api_key_block)
    if config.server_block:
        from blocks.vlm_server import VlmServer

        server = VlmServer.load(config.server_block)
        base_url, model = server.base_url, server.model or model
        key = server.api_key.get_secret_value() if server.api_key else key
    if not base_url or not model:
        raise MprError(f"escalate_vlm: VlmServer block '{config.server_block}' names no base_url or model")
    return open_provider("openai_compatible", model, config, base_url, key)


@load_once(maxsize=8)
def _exemplars_cached(brands_json: str) -> tuple[exemplar.Exemplar, ...]:
    brands = BrandList.model_validate_json(brands_json)
    out = []
    for brand in brands.brands:
        for path in brand.logos:
            image = cv2.imdecode(np.frombuffer(brands.read_logo(path), np.uint8), cv2.IMREAD_COLOR)
            out.append(exemplar.prepare_exemplar(brand.name, image, path))
    return tuple(out)


def load_exemplars(brands: BrandList | None) -> list[exemplar.Exemplar]:
    """Each brand's logo exemplars, prepared once per process."""
    return list(_exemplars_cached(brands.model_dump_json())) if brands else []


def _exemplar(found: DetectionSet, exemplars, config: EscalateVlmConfig, ctx: StageContext):
    cands = found.unresolved
    matcher = BrandMatcher(ctx.brands, 80)
    brand_read = lru_cache(maxsize=None)(lambda text: (matcher.best(text) or (None,))[0])  # once per text
    reads_at, detected_at = {}, {}
    for read in found.reads:
        reads_at.setdefault(read.frame_key, []).append(read)
    for d in found.upstream:  # what match_brands found (spotted names have no fuzzy reading)
        detected_at.setdefault(round(d.t, 3), []).append(d)
    detections: list[Detection] = []
    resolved: set[int] = set()
    groups = group_candidates(cands)
    for group in groups:
        image = ctx.store.get_image(cands[group[0]].crop_key)
        if cands[group[0]].kind == "text":
            hit = exemplar.match_crop(image, exemplars, config.min_score)
            hits = [hit] if hit else []
        else:
            hits = exemplar.search_region(image, exemplars, config.min_score, config.max_hits_per_region)
        for i in group if hits else []:
            cand = cands[i]
            for hit in hits:
                box = cand.box if cand.kind == "text" else region_box(cand, hit.box)
                if not _read_already(reads_at.get(cand.frame_key, []), hit.brand, box, brand_read) \
                        and not _found_already(detected_at.get(round(cand.t, 3), []), hit.brand, box):
                    detections.append(detection(cand, hit.brand, hit.score, "escalate_vlm", "exemplar", box))
            resolved.add(i)
    return detections, resolved, len(groups)


def _read_already(reads: list[TextRead], brand: str, box, brand_read) -> bool:
    """A logo found in a band where OCR already read that brand's name: not a second detection."""
    return any(brand_read(read.text) == brand for read in reads
               if iou(read.box, box) >= 0.3 or covered(read.box, box) > 0.5 or covered(box, read.box) > 0.5)


def _found_already(detections: list[Detection], brand: str, box) -> bool:
    """A logo found where match_brands already detected that brand: not a second detection."""
    return any(d.brand == brand and (iou(d.box, box) >= 0.3 or covered(d.box, box) > 0.5 or covered(box, d.box) > 0.5)
               for d in detections)


STAGE = StageSpec("escalate_vlm", escalate_vlm, EscalateVlmConfig, accepts=DetectionSet, produces=DetectionSet,
                  gpu=True, uses_brands=True, helpers=(exemplar, continuity, group_candidates, detection, ask_vlm,
                                                       local_vlm.chat_messages, BrandMatcher),
                  key_extra=lambda config: local_vlm.model_key(config.model_path) if config.backend == "transformers"
                  else None)
