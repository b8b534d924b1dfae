"""batch_detect on real clips, real databases (SQLite and PostgreSQL) and Prefect's own runs:
only new videos are analysed, at most max_concurrent at once, and one bad video fails alone."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import imageio_ffmpeg
import numpy as np
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterId,
    FlowRunFilterParentTaskRunId,
)
from sqlalchemy import select

from flows.batch import BatchError, batch_detect, report_folder
from flows.media import scan_media
from mpr.db import models as m
from mpr.reporting import REPORT_FILES, VIDEO_FILE
from mpr.db.queries import pending_assets
from mpr.db.results import fail_run, save_results, start_run
from mpr.db.session import session_scope
from mpr.errors import InputError
from mpr.media import register_asset
from tests.test_database import PROFILE  # OCR only: the cheapest profile that finds real brands
from tests.reports import report
from tests.test_media_flows import write_wav

SLOW = pytest.mark.slow  # a few OCR runs each: tens of seconds


def text_clip(path: Path, text: str, seconds: int = 2, fps: int = 5, size=(320, 180)) -> Path:
    """A still board with one brand name: every sampled frame reads TEXT."""
    w, h = size
    path.parent.mkdir(parents=True, exist_ok=True)
    image = np.full((h, w, 3), 255, np.uint8)
    cv2.putText(image, text, (20, 110), cv2.FONT_HERSHEY_DUPLEX, 1.4, (20, 20, 20), 3)
    writer = imageio_ffmpeg.write_frames(str(path), (w, h), fps=fps, codec="libx264", macro_block_size=1,
                                         output_params=["-crf", "18"], ffmpeg_log_level="error")
    writer.send(None)
    for _ in range(seconds * fps):
        writer.send(image.tobytes())
    writer.close()
    return path


@pytest.fixture
def batch(tmp_path, monkeypatch, data_dir, db_url) -> dict:
    root = tmp_path / "media-in"
    monkeypatch.setenv("MPR_MEDIA_IN", str(root))
    (tmp_path / "profile.yaml").write_text(PROFILE)
    (tmp_path / "brands.yaml").write_text("brands:\n  - name: Nordlys\n  - name: Kiwi\n  - name: Fjord\n")
    return {"root": root, "brands": str(tmp_path / "brands.yaml"), "profile": str(tmp_path / "profile.yaml"),
            "out": str(tmp_path / "reports")}


def run_batch(b: dict, **kwargs):
    return batch_detect(b["brands"], b["profile"], out=b["out"], **kwargs)


def completed_runs() -> dict[str, m.Run]:
    with session_scope() as session:
        rows = session.execute(select(m.MediaAsset.key, m.Run).join(m.Run, m.Run.asset_id == m.MediaAsset.id)
                               .where(m.Run.status == "completed")).all()
        session.expunge_all()
    return {key: run for key, run in rows}


def report_brands(b: dict, key: str) -> list[str]:
    folder = Path(report_folder(b["out"], key))
    assert sorted(p.name for p in folder.iterdir()) == sorted([*REPORT_FILES, VIDEO_FILE])
    report = json.loads((folder / "report.json").read_text())
    assert report["source"].endswith(key) and report["profile"] == "db_test"
    return [brand["brand"] for brand in report["brands"]]


def detect_runs(flow_run_id) -> tuple[list, dict[str, str]]:
    """The batch run's detect-asset task runs by start time, and {child flow run name: its parent
    task run's name}: a flow called in a task is a child run whose stand-in task run names that task."""
    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
        names = {run.id: run.name for run in runs}
        stand_ins = {run.id: names[run.task_inputs["__parents__"][0].id] for run in runs
                     if run.name.startswith("detect-brands-") and run.task_inputs.get("__parents__")}
        children = client.read_flow_runs(flow_run_filter=FlowRunFilter(
            parent_task_run_id=FlowRunFilterParentTaskRunId(any_=list(stand_ins))))
    tasks = sorted((r for r in runs if r.name.startswith("detect-asset[")), key=lambda r: r.start_time)
    return tasks, {child.name: stand_ins[child.parent_task_run_id] for child in children}


def test_pending_assets_are_videos_without_a_completed_run_of_the_profile(db_url):
    with session_scope() as session:
        ids = {key: register_asset(session, "in", key, {"kind": kind})[0].id for key, kind in (
            ("done.mp4", "video"), ("other.mp4", "video"), ("failed.mp4", "video"), ("by-key.mp4", "video"),
            ("new.mp4", "video"), ("song.mp3", "audio"), ("chunks/x/0.mp4", "video"))}
        session.add(m.Timeline(name="x.mp4", chunk_s=60.0,
                               chunks=[m.TimelineChunk(position=0, asset_id=ids["chunks/x/0.mp4"], offset_s=0.0)]))
    runs = [("done.mp4", "p", ids["done.mp4"], True), ("other.mp4", "q", ids["other.mp4"], True),
            ("failed.mp4", "p", ids["failed.mp4"], False),
            ("by-key.mp4", "p", None, True)]  # a run made before the file was registered: by its key
    for key, profile, asset, completed in runs:
        run = start_run(f"key-{key}", key, profile, {}, "fp", None, asset_id=asset)
        if completed:
            save_results(run, report(key))
        else:
            fail_run(run, "boom")
    assert pending_assets("p") == ["failed.mp4", "new.mp4", "other.mp4"]
    assert pending_assets("q") == ["by-key.mp4", "done.mp4", "failed.mp4", "new.mp4"]
    assert pending_assets("p", include_done=True) == ["by-key.mp4", "done.mp4", "failed.mp4", "new.mp4", "other.mp4"]
    assert pending_assets("p", kind="audio") == ["song.mp3"]


@SLOW
def test_only_new_videos_are_analysed_each_in_its_own_folder(batch):
    text_clip(batch["root"] / "matches" / "a.mp4", "NORDLYS")
    text_clip(batch["root"] / "b.mp4", "KIWI")
    write_wav(batch["root"] / "commentary.wav")  # audio: registered, never analysed

    first = run_batch(batch, max_concurrent=2)
    assert first["scanned"]["registered"] == 3 and not first["scanned"]["failed"]
    assert first["new"] == first["completed"] == ["b.mp4", "matches/a.mp4"] and first["failed"] == {}
    assert first["reports"] == {k: report_folder(batch["out"], k) for k in first["new"]}
    assert len(set(first["reports"].values())) == 2 and "/" not in first["reports"]["matches/a.mp4"].split("/")[-1]
    runs = completed_runs()
    assert sorted(runs) == ["b.mp4", "matches/a.mp4"]
    assert {(r.source, r.profile) for r in runs.values()} == {("b.mp4", "db_test"), ("matches/a.mp4", "db_test")}
    assert report_brands(batch, "matches/a.mp4") == ["Nordlys"] and report_brands(batch, "b.mp4") == ["Kiwi"]

    again = run_batch(batch, max_concurrent=2)  # nothing new: no detect run at all
    assert again["new"] == again["completed"] == [] and again["scanned"]["registered"] == 0

    text_clip(batch["root"] / "later" / "c.mp4", "FJORD")
    third = run_batch(batch)
    assert third["new"] == third["completed"] == ["later/c.mp4"] and third["scanned"]["registered"] == 1
    assert report_brands(batch, "later/c.mp4") == ["Fjord"]
    assert len(completed_runs()) == 3

    forced = run_batch(batch, force=True, max_concurrent=3)  # every video again (all cached)
    assert forced["completed"] == ["b.mp4", "later/c.mp4", "matches/a.mp4"]
    assert len(completed_runs()) == 3  # the same runs, rows replaced


@SLOW
def test_a_bad_video_fails_alone_and_at_most_max_concurrent_run_at_once(tmp_path, monkeypatch, data_dir):
    root = tmp_path / "media-in"
    monkeypatch.setenv("MPR_MEDIA_IN", str(root))
    (tmp_path / "profile.yaml").write_text(PROFILE)
    (tmp_path / "brands.yaml").write_text("brands:\n  - name: Nordlys\n  - name: Kiwi\n")
    monkeypatch.setenv("MPR_MEDIA_OUT", str(tmp_path / "media-out"))  # where reports go by default
    b = {"brands": str(tmp_path / "brands.yaml"), "profile": str(tmp_path / "profile.yaml"),
         "out": str(tmp_path / "media-out")}
    (root / "junk.mp4").parent.mkdir(parents=True)
    (root / "junk.mp4").write_bytes(b"\x00garbage" * 64)  # ffmpeg cannot read it: the scan does not register it
    text_clip(root / "broken.mp4", "NORDLYS")
    assert scan_media()["registered"] == 1
    (root / "broken.mp4").write_bytes(b"\x00garbage" * 64)  # registered, then corrupted before its run
    text_clip(root / "good.mp4", "KIWI")

    state = batch_detect(b["brands"], b["profile"], max_concurrent=1, return_state=True)
    assert state.is_failed() and "1 of 2 videos failed: broken.mp4: " in state.message
    error = state.result(raise_on_failure=False)
    assert isinstance(error, BatchError)
    summary = error.summary
    assert summary["scanned"]["failed"] == ["junk.mp4"] and summary["scanned"]["registered"] == 1
    assert summary["new"] == ["broken.mp4", "good.mp4"] and summary["completed"] == ["good.mp4"]
    assert list(summary["failed"]) == ["broken.mp4"] and "not a video" in summary["failed"]["broken.mp4"]
    assert "\n" not in summary["failed"]["broken.mp4"]
    assert sorted(completed_runs()) == ["good.mp4"] and report_brands(b, "good.mp4") == ["Kiwi"]
    assert not Path(report_folder(b["out"], "broken.mp4")).exists()

    tasks, children = detect_runs(state.state_details.flow_run_id)
    assert len(tasks) == 2 and {t.state.name for t in tasks} == {"Completed", "Failed"}
    assert tasks[0].end_time <= tasks[1].start_time  # max_concurrent=1: one after the other
    assert children == {"broken.mp4": "detect-asset[broken.mp4]", "good.mp4": "detect-asset[good.mp4]"}

    with pytest.raises(BatchError, match="1 of 1 videos failed"):  # the next batch retries only the failure
        run_batch(b)


@pytest.mark.parametrize("kwargs, message", [
    ({"max_concurrent": 0}, "max_concurrent 0: want a whole number from 1 to 16"),
    ({"max_concurrent": 17}, "max_concurrent 17"),
    ({"out": "ftp://host/x"}, "unsupported scheme 'ftp'"),
    ({"overrides": {"run_ocr": {"nope": 1}}}, "nope"),
])
def test_bad_parameters_fail_before_any_scan(tmp_path, monkeypatch, data_dir, kwargs, message):
    root = tmp_path / "media-in"
    monkeypatch.setenv("MPR_MEDIA_IN", str(root))
    text_clip(root / "a.mp4", "NORDLYS")
    (tmp_path / "profile.yaml").write_text(PROFILE)
    (tmp_path / "brands.yaml").write_text("brands:\n  - name: Nordlys\n")
    with pytest.raises(InputError, match=message):
        batch_detect(str(tmp_path / "brands.yaml"), str(tmp_path / "profile.yaml"), **kwargs)
    assert not (data_dir / "mpr.db").exists()  # not even the database was touched
