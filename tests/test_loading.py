"""Models and clients load once per process even when task threads ask at the same moment."""

import threading
import time

import pytest

from mpr.loading import load_once


def _together(n: int, fn, *args):
    """Call fn(*args) from n threads released at once; return what each got."""
    barrier, out = threading.Barrier(n), [None] * n

    def one(i):
        barrier.wait()
        out[i] = fn(*args)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def test_concurrent_first_calls_load_once_per_key():
    calls = []

    @load_once()
    def load(key):
        calls.append(key)
        time.sleep(0.2)  # a model load: long enough for every thread to miss a plain lru_cache
        return object()

    got = _together(6, load, "a")
    assert calls == ["a"] and all(g is got[0] for g in got)
    assert load("b") is not got[0] and calls == ["a", "b"]
    load.cache_clear()
    assert load("a") is not got[0]


def test_a_failed_load_is_not_remembered():
    attempts = []

    @load_once()
    def load():
        attempts.append(1)
        if len(attempts) == 1:
            raise RuntimeError("weights missing")
        return "model"

    with pytest.raises(RuntimeError):
        load()
    assert load() == "model" and len(attempts) == 2


def test_run_ocr_tasks_starting_together_share_one_ocr_engine():
    from mpr.ocr import get_engine

    get_engine.cache_clear()
    engines = _together(3, lambda: get_engine("rapidocr", runtime="onnxruntime", threads=1))
    assert len({id(e) for e in engines}) == 1
