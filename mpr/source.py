"""Media sources: probe, fingerprint, chunk plan and streaming frame reading.

A source is a video file, an image, a folder of images, or any of those behind an
fsspec URL. Probing happens before any work so bad input fails fast with one line.
"""

from __future__ import annotations

import hashlib
import io
import math
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import av
import cv2
import fsspec
import numpy as np
from PIL import Image
from pydantic import BaseModel

from mpr.errors import InputError, MprError
from mpr.keyframes import KeyframeReader
from mpr.store import is_remote
from mpr.vision.cuts import DecodeCuts, thumbnail

VIDEO_EXTS = {".mp4", ".mkv", ".avi", ".mov", ".webm", ".flv", ".wmv", ".m4v", ".ts", ".mpg", ".mpeg"}
IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
SAMPLE_BYTES = 4 << 20  # bytes hashed at head, middle and tail of large files
MAX_PIXELS = 8192 * 8192  # larger images and frames are refused from their header, before any decode


class SourceInfo(BaseModel):
    uri: str  # as given by the user
    kind: str  # video | image | images
    fingerprint: str  # content fingerprint: part of every cache key
    local_path: str  # where OpenCV reads it (a local copy for remote videos)
    duration_s: float = 0.0
    native_fps: float = 0.0
    frame_count: int = 0
    width: int = 0
    height: int = 0
    images: list[str] = []  # fsspec paths of a folder's images, sorted by name

    @property
    def name(self) -> str:
        return self.uri.rstrip("/").rsplit("/", 1)[-1]


@dataclass(frozen=True)
class ChunkSpec:
    """A slice of the source handled by one task per stage."""

    index: int
    start: float  # seconds, inclusive
    end: float  # seconds, exclusive (the last chunk ends at the duration, inclusive)
    sample_start: int  # first global sample index
    sample_stop: int  # one past the last sample index


@dataclass
class ReadResult:
    """What a chunk read produced besides frames."""

    readable_until_s: float | None = None
    notes: list[str] = field(default_factory=list)
    cut_samples: list[int] = field(default_factory=list)  # samples that open a new shot (decode-time cuts)
    snapped: int = 0  # samples that took a nearby keyframe instead of their exact frame


def _ext(path: str) -> str:
    return Path(path).suffix.lower()


def _hash_file(fs, path: str, size: int) -> str:
    """Size plus head/middle/tail samples: fast on multi-GB matches, changes on edits."""
    h = hashlib.blake2b(digest_size=16)
    h.update(str(size).encode())
    with fs.open(path, "rb") as fh:
        offsets = [0] if size <= 3 * SAMPLE_BYTES else [0, size // 2, size - SAMPLE_BYTES]
        for offset in offsets:
            fh.seek(offset)
            h.update(fh.read(SAMPLE_BYTES))
    return h.hexdigest()


def probe_source(uri: str, cache_dir: Path) -> SourceInfo:
    """Validate a source and describe it; raises InputError with one clear line."""
    try:
        fs, path = fsspec.core.url_to_fs(uri)
    except (ValueError, ImportError) as exc:
        raise InputError(f"source {uri}: unsupported URL ({exc})") from None
    try:
        if not fs.exists(path):
            raise InputError(f"source {uri}: no such file or folder")
        if fs.isdir(path):
            return _probe_folder(uri, fs, path)
        size = fs.size(path)
    except InputError:
        raise
    except PermissionError:
        raise InputError(f"source {uri}: permission denied") from None
    except OSError as exc:
        raise InputError(f"source {uri}: cannot be read ({exc})") from None
    except Exception as exc:  # a remote store that does not answer (botocore's errors are not OSErrors)
        raise MprError(f"source {uri}: storage unreachable ({exc})") from None
    if not size:
        raise InputError(f"source {uri}: file is empty (0 bytes)")
    ext = _ext(path)
    if ext not in VIDEO_EXTS | IMAGE_EXTS:
        raise InputError(f"source {uri}: unsupported file type '{ext or '(none)'}' (want a video or an image)")
    try:
        fingerprint = _hash_file(fs, path, size)
    except PermissionError:
        raise InputError(f"source {uri}: permission denied") from None
    local = _local_copy(uri, fs, path, fingerprint, cache_dir) if is_remote(uri) else path
    if ext in IMAGE_EXTS:
        return _probe_image(uri, local, fingerprint)
    return _probe_video(uri, local, fingerprint)


def _local_copy(uri: str, fs, path: str, fingerprint: str, cache_dir: Path) -> str:
    target = cache_dir / f"{fingerprint}{_ext(path)}"
    if not target.exists():
        cache_dir.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(".part")
        with fs.open(path, "rb") as src, open(partial, "wb") as dst:
            shutil.copyfileobj(src, dst, 8 << 20)
        partial.replace(target)
    return str(target)


def _probe_folder(uri: str, fs, path: str) -> SourceInfo:
    names = sorted(p for p in fs.find(path, maxdepth=1) if _ext(p) in IMAGE_EXTS)
    if not names:
        raise InputError(f"source {uri}: folder has no images ({', '.join(sorted(IMAGE_EXTS))})")
    h = hashlib.blake2b(digest_size=16)
    for name in names:
        info = fs.info(name)
        h.update(f"{name.rsplit('/', 1)[-1]}:{info.get('size')}".encode())
        h.update(_hash_file(fs, name, info.get("size") or 0).encode())
    return SourceInfo(uri=uri, kind="images", fingerprint=h.hexdigest(), local_path=path,
                      frame_count=len(names), images=names)


def _too_large(width: int, height: int) -> str | None:
    if width * height > MAX_PIXELS:
        return f"{width}x{height} pixels, more than the {MAX_PIXELS // 1_000_000} MP limit"
    return None


def _image_too_large(data: str | bytes) -> str | None:
    """Why an image is too large to decode, from its header alone; None if it is not (or
    Pillow cannot read the header, in which case OpenCV decides)."""
    try:
        with Image.open(data if isinstance(data, str) else io.BytesIO(data)) as image:
            return _too_large(*image.size)
    except Image.DecompressionBombError:  # Pillow's own limit (178 MP) is above ours
        return f"more than {2 * Image.MAX_IMAGE_PIXELS // 1_000_000} MP, over the {MAX_PIXELS // 1_000_000} MP limit"
    except (OSError, ValueError):
        return None


def _probe_image(uri: str, local: str, fingerprint: str) -> SourceInfo:
    if why := _image_too_large(local):
        raise InputError(f"source {uri}: image is {why}")
    image = cv2.imread(local)
    if image is None:
        raise InputError(f"source {uri}: not an image OpenCV can decode")
    h, w = image.shape[:2]
    return SourceInfo(uri=uri, kind="image", fingerprint=fingerprint, local_path=local,
                      frame_count=1, width=w, height=h, images=[local])


def _probe_video(uri: str, local: str, fingerprint: str) -> SourceInfo:
    cap = cv2.VideoCapture(local)
    try:
        if not cap.isOpened():
            raise InputError(f"source {uri}: not a video OpenCV can decode")
        fps = cap.get(cv2.CAP_PROP_FPS) or 0.0
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        ok, frame = cap.read()
        if not ok or frame is None:
            raise InputError(f"source {uri}: video has zero decodable frames")
        if fps <= 0 or not math.isfinite(fps):
            raise InputError(f"source {uri}: video reports no frame rate")
        count = max(count, 1)
        h, w = frame.shape[:2]
        if why := _too_large(w, h):
            raise InputError(f"source {uri}: video frames are {why}")
    finally:
        cap.release()
    return SourceInfo(uri=uri, kind="video", fingerprint=fingerprint, local_path=local,
                      duration_s=round(count / fps, 3), native_fps=fps, frame_count=count,
                      width=w, height=h)


# ---- chunk plan -----------------------------------------------------------------


def sample_count(info: SourceInfo, fps: float) -> int:
    if info.kind != "video":
        return info.frame_count
    return max(1, math.floor(info.duration_s * fps - 1e-9) + 1)


def plan_chunks(info: SourceInfo, fps: float, chunk_s: float) -> list[ChunkSpec]:
    """Fixed slices of `chunk_s` seconds (images: `chunk_s * fps` images per chunk)."""
    total = sample_count(info, fps)
    per_chunk = max(1, round(chunk_s * fps))
    chunks = []
    for index, first in enumerate(range(0, total, per_chunk)):
        stop = min(total, first + per_chunk)
        end = info.duration_s if info.kind == "video" and stop == total else stop / fps
        chunks.append(ChunkSpec(index, first / fps, end, first, stop))
    return chunks


def sample_interval(info: SourceInfo, fps: float) -> float:
    """Seconds one sample stands for; a single still stands for no time at all."""
    return 0.0 if info.kind == "image" else 1.0 / fps


# ---- reading ----------------------------------------------------------------------


def read_samples(info: SourceInfo, chunk: ChunkSpec, fps: float, result: ReadResult,
                 lookbehind: bool = True, cut_fps: float = 0.0,
                 keyframes: bool = False) -> Iterator[tuple[int, float, str, np.ndarray]]:
    """Yield (sample index, t, name, BGR image) for the chunk, one frame in memory at a time.

    With `lookbehind`, the sample just before the chunk comes first (index
    `sample_start - 1`), so the next stage can tell whether a shot continues. With
    `cut_fps` > 0, a video's frames are also examined for shot cuts at up to that rate;
    `result.cut_samples` then lists the samples that open a new shot. With `keyframes`, a
    video sample takes a keyframe within half a sample interval of its time where there is
    one, and most frames are never decoded (mpr.keyframes; no decode-time cuts then).
    """
    first = chunk.sample_start - 1 if lookbehind and chunk.sample_start > 0 else chunk.sample_start
    if info.kind == "video" and keyframes:
        yield from _read_keyframes(info, first, chunk.sample_stop, fps, result)
        return
    if info.kind == "video":
        cuts = DecodeCuts(info.native_fps, cut_fps) if cut_fps > 0 and info.native_fps > 0 else None
        yield from _read_video(info, first, chunk.sample_stop, fps, result, cuts)
        return
    fs, _ = fsspec.core.url_to_fs(info.uri)
    for index in range(first, chunk.sample_stop):
        path = info.images[index]
        image = _read_image(fs if info.kind == "images" else None, path)
        if image is None:
            result.notes.append(f"unreadable or too large image skipped: {path.rsplit('/', 1)[-1]}")
            continue
        yield index, index / fps if info.kind == "images" else 0.0, path.rsplit("/", 1)[-1], image


def _read_image(fs, path: str) -> np.ndarray | None:
    data = path if fs is None else fs.cat_file(path)
    if _image_too_large(data):
        return None
    if fs is None:
        return cv2.imread(path)
    return cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)


def _read_video(info: SourceInfo, first: int, stop: int, fps: float, result: ReadResult,
                cuts: DecodeCuts | None = None) -> Iterator[tuple[int, float, str, np.ndarray]]:
    """Sequential decoding (PyAV, threaded) from the keyframe before the chunk; only the sampled
    frames are converted to BGR images.

    With `cuts`, every frame it wants also gives it a small thumbnail, made from the decoded
    picture's planes at a fraction of a full conversion's cost, starting a few frames before
    the first sample and running a few past the last, so a cut right next to either end is
    still seen with its neighbours.
    """
    def target(index: int) -> int:
        return min(round(index / fps * info.native_fps), info.frame_count - 1)

    lag = cuts.lag if cuts else 0
    start, end = max(0, target(first) - lag), target(stop - 1) + lag
    index, last_good = first, None
    try:
        with av.open(info.local_path) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for position, frame in _decode_from(container, stream, start, info.native_fps):
                if cuts and cuts.wants(position):
                    cuts.feed(position, thumbnail(frame))
                while index < stop and position >= target(index):
                    last_good = index / fps
                    yield index, round(last_good, 3), "", frame.to_ndarray(format="bgr24")
                    index += 1
                if index >= stop and position >= end:
                    break
    except (av.FFmpegError, IndexError):
        pass  # corrupt data or no video stream: what was read stands
    finally:
        if cuts:
            result.cut_samples = sorted({_sample_at(p, fps, info.native_fps) for p in cuts.positions})
    if index < stop:
        _unreadable(info, result, last_good if last_good is not None else first / fps)


def _decode_from(container, stream, start: int, native_fps: float) -> Iterator[tuple[int, av.VideoFrame]]:
    """(frame position, frame) from frame `start` on, in presentation order; positions come from
    the frames' timestamps (frame 0 at the stream's start time)."""
    origin = stream.start_time or 0
    if start > 0:  # to the keyframe at or before it, then decode forward
        container.seek(int(start / native_fps / stream.time_base) + origin, stream=stream, backward=True)
    for frame in container.decode(stream):
        if frame.pts is None:
            continue
        position = round(float((frame.pts - origin) * stream.time_base) * native_fps)
        if position >= start:
            yield position, frame


def _read_keyframes(info: SourceInfo, first: int, stop: int, fps: float,
                    result: ReadResult) -> Iterator[tuple[int, float, str, np.ndarray]]:
    reader = KeyframeReader(info.local_path, fps, info.native_fps, info.frame_count)
    read, last_good = 0, first / fps
    try:
        for target, image in reader.read(range(first, stop)):
            read, last_good = read + 1, target.t
            result.snapped += target.snapped
            yield target.index, round(target.t, 3), "", image
    except av.FFmpegError:
        pass  # corrupt data: what was read stands, like the sequential reader
    finally:
        reader.close()
    if read < stop - first:
        _unreadable(info, result, last_good)


def _unreadable(info: SourceInfo, result: ReadResult, last_good: float) -> None:
    result.readable_until_s = last_good
    result.notes.append(f"video unreadable after {last_good:.2f}s of {info.duration_s:.2f}s "
                        "(truncated or corrupt); analysed up to the last good frame")


def _sample_at(position: int, fps: float, native_fps: float) -> int:
    """The first sample whose frame is at or after `position`: the first sample of a new shot."""
    index = max(0, math.floor(position * fps / native_fps))
    while round(index / fps * native_fps) < position:
        index += 1
    return index
