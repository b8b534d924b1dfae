"""Shot cuts found while decoding (mpr.vision.cuts via read_samples): the cut between two
look-alike wide shots that the per-sample colour histogram misses, at chunk borders too."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest

from mpr import synth_exposures as se
from mpr.records import Frame, FrameSet
from mpr.source import ChunkSpec, ReadResult, probe_source, read_samples
from mpr.store import ArtifactStore
from tasks.filter_scenes import FilterScenesConfig, filter_scenes


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """10 s at 25 fps, two wide shots of the same stadium, cut at 6 s (sample 6)."""
    folder = tmp_path_factory.mktemp("decode_cuts")
    out = folder / "short.mp4"
    assert se.main([str(out), "--scenario", "short"]) == 0
    assert json.loads(out.with_suffix(".truth.json").read_text())["shots"] == [0.0, 6.0]
    return probe_source(str(out), folder / "cache")


def _read(info, start: int, stop: int, cut_fps: float) -> tuple[list[int], list[int]]:
    result = ReadResult()
    chunk = ChunkSpec(0, start, stop, start, stop)
    indices = [index for index, *_ in read_samples(info, chunk, 1.0, result, cut_fps=cut_fps)]
    return indices, result.cut_samples


def test_the_per_sample_histogram_does_not_see_this_cut(clip, tmp_path):
    """filter_scenes' own test between samples 5 and 6, with no decode-time cut marked."""
    store = ArtifactStore(str(tmp_path))
    frames = [Frame(index=i, t=float(i), key=store.put_image(f"f/{i}.jpg", img, 95), width=img.shape[1],
                    height=img.shape[0]) for i, _, _, img in read_samples(clip, ChunkSpec(0, 5, 7, 5, 7), 1.0,
                                                                            ReadResult(), lookbehind=False)]
    out = filter_scenes([FrameSet(chunk=0, frames=frames, interval_s=1.0)], FilterScenesConfig(),
                        SimpleNamespace(store=store))
    assert [f.index for f in out.frames] == [5, 6] and out.counts["cuts"] == 0


@pytest.mark.parametrize("cut_fps", [30.0, 12.5])
def test_decode_finds_the_cut_at_every_frame_and_at_a_stride(clip, cut_fps):
    indices, cuts = _read(clip, 0, 10, cut_fps)
    assert indices == list(range(10)) and cuts == [6]


def test_no_cut_detection_when_off(clip):
    assert _read(clip, 0, 10, 0.0) == (list(range(10)), [])


def test_a_cut_on_the_first_sample_of_a_chunk_is_seen_from_its_lookbehind(clip):
    indices, cuts = _read(clip, 6, 10, 30.0)
    assert indices == [5, 6, 7, 8, 9] and cuts == [6]


def test_a_cut_on_the_last_sample_of_a_chunk_is_seen(clip):
    indices, cuts = _read(clip, 3, 7, 30.0)
    assert indices == [2, 3, 4, 5, 6] and cuts == [6]


def test_filter_scenes_keeps_a_decode_cut(tmp_path):
    """A frame extract_frames marked as opening a shot stays a cut, histogram or not."""
    store = ArtifactStore(str(tmp_path))
    image = np.random.default_rng(0).integers(0, 255, (90, 160, 3), np.uint8)
    frames = [Frame(index=i, t=float(i), key=store.put_image(f"f/{i}.jpg", image, 95), width=160, height=90,
                    cut=i == 2) for i in range(4)]
    out = filter_scenes([FrameSet(chunk=0, frames=frames, interval_s=1.0)], FilterScenesConfig(),
                        SimpleNamespace(store=store))
    assert [f.cut for f in out.frames] == [False, False, True, False]
    assert out.counts["cuts"] == 1
    assert [f.dropped for f in out.frames] == [None, "duplicate", None, "duplicate"]
