#!/usr/bin/env bash
# A Dask worker for MPR's GPU stages (the profile's `gpu: true` stages, e.g. detect_objects
# and run_ocr): one process, one thread, resource GPU=1, so the scheduler sends it one GPU
# stage at a time and models stay loaded in that process between chunks.
#
#   deployments/gpu-worker.sh SCHEDULER_ADDRESS [NAME]
#   deployments/gpu-worker.sh tcp://gpu-host:8786            # name: gpu-<hostname>
#
# The worker runs MPR's stage code, so its environment needs:
#   - this project installed with the GPU extra, at the same version as the flow's:
#       pip install -e '.[gpu]'   (then swap onnxruntime for onnxruntime-gpu: deployments/README.md)
#   - access to the flow's artifact store (the flow sets MPR_ARTIFACTS=s3://bucket/prefix and
#     passes it with each stage; frames in, crops out; a flow refuses to start if a worker
#     cannot read it): S3_ENDPOINT_URL (for a non-AWS S3), AWS_ACCESS_KEY_ID,
#     AWS_SECRET_ACCESS_KEY (or AWS_PROFILE / an instance role), optionally AWS_DEFAULT_REGION
#   - PREFECT_API_URL when stages read Prefect blocks (MPR_S3_BLOCK, escalate_vlm's VlmServer)
# Put those in the environment yourself (a service unit, an env file); this script sets
# nothing but the Dask options.
set -euo pipefail
if [ $# -lt 1 ] || [ -z "${1:-}" ]; then
  echo "usage: gpu-worker.sh SCHEDULER_ADDRESS [NAME]   (e.g. tcp://gpu-host:8786)" >&2
  exit 2
fi
if ! command -v dask >/dev/null 2>&1; then
  echo "gpu-worker.sh: 'dask' is not on PATH (activate the venv the project is installed in)" >&2
  exit 1
fi
name="${2:-gpu-$(hostname)}"
workdir="${TMPDIR:-/tmp}/mpr-dask-worker-$name"
mkdir -p "$workdir"
exec dask worker "$1" --resources GPU=1 --nthreads 1 --nworkers 1 --name "$name" --local-directory "$workdir"
