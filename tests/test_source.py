"""Sources: probing, fingerprints, chunk plans and streaming reads (incl. truncated video)."""

from __future__ import annotations

import os

import cv2
import fsspec
import numpy as np
from fsspec.implementations.local import LocalFileSystem
import pytest

from mpr.errors import InputError
from mpr.source import ReadResult, plan_chunks, probe_source, read_samples
from tests.media import level_of, level_video


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    return level_video(tmp_path_factory.mktemp("v") / "levels.mp4", seconds=9)


def test_probe_video(video, tmp_path):
    info = probe_source(str(video), tmp_path)
    assert (info.kind, info.duration_s, info.native_fps, info.width, info.height) == ("video", 9.0, 25.0, 160, 96)
    assert info.fingerprint == probe_source(str(video), tmp_path).fingerprint


def test_samples_land_on_the_right_second_across_chunks(video, tmp_path):
    info = probe_source(str(video), tmp_path)
    chunks = plan_chunks(info, fps=1.0, chunk_s=4)
    assert [(c.sample_start, c.sample_stop) for c in chunks] == [(0, 4), (4, 8), (8, 9)]
    seen = []
    for chunk in chunks:
        for index, t, _, image in read_samples(info, chunk, 1.0, ReadResult()):
            seen.append((index, t, level_of(image)))
    # each chunk after the first starts with the sample before it (lookbehind)
    assert seen == [(0, 0.0, 0), (1, 1.0, 1), (2, 2.0, 2), (3, 3.0, 3), (3, 3.0, 3), (4, 4.0, 4), (5, 5.0, 5),
                    (6, 6.0, 6), (7, 7.0, 7), (7, 7.0, 7), (8, 8.0, 8)]


def test_two_fps_sampling(video, tmp_path):
    info = probe_source(str(video), tmp_path)
    (chunk,) = plan_chunks(info, fps=2.0, chunk_s=60)
    times = [t for _, t, _, _ in read_samples(info, chunk, 2.0, ReadResult())]
    assert times == [k / 2 for k in range(18)]


def test_truncated_video_is_read_to_its_last_good_frame(video, tmp_path):
    data = video.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) * 55 // 100])
    info = probe_source(str(cut), tmp_path)
    assert info.duration_s == 9.0  # the container still claims the full length
    result = ReadResult()
    (chunk,) = plan_chunks(info, fps=1.0, chunk_s=60)
    levels = [level_of(image) for _, _, _, image in read_samples(info, chunk, 1.0, result)]
    assert 1 <= len(levels) < 9 and levels == list(range(len(levels)))
    assert result.readable_until_s == len(levels) - 1
    assert "truncated or corrupt" in result.notes[0]


def test_image_and_folder_and_fsspec_url(tmp_path):
    folder = tmp_path / "shots"
    folder.mkdir()
    for i in range(3):
        cv2.imwrite(str(folder / f"{i}.png"), np.full((40, 60, 3), 50 * i, np.uint8))
    (folder / "notes.txt").write_text("ignored")
    info = probe_source(str(folder), tmp_path)
    assert (info.kind, info.frame_count) == ("images", 3)
    still = probe_source(str(folder / "1.png"), tmp_path)
    assert (still.kind, still.duration_s, still.width) == ("image", 0.0, 60)
    remote = probe_source(f"file://{folder}", tmp_path)
    assert remote.fingerprint == info.fingerprint
    mem = fsspec.filesystem("memory")
    mem.pipe("/clips/a.png", cv2.imencode(".png", np.zeros((8, 8, 3), np.uint8))[1].tobytes())
    assert probe_source("memory://clips", tmp_path).kind == "images"


@pytest.mark.parametrize("make, expected", [
    (lambda p: p.with_suffix(".mp4").write_bytes(b""), "file is empty (0 bytes)"),
    (lambda p: p.with_suffix(".mp4").write_text("not a video at all\n" * 50), "not a video OpenCV can decode"),
    (lambda p: p.with_suffix(".png").write_text("not an image\n"), "not an image OpenCV can decode"),
    (lambda p: p.with_suffix(".docx").write_text("x"), "unsupported file type '.docx'"),
    (lambda p: p.mkdir(), "folder has no images"),
])
def test_bad_sources_fail_with_one_line(tmp_path, make, expected):
    target = tmp_path / "thing"
    make(target)
    path = next(p for p in tmp_path.iterdir() if p.name.startswith("thing"))
    with pytest.raises(InputError) as info:
        probe_source(str(path), tmp_path / "cache")
    assert expected in str(info.value) and "\n" not in str(info.value)


def test_video_with_zero_decodable_frames(video, tmp_path):
    data = video.read_bytes()
    header_only = tmp_path / "header.mp4"
    header_only.write_bytes(data[: data.find(b"mdat") + 16])  # index present, no frame data
    with pytest.raises(InputError, match="video has zero decodable frames"):
        probe_source(str(header_only), tmp_path)


def test_missing_source(tmp_path):
    with pytest.raises(InputError, match="no such file or folder"):
        probe_source(str(tmp_path / "nope.mp4"), tmp_path)


def test_unreadable_source(video, tmp_path, monkeypatch):
    locked = tmp_path / "locked.mp4"
    locked.write_bytes(video.read_bytes())
    locked.chmod(0)
    if os.geteuid() == 0:  # root reads whatever the mode says: make the read itself fail
        def refuse(self, path, *args, **kwargs):
            raise PermissionError(13, "Permission denied", path)

        monkeypatch.setattr(LocalFileSystem, "open", refuse)
    with pytest.raises(InputError, match="permission denied"):
        probe_source(str(locked), tmp_path)


def test_an_enormous_image_in_a_folder_is_skipped_from_its_header(tmp_path):
    from tests.test_cli_errors import huge_png

    folder = tmp_path / "frames"
    folder.mkdir()
    cv2.imwrite(str(folder / "a.jpg"), np.full((36, 64, 3), 90, np.uint8))
    huge_png(folder / "b.png")
    info = probe_source(str(folder), tmp_path / "cache")
    result = ReadResult()
    names = [name for _, _, name, _ in read_samples(info, plan_chunks(info, 1.0, 60)[0], 1.0, result)]
    assert names == ["a.jpg"] and result.notes == ["unreadable or too large image skipped: b.png"]
