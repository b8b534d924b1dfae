"""A real Dask cluster for tests: a `dask scheduler` and `dask worker` processes.

    with dask_cluster(tmp, {"gpu-0": {"GPU": 1}, "cpu-0": {}}) as address: ...

A worker may be given a `wrap` command prefix (e.g. `unshare` to hide a folder from it).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.prefect_server import free_port

DASK = str(Path(sys.executable).parent / "dask")


ROOT = Path(__file__).resolve().parent.parent


def start(args: list[str], log: Path) -> subprocess.Popen:
    """A process in its own session; `tests` importable (functions the tests run on workers)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    return subprocess.Popen(args, stdout=open(log, "w"), stderr=subprocess.STDOUT, start_new_session=True,
                            env=env, cwd=ROOT)


@contextmanager
def dask_cluster(folder: Path, workers: dict[str, dict[str, float]], wrap: dict[str, list[str]] | None = None):
    """Scheduler + one worker per name (with those resources, one thread each); yields the address."""
    from distributed import Client

    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    procs = [start([DASK, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
                   folder / "scheduler.log")]
    for name, resources in workers.items():
        args = [DASK, "worker", address, "--name", name, "--nthreads", "1", "--no-dashboard",
                "--local-directory", str(folder / name)]
        if resources:
            args += ["--resources", " ".join(f"{k}={v}" for k, v in resources.items())]
        procs.append(start([*(wrap or {}).get(name, []), *args], folder / f"{name}.log"))
    try:
        try:
            with Client(address, timeout="60s") as client:
                client.wait_for_workers(len(workers), timeout=120)
        except (OSError, TimeoutError) as exc:
            logs = "\n".join(p.read_text()[-1500:] for p in folder.glob("*.log"))
            pytest.fail(f"dask cluster did not start: {exc}\n{logs}")
        yield address
    finally:
        for proc in reversed(procs):
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        time.sleep(0.2)
