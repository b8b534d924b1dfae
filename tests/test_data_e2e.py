"""End to end through the data layer: a timeline analysed chunk by chunk; media, artifacts and
Prefect results in a real S3 server, rows in PostgreSQL, and a second machine replaying it."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import select

from mpr.db import models as m
from mpr.db.session import reset_engines, session_scope
from tests.conftest import ROOT, run_mpr
from tests.services import fresh_pg_database
from tests.test_database import PROFILE as OCR_PROFILE

# OCR on every second frame of the bundled sample: the cheapest run that finds real brands.
PROFILE = OCR_PROFILE.replace("name: db_test", "name: data_e2e") + "  extract_frames: {fps: 0.5, chunk_s: 10}\n"
SAMPLE = ROOT / "samples" / "demo.mp4"
BRANDS = ROOT / "samples" / "brands.yaml"


@pytest.fixture(scope="module")
def aligned_sample(tmp_path_factory) -> Path:
    """The sample with a keyframe every 2 s: stream-copy chunks of 8 s then start on the
    0.5 fps sampling grid, so chunk by chunk must give exactly what the whole file gives."""
    from mpr.media import ffmpeg

    path = tmp_path_factory.mktemp("aligned") / "demo.mp4"
    subprocess.run([ffmpeg(), "-hide_banner", "-loglevel", "error", "-y", "-i", str(SAMPLE), "-an", "-c:v", "libx264",
                    "-preset", "ultrafast", "-crf", "16", "-force_key_frames", "expr:gte(t,n_forced*2)", str(path)],
                   check=True)
    return path


@pytest.fixture
def profile(tmp_path) -> Path:
    path = tmp_path / "profile.yaml"
    path.write_text(PROFILE)
    return path


def stage_states(report: dict) -> set[str]:
    return {s["state"] for s in report["stages"]}


def test_a_timeline_is_analysed_per_chunk_and_merged_on_the_source_clock(db_url, data_dir, tmp_path, monkeypatch,
                                                                         profile, aligned_sample):
    from flows.detect import detect_brands
    from flows.media import chunk_source

    monkeypatch.setenv("MPR_MEDIA_IN", str(tmp_path / "media-in"))
    timeline = chunk_source(str(aligned_sample), chunk_s=8.0)
    assert timeline["offsets_s"] == [0.0, 8.0, 16.0] and abs(timeline["duration_s"] - 20.0) < 0.1
    whole = detect_brands(str(aligned_sample), str(BRANDS), str(profile))
    merged = detect_brands(f"timeline:{timeline['timeline_id']}", str(BRANDS), str(profile), out=str(tmp_path / "o"))
    assert merged.source == f"timeline:{timeline['name']}" and merged.duration_s == pytest.approx(20.0, abs=0.1)
    # segments and exposures joined across chunk borders; shot numbers may differ: each chunk is its
    # own source, so a cut falling exactly on a chunk border is not seen (a known limit, README)
    def unnumbered(brands):
        return [b.model_dump(exclude={"exposures": {"__all__": {"shot"}}}) for b in brands]
    assert unnumbered(merged.brands) == unnumbered(whole.brands) and whole.brands
    assert [(d.t, d.brand) for d in merged.detections] == [(d.t, d.brand) for d in whole.detections]
    with session_scope() as session:
        run = session.scalars(select(m.Run).where(m.Run.timeline_id == timeline["timeline_id"])).one()
        assert run.status == "completed"
    again = detect_brands(f"timeline:{timeline['timeline_id']}", str(BRANDS), str(profile))
    assert {s.state for s in again.stages} == {"cached"}


def test_second_machine_replays_from_s3_and_postgresql_with_every_stage_cached(s3_env, tmp_path, profile,
                                                                                monkeypatch):
    url, drop = fresh_pg_database()
    try:
        media = s3_env.url("mpr-media")
        env = {"MPR_DATABASE_URL": url, "MPR_MEDIA_IN": media, "MPR_ARTIFACTS": s3_env.url("mpr-media", "artifacts"),
               "MPR_RESULTS": s3_env.url("mpr-results", "prefect")}
        import fsspec

        fs = fsspec.filesystem("s3")
        fs.put_file(str(SAMPLE), f"{media[5:]}/matches/demo.mp4")
        source = f"{media}/matches/demo.mp4"
        reports = []
        for machine in ("a", "b"):  # each "machine": its own empty data dir; same buckets and database
            out = s3_env.url("mpr-media", "reports", machine)  # report files in the bucket too
            done = run_mpr("detect", source, "--brands", BRANDS, "--profile", profile, "--out", out,
                           env={**env, "MPR_DATA_DIR": str(tmp_path / f"data-{machine}")})
            assert done.returncode == 0, done.stderr
            assert f"report: {out}/report.json" in done.stdout
            reports.append(json.loads(fs.cat_file(f"{out[5:]}/report.json")))
        first, second = reports
        assert stage_states(first) == {"completed"} and stage_states(second) == {"cached"}
        assert [b["brand"] for b in second["brands"]] == [b["brand"] for b in first["brands"]] and first["brands"]
        assert not list((tmp_path / "data-b").glob("results/*"))  # results came from S3, not a local folder
        assert fs.find(f"{s3_env.url('mpr-results', 'prefect')[5:]}")  # checkpoints are objects in the bucket
        monkeypatch.setenv("MPR_DATABASE_URL", url)
        reset_engines()
        with session_scope() as session:
            (run,) = session.scalars(select(m.Run)).all()  # one run, its rows replaced by the replay
            assert run.source == "matches/demo.mp4" and run.status == "completed"  # key relative to media-in
            detections = session.scalars(select(m.Detection).where(m.Detection.run_id == run.id)).all()
            assert len(detections) == sum(b["detections"] for b in second["brands"])
        reset_engines()
    finally:
        drop()
    shutil.rmtree(tmp_path / "data-a", ignore_errors=True)
