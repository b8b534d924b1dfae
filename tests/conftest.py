"""Shared fixtures: an isolated MPR data dir per test, and the bundled sample."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.services import db_url  # noqa: F401  (fixture: SQLite and PostgreSQL)
from tests.s3server import s3_env, s3_server  # noqa: F401

ROOT = Path(__file__).resolve().parent.parent

os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
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


def run_mpr(*args: str, env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run the real `mpr` command in a subprocess."""
    user_env = {k: v for k, v in os.environ.items() if k != "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL"}
    return subprocess.run([sys.executable, "-m", "mpr.cli", *map(str, args)], capture_output=True, text=True,
                          env={**user_env, **(env or {})}, cwd=cwd or ROOT, timeout=900)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path
