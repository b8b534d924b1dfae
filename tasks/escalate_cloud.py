"""escalate_cloud: what escalate_vlm left unresolved, to a cloud VLM (Anthropic, Gemini, OpenAI, Groq).

It runs once over the whole source, so near-identical candidates of every chunk are
grouped and asked about once, and the run's budget (`max_calls`, `max_cost_usd`) is one
budget. Provider and model come from the profile; the API key from the Prefect Secret
block `api_key_block` or the provider's environment variable (ANTHROPIC_API_KEY,
GEMINI_API_KEY, OPENAI_API_KEY, GROQ_API_KEY), never from the profile, and it is never
logged or written anywhere. `SKIP_CLOUD=1`, `skip: true` or a missing key mark the stage
skipped (the latter with a warning). Calls, tokens and estimated cost per provider:model
go to report.json `escalation`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from mpr.escalation.resolve import VlmAskConfig, api_key, ask_vlm, has_credential, open_provider, skipped
from mpr.records import DetectionSet, StageStats
from tasks.stage import StageContext, StageSpec

Provider = Literal["anthropic", "gemini", "openai", "groq"]


class EscalateCloudConfig(VlmAskConfig):
    provider: Provider = "anthropic"
    model: str = Field("claude-haiku-4-5", min_length=1, description="the provider's model name")
    base_url: str | None = Field(None, description="API endpoint override (proxies, gateways, tests)")
    skip: bool = Field(False, description="do nothing (also SKIP_CLOUD=1)")


def escalate_cloud(inputs: list[DetectionSet], config: EscalateCloudConfig, ctx: StageContext) -> DetectionSet:
    found = merge_chunks(inputs)
    if config.skip:
        return skipped(found, "skip requested (escalate_cloud.skip or SKIP_CLOUD=1)")
    if not has_credential(config.provider, config.api_key_block):
        return skipped(found, f"no API key for {config.provider}",
                       f"escalate_cloud skipped: no API key for {config.provider} (set the provider's API key "
                       "variable or escalate_cloud.api_key_block)")
    if not found.unresolved:
        return found.model_copy(update={"detections": []})
    def provider():  # opened only if there is something to ask
        return open_provider(config.provider, config.model, config, config.base_url,
                             api_key(config.provider, config.api_key_block))

    detections, resolved, asked, usage, notes = ask_vlm("escalate_cloud", found.unresolved, config, ctx, provider)
    left = [c for i, c in enumerate(found.unresolved) if i not in resolved]
    counts = {**found.counts, "cloud_asked": asked, "cloud_resolved": len(detections), "unresolved": len(left)}
    return found.model_copy(update={
        "detections": detections, "unresolved": left, "counts": counts, "usage": usage,
        "notes": found.notes + [f"escalate_cloud: {n}" for n in notes],
        "stats": StageStats(items_in=len(found.unresolved), items_out=len(detections))})


def merge_chunks(inputs: list[DetectionSet]) -> DetectionSet:
    """Every chunk's frames and candidates in one manifest (counts summed)."""
    counts: dict[str, int] = {}
    for m in inputs:
        for name, value in m.counts.items():
            counts[name] = counts.get(name, 0) + value
    readable = [m.readable_until_s for m in inputs if m.readable_until_s is not None]
    return DetectionSet(
        chunk=-1, frames=sorted((f for m in inputs for f in m.frames), key=lambda f: f.t),
        interval_s=max((m.interval_s for m in inputs), default=0.0),
        readable_until_s=min(readable) if readable else None,
        notes=list(dict.fromkeys(n for m in inputs for n in m.notes)),
        overlays=list(dict.fromkeys(k for m in inputs for k in m.overlays)),
        counts=counts, unresolved=[c for m in inputs for c in m.unresolved])


def credential_state(config: EscalateCloudConfig) -> str:
    """Part of the cache key: a run without a key (skipped) must not stand in for one with it."""
    return "key" if has_credential(config.provider, config.api_key_block) else "no-key"


STAGE = StageSpec("escalate_cloud", escalate_cloud, EscalateCloudConfig, accepts=DetectionSet,
                  produces=DetectionSet, scope="source", uses_brands=True, helpers=(ask_vlm,),
                  key_extra=credential_state)
