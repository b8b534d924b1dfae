"""What a stage is: a plain function `(inputs, config, ctx) -> manifest` plus its declaration.

Nothing here knows about Prefect; `tasks.wrapper` turns a StageSpec into a Prefect task.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Callable, Literal

from pydantic import BaseModel, ConfigDict

from mpr.brands import BrandList
from mpr.records import Manifest
from mpr.source import ChunkSpec, SourceInfo
from mpr.store import ArtifactStore, code_digest, open_store


class StageConfig(BaseModel):
    """Base of every stage's typed config: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class StageContext:
    """Run facts a stage may read. What a stage uses from here is part of its cache key."""

    source: SourceInfo
    store_root: str
    key: str  # this stage's cache key: namespaces the artifacts it writes
    chunk: ChunkSpec | None = None  # None for source-level stages
    brands: BrandList | None = None

    @property
    def store(self) -> ArtifactStore:
        return open_store(self.store_root)


@dataclass(frozen=True)
class StageSpec:
    name: str
    fn: Callable[[list[Any], Any, StageContext], Any]
    config: type[StageConfig]
    accepts: type[Manifest] | None  # None: the stage reads the source itself
    produces: type
    scope: Literal["chunk", "source"] = "chunk"  # source: one task over all chunks
    uses_brands: bool = False
    gpu: bool = False  # default placement: on a Dask GPU worker when the run has a cluster
    helpers: tuple[Callable, ...] = ()  # code whose changes must invalidate this stage's cache
    key_extra: Callable[[Any], str] | None = None  # config -> digest of files it names (model weights)

    @cached_property
    def code_version(self) -> str:
        """Hash of the stage's module source, its declared helpers' modules and the records
        module (a changed record shape must not unpickle old checkpoints)."""
        return code_digest(*(inspect.getmodule(obj) for obj in (self.fn, *self.helpers, Manifest)))
