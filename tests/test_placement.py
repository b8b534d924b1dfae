"""GPU placement on a real Dask cluster (scheduler + worker processes).

Two workers, one started with `--resources GPU=1`: the profile's `gpu: true` stages run
only there, every other stage in the flow process, and the models load once per worker.
"""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.conftest import run_mpr, write
from tests.dask_cluster import dask_cluster
from tests.media import small_clip

pytestmark = pytest.mark.slow
GPU_STAGES = {"detect_objects", "run_ocr", "escalate_vlm"}


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return small_clip(tmp_path_factory.mktemp("clip"))


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with dask_cluster(tmp_path_factory.mktemp("dask"), {"gpu-0": {"GPU": 1}, "cpu-0": {}}) as address:
        yield address


def on_workers(address: str, fn) -> dict[str, object]:
    """fn run on every worker, by worker name."""
    from distributed import Client

    with Client(address, timeout="30s") as client:
        names = {addr: info["name"] for addr, info in client.scheduler_info(n_workers=-1)["workers"].items()}
        return {names[addr]: value for addr, value in client.run(fn).items()}


def worker_facts(dask_worker) -> dict:
    import sys

    facts = {"executed": dask_worker.state.executed_count,
             "detector_loaded": "mpr.vision.detector" in sys.modules and "tasks.run_ocr" in sys.modules}
    if facts["detector_loaded"]:
        from mpr.ocr import get_engine
        from mpr.vision.detector import get_detector

        facts["detector_loads"] = get_detector.cache_info().misses
        facts["ocr_loads"] = get_engine.cache_info().misses
    return facts


def test_gpu_stages_run_only_on_the_gpu_worker_and_load_models_once(cluster, clip, data_dir, tmp_path):
    out = tmp_path / "out"
    result = run_mpr("detect", clip / "match.mp4", "--brands", clip / "brands.yaml", "--profile", "fast",
                     "--set", "extract_frames.chunk_s=3", "--out", out, "--dask", cluster)
    assert result.returncode == 0, result.stderr
    report = json.loads((out / "report.json").read_text())
    workers = {s["name"]: s["worker"] for s in report["stages"]}
    assert {s for s, w in workers.items() if w == "gpu-0"} == GPU_STAGES, workers
    assert {w for s, w in workers.items() if s not in GPU_STAGES} == {"local"}
    assert all(s["chunks"] == 2 for s in report["stages"] if s["name"] in GPU_STAGES)
    assert report["brands"], "the run found no brand at all"

    facts = on_workers(cluster, worker_facts)
    assert facts["cpu-0"]["executed"] == 0 and not facts["cpu-0"]["detector_loaded"]
    assert facts["gpu-0"]["executed"] == 6  # 3 GPU stages x 2 chunks
    assert facts["gpu-0"]["detector_loads"] == 1 and facts["gpu-0"]["ocr_loads"] == 1  # not per task

    # gpu: false in a profile keeps a stage here; the same run's other stages come from cache
    profile = write(tmp_path / "local_ocr.yaml", "extends: fast\npipeline:\n  stages: [extract_frames, "
                    "filter_scenes, field_segmentation, detect_edges, {name: detect_objects, gpu: true}, preprocess, "
                    "{name: run_ocr, gpu: false}, match_brands, escalate_vlm, escalate_cloud, compile_report]\n")
    again = run_mpr("detect", clip / "match.mp4", "--brands", clip / "brands.yaml", "--profile", profile,
                    "--set", "extract_frames.chunk_s=3", "--set", "run_ocr.min_text_score=0.55",
                    "--out", tmp_path / "again", "--dask", cluster)
    assert again.returncode == 0, again.stderr
    stages = {s["name"]: s for s in json.loads((tmp_path / "again" / "report.json").read_text())["stages"]}
    assert stages["run_ocr"]["state"] == "completed" and stages["run_ocr"]["worker"] == "local"
    assert stages["escalate_vlm"]["worker"] == "gpu-0"
    assert stages["detect_objects"]["state"] == "cached"
    assert on_workers(cluster, worker_facts)["gpu-0"]["executed"] == 8  # only escalate_vlm x 2 was sent



def vlm_facts(dask_worker) -> dict:
    import sys

    if "mpr.escalation.local_vlm" not in sys.modules:
        return {"loads": 0}
    from mpr.escalation.local_vlm import load_model

    return {"loads": load_model.cache_info().misses}


def test_the_transformers_vlm_loads_once_on_the_gpu_worker_and_resolves(cluster, data_dir, tmp_path):
    """escalate_vlm backend transformers: the model loads in the GPU worker's process, once for
    two chunks, and its answers reach the report."""
    pytest.importorskip("transformers", reason="the vlm extra is not installed (pip install 'mpr[vlm]')")
    import cv2
    import numpy as np

    from tests import tiny_vlm
    from tests.test_escalation import PROFILE

    model = tiny_vlm.build(tmp_path / "tiny-llava", train_steps=200)
    (tmp_path / "frames").mkdir()
    for n in range(2):  # a two-image folder: two chunks with chunk_s 1
        image = np.full((360, 640, 3), 255, np.uint8)
        cv2.putText(image, "VALKYRIE", (60 + 20 * n, 200), cv2.FONT_HERSHEY_DUPLEX, 2.2, (20, 20, 20), 4)
        cv2.imwrite(str(tmp_path / "frames" / f"{n}.jpg"), image)
    profile = write(tmp_path / "vlm.yaml", PROFILE)
    brands = write(tmp_path / "brands.yaml", "brands:\n" + "".join(f"  - name: {b}\n" for b in tiny_vlm.BRANDS))
    result = run_mpr("detect", tmp_path / "frames", "--brands", brands, "--profile", profile,
                     "--set", "escalate_vlm.backend=transformers", "--set", f"escalate_vlm.model_path={model}",
                     "--set", "escalate_vlm.learn_aliases=false", "--set", "extract_frames.chunk_s=1",
                     "--out", tmp_path / "out", "--dask", cluster)
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    stage = next(s for s in report["stages"] if s["name"] == "escalate_vlm")
    assert stage["worker"] == "gpu-0" and stage["chunks"] == 2, stage
    assert [b["brand"] for b in report["brands"]] == ["Nordlys"]
    assert {s["source"] for s in report["brands"][0]["segments"]} == {"escalate_vlm"}
    facts = on_workers(cluster, vlm_facts)
    assert facts["gpu-0"]["loads"] == 1 and facts["cpu-0"]["loads"] == 0


def test_a_cluster_without_gpu_workers_is_refused_before_any_work(tmp_path, clip, data_dir):
    with dask_cluster(tmp_path / "dask", {"cpu-0": {}}) as address:
        result = run_mpr("detect", clip / "match.mp4", "--brands", clip / "brands.yaml", "--dask", address)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("mpr: error: no worker of the Dask cluster")
    assert "Traceback" not in result.stderr and not (data_dir / "artifacts").exists()


def can_unshare() -> bool:
    try:
        return subprocess.run(["unshare", "-rm", "true"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.mark.skipif(not can_unshare(), reason="needs user namespaces (unshare -rm) to give a worker its own /tmp")
def test_a_gpu_worker_that_cannot_see_a_local_artifact_store_is_refused(tmp_path, clip, data_dir):
    """The worker runs in its own mount namespace where the data dir is an empty tmpfs: like
    a worker on another host while the flow's artifact store is a local folder."""
    data_dir.mkdir(parents=True, exist_ok=True)
    hide = ["unshare", "-rm", "sh", "-c", f'mount -t tmpfs none "{data_dir}" && exec "$0" "$@"']
    with dask_cluster(tmp_path / "dask", {"gpu-far": {"GPU": 1}}, wrap={"gpu-far": hide}) as address:
        result = run_mpr("detect", clip / "match.mp4", "--brands", clip / "brands.yaml", "--dask", address)
    assert result.returncode == 1, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"mpr: error: Dask worker gpu-far cannot read the artifact store {data_dir}"), last
    assert "MPR_ARTIFACTS=s3://" in last and "Traceback" not in result.stderr


def test_dask_addresses_and_blocks(data_dir):
    from blocks.dask_cluster import DaskCluster
    from mpr.errors import InputError
    from mpr.placement import dask_address

    assert dask_address("tcp://10.0.0.5:8786") == "tcp://10.0.0.5:8786"
    assert dask_address(None) is None
    DaskCluster(address="tcp://gpu-host:8786").save("mpr-test-gpu", overwrite=True)
    assert dask_address("mpr-test-gpu") == "tcp://gpu-host:8786"
    for bad, message in (("no-such-block", "no DaskCluster block"), ("http://x:1", "expected tcp://")):
        with pytest.raises(InputError, match=message):
            dask_address(bad)
