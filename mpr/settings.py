"""Where MPR keeps its data, and the offline defaults it sets for Prefect."""

from __future__ import annotations

import ctypes
import os
import sys
from pathlib import Path

# Prefect otherwise tries to reach the internet (telemetry) and times out on first start.
OFFLINE_DEFAULTS = {
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
}


PROJECT_DIR = Path(__file__).resolve().parents[1]


def project_path(path: str) -> Path:
    """A path from a profile: absolute as given; relative, from the working directory if it
    exists there, else from the project (where shipped models live)."""
    found = Path(path).expanduser()
    if found.is_absolute() or found.exists():
        return found.resolve()
    return PROJECT_DIR / found


def env_int(name: str, default: int | None, low: int, high: int) -> int | None:
    """A whole number from the environment; anything else, or out of low..high, is refused in one line."""
    from mpr.errors import InputError

    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        number = int(value)
    except ValueError:
        raise InputError(f"{name} {value!r}: not a whole number") from None
    if not low <= number <= high:
        raise InputError(f"{name} {value!r}: want {low} to {high}")
    return number


def apply_offline_defaults() -> None:
    """Set the offline defaults unless the user set them already."""
    for name, value in OFFLINE_DEFAULTS.items():
        os.environ.setdefault(name, value)


M_ARENA_MAX = -8  # glibc's mallopt parameter number


def limit_malloc_arenas(arenas: int = 2) -> bool:
    """Cap glibc's malloc arenas, as MALLOC_ARENA_MAX=2 would; True when it did.

    glibc gives threads that allocate their own arena (up to 8 per core). Stage tasks run in
    threads and free large OpenCV/OCR buffers, which then sit spread over many arenas: the
    10-minute bench peaked ~150 MB higher, and ran no faster. Call before the threads start;
    a MALLOC_ARENA_MAX the user set wins, and other C libraries are left alone."""
    if os.environ.get("MALLOC_ARENA_MAX") or not sys.platform.startswith("linux"):
        return False
    try:
        return bool(ctypes.CDLL("libc.so.6").mallopt(M_ARENA_MAX, arenas))
    except (OSError, AttributeError):  # not glibc (musl has no arenas to cap)
        return False


def data_dir() -> Path:
    """Checkpoint results and the checkpoint ledger live here (`MPR_DATA_DIR`, default ~/.mpr)."""
    return Path(os.environ.get("MPR_DATA_DIR") or Path.home() / ".mpr").expanduser().resolve()


def artifacts_url() -> str:
    """Frames, crops and overlays go here: a local folder or an fsspec URL (`MPR_ARTIFACTS`)."""
    return os.environ.get("MPR_ARTIFACTS") or str(data_dir() / "artifacts")


def results_dir() -> Path:
    return data_dir() / "results"


def ledger_dir() -> Path:
    return data_dir() / "checkpoints"


def sources_cache_dir() -> Path:
    """Local copies of remote (fsspec) videos, which OpenCV can only read from disk."""
    return data_dir() / "sources"
