"""filter_scenes: shot cuts, blank frames, near-duplicates (with pointers to what they repeat)."""

from __future__ import annotations

import numpy as np

from mpr.records import Frame, FrameSet
from mpr.source import SourceInfo
from mpr.store import ArtifactStore
from tasks.filter_scenes import FilterScenesConfig, filter_scenes
from tasks.stage import StageContext


def scene(seed: int, shift: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, (9, 16, 3), dtype=np.uint8).repeat(40, 0).repeat(40, 1)
    return np.roll(base, shift, axis=1)


def test_cuts_blanks_and_duplicates(tmp_path):
    store = ArtifactStore(str(tmp_path / "store"))
    images = [scene(1), scene(1), scene(1, 120), np.full((360, 640, 3), 3, np.uint8), scene(2), scene(2)]
    frames = [Frame(index=i, t=float(i), key=store.put_image(f"f/{i}.png", img), width=640, height=360)
              for i, img in enumerate(images)]
    ctx = StageContext(source=SourceInfo(uri="x", kind="video", fingerprint="f", local_path="x"),
                       store_root=store.root, key="k")
    out = filter_scenes([FrameSet(chunk=0, frames=frames, interval_s=1.0)], FilterScenesConfig(), ctx)
    got = [(f.t, f.cut, f.dropped, f.same_as) for f in out.frames]
    assert got == [(0.0, False, None, None), (1.0, False, "duplicate", 0.0), (2.0, False, None, None),
                   (3.0, True, "blank", None), (4.0, True, None, None), (5.0, False, "duplicate", 4.0)]
    assert out.counts == {"kept": 3, "duplicate": 2, "blank": 1, "cuts": 2}
    assert (out.stats.items_in, out.stats.items_out) == (6, 3)


def test_first_frame_of_a_chunk_compares_with_the_sample_before_it(tmp_path):
    store = ArtifactStore(str(tmp_path / "store"))
    prev = Frame(index=9, t=9.0, key=store.put_image("f/9.png", scene(4)), width=640, height=360)
    same = Frame(index=10, t=10.0, key=store.put_image("f/10.png", scene(4)), width=640, height=360)
    ctx = StageContext(source=SourceInfo(uri="x", kind="video", fingerprint="f", local_path="x"),
                       store_root=store.root, key="k")
    out = filter_scenes([FrameSet(chunk=1, frames=[same], previous=prev, interval_s=1.0)], FilterScenesConfig(), ctx)
    assert (out.frames[0].cut, out.frames[0].dropped, out.frames[0].same_as) == (False, "duplicate", 9.0)
