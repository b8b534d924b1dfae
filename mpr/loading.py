"""Models and clients loaded once per process, however many task threads ask at once."""

from __future__ import annotations

import functools
import threading
from typing import Callable, TypeVar

T = TypeVar("T")


def load_once(maxsize: int = 4) -> Callable[[Callable[..., T]], Callable[..., T]]:
    """`functools.lru_cache` whose misses are computed under a lock.

    lru_cache alone is not enough for task threads: the run_ocr tasks of a long source start
    together, each missed the cache and loaded its own OCR engine (about 400 MB each; a
    5-minute run peaked at 1.5 GB instead of 1.05 GB), and two OpenVINO engines inferring at
    once for the first time once deadlocked inside pyopenvino.
    """

    def wrap(fn: Callable[..., T]) -> Callable[..., T]:
        cached = functools.lru_cache(maxsize=maxsize)(fn)
        lock = threading.RLock()  # re-entrant: a loader may load another through this one

        @functools.wraps(fn)
        def load(*args, **kwargs) -> T:
            with lock:
                return cached(*args, **kwargs)

        load.cache_clear = cached.cache_clear  # type: ignore[attr-defined]
        load.cache_info = cached.cache_info  # type: ignore[attr-defined]
        return load

    return wrap
