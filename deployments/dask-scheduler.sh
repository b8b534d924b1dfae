#!/usr/bin/env bash
# The Dask scheduler MPR's GPU stages are sent to. Run it on the GPU host (or any host the
# flow and the workers both reach); then start workers with gpu-worker.sh.
#
#   deployments/dask-scheduler.sh          # tcp://0.0.0.0:8786, dashboard on :8787
#
# Runs need the scheduler's address: `mpr detect ... --dask tcp://HOST:8786`,
# `-p dask=tcp://HOST:8786`, `MPR_DASK=tcp://HOST:8786`, or a saved DaskCluster block.
# The scheduler itself needs only `dask[distributed]` (installed with the project).
set -euo pipefail
if ! command -v dask >/dev/null 2>&1; then
  echo "dask-scheduler.sh: 'dask' is not on PATH (activate the project's venv, or pip install 'dask[distributed]')" >&2
  exit 1
fi
exec dask scheduler --host 0.0.0.0 --port 8786 --dashboard-address :8787
