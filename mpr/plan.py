"""A run plan: the validated inputs of one run and every stage's cache key, before any work.

Cache key of a stage task = stage name + resolved stage config + keys of its inputs
(with the routing condition) + source fingerprint + stage code version (+ chunk slice,
+ brand-list digest for stages that read it). Keys chain through the graph, so
changing one stage's config changes its key and every key downstream, nothing upstream.

The *lineage* of a stage is the same chain without the source and chunk: it names a
config path (what `mpr checkpoints` shows as one node of the tree).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from mpr import settings
from mpr.brands import BrandList, load_brands
from mpr.profiles import Profile, load_profile
from mpr.escalation.resolve import SKIP_ENV, skip_requested
from mpr.registry import apply_registry
from mpr.source import ChunkSpec, SourceInfo, plan_chunks, probe_source
from mpr.storage import configure_s3
from mpr.store import check_store
from tasks.registry import STAGES
from tasks.stage import StageContext


def digest(payload: Any, size: int = 16) -> str:
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.blake2b(text.encode(), digest_size=size).hexdigest()


@dataclass
class RunPlan:
    profile: Profile
    source: SourceInfo
    brands: BrandList
    chunks: list[ChunkSpec]
    store_root: str
    keys: dict[tuple[str, int | None], str] = field(default_factory=dict)
    lineage: dict[str, str] = field(default_factory=dict)

    def task_ids(self, stage: str) -> list[int | None]:
        """Chunk indexes a stage runs on (None: once over the whole source)."""
        if STAGES[stage].scope == "source":
            return [None]
        return [c.index for c in self.chunks]

    def context(self, stage: str, chunk: int | None) -> StageContext:
        """The run facts one stage task gets."""
        return StageContext(
            source=self.source,
            store_root=self.store_root,
            key=self.keys[(stage, chunk)],
            chunk=self.chunks[chunk] if chunk is not None else None,
            brands=self.brands if STAGES[stage].uses_brands else None,
        )

    def inputs_of(self, stage: str, chunk: int | None) -> list[tuple[str, int | None, str | None]]:
        """(upstream stage, upstream chunk, routing condition) feeding one task."""
        return [(e.src, c, e.when) for e in self.profile.upstream(stage)
                for c in (self.task_ids(e.src) if chunk is None else [chunk])]


def prepare_run(source: str, brands: str | list | dict, profile: str = "soccer_broadcast",
                overrides: dict | None = None, debug: bool = False) -> RunPlan:
    """Validate everything and compute all keys; raises InputError with one line.

    `debug` turns on every stage's debug overlays (part of each stage's config, so a
    debug run recomputes the stages that draw and keeps its overlays cached)."""
    configure_s3()  # s3:// sources, brands files and artifact stores use the configured endpoint
    prof = load_profile(profile, overrides)
    if debug:
        overrides = with_debug(prof, overrides)
    overrides = with_skips(prof, overrides)
    if overrides != prof.overrides:
        prof = load_profile(profile, overrides)
    brand_list = load_brands(brands)
    info = probe_source(source, settings.sources_cache_dir())
    brand_list = apply_registry(brand_list)  # learned aliases take part in matching and keys
    extract = prof.configs[prof.stages[0]]
    plan = RunPlan(prof, info, brand_list, plan_chunks(info, extract.fps, extract.chunk_s),
                   settings.artifacts_url())
    _compute_keys(plan)
    check_store(plan.store_root)  # an unreachable store fails here, before any row or file is written
    return plan


def with_debug(profile: Profile, overrides: dict | None) -> dict:
    """`overrides` plus `debug: true` for every stage whose config has that switch."""
    out = {stage: dict(values) for stage, values in (overrides or {}).items()}
    for stage in profile.stages:
        if "debug" in type(profile.configs[stage]).model_fields:
            out.setdefault(stage, {})["debug"] = True
    return out


def with_skips(profile: Profile, overrides: dict | None) -> dict:
    """`overrides` plus `skip: true` for escalation stages that SKIP_VLM=1 / SKIP_CLOUD=1 turn off
    (in the config, so the skip is part of the cache key and shows in report.json)."""
    out = {stage: dict(values) for stage, values in (overrides or {}).items()}
    for stage in profile.stages:
        if stage in SKIP_ENV and skip_requested(stage):
            out.setdefault(stage, {})["skip"] = True
    return out


def _compute_keys(plan: RunPlan) -> None:
    for stage in plan.profile.stages:
        spec = STAGES[stage]
        base = {
            "stage": stage,
            "config": plan.profile.config_dict(stage),
            "code": spec.code_version,
            "brands": plan.brands.digest() if spec.uses_brands else None,
            "files": spec.key_extra(plan.profile.configs[stage]) if spec.key_extra else None,
        }
        plan.lineage[stage] = digest({**base, "inputs": sorted(
            f"{e.src}:{plan.lineage[e.src]}:{e.when}" for e in plan.profile.upstream(stage))}, 8)
        for chunk in plan.task_ids(stage):
            spec_chunk = plan.chunks[chunk] if chunk is not None else None
            inputs = [f"{plan.keys[(src, c)]}:{when}" for src, c, when in plan.inputs_of(stage, chunk)]
            key = digest({**base, "inputs": inputs, "source": plan.source.fingerprint,
                          "chunk": spec_chunk and [spec_chunk.index, spec_chunk.start, spec_chunk.end,
                                                   spec_chunk.sample_start, spec_chunk.sample_stop]})
            plan.keys[(stage, chunk)] = f"{stage}-{key}"
