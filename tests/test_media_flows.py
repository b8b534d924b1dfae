"""chunk_source and scan_media on real files, real databases (SQLite and PostgreSQL) and a real S3 server."""

from __future__ import annotations

import shutil
import subprocess
import wave
from pathlib import Path

import pytest
from sqlalchemy import func, select

from flows.media import chunk_source, scan_media
from mpr.db.models import MediaAsset, Timeline
from mpr.db.session import session_scope
from mpr.errors import InputError
from mpr.media import check_chunk_s, ffmpeg, parse_ffmpeg_info, register_asset, resolve_source
from tests.media import level_video

CLIP_S = 7.0


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """7 s of H.264 at 25 fps, a keyframe every 2 s: 3 s chunks are cut at 4 s and 6 s."""
    return level_video(tmp_path_factory.mktemp("clip") / "match.mp4", seconds=CLIP_S)


@pytest.fixture(scope="module")
def av_clip(tmp_path_factory) -> Path:
    """3 s of H.264 + AAC in Matroska, a keyframe every second."""
    path = tmp_path_factory.mktemp("av") / "final.mkv"
    subprocess.run([ffmpeg(), "-hide_banner", "-loglevel", "error", "-y",
                    "-f", "lavfi", "-i", "testsrc=size=160x96:rate=25:duration=3",
                    "-f", "lavfi", "-i", "sine=frequency=440:duration=3",
                    "-c:v", "libx264", "-g", "25", "-c:a", "aac", "-shortest", str(path)], check=True)
    return path


@pytest.fixture
def media_root(tmp_path, monkeypatch, data_dir, db_url) -> Path:
    root = tmp_path / "media-in"
    root.mkdir()
    monkeypatch.setenv("MPR_MEDIA_IN", str(root))
    return root


def write_wav(path: Path, seconds: float = 1.0, rate: int = 8000) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(b"\x00\x01" * round(seconds * rate))
    return path


def asset_count() -> int:
    with session_scope() as session:
        return session.scalar(select(func.count()).select_from(MediaAsset))


def check_timeline(result: dict, exists) -> list[MediaAsset]:
    """Rows in order, offsets the running sum of real chunk durations, files where the keys say."""
    with session_scope() as session:
        timeline = session.get(Timeline, result["timeline_id"])
        chunks = list(timeline.chunks)
        assets = [chunk.asset for chunk in chunks]
        assert [c.position for c in chunks] == list(range(result["chunks"]))
        assert [a.key for a in assets] == result["keys"]
        offsets = [c.offset_s for c in chunks]
        assert offsets[0] == 0 and offsets == sorted(set(offsets))
        for i in range(1, len(chunks)):
            assert offsets[i] == pytest.approx(offsets[i - 1] + assets[i - 1].duration_s, abs=1e-3)
        assert timeline.duration_s == pytest.approx(sum(a.duration_s for a in assets), abs=1e-3)
        assert all(exists(a.key) for a in assets)
        return assets


def test_parse_ffmpeg_info_handles_cover_art_missing_values_and_odd_rates():
    mp3 = """Input #0, mp3, from 'song.mp3':
  Duration: 00:03:25.47, start: 0.025057, bitrate: 320 kb/s
  Stream #0:0: Audio: mp3 (mp3float), 44100 Hz, stereo, fltp, 320 kb/s
  Stream #0:1: Video: mjpeg (Baseline), yuvj420p(pc, bt470bg/unknown/unknown), 600x600, 90k tbr, 90k tbn (attached pic)
"""
    assert parse_ffmpeg_info(mp3) == {"duration_s": 205.47, "fps": None, "width": None, "height": None,
                                      "video_codec": None, "audio_codec": "mp3"}
    ts = """Input #0, mpegts, from 'feed.ts':
  Duration: N/A, start: 1.400000, bitrate: N/A
  Program 1
  Stream #0:0[0x100]: Video: h264 (High) ([27][0][0][0] / 0x001B), yuv420p(tv, bt709, progressive), 1920x1080 [SAR 1:1 DAR 16:9], 29.97 fps, 29.97 tbr, 90k tbn
  Stream #0:1[0x101](eng): Audio: ac3 ([129][0][0][0] / 0x0081), 48000 Hz, 5.1(side), fltp, 384 kb/s
"""
    assert parse_ffmpeg_info(ts) == {"duration_s": None, "fps": 30000 / 1001, "width": 1920, "height": 1080,
                                     "video_codec": "h264", "audio_codec": "ac3"}
    assert parse_ffmpeg_info("Stream #0:0: Video: vp9, yuv420p, 640x360, 1k tbr")["fps"] == 1000
    assert parse_ffmpeg_info("garbage\n")["video_codec"] is None


def test_chunk_source_builds_an_ordered_timeline_and_is_idempotent(media_root, clip):
    result = chunk_source(str(clip), chunk_s=3)
    assert result["name"] == str(clip.resolve()) and not result["reused"]  # outside media-in: its path
    assert result["chunks"] >= 2 and result["duration_s"] == pytest.approx(CLIP_S, abs=0.1)
    fingerprint = resolve_source(str(clip)).fingerprint
    assert all(k.startswith(f"chunks/match-{fingerprint[:8]}/3s/") and k.endswith(".mp4") for k in result["keys"])
    assets = check_timeline(result, lambda key: (media_root / key).is_file())
    for asset in assets:
        assert (asset.root, asset.kind, asset.video_codec, asset.audio_codec) == ("in", "video", "h264", None)
        assert (asset.fps, asset.width, asset.height) == (25.0, 160, 96)
        assert asset.size_bytes == (media_root / asset.key).stat().st_size
    mtimes = [(media_root / k).stat().st_mtime_ns for k in result["keys"]]

    again = chunk_source(str(clip), chunk_s=3)  # same content, same length: nothing cut, uploaded or added
    assert again["reused"] and {k: v for k, v in again.items() if k != "reused"} == \
        {k: v for k, v in result.items() if k != "reused"}
    assert asset_count() == len(assets)
    assert [(media_root / k).stat().st_mtime_ns for k in result["keys"]] == mtimes

    finer = chunk_source(str(clip), chunk_s=2)  # another length replaces the chunk list and its files
    assert finer["timeline_id"] == result["timeline_id"] and finer["chunks"] == 4
    check_timeline(finer, lambda key: (media_root / key).is_file())
    assert asset_count() == finer["chunks"]
    assert not any((media_root / k).exists() for k in result["keys"])
    assert not (media_root / result["keys"][0]).parent.exists()


def test_chunk_source_of_a_media_in_key_keeps_audio_and_registers_the_source(media_root, av_clip):
    (media_root / "games").mkdir()
    shutil.copy(av_clip, media_root / "games" / "final.mkv")
    result = chunk_source("games/final.mkv", chunk_s=1)
    assert result["name"] == "games/final.mkv" and result["chunks"] == 3
    assets = check_timeline(result, lambda key: (media_root / key).is_file())
    assert {(a.kind, a.video_codec, a.audio_codec) for a in assets} == {("video", "h264", "aac")}
    assert all(a.key.endswith(".mkv") for a in assets)
    with session_scope() as session:
        timeline = session.get(Timeline, result["timeline_id"])
        source = session.get(MediaAsset, timeline.source_asset_id)
        assert (source.key, source.audio_codec) == ("games/final.mkv", "aac")
        assert source.duration_s == pytest.approx(3.0, abs=0.05)  # the container's figure: 3.02 with the AAC tail
    assert result["duration_s"] == 3.0 and result["offsets_s"] == [0.0, 1.0, 2.0]  # frames / fps
    # the source and its chunks are registered already: a scan finds them all and adds nothing
    assert scan_media() == {"found": 4, "registered": 0, "skipped": 4, "failed": []}


def test_bad_sources_and_chunk_lengths_are_refused(tmp_path, monkeypatch, data_dir):
    monkeypatch.setenv("MPR_MEDIA_IN", str(tmp_path / "media-in"))
    (tmp_path / "empty.mp4").touch()
    (tmp_path / "notes.txt").write_text("not media")
    cases = {"../outside.mp4": "'..' is not allowed", "/nowhere/match.mp4": "no such file",
             "missing.mp4": "no such file", str(tmp_path / "empty.mp4"): "empty",
             str(tmp_path / "notes.txt"): "unsupported file type '.txt'",
             "http://example.com/match.mp4": "unsupported scheme 'http'", " ": "empty"}
    for source, message in cases.items():
        with pytest.raises(InputError, match=message):
            resolve_source(source)
    for bad in (0, -3, 0.5, float("nan"), float("inf"), 1e9, "abc", None, True):
        with pytest.raises(InputError, match="chunk_s"):
            check_chunk_s(bad)
    assert check_chunk_s("2.5") == 2.5


def test_failed_chunking_leaves_nothing_behind(media_root, tmp_path, clip, monkeypatch):
    import flows.media

    def database_gone(*args, **kwargs):
        raise RuntimeError("database went away")

    with monkeypatch.context() as patch, pytest.raises(RuntimeError, match="database went away"):
        patch.setattr(flows.media, "save_timeline", database_gone)
        chunk_source(str(clip), chunk_s=3)  # cut and uploaded, then the rows fail: the files go too
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"\x00not a video" * 100)
    with pytest.raises(InputError, match="not a video or audio file ffmpeg can read"):
        chunk_source(str(garbage), chunk_s=3)
    with pytest.raises(InputError, match="'..' is not allowed"):
        chunk_source("../garbage.mp4", chunk_s=3)
    with session_scope() as session:
        assert session.scalar(select(func.count()).select_from(Timeline)) == 0
    assert asset_count() == 0 and not any(media_root.iterdir())
    with session_scope() as session, pytest.raises(InputError, match="'..' is not allowed"):
        register_asset(session, "in", "chunks/../../etc/passwd.mp4", {"kind": "video"})


def test_scan_media_registers_new_files_once(media_root, clip, av_clip):
    shutil.copy(clip, media_root / "a.mp4")
    nested = media_root / "season" / "2024" / "round 1"
    nested.mkdir(parents=True)
    shutil.copy(av_clip, nested / "b.mkv")
    write_wav(media_root / "season" / "commentary.wav", seconds=1.5)
    (media_root / "season" / "notes.txt").write_text("not media")  # ignored: not a media extension
    (media_root / "season" / "2024" / "empty.mp4").touch()  # a media extension, but nothing to probe

    assert scan_media() == {"found": 4, "registered": 3, "skipped": 0, "failed": ["season/2024/empty.mp4"]}
    with session_scope() as session:
        assets = {a.key: a for a in session.scalars(select(MediaAsset))}
        assert sorted(assets) == ["a.mp4", "season/2024/round 1/b.mkv", "season/commentary.wav"]
        wav = assets["season/commentary.wav"]
        assert (wav.kind, wav.audio_codec, wav.video_codec, wav.duration_s, wav.fps) == \
            ("audio", "pcm_s16le", None, 1.5, None)
        mkv = assets["season/2024/round 1/b.mkv"]
        assert (mkv.kind, mkv.video_codec, mkv.audio_codec, mkv.width, mkv.height) == ("video", "h264", "aac", 160, 96)
        mp4 = assets["a.mp4"]
        assert (mp4.duration_s, mp4.fps, mp4.size_bytes) == (CLIP_S, 25.0, clip.stat().st_size)
        assert mp4.fingerprint == resolve_source(str(clip)).fingerprint

    assert scan_media() == {"found": 4, "registered": 0, "skipped": 3, "failed": ["season/2024/empty.mp4"]}


def test_chunk_and_scan_on_s3(s3_env, data_dir, db_url, monkeypatch, clip, av_clip):
    import fsspec

    media = s3_env.url("mpr-media", "in")
    monkeypatch.setenv("MPR_MEDIA_IN", media)
    fs = fsspec.filesystem("s3")
    fs.put_file(str(clip), f"{media}/games/match.mp4")
    outside = s3_env.url("mpr-results", "raw", "final.mkv")  # an s3:// source outside media-in
    fs.put_file(str(av_clip), outside)
    fs.pipe_file(f"{media}/broken.mp4", b"")

    inside = chunk_source("games/match.mp4", chunk_s=3)
    assert inside["name"] == "games/match.mp4" and inside["duration_s"] == pytest.approx(CLIP_S, abs=0.1)
    check_timeline(inside, lambda key: fs.exists(f"{media}/{key}"))
    remote = chunk_source(outside, chunk_s=1)
    assert remote["name"] == outside and remote["chunks"] == 3
    check_timeline(remote, lambda key: fs.exists(f"{media}/{key}"))
    assert chunk_source(outside, chunk_s=1)["reused"]

    write_wav(data_dir / "c.wav")
    fs.put_file(str(data_dir / "c.wav"), f"{media}/audio/c.wav")
    known = 1 + inside["chunks"] + remote["chunks"]  # the media-in source and every chunk
    assert scan_media() == {"found": known + 2, "registered": 1, "skipped": known, "failed": ["broken.mp4"]}
    with session_scope() as session:
        wav = session.scalar(select(MediaAsset).where(MediaAsset.key == "audio/c.wav"))
        assert (wav.kind, wav.audio_codec, wav.duration_s) == ("audio", "pcm_s16le", 1.0)
