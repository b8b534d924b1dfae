"""Where stages run: `gpu: true` stages on a Dask cluster's GPU workers, the rest in the flow.

A GPU stage stays a Prefect task run of the flow: its state, cache lookup, retries and
result are handled in the flow process, so a cached stage never touches the cluster and
Prefect results need no storage the workers share. Only the call of the plain stage
function goes to Dask, inside `dask.annotate(resources={"GPU": 1})`, so the scheduler
places it only on workers started with `--resources GPU=1` (deployments/gpu-worker.sh);
models load once per worker process (the stages keep them in per-process caches).

Why not prefect-dask's DaskTaskRunner: a flow has one task runner, so every stage would go
to the cluster, and futures of two runners cannot feed each other.

The workers read frames and write crops in the artifact store, so it must be one they
see (S3 or a shared filesystem): `connect` proves that with a token before any work.
"""

from __future__ import annotations

import os
import secrets
from typing import Any

from mpr.errors import InputError, MprError
from mpr.loading import load_once

SCHEMES = ("tcp://", "tls://", "ucx://", "inproc://")


def dask_address(value: str | None) -> str | None:
    """`--dask` / `-p dask=` / `MPR_DASK`: a scheduler address or a saved DaskCluster block's name."""
    value = (value or os.environ.get("MPR_DASK") or "").strip()
    if not value or value.startswith(SCHEMES):
        return value or None
    if "://" in value:
        raise InputError(f"dask {value}: expected tcp://HOST:PORT or the name of a DaskCluster block")
    from blocks.dask_cluster import DaskCluster

    try:
        return DaskCluster.load(value, _sync=True).address
    except ValueError:
        raise InputError(f"dask {value}: no DaskCluster block of that name "
                         "(save one, or give tcp://HOST:PORT)") from None


@load_once(maxsize=4)
def client(address: str):
    """One Dask client per scheduler and process."""
    from distributed import Client

    try:
        return Client(address, timeout="10s", set_as_default=False)
    except (OSError, TimeoutError) as exc:
        raise MprError(f"cannot reach the Dask scheduler at {address}: {exc}") from None


def connect(address: str, store_root: str) -> None:
    """Fail before any work unless the cluster has a GPU worker and each one sees the store."""
    from mpr.store import open_store

    dask = client(address)
    workers = {addr: info for addr, info in dask.scheduler_info(n_workers=-1)["workers"].items()
               if info.get("resources", {}).get("GPU", 0) >= 1}
    if not workers:
        raise MprError(f"no worker of the Dask cluster at {address} has a GPU resource "
                       "(start one with deployments/gpu-worker.sh, i.e. --resources GPU=1)")
    store = open_store(store_root)
    key, token = f"placement/{secrets.token_hex(8)}", secrets.token_hex(16)
    store.put_bytes(key, token.encode())
    try:
        seen = dask.run(sees_token, store_root, key, token, workers=list(workers))
    finally:
        store.fs.rm(store.path(key))
    blind = [workers[addr].get("name") or addr for addr, ok in seen.items() if not ok]
    if blind:
        raise MprError(f"Dask worker {blind[0]} cannot read the artifact store {store_root}: remote GPU "
                       "workers need a store they share with the flow (MPR_ARTIFACTS=s3://...)")


def sees_token(store_root: str, key: str, token: str) -> bool:
    """Runs on a worker: can it read what the flow just wrote?"""
    from mpr.storage import configure_s3
    from mpr.store import ArtifactStore

    configure_s3()
    try:
        return ArtifactStore(store_root).get_bytes(key).decode() == token
    except (MprError, OSError):
        return False


def run_on_gpu(address: str, stage: str, inputs: list[Any], config, ctx):
    """Call the stage function on a GPU worker and return its output (errors re-raised here)."""
    import dask

    with dask.annotate(resources={"GPU": 1}):
        future = client(address).submit(run_here, stage, inputs, config, ctx, pure=False,
                                        key=f"{stage}-{secrets.token_hex(6)}")
    return future.result()


def run_here(stage: str, inputs: list[Any], config, ctx):
    """Runs on a worker: the plain stage function, tagged with the worker's name."""
    from distributed import get_worker

    from mpr.storage import configure_s3
    from tasks.registry import STAGES

    configure_s3()
    output = STAGES[stage].fn(inputs, config, ctx)
    output.stats.worker = str(get_worker().name)
    return output
