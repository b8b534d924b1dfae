"""The one generic wrapper that turns any stage into a cached Prefect task.

The cache key is computed by the run plan from the profile graph and passed in as
`cache_key`; Prefect's default policy (which includes the run id) is not used.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from prefect import Task, task
from prefect.cache_policies import CachePolicy

from mpr.placement import run_on_gpu
from mpr.records import Manifest
from mpr.results_storage import ResultStorage, result_storage
from tasks.registry import STAGES
from tasks.stage import StageConfig, StageContext

RETRY_DELAYS = [2, 10, 30]


@dataclass
class StageKey(CachePolicy):
    """Use the plan's key as is: stage + config + input keys + source + code version."""

    def compute_key(self, task_ctx, inputs: dict[str, Any], flow_parameters, **kwargs) -> str:
        return inputs["cache_key"]


def run_stage(stage: str, chunk: int | str, cache_key: str, inputs: list[tuple[Any, str | None]],
              config: StageConfig, ctx: StageContext, dask: str | None = None):
    """Route the upstream outputs, call the plain stage function (on a Dask GPU worker when
    `dask` names a scheduler, see mpr.placement), time it. `dask` is not part of the cache
    key: where a stage runs does not change what it computes."""
    routed = [output.route(when) if when else output for output, when in inputs]
    start = time.perf_counter()
    output = run_on_gpu(dask, stage, routed, config, ctx) if dask else STAGES[stage].fn(routed, config, ctx)
    # a new stats object: an output may share its upstream's (a routed model_copy is shallow)
    output.stats = output.stats.model_copy(update={"seconds": round(time.perf_counter() - start, 3)})
    if isinstance(output, Manifest):
        output.stage = stage
    return output


def stage_task(stage: str, results: ResultStorage | None = None, retries: int = 0) -> Task:
    """results: a local folder or a saved storage block; None means `result_storage()`
    (MPR_RESULTS / MPR_RESULTS_BLOCK, else the local results folder)."""
    return task(
        run_stage,
        name=stage,
        task_run_name="{stage}[{chunk}]",
        cache_policy=StageKey(),
        result_storage=result_storage() if results is None else results,
        persist_result=True,
        retries=retries,
        retry_delay_seconds=RETRY_DELAYS[:retries] or 0,
    )
