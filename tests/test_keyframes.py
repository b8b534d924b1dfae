"""Keyframe-snapped sampling (extract_frames.keyframes): which frame each sample reads."""

from __future__ import annotations

import pytest

from mpr.source import ReadResult, plan_chunks, probe_source, read_samples
from tasks.extract_frames import ExtractFramesConfig
from tests.media import counter_video, frame_of

FPS = 25  # the clips' frame rate; every clip is 10 s, frame i has grey level i


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("keyframes")
    return {gop: counter_video(folder / f"gop{gop}.mp4", 10, gop) for gop in (10, 250)}


def _read(path, tmp_path, keyframes: bool, chunk_s: float = 60, fps: float = 1.0):
    info = probe_source(str(path), tmp_path)
    result = ReadResult()
    seen = [(index, t, frame_of(image)) for chunk in plan_chunks(info, fps, chunk_s)
            for index, t, _, image in read_samples(info, chunk, fps, result, keyframes=keyframes)]
    return seen, result


def test_dense_keyframes_every_sample_takes_the_nearest_keyframe(clips, tmp_path):
    seen, result = _read(clips[10], tmp_path, keyframes=True)
    assert result.snapped == 10 and not result.notes
    for index, t, frame in seen:
        assert frame % 10 == 0  # a keyframe: nothing between keyframes was needed
        assert abs(frame - index * FPS) <= 5  # the nearest one (keyframes 0.4 s apart)
        assert t == index


def test_sparse_keyframes_read_the_exact_frames_the_sequential_reader_reads(clips, tmp_path):
    snapped, result = _read(clips[250], tmp_path, keyframes=True)
    sequential, _ = _read(clips[250], tmp_path, keyframes=False)
    assert snapped == sequential == [(k, k, k * FPS) for k in range(10)]
    assert result.snapped == 1  # only the first sample lies near the one keyframe


@pytest.mark.parametrize("gop", [10, 250])
def test_chunks_and_lookbehind_match_the_sequential_reader(clips, tmp_path, gop):
    snapped, _ = _read(clips[gop], tmp_path, keyframes=True, chunk_s=3, fps=2.0)
    sequential, _ = _read(clips[gop], tmp_path, keyframes=False, chunk_s=3, fps=2.0)
    assert [s[:2] for s in snapped] == [s[:2] for s in sequential]
    tolerance = 0 if gop == 250 else 5
    assert all(abs(a[2] - b[2]) <= tolerance for a, b in zip(snapped, sequential))


def test_truncated_video_is_read_to_its_last_good_frame(clips, tmp_path):
    data = clips[10].read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) * 55 // 100])
    seen, result = _read(cut, tmp_path, keyframes=True)
    assert 1 <= len(seen) < 10 and [s[0] for s in seen] == list(range(len(seen)))
    assert result.readable_until_s == len(seen) - 1 and "truncated or corrupt" in result.notes[0]


def test_keyframe_sampling_needs_decode_time_cuts_off():
    assert ExtractFramesConfig(keyframes=True, cut_fps=0).keyframes
    with pytest.raises(ValueError, match="needs cut_fps: 0"):
        ExtractFramesConfig(keyframes=True)
