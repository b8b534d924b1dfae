"""`mpr server up`: a real Prefect server on a fresh PostgreSQL database, and its input errors."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from sqlalchemy import create_engine, inspect

from tests.conftest import ROOT, run_mpr
from tests.prefect_server import free_port, wait_healthy
from tests.services import PG_SERVER, fresh_pg_database, need_service, pg_available


@pytest.mark.slow
def test_server_up_runs_prefect_on_postgresql(tmp_path):
    url, drop = fresh_pg_database()
    port = free_port()
    home = tmp_path / "prefect-home"
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_API_URL": ""}
    env.pop("PREFECT_API_DATABASE_CONNECTION_URL", None)
    log = open(tmp_path / "server.log", "w+")
    # The plain postgresql:// form: `mpr server up` turns it into the asyncpg one Prefect needs.
    plain = url.replace("postgresql+psycopg://", "postgresql://")
    server = subprocess.Popen([sys.executable, "-m", "mpr.cli", "server", "up", "--port", str(port),
                               "--database", plain], env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                              start_new_session=True)
    api = f"http://127.0.0.1:{port}/api"
    try:
        wait_healthy(api, server, tmp_path / "server.log")
        log.seek(0)
        assert log.readline().strip() == f"export PREFECT_API_URL={api}"
        engine = create_engine(url)
        try:
            tables = set(inspect(engine).get_table_names())
        finally:
            engine.dispose()
        assert {"flow_run", "task_run", "deployment"} <= tables
        assert not (home / "prefect.db").exists()  # PostgreSQL, not Prefect's default SQLite
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=60)
        log.close()
        drop()


@pytest.mark.parametrize("how", ["flag", "env"])
def test_server_up_rejects_a_non_postgresql_url(how):
    args, env = (["--database", "mysql://x"], {}) if how == "flag" else ([], {"MPR_PREFECT_DATABASE_URL": "mysql://x"})
    result = run_mpr("server", "up", "--port", str(free_port()), *args, env=env)
    assert result.returncode == 2
    assert result.stderr.startswith("mpr: error: ") and result.stderr.count("\n") == 1, result.stderr
    assert "postgresql" in result.stderr and "Traceback" not in result.stderr
    assert result.stdout == ""


def test_server_up_fails_fast_on_unreachable_postgresql():
    started = time.monotonic()
    result = run_mpr("server", "up", "--port", str(free_port()),
                     "--database", "postgresql://postgres:s3cret@127.0.0.1:1/prefect")
    assert time.monotonic() - started < 30
    assert result.returncode == 1
    assert result.stderr.startswith("mpr: error: cannot reach PostgreSQL") and result.stderr.count("\n") == 1
    assert "s3cret" not in result.stderr and "Traceback" not in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize("driver", ["postgresql", "postgresql+psycopg", "postgresql+asyncpg"])
def test_postgres_url_is_given_to_prefect_in_the_asyncpg_form(driver):
    from mpr.server import postgres_url

    need_service(pg_available(), "PostgreSQL")
    url = PG_SERVER.replace("postgresql+psycopg://", f"{driver}://")
    assert postgres_url(url) == PG_SERVER.replace("postgresql+psycopg://", "postgresql+asyncpg://")
