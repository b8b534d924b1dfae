"""A real `prefect server` process for tests, and free ports."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

PREFECT = str(Path(sys.executable).parent / "prefect")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(api: str, proc: subprocess.Popen, log: Path, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"{api}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"prefect server did not start: {log.read_text()[-2000:]}")
        time.sleep(1)


@contextmanager
def prefect_server(home: Path):
    """`prefect server start` on a free port with its own PREFECT_HOME (SQLite); yields the API URL."""
    port = free_port()
    env = {**os.environ, "PREFECT_HOME": str(home), "DO_NOT_TRACK": "1",
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_API_URL": ""}
    log = home / "server.log"
    with open(log, "w") as out:
        server = subprocess.Popen([PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                                  env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        api = f"http://127.0.0.1:{port}/api"
        try:
            wait_healthy(api, server, log)
            yield api
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=60)
