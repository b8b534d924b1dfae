"""Media files: probe them with ffmpeg, split long sources into chunks, register them.

imageio-ffmpeg ships `ffmpeg` but no `ffprobe`, so probing parses the stream summary
that `ffmpeg -i FILE` prints on stderr. Remote (s3://) media is probed and split from a
temporary local copy under `MPR_DATA_DIR/tmp`.

Rows: one `MediaAsset` per file (key relative to its root, unique per root) and one
`Timeline` per chunked source with its ordered `TimelineChunk`s. A timeline is written
in one transaction, after its chunk files are uploaded, so rows never name missing files.
"""

from __future__ import annotations

import math
import re
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import fsspec
import imageio_ffmpeg
from fsspec.implementations.local import LocalFileSystem
from sqlalchemy import select
from sqlalchemy.orm import Session

from mpr import settings, source as sources, storage
from mpr.db.models import MediaAsset, Timeline, TimelineChunk
from mpr.errors import InputError, MprError
from mpr.storage import MediaRoot

# What chunk_source accepts: the scan lists plus the broadcast containers mpr.source reads.
MEDIA_EXTS = storage.VIDEO_EXTS | storage.AUDIO_EXTS | sources.VIDEO_EXTS
MIN_CHUNK_S, MAX_CHUNK_S = 1.0, 6 * 3600.0  # below a GOP or above a whole day of play is a typo
PROBE_TIMEOUT_S = 120
META_FIELDS = ("kind", "size_bytes", "duration_s", "fps", "width", "height", "video_codec", "audio_codec",
               "fingerprint")

_DURATION = re.compile(r"Duration: (\d+):(\d{2}):(\d{2}(?:\.\d+)?)")
_STREAM = re.compile(r"^\s*Stream #\d+:\d+\S*: (Video|Audio): ([^\s,]+)(.*)$", re.MULTILINE)
_SIZE = re.compile(r", (\d{1,5})x(\d{1,5})\b")
_RATE = re.compile(r"(\d+(?:\.\d+)?)(k?) (fps|tbr)\b")
_FRAMES = re.compile(r"frame=\s*(\d+)")


# ---- probing ------------------------------------------------------------------------


def ffmpeg() -> str:
    return imageio_ffmpeg.get_ffmpeg_exe()


def parse_ffmpeg_info(text: str) -> dict:
    """Duration, first real video stream and first audio stream from `ffmpeg -i` stderr.

    Cover art (`attached pic`, e.g. in MP3s) is not a video stream. Values ffmpeg does
    not print (`Duration: N/A`, no fps) come back as None.
    """
    info: dict = dict.fromkeys(("duration_s", "fps", "width", "height", "video_codec", "audio_codec"))
    duration = _DURATION.search(text)
    if duration:
        hours, minutes, seconds = duration.groups()
        info["duration_s"] = round(int(hours) * 3600 + int(minutes) * 60 + float(seconds), 3)
    for kind, codec, rest in _STREAM.findall(text):
        if kind == "Audio" and info["audio_codec"] is None:
            info["audio_codec"] = codec
        elif kind == "Video" and info["video_codec"] is None and "(attached pic)" not in rest:
            info["video_codec"] = codec
            info.update(_video_geometry(rest))
    return info


def _video_geometry(rest: str) -> dict:
    size = _SIZE.search(rest)
    rates = {unit: float(value) * (1000 if k else 1) for value, k, unit in _RATE.findall(rest)}
    fps = rates.get("fps") or rates.get("tbr")
    return {"width": int(size.group(1)) if size else None, "height": int(size.group(2)) if size else None,
            "fps": _exact_rate(fps) if fps and 0 < fps <= 1000 else None}


def _exact_rate(fps: float) -> float:
    """ffmpeg prints rates to 2 decimals; NTSC rates (30000/1001 = 29.97003...) are exact fractions,
    and 23.98 instead of 23.976 drifts a second over a match."""
    for base in (24, 30, 48, 60, 120):
        if abs(fps - base * 1000 / 1001) < 0.006:
            return base * 1000 / 1001
    return fps


def probe_media(path_or_url: str, label: str | None = None, count_frames: bool = False) -> dict:
    """Metadata of one media file (local path or fsspec URL), or InputError in one line.

    Returns kind (video|audio), duration_s, fps, width, height, video_codec, audio_codec,
    size_bytes and fingerprint (the same content fingerprint as `mpr.source`).
    `label` names the file in errors (e.g. its media key instead of a temporary path).
    `count_frames`: a video's duration is its frame count / fps (the pipeline's clock),
    not the container's figure, which may include a start offset or an audio tail; this
    reads the whole file (demuxing only), so it is meant for chunks.
    """
    label = label or path_or_url
    storage.configure_s3()
    fs, path = fsspec.core.url_to_fs(path_or_url)
    ext = PurePosixPath(path).suffix.lower()
    if ext not in MEDIA_EXTS:
        raise InputError(f"{label}: unsupported file type '{ext or '(none)'}' (want a video or audio file)")
    size = _checked_size(fs, path, label)
    with local_copy(fs, path) as local:
        meta = _probe_local(local, label)
        frames = count_video_frames(local) if count_frames and meta["fps"] else None
        if frames:
            meta["duration_s"] = round(frames / meta["fps"], 3)
        meta["fingerprint"] = sources._hash_file(LocalFileSystem(), local, size)
    meta["size_bytes"] = size
    return meta


def _checked_size(fs, path: str, label: str) -> int:
    try:
        if not fs.exists(path) or fs.isdir(path):
            raise InputError(f"{label}: no such file")
        size = int(fs.size(path) or 0)
    except PermissionError:
        raise InputError(f"{label}: permission denied") from None
    except OSError as exc:
        raise InputError(f"{label}: cannot be read ({exc})") from None
    if not size:
        raise InputError(f"{label}: file is empty (0 bytes)")
    return size


def _probe_local(local: str, label: str) -> dict:
    # `-i` without an output exits 1 by design: the stream summary on stderr is the answer.
    # The `file:` prefix stops names with ':' or '|' from being read as protocols.
    try:
        proc = subprocess.run([ffmpeg(), "-hide_banner", "-nostdin", "-i", f"file:{local}"],
                              capture_output=True, text=True, errors="replace", timeout=PROBE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise InputError(f"{label}: ffmpeg did not finish reading the header in {PROBE_TIMEOUT_S} s") from None
    info = parse_ffmpeg_info(proc.stderr)
    if "Input #0" not in proc.stderr or not (info["video_codec"] or info["audio_codec"]):
        raise InputError(f"{label}: not a video or audio file ffmpeg can read ({_ffmpeg_reason(proc.stderr)})")
    info["kind"] = "video" if info["video_codec"] else "audio"
    return info


def count_video_frames(local: str) -> int | None:
    """Frames of the first video stream, counted by demuxing (stream copy to nowhere, no decoding)."""
    proc = subprocess.run([ffmpeg(), "-hide_banner", "-nostdin", "-i", f"file:{local}", "-map", "0:V:0",
                           "-c", "copy", "-f", "null", "-"], capture_output=True, text=True, errors="replace")
    counts = _FRAMES.findall(proc.stderr)
    return int(counts[-1]) if proc.returncode == 0 and counts else None


def _ffmpeg_reason(stderr: str) -> str:
    lines = [line.strip() for line in stderr.splitlines()
             if line.strip() and "output file must be specified" not in line]
    reason = lines[-1] if lines else "no streams"
    return reason.split(": ", 1)[-1] if reason.startswith("file:") else reason


@contextmanager
def work_dir() -> Iterator[Path]:
    """A temporary folder under `MPR_DATA_DIR/tmp` (beside the data, where the space is), removed after."""
    tmp_root = settings.data_dir() / "tmp"
    tmp_root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=tmp_root) as tmp:
        yield Path(tmp)


@contextmanager
def local_copy(fs, path: str) -> Iterator[str]:
    """The path itself for local files; else a temporary download, removed afterwards."""
    if isinstance(fs, LocalFileSystem):
        yield path
        return
    with work_dir() as tmp:
        local = str(tmp / f"source{PurePosixPath(path).suffix.lower()}")
        try:
            fs.get_file(path, local)
        except OSError as exc:
            raise InputError(f"{fs.unstrip_protocol(path)}: download failed ({exc})") from None
        yield local


# ---- sources and chunking -------------------------------------------------------------


@dataclass(frozen=True)
class MediaSource:
    """A source to chunk, resolved and fingerprinted (nothing downloaded yet)."""

    uri: str  # local absolute path or s3:// URL
    name: str  # the timeline name: the key under media-in, else the URI
    key: str | None  # key under MPR_MEDIA_IN, when it lies there
    size: int
    fingerprint: str

    @property
    def ext(self) -> str:
        return PurePosixPath(self.uri).suffix.lower()

    def chunk_prefix(self, chunk_s: float) -> str:
        """`chunks/<stem>-<fingerprint[:8]>/<chunk_s>s`: one folder per content and chunk length,
        so re-chunking with another length never overwrites files an existing timeline names."""
        stem = re.sub(r"[^\w.-]+", "_", PurePosixPath(self.uri).stem).strip("._") or "source"
        return f"chunks/{stem}-{self.fingerprint[:8]}/{_number(chunk_s)}s"


def _number(value: float) -> str:
    return f"{value:.3f}".rstrip("0").rstrip(".")


def check_chunk_s(chunk_s) -> float:
    """Chunk length in seconds, validated; InputError names the allowed range."""
    try:
        value = float(chunk_s)
    except (TypeError, ValueError):
        value = math.nan
    if isinstance(chunk_s, bool) or not MIN_CHUNK_S <= value <= MAX_CHUNK_S:
        raise InputError(f"chunk_s {chunk_s!r}: want a number of seconds from {_number(MIN_CHUNK_S)} "
                         f"to {_number(MAX_CHUNK_S)}")
    return round(value, 3)


def resolve_source(source: str, root: MediaRoot | None = None) -> MediaSource:
    """A local path, an s3:// URL or a key under media-in -> MediaSource, or InputError.

    Existing local paths win over keys; anything else without a scheme is a media-in key
    and must be a safe relative key (no '..', not absolute).
    """
    if not isinstance(source, str) or not source.strip():
        raise InputError("source: empty")
    root = root or storage.media_in()
    source = source.strip()
    local = Path(source).expanduser()
    if storage._SCHEME.match(source) or local.is_absolute() or local.exists():
        uri = storage.check_root(source, "source")
    else:
        uri = root.uri(source)
    key = root.key_of(uri)
    fs, path = fsspec.core.url_to_fs(uri)
    if PurePosixPath(path).suffix.lower() not in MEDIA_EXTS:
        ext = PurePosixPath(path).suffix.lower() or "(none)"
        raise InputError(f"source {source}: unsupported file type '{ext}' (want a video or audio file)")
    size = _checked_size(fs, path, f"source {source}")
    try:
        fingerprint = sources._hash_file(fs, path, size)
    except OSError as exc:
        raise InputError(f"source {source}: cannot be read ({exc})") from None
    return MediaSource(uri=uri, name=key or uri, key=key, size=size, fingerprint=fingerprint)


def split_media(local: str, out_dir: Path, chunk_s: float, label: str) -> list[Path]:
    """Stream-copy `local` into `chunk_s`-second pieces `out_dir/00000.EXT`, ... in order.

    Stream copy cuts at keyframes only, so pieces are about `chunk_s` long, never exact.
    Only real video (`V`: no cover art) and audio streams are kept: data and subtitle
    streams often cannot be muxed into segments.
    """
    ext = Path(local).suffix.lower()
    out_dir.mkdir(parents=True, exist_ok=True)
    pattern = str(out_dir).replace("%", "%%") + f"/%05d{ext}"
    command = [ffmpeg(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y", "-i", f"file:{local}",
               "-map", "0:V?", "-map", "0:a?", "-c", "copy", "-f", "segment", "-segment_time", _number(chunk_s),
               "-reset_timestamps", "1", pattern]
    proc = subprocess.run(command, capture_output=True, text=True, errors="replace")
    chunks = sorted(out_dir.glob(f"*{ext}"))
    if proc.returncode or not chunks:
        raise MprError(f"{label}: ffmpeg could not split it ({_ffmpeg_reason(proc.stderr)})")
    return chunks


# ---- rows ---------------------------------------------------------------------------


def register_asset(session: Session, root_name: str, key: str, meta: dict) -> tuple[MediaAsset, bool]:
    """The asset row of (root, key), created or brought up to date with `meta`; and whether it is new."""
    key = storage.safe_key(key)
    values = {name: meta.get(name) for name in META_FIELDS if meta.get(name) is not None}
    asset = session.scalar(select(MediaAsset).where(MediaAsset.root == root_name, MediaAsset.key == key))
    created = asset is None
    if created:
        asset = MediaAsset(root=root_name, key=key, kind=values.pop("kind", None) or storage.media_kind(key))
        session.add(asset)
    for name, value in values.items():
        setattr(asset, name, value)
    session.flush()
    return asset, created


def known_keys(session: Session, root_name: str = "in") -> set[str]:
    return set(session.scalars(select(MediaAsset.key).where(MediaAsset.root == root_name)))


def find_timeline(session: Session, source: MediaSource, chunk_s: float) -> Timeline | None:
    """The timeline of this source already chunked at this length from this content, if any."""
    timeline = session.scalar(select(Timeline).where(Timeline.name == source.name))
    prefix = source.chunk_prefix(chunk_s) + "/"
    if timeline and timeline.chunk_s == chunk_s and timeline.chunks \
            and all(chunk.asset.key.startswith(prefix) for chunk in timeline.chunks):
        return timeline
    return None


def save_timeline(session: Session, source: MediaSource, source_meta: dict, chunk_s: float,
                  chunks: list[tuple[str, dict]]) -> tuple[Timeline, list[str]]:
    """Register the chunk assets and (re)write the source's timeline; returns it and the keys of
    chunk assets it no longer uses (deleted here; their files are the caller's to remove)."""
    source_asset = register_asset(session, "in", source.key, source_meta)[0] if source.key else None
    assets = [register_asset(session, "in", key, meta)[0] for key, meta in chunks]
    timeline = session.scalar(select(Timeline).where(Timeline.name == source.name))
    if timeline is None:
        timeline = Timeline(name=source.name, chunk_s=chunk_s)
        session.add(timeline)
    old = [chunk.asset for chunk in timeline.chunks]
    timeline.chunks.clear()
    session.flush()  # old positions go before new ones take them (unique timeline_id, position)
    offset = 0.0
    for position, asset in enumerate(assets):
        if asset.duration_s is None:
            raise MprError(f"{source.name}: chunk {asset.key} has no duration ffmpeg can read")
        timeline.chunks.append(TimelineChunk(position=position, asset=asset, offset_s=round(offset, 3)))
        offset += asset.duration_s
    timeline.chunk_s = chunk_s
    timeline.duration_s = round(offset, 3)
    timeline.source_asset_id = source_asset.id if source_asset else None
    session.flush()
    return timeline, _drop_unused(session, old, keep={a.id for a in assets})


def _drop_unused(session: Session, assets: list[MediaAsset], keep: set[int]) -> list[str]:
    """Delete chunk assets no timeline uses any more (another timeline of the same content may)."""
    dropped = []
    for asset in assets:
        used = session.scalar(select(TimelineChunk.id).where(TimelineChunk.asset_id == asset.id).limit(1))
        if asset.id not in keep and used is None:
            dropped.append(asset.key)
            session.delete(asset)
    session.flush()
    return dropped


def timeline_summary(timeline: Timeline, reused: bool) -> dict:
    """What chunk_source returns; `reused`: the timeline was there already, nothing was cut."""
    return {"timeline_id": timeline.id, "name": timeline.name, "chunks": len(timeline.chunks),
            "duration_s": timeline.duration_s, "chunk_s": timeline.chunk_s,
            "keys": [chunk.asset.key for chunk in timeline.chunks],
            "offsets_s": [chunk.offset_s for chunk in timeline.chunks], "reused": reused}


def probe_key(root: MediaRoot, key: str) -> dict:
    """probe_media of a file under a media root, errors naming its key."""
    return probe_media(root.uri(key), label=key)
