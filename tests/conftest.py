"""Shared fixtures: an isolated MPR data dir per test, and the bundled sample."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

import pytest

from mpr.settings import apply_offline_defaults

# Before any test module imports Prefect, which reads its settings once, at import: a test
# module that starts Prefect's temporary server without importing flows/ (which applies them
# too) would otherwise give it Prefect's 20-s start-up limit, which a fresh install on a slow
# 2-core CPU exceeds (the first start compiles Prefect's modules and migrates its database).
apply_offline_defaults()

from tests.services import db_url  # noqa: E402, F401  (fixture: SQLite and PostgreSQL)
from tests.s3server import s3_env, s3_server  # noqa: E402, F401

ROOT = Path(__file__).resolve().parent.parent

# In-process flows only (run_mpr gives the CLI a user's environment): Prefect logs
# "Stopping temporary server" at exit, after pytest closed its capture stream.
os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "WARNING")
# Tests never reach a real provider: a developer's own keys must not leak into them.
for _name in ("ANTHROPIC_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY", "OPENAI_API_KEY", "GROQ_API_KEY",
              "MPR_VLM_API_KEY", "SKIP_VLM", "SKIP_CLOUD", "MPR_DATABASE_URL",
              "MPR_MEDIA_IN", "MPR_MEDIA_OUT", "MPR_RESULTS", "MPR_RESULTS_BLOCK", "MPR_S3_BLOCK", "S3_ENDPOINT_URL"):
    os.environ.pop(_name, None)


@pytest.fixture
def data_dir(tmp_path, monkeypatch) -> Path:
    """Fresh checkpoint/artifact store, so no test sees another's cache."""
    path = tmp_path / "mpr-data"
    monkeypatch.setenv("MPR_DATA_DIR", str(path))
    monkeypatch.delenv("MPR_ARTIFACTS", raising=False)
    return path


_SHARED_SERVER: dict = {}


def shared_prefect_api() -> str:
    """One real `prefect server` for every `mpr` subprocess of the session, started on first use.

    Without PREFECT_API_URL each `mpr` command starts (and stops) its own temporary
    server, about 6 s per command on 2 cores; a user running many commands runs a
    server too. Task caching lives in the result storage, not the server, so sharing
    one does not share checkpoints between tests.
    """
    if "api" not in _SHARED_SERVER:
        from tests.prefect_server import prefect_server

        stack = ExitStack()
        _SHARED_SERVER["api"] = stack.enter_context(prefect_server(Path(tempfile.mkdtemp(prefix="mpr-prefect-"))))
        _SHARED_SERVER["stack"] = stack
    return _SHARED_SERVER["api"]


def pytest_sessionfinish(session, exitstatus):
    if "stack" in _SHARED_SERVER:
        _SHARED_SERVER.pop("stack").close()


def mpr_env(env: dict | None = None) -> dict:
    """A user's environment for an `mpr` subprocess: the test's own, the shared Prefect
    server unless the test names one, then `env`."""
    user_env = {k: v for k, v in os.environ.items() if k != "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL"}
    user_env["PREFECT_API_URL"] = user_env.get("PREFECT_API_URL") or shared_prefect_api()
    return {**user_env, **(env or {})}


def run_mpr(*args: str, env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run the real `mpr` command in a subprocess."""
    return subprocess.run([sys.executable, "-m", "mpr.cli", *map(str, args)], capture_output=True, text=True,
                          env=mpr_env(env), cwd=cwd or ROOT, timeout=900)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path
