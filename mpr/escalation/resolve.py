"""What both escalation stages share: skipping, credentials, and turning answers into detections."""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np
from pydantic import Field

from mpr.errors import MprError
from mpr.escalation.asking import Budget, ResponseCache, ask_all
from mpr.escalation.candidates import group_candidates
from mpr.escalation.providers import Provider, Query, make_provider
from mpr.records import Box, Candidate, Detection, DetectionSet
from mpr.vision.rectify import map_box
from tasks.stage import StageConfig

# Environment variables holding each provider's key, first found wins.
ENV_KEYS = {
    "anthropic": ("ANTHROPIC_API_KEY",),
    "gemini": ("GEMINI_API_KEY", "GOOGLE_API_KEY"),
    "openai": ("OPENAI_API_KEY",),
    "groq": ("GROQ_API_KEY",),
    "openai_compatible": ("MPR_VLM_API_KEY",),
}
SKIP_ENV = {"escalate_vlm": "SKIP_VLM", "escalate_cloud": "SKIP_CLOUD"}


def skip_requested(stage: str) -> bool:
    return os.environ.get(SKIP_ENV[stage], "").strip().lower() in ("1", "true", "yes")


def has_credential(provider: str, block: str | None) -> bool:
    return bool(block) or any(os.environ.get(name) for name in ENV_KEYS.get(provider, ()))


def api_key(provider: str, block: str | None) -> str | None:
    """From the Prefect Secret block named in the profile, else the provider's environment variable."""
    if block:
        from prefect.blocks.system import Secret

        try:
            return Secret.load(block).get()
        except (ValueError, RuntimeError) as exc:
            raise MprError(f"{provider}: cannot load Secret block '{block}' ({type(exc).__name__})") from None
    return next((os.environ[n] for n in ENV_KEYS.get(provider, ()) if os.environ.get(n)), None)


def skipped(manifest: DetectionSet, reason: str, note: str | None = None) -> DetectionSet:
    """The stage did nothing: every candidate stays unresolved for the next stage or the report."""
    notes = manifest.notes + ([note] if note else [])
    return manifest.model_copy(update={"detections": [], "skipped": reason, "notes": notes})


def detection(cand: Candidate, brand: str, confidence: float, stage: str, resolver: str,
              box: Box | None = None) -> Detection:
    return Detection(t=cand.t, brand=brand, confidence=round(confidence, 4), box=box or cand.box, text=cand.text,
                     source=stage, resolver=resolver, region=cand.region, frame=cand.frame)


def region_box(cand: Candidate, box_in_crop: Box) -> Box:
    """A box found in a region's crop, in frame pixels."""
    if cand.to_frame is None:
        return cand.box
    return map_box(np.array(cand.to_frame), box_in_crop)


class VlmAskConfig(StageConfig):
    """Settings of a stage that asks a VLM (escalate_cloud, escalate_vlm's openai_compatible)."""

    batch_size: int = Field(8, ge=1, le=64, description="crops per request")
    concurrency: int = Field(2, ge=1, le=32, description="requests in flight at once")
    timeout_s: float = Field(60.0, gt=0, le=600, description="per request")
    max_retries: int = Field(3, ge=0, le=10, description="re-sends after 429/5xx/timeouts (backoff with jitter)")
    max_calls: int = Field(200, ge=0, le=100000, description="requests per run (per chunk for escalate_vlm)")
    max_cost_usd: float = Field(2.0, ge=0, le=10000, description="estimated spend per run; stops asking when reached")
    min_confidence: float = Field(0.6, ge=0, le=1, description="answers below this stay unresolved")
    ask_regions: bool = Field(False, description="also ask about regions without text (one crop per board/logo)")
    api_key_block: str | None = Field(None, description="Prefect Secret block with the API key (else env variable)")
    price_in: float | None = Field(None, ge=0, description="USD per 1M input tokens (default: built-in table)")
    price_out: float | None = Field(None, ge=0, description="USD per 1M output tokens")
    learn_aliases: bool = Field(True, description="OCR text this stage resolves becomes a learned alias")

    @property
    def learn_min_confidence(self) -> float:
        """Confidence a resolution needs to become a learned alias."""
        return self.min_confidence


def ask_vlm(stage: str, cands: list[Candidate], config: VlmAskConfig, ctx, open_provider: Callable[[], Provider]):
    """Ask a provider about one crop per group; returns (detections, resolved indexes, asked, usage, notes).
    The provider is opened only when there is something to ask: a local model is not loaded for nothing."""
    groups = [g for g in group_candidates(cands) if cands[g[0]].kind == "text" or config.ask_regions]
    if not groups:
        return [], set(), 0, {}, []
    provider = open_provider()
    queries = [Query(id=str(n), image=ctx.store.get_bytes(cands[g[0]].crop_key), text=cands[g[0]].text)
               for n, g in enumerate(groups)]
    result = ask_all(provider, queries, ctx.brands.names, config.batch_size, config.concurrency,
                     Budget(config.max_calls, config.max_cost_usd), ResponseCache(provider, ctx.brands.names))
    resolver = f"{provider.name}:{provider.model}"
    detections, resolved = [], set()
    for n, group in enumerate(groups):
        answer = result.answers.get(str(n))
        if answer and answer.brand and answer.confidence >= config.min_confidence:
            for i in group:
                detections.append(detection(cands[i], answer.brand, answer.confidence, stage, resolver))
                resolved.add(i)
    usage = {resolver: {**result.usage.as_dict(), "asked": len(queries), "cached": result.cached,
                        "over_budget": result.over_budget, "resolved": len(detections)}}
    return detections, resolved, len(groups), usage, result.notes


def open_provider(name: str, model: str, config: VlmAskConfig, base_url: str | None = None,
                  key: str | None = None) -> Provider:
    return make_provider(name, model, key, base_url=base_url, timeout_s=config.timeout_s,
                         max_retries=config.max_retries, price_in=config.price_in, price_out=config.price_out)
