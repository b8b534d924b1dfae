"""Against a real `prefect server` process: the CLI run, its task runs and artifacts via the API."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import cv2
import httpx
import numpy as np
import pytest

from tests.conftest import run_mpr, shared_prefect_api, write

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def prefect_api():
    """The session's real server (the one every `mpr` subprocess of the tests reports to)."""
    return shared_prefect_api()


def test_cli_run_is_visible_through_the_prefect_api(prefect_api, tmp_path, data_dir):
    image = np.full((360, 640, 3), 255, np.uint8)
    cv2.putText(image, "NORDLYS", (120, 200), cv2.FONT_HERSHEY_DUPLEX, 3.0, (20, 20, 160), 6)
    cv2.imwrite(str(tmp_path / "board.png"), image)
    brands = write(tmp_path / "brands.yaml", "brands:\n  - name: Nordlys\n")
    result = run_mpr("detect", tmp_path / "board.png", "--brands", brands, "--out", tmp_path / "out",
                     env={"PREFECT_API_URL": prefect_api})
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert [b["brand"] for b in report["brands"]] == ["Nordlys"]

    run_id = report["run_id"]
    flow_run = httpx.get(f"{prefect_api}/flow_runs/{run_id}").json()
    assert flow_run["state"]["type"] == "COMPLETED"
    task_runs = httpx.post(f"{prefect_api}/task_runs/filter",
                           json={"flow_runs": {"id": {"any_": [run_id]}}}).json()
    stages = ["extract_frames", "filter_scenes", "field_segmentation", "detect_edges", "detect_objects",
              "preprocess", "run_ocr", "match_brands", "escalate_vlm"]
    assert {t["name"] for t in task_runs} == {*(f"{s}[0]" for s in stages), "escalate_cloud[all]",
                                              "compile_report[all]"}
    artifacts = httpx.post(f"{prefect_api}/artifacts/filter",
                           json={"artifacts": {"flow_run_id": {"any_": [run_id]}}}).json()
    kinds = {a["type"]: a for a in artifacts}
    assert {"progress", "table", "markdown"} <= set(kinds)
    assert kinds["progress"]["data"] == 100.0
    assert "Nordlys" in kinds["markdown"]["data"] and "Nordlys" in json.dumps(kinds["table"]["data"])


def test_cloud_key_from_a_secret_block_is_used_and_never_written(prefect_api, tmp_path, data_dir):
    from tests.test_escalation import KEY, PROFILE, BrandServer

    env = {"PREFECT_API_URL": prefect_api}
    saved = subprocess.run([sys.executable, "-c", "from prefect.blocks.system import Secret; "
                            f"Secret(value={KEY!r}).save('mpr-openai-key', overwrite=True)"],
                           env={**os.environ, **env}, capture_output=True, text=True, timeout=120)
    assert saved.returncode == 0, saved.stderr
    image = np.full((360, 640, 3), 255, np.uint8)
    cv2.putText(image, "VALKYRIE", (60, 200), cv2.FONT_HERSHEY_DUPLEX, 2.2, (20, 20, 20), 4)
    cv2.imwrite(str(tmp_path / "board.png"), image)
    brands = write(tmp_path / "brands.yaml", "brands:\n  - name: Nordlys\n")
    profile = write(tmp_path / "profile.yaml", PROFILE)
    cloud = BrandServer("Nordlys")
    try:
        result = run_mpr("detect", tmp_path / "board.png", "--brands", brands, "--profile", profile,
                         "--out", tmp_path / "out", "--set", f"escalate_cloud.base_url={cloud.url}",
                         "--set", "escalate_cloud.api_key_block=mpr-openai-key", "-v", env=env)
    finally:
        cloud.close()
    assert result.returncode == 0, result.stderr
    assert len(cloud.requests) == 1 and cloud.requests[0][0]["authorization"] == f"Bearer {KEY}"
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert [b["brand"] for b in report["brands"]] == ["Nordlys"]
    run_id = report["run_id"]
    logs = httpx.post(f"{prefect_api}/logs/filter", json={"logs": {"flow_run_id": {"any_": [run_id]}}}).json()
    artifacts = httpx.post(f"{prefect_api}/artifacts/filter",
                           json={"artifacts": {"flow_run_id": {"any_": [run_id]}}}).json()
    written = [result.stdout, result.stderr, json.dumps(logs), json.dumps(artifacts),
               *(p.read_bytes().decode("latin-1") for p in (tmp_path / "out").iterdir()),
               *(p.read_bytes().decode("latin-1") for p in data_dir.rglob("*") if p.is_file())]
    assert logs and artifacts and not [w for w in written if KEY in w]
