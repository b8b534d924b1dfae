"""Reliability: two runs of the same source at once share caches and rows without damage;
a run killed mid-way (SIGKILL) and run again reuses what it finished and loses nothing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from tests.conftest import ROOT, mpr_env, write
from tests.media import small_clip
from tests.test_database import PROFILE

pytestmark = pytest.mark.slow


def test_two_runs_of_the_same_source_at_once(db_url, data_dir, tmp_path):
    from mpr.db import models as m
    from mpr.db.session import session_scope

    small_clip(tmp_path)
    write(tmp_path / "profile.yaml", PROFILE)
    args = [sys.executable, "-m", "mpr.cli", "detect", str(tmp_path / "match.mp4"), "--brands",
            str(tmp_path / "brands.yaml"), "--profile", str(tmp_path / "profile.yaml"),
            "--set", "extract_frames.chunk_s=2"]
    runs = [subprocess.Popen([*args, "--out", str(tmp_path / f"out{i}")], cwd=ROOT, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=mpr_env()) for i in range(2)]
    results = [(run.wait(timeout=600), run.stderr.read()) for run in runs]
    assert [rc for rc, _ in results] == [0, 0], results
    reports = [json.loads((tmp_path / f"out{i}" / "report.json").read_text()) for i in range(2)]
    assert reports[0]["brands"] == reports[1]["brands"] and reports[0]["brands"]

    with session_scope() as session:  # one run key, one row, its rows written once
        [run] = session.scalars(select(m.Run)).all()
        detections = session.scalar(select(func.count()).select_from(m.Detection).where(m.Detection.run_id == run.id))
    assert run.status == "completed"
    assert detections == sum(b["detections"] for b in reports[0]["brands"])

    # the caches both runs wrote are whole: a third run replays everything
    third = subprocess.run([*args, "--out", str(tmp_path / "out3"), "--json"], cwd=ROOT, capture_output=True,
                           text=True, timeout=600, env=mpr_env())
    assert third.returncode == 0, third.stderr
    assert {s["state"] for s in json.loads(third.stdout)["stages"]} == {"cached"}


def test_concurrent_starts_of_one_run_key_share_one_row(db_url):
    """Runs that start together race to create their row: both must get it, neither an error."""
    import threading

    from mpr.db.results import start_run

    barrier, ids, errors = threading.Barrier(6), [], []

    def start() -> None:
        barrier.wait()
        try:
            ids.append(start_run("race-key", "match.mp4", "p", {}, "fp", None))
        except Exception as exc:  # noqa: BLE001 - the assertion below shows it
            errors.append(repr(exc))

    threads = [threading.Thread(target=start) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors and len(ids) == 6 and len(set(ids)) == 1, errors


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_a_run_killed_mid_way_reruns_from_its_finished_stages(db_url, data_dir, tmp_path):
    """SIGKILL the whole process group while the run waits after run_ocr (a deterministic
    'mid-way'), then run the same command again: the stages that finished come back
    cached, the rest run, and the report and rows are whole."""
    from mpr.db import models as m
    from mpr.db.session import session_scope

    small_clip(tmp_path)
    write(tmp_path / "profile.yaml", PROFILE)
    args = [sys.executable, "-m", "mpr.cli", "detect", str(tmp_path / "match.mp4"), "--brands",
            str(tmp_path / "brands.yaml"), "--profile", str(tmp_path / "profile.yaml"),
            "--set", "extract_frames.chunk_s=2", "--no-video", "--out", str(tmp_path / "out")]
    first = subprocess.Popen([*args, "--pause-after", "run_ocr"], cwd=ROOT, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True, start_new_session=True, env=mpr_env())
    try:
        deadline, seen = time.monotonic() + 300, []
        while time.monotonic() < deadline and not any("paused after run_ocr" in line for line in seen):
            line = first.stderr.readline()  # progress and the pause line go to stderr
            if not line:
                break
            seen.append(line)
        assert any("paused after run_ocr" in line for line in seen), seen
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(timeout=60)
    assert first.returncode == -signal.SIGKILL
    assert not (tmp_path / "out" / "report.json").exists()  # nothing half-written

    again = subprocess.run([*args, "--json"], cwd=ROOT, capture_output=True, text=True, timeout=600, env=mpr_env())
    assert again.returncode == 0, again.stderr
    report = json.loads(again.stdout)
    assert {s["name"]: s["state"] for s in report["stages"]} == {
        "extract_frames": "cached", "filter_scenes": "cached", "run_ocr": "cached",
        "match_brands": "completed", "compile_report": "completed"}
    assert report["brands"] and json.loads((tmp_path / "out" / "report.json").read_text())["brands"] == report["brands"]
    with session_scope() as session:  # the killed run's row was taken over, not duplicated
        [run] = session.scalars(select(m.Run)).all()
        detections = session.scalar(select(func.count()).select_from(m.Detection).where(m.Detection.run_id == run.id))
    assert run.status == "completed"
    assert detections == sum(b["detections"] for b in report["brands"])



def proc_stat(pid: int) -> tuple[str, int]:
    """(state, parent pid) from /proc; state 'Z' (a zombie) or '' (gone) means ended."""
    try:
        state, ppid = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[:2]
        return state, int(ppid)
    except (OSError, ValueError):
        return "", 0


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_killed_mpr_leaves_no_temporary_prefect_server_behind(data_dir, tmp_path):
    """Without PREFECT_API_URL, Prefect starts a temporary server; SIGKILL only the mpr
    process (as kill -9 or the OOM killer would) and that server must stop too."""
    small_clip(tmp_path)
    env = {k: v for k, v in mpr_env().items() if k != "PREFECT_API_URL"}
    env["PREFECT_HOME"] = str(tmp_path / "prefect-home")
    mpr = subprocess.Popen([sys.executable, "-m", "mpr.cli", "detect", str(tmp_path / "match.mp4"), "--brands",
                            str(tmp_path / "brands.yaml"), "--profile", "full_frame_ocr", "--no-video",
                            "--out", str(tmp_path / "out"), "--pause-after", "extract_frames"],
                           cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    try:
        seen = []
        while not any("paused after extract_frames" in line for line in seen):
            line = mpr.stderr.readline()
            assert line, seen
            seen.append(line)
        children = [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()
                    and proc_stat(int(p.name))[1] == mpr.pid]
        servers = [pid for pid in children
                   if b"prefect.server.api.server:create_app" in Path(f"/proc/{pid}/cmdline").read_bytes()]
        assert len(servers) == 1, children
    finally:
        mpr.kill()  # SIGKILL to mpr alone, not its process group: no atexit hook runs
        mpr.wait(timeout=60)
    deadline = time.monotonic() + 20
    while proc_stat(servers[0])[0] not in ("", "Z") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert proc_stat(servers[0])[0] in ("", "Z"), "the temporary Prefect server outlived mpr"

@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_storage_that_goes_away_mid_run_fails_the_run_cleanly(db_url, data_dir, tmp_path, s3_server):
    """The artifact store (real SeaweedFS behind a real TCP proxy) stops answering after the
    run has stored a few frames: retries with backoff, then one error line, exit 1, the run
    row marked failed, no report written, and the S3 secret nowhere in the output."""
    import uuid
    from urllib.parse import urlsplit

    from mpr.db import models as m
    from mpr.db.session import session_scope
    from tests.services import FlakyProxy

    small_clip(tmp_path)
    write(tmp_path / "profile.yaml", PROFILE)
    target = urlsplit(s3_server.endpoint)
    proxy = FlakyProxy(target.hostname, target.port, drop=0, down_after_puts=3)
    env = {"S3_ENDPOINT_URL": f"http://127.0.0.1:{proxy.port}", "AWS_ACCESS_KEY_ID": s3_server.key,
           "AWS_SECRET_ACCESS_KEY": s3_server.secret, "AWS_DEFAULT_REGION": s3_server.region,
           "MPR_S3_ATTEMPTS": "2", "MPR_ARTIFACTS": f"s3://mpr-results/t-{uuid.uuid4().hex[:12]}"}
    try:
        done = subprocess.run(
            [sys.executable, "-m", "mpr.cli", "detect", str(tmp_path / "match.mp4"), "--brands",
             str(tmp_path / "brands.yaml"), "--profile", str(tmp_path / "profile.yaml"), "--no-video",
             "--out", str(tmp_path / "out")], cwd=ROOT, capture_output=True, text=True, timeout=600,
            env=mpr_env(env))
    finally:
        proxy.close()
    assert proxy.puts_left < 0 and proxy.dropped > 0  # it went down mid-run and refused the retries
    assert done.returncode == 1, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("mpr: error: ") and "Traceback" not in done.stderr, done.stderr
    assert s3_server.secret not in done.stderr + done.stdout
    assert not (tmp_path / "out" / "report.json").exists()
    with session_scope() as session:
        [run] = session.scalars(select(m.Run)).all()
    assert run.status == "failed"
