"""Prefect's temporary API server dies with the mpr process that started it.

Without PREFECT_API_URL, Prefect runs flows against a temporary server: a uvicorn child
process that an atexit hook stops. An mpr killed with SIGKILL (kill -9, the OOM killer)
never runs atexit hooks, and the server lived on, holding a port and a few hundred MB.

Prefect keeps that server as a singleton per port, created on first use. `tie()` registers
a subclass instance as the singleton (not started: nothing happens for commands that need
no server), so the server Prefect starts is ours, and each process it starts is handed to
a watchdog (`python -m mpr.temporary_server PID`). The watchdog reads a pipe whose only
writer is this process: end of file means this process is gone, however it ended; it then
stops the server if it is still running. Hand-written because no library ties a process
we did not start to our lifetime portably (PR_SET_PDEATHSIG would need Prefect's Popen).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

MARKER = "prefect.server.api.server:create_app"  # in the server's command line


_keep: list[int] = []  # write ends of the watchdogs' pipes, open until this process ends


def tie() -> None:
    """Make the temporary server Prefect may start in this process stop when this process ends.
    Nothing to do when a Prefect API is configured (no temporary server then)."""
    from prefect.settings import PREFECT_API_URL

    if PREFECT_API_URL.value():
        return
    from prefect.server.api.server import SubprocessASGIServer

    class TiedServer(SubprocessASGIServer):
        def _run_uvicorn_command(self):
            process = super()._run_uvicorn_command()
            _watch(process.pid)
            return process

    if None not in SubprocessASGIServer._instances:  # None: "any free port", the key Prefect's clients use
        TiedServer()


def _watch(pid: int) -> None:
    read, write = os.pipe()  # not inheritable: later children do not hold the write end open
    subprocess.Popen([sys.executable, "-m", "mpr.temporary_server", str(pid)], stdin=read,
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                     start_new_session=True)  # a Ctrl-C to mpr's process group does not stop the watchdog
    os.close(read)
    _keep.append(write)


def _is_server(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return MARKER.encode() in f.read()
    except OSError:
        return sys.platform != "linux" and _alive(pid)  # no /proc: trust the pid


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except OSError:
        return False


def watchdog(pid: int) -> None:
    sys.stdin.buffer.read()  # returns at end of file: the process that started us has ended
    if not _is_server(pid):  # stopped already (a normal exit), or the pid is someone else's now
        return
    os.kill(pid, signal.SIGTERM)
    for _ in range(50):
        time.sleep(0.1)
        if not _is_server(pid):
            return
    os.kill(pid, signal.SIGKILL)


if __name__ == "__main__":
    watchdog(int(sys.argv[1]))
