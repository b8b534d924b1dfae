"""The Dask cluster GPU stages run on, saved once and named in runs (`-p dask=NAME`)."""

from __future__ import annotations

from prefect.blocks.core import Block
from pydantic import Field


class DaskCluster(Block):
    """Address of a Dask scheduler whose GPU workers run the profile's `gpu: true` stages
    (`deployments/gpu-worker.sh` starts one)."""

    _block_type_name = "MPR Dask Cluster"
    _block_type_slug = "mpr-dask-cluster"
    _description = "Dask scheduler address for MPR's GPU stages (workers started with --resources GPU=1)."

    address: str = Field(..., description="Scheduler address, e.g. tcp://gpu-host:8786",
                         pattern=r"^(tcp|tls|ucx|inproc)://\S+$")
