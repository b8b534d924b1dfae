"""Where MPR keeps its data, and the process defaults it sets for Prefect and ffmpeg."""

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
    # imageio-ffmpeg starts ffmpeg with preexec_fn=os.setpgrp, which runs Python's after-fork
    # handlers in the forked child; there, freeing a dead thread's PyAV frame converter waited
    # forever on its (absent) slice threads: `mpr detect` hung writing annotated.mp4 after a
    # run (seen in the two-runs-at-once test). Unset, the child only execs ffmpeg.
    "IMAGEIO_FFMPEG_NO_PREVENT_SIGINT": "1",
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
    """Set the offline defaults unless the user set them already.

    Prefect reads its settings once, when it is imported: where it was imported first (a
    notebook that imports prefect before `flows`), its root settings are read again so that
    the defaults apply there too (else its temporary server keeps a 20-s start-up limit)."""
    # `import openvino` initialises its converter's telemetry, which sends a usage event to Google
    # Analytics from a forked process: a network call at run time, and the fork (mid-run, when
    # the OCR engine loads) once hung `mpr detect` for good (the child freed a PyAV frame
    # converter of a thread that does not exist there). Hidden, the converter uses its own stub.
    sys.modules.setdefault("openvino_telemetry", None)
    added = [name for name in OFFLINE_DEFAULTS if name not in os.environ]
    for name in added:
        os.environ[name] = OFFLINE_DEFAULTS[name]
    if added and "prefect.context" in sys.modules:
        sys.modules["prefect.context"].refresh_global_settings_context()


# glibc's mallopt parameters, each with the environment variable that sets it at start-up
MALLOC_TUNING = {
    # Stage tasks run in threads and free large OpenCV/OCR buffers, which then sat spread
    # over up to 8 arenas per core: the 10-minute bench peaked ~150 MB higher, no faster.
    "MALLOC_ARENA_MAX": (-8, 2),
    # glibc raises its mmap threshold (up to 32 MB) each time a large mapped block is freed,
    # so after a few inferences OpenVINO's activation buffers (hundreds of MB for an enlarged
    # 720p frame) came from the heap, and every new input shape left the heap bigger: a
    # 768x1312 detection after a 736x1312 one added 181 MB, 34 MB with the threshold pinned.
    "MALLOC_MMAP_THRESHOLD_": (-3, 1 << 20),
}


def tune_malloc() -> list[str]:
    """Apply MALLOC_TUNING where the user did not set the variable; the names applied.

    Call before the task threads start. Not glibc (musl, macOS): nothing to do."""
    if not sys.platform.startswith("linux"):
        return []
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return []
    return [name for name, (param, value) in MALLOC_TUNING.items()
            if not os.environ.get(name) and mallopt(param, value)]


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
