"""The results database on SQLite and PostgreSQL: migrations, idempotent and atomic writes,
runs that do not block each other, reports rebuilt from rows, the exposure query."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import cv2
import numpy as np
import pytest
from sqlalchemy import func, inspect, select

from mpr.db import models as m
from mpr.db.queries import exposure_per_brand
from mpr.db.results import load_report, save_results, start_run
from mpr.db.session import get_engine, session_scope
from mpr.reporting import REPORT_FILES
from tests.conftest import ROOT, run_mpr
from tests.reports import report


def counts(run_id: int) -> tuple[int, int]:
    with session_scope() as session:
        detections = session.scalar(select(func.count()).select_from(m.Detection).where(m.Detection.run_id == run_id))
        exposures = session.scalar(select(func.count()).select_from(m.Exposure).where(m.Exposure.run_id == run_id))
    return detections, exposures


def test_schema_comes_from_the_migration_and_downgrades_cleanly(db_url):
    from alembic import command
    from alembic.config import Config

    engine = get_engine()
    tables = set(inspect(engine).get_table_names())
    assert {"media_asset", "timeline", "timeline_chunk", "brand", "brand_alias", "run", "detection",
            "exposure", "alembic_version"} <= tables
    assert "brand_exposure" in inspect(engine).get_view_names()
    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(ROOT / "mpr/db/migrations"))
    command.downgrade(config, "base")
    engine.dispose()
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    command.upgrade(config, "head")
    assert "brand_exposure" in inspect(engine).get_view_names()


def test_rewriting_the_same_run_replaces_its_rows(db_url):
    run = start_run("key-1", "match.mp4", "p", {}, "fp", "flow-1")
    save_results(run, report("match.mp4", hits=3))
    again = start_run("key-1", "match.mp4", "p", {}, "fp", "flow-2")
    save_results(again, report("match.mp4", hits=5))
    assert again == run and counts(run) == (5, 1)
    with session_scope() as session:
        (row,) = session.scalars(select(m.Run)).all()
        assert (row.status, row.flow_run_id) == ("completed", "flow-2")
    (exposure,) = exposure_per_brand()
    assert (exposure["source"], exposure["brand"], exposure["exposure_s"]) == ("match.mp4", "Nordlys", 5.0)


def test_exposure_query_uses_the_newest_completed_run_per_source_and_profile(db_url):
    for key, source, hits in (("a", "m1.mp4", 2), ("b", "m2.mp4", 4), ("c", "m1.mp4", 6)):
        save_results(start_run(key, source, "p", {}, key, None), report(source, hits))
        time.sleep(0.01)
    start_run("d", "m1.mp4", "p", {}, "d", None)  # running: not counted
    rows = {r["source"]: r["exposure_s"] for r in exposure_per_brand()}
    assert rows == {"m1.mp4": 6.0, "m2.mp4": 4.0}
    assert load_report("m1.mp4").brands[0].exposure_s == 6.0


# A child process writes a run's rows and is killed inside the transaction.
WRITER = textwrap.dedent("""
    import sys, time
    from sqlalchemy import event
    from sqlalchemy.orm import Session
    from mpr.db.results import save_results, start_run
    from tests.reports import report  # not tests.conftest: it clears MPR_DATABASE_URL

    run = start_run(sys.argv[1], sys.argv[2], "p", {}, "fp", None)
    if sys.argv[3] == "hang":
        @event.listens_for(Session, "before_commit")
        def hang(session):
            print("WRITTEN", flush=True)  # rows inserted, not committed
            time.sleep(60)
    save_results(run, report(sys.argv[2], hits=int(sys.argv[4])))
    print("DONE", flush=True)
""")


def writer(run_key: str, source: str, mode: str, hits: int) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", WRITER, run_key, source, mode, str(hits)], cwd=ROOT,
                            stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})


def wait_for(proc: subprocess.Popen, word: str) -> None:
    line = proc.stdout.readline()
    assert line.strip() == word, f"child said {line!r}"


def test_a_run_killed_mid_write_leaves_no_partial_rows(db_url):
    proc = writer("killed", "m.mp4", "hang", 2000)
    wait_for(proc, "WRITTEN")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with session_scope() as session:
        run = session.scalars(select(m.Run).where(m.Run.run_key == "killed")).one()
        assert run.status == "running"  # never completed
        run_id = run.id
    assert counts(run_id) == (0, 0)
    # the same run again completes normally and is not blocked by the dead writer
    done = writer("killed", "m.mp4", "go", 7)
    wait_for(done, "DONE")
    assert done.wait(timeout=60) == 0 and counts(run_id) == (7, 1)


def test_runs_on_different_sources_do_not_block_each_other(db_url):
    """One run holds its write transaction open; another source's run writes meanwhile.
    PostgreSQL: row locks, so the second finishes first. SQLite has one writer at a time:
    the second waits for the first (busy timeout) and both complete."""
    slow = writer("slow", "a.mp4", "hang", 50)
    wait_for(slow, "WRITTEN")
    start = time.perf_counter()
    finished = threading.Event()

    def other() -> None:
        save_results(start_run("fast", "b.mp4", "p", {}, "fb", None), report("b.mp4", 4))
        finished.set()

    thread = threading.Thread(target=other, daemon=True)
    thread.start()
    if db_url.startswith("postgresql"):
        assert finished.wait(timeout=20), "a run on another source waited for the open transaction"
        assert time.perf_counter() - start < 20
    else:
        assert not finished.wait(timeout=2)  # SQLite: queued behind the open write transaction
    slow.send_signal(signal.SIGKILL)
    slow.wait()
    assert finished.wait(timeout=60)
    with session_scope() as session:
        fast = session.scalars(select(m.Run).where(m.Run.run_key == "fast")).one()
        assert fast.status == "completed"
    assert counts(fast.id) == (4, 1)


PROFILE = """
name: db_test
pipeline:
  stages: [extract_frames, filter_scenes, run_ocr, match_brands, compile_report]
  edges:
    - extract_frames -> filter_scenes
    - filter_scenes -> run_ocr
    - run_ocr -> match_brands
    - match_brands -> compile_report [resolved]
configs:
  run_ocr: {runtime: onnxruntime}
"""


@pytest.fixture
def still(tmp_path, data_dir):
    image = np.full((360, 640, 3), 255, np.uint8)
    cv2.putText(image, "NORDLYS", (60, 200), cv2.FONT_HERSHEY_DUPLEX, 2.2, (20, 20, 20), 4)
    cv2.imwrite(str(tmp_path / "frame.jpg"), image)
    (tmp_path / "profile.yaml").write_text(PROFILE)
    (tmp_path / "brands.yaml").write_text("brands:\n  - name: Nordlys\n  - name: Kiwi\n")
    return tmp_path


def test_cli_results_land_in_the_database_and_rebuild_byte_for_byte(db_url, still):
    args = [still / "frame.jpg", "--brands", still / "brands.yaml", "--profile", still / "profile.yaml"]
    for _ in range(2):  # the same run twice: one run row, rows replaced not duplicated
        done = run_mpr("detect", *args, "--out", still / "out")
        assert done.returncode == 0, done.stderr
    with session_scope() as session:
        (run,) = session.scalars(select(m.Run)).all()
        assert run.status == "completed" and run.profile == "db_test" and run.flow_run_id
    assert counts(run.id) == (1, 1)
    rebuilt = run_mpr("report", str(still / "frame.jpg"), "--out", still / "rebuilt")
    assert rebuilt.returncode == 0, rebuilt.stderr
    for name in REPORT_FILES:  # exposures and per-detection measures survive the database
        assert (still / "rebuilt" / name).read_bytes() == (still / "out" / name).read_bytes(), name
    query = run_mpr("query", "--json")
    (row,) = json.loads(query.stdout)
    assert (row["brand"], row["exposure_s"], row["profile"]) == ("Nordlys", 0.0, "db_test")  # a still: 0 s


def test_unreachable_or_unsupported_database_is_one_line_and_writes_nothing(still):
    args = [still / "frame.jpg", "--brands", still / "brands.yaml", "--profile", still / "profile.yaml",
            "--out", still / "out"]
    down = run_mpr("detect", *args, env={"MPR_DATABASE_URL": "postgresql+psycopg://postgres:hunter2@127.0.0.1:9/x",
                                         "MPR_DB_ATTEMPTS": "3"})
    *retries, error = down.stderr.splitlines()  # a notice per retry, then one error line
    assert down.returncode == 1 and "Traceback" not in down.stderr
    assert len(retries) == 2 and all("unavailable (attempt" in line and "retrying in" in line for line in retries)
    assert error.startswith("mpr: error: database postgresql+psycopg://postgres:***@127.0.0.1:9/x unavailable")
    assert "hunter2" not in down.stderr and not (still / "out").exists()
    odd = run_mpr("detect", *args, env={"MPR_DATABASE_URL": "mysql://root@127.0.0.1/x"})
    assert odd.returncode == 2 and "unsupported database" in odd.stderr
    missing = run_mpr("report", "nothing-like-this.mp4")
    assert missing.returncode == 2 and "no completed run matches" in missing.stderr


def test_unreachable_storage_is_one_line_and_writes_nothing(db_url, still):
    """S3 down: the S3 client's retries with backoff (MPR_S3_ATTEMPTS), then one line before any row or file."""
    s3_down = {"S3_ENDPOINT_URL": "http://127.0.0.1:9", "AWS_ACCESS_KEY_ID": "mpr", "AWS_SECRET_ACCESS_KEY": "hunter2",
               "MPR_S3_ATTEMPTS": "2"}
    options = ["--brands", still / "brands.yaml", "--profile", still / "profile.yaml", "--out", still / "out"]
    down = run_mpr("detect", still / "frame.jpg", *options, env={**s3_down, "MPR_ARTIFACTS": "s3://mpr-art/x"})
    source_down = run_mpr("detect", "s3://mpr-media/frame.jpg", *options, env=s3_down)
    for done in (down, source_down):
        assert done.returncode == 1 and done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
        assert "hunter2" not in done.stderr and not (still / "out").exists()
    assert down.stderr.startswith("mpr: error: artifact store s3://mpr-art/x: unreachable (Could not connect")
    assert source_down.stderr.startswith("mpr: error: source s3://mpr-media/frame.jpg: storage unreachable (Could")
    with session_scope() as session:
        assert session.scalars(select(m.Run)).all() == []


def test_a_database_that_comes_back_is_retried_and_one_that_does_not_fails_clearly(monkeypatch):
    """Connections dropped by a real TCP proxy in front of PostgreSQL: two drops are
    retried through (backoff), more drops than attempts end in one MprError."""
    from sqlalchemy.engine import make_url

    from mpr.db.session import get_engine, reset_engines
    from mpr.errors import MprError
    from tests.services import FlakyProxy, fresh_pg_database

    url, drop = fresh_pg_database()
    target = make_url(url)
    try:
        monkeypatch.setenv("MPR_DB_ATTEMPTS", "4")
        flaky = FlakyProxy(target.host, target.port, drop=2)
        reset_engines()
        engine = get_engine(target.set(port=flaky.port).render_as_string(hide_password=False))
        with engine.connect() as connection:
            assert connection.execute(select(func.count()).select_from(m.Run)).scalar() == 0
        assert flaky.dropped == 2
        engine.dispose()

        down = FlakyProxy(target.host, target.port, drop=100)
        reset_engines()
        with pytest.raises(MprError, match=r"database .* unavailable: "):
            get_engine(target.set(port=down.port).render_as_string(hide_password=False))
        assert down.dropped == 4
        flaky.close(), down.close()
    finally:
        reset_engines()
        drop()
