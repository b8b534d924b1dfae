"""Media flows: `chunk_source` cuts a long source into a Timeline of chunks under media-in;
`scan_media` registers the video and audio files found under media-in.

    from flows.media import chunk_source, scan_media
    chunk_source("matches/final.mp4", chunk_s=60)   # a media-in key, a local path or s3:// URL
    scan_media()                                     # {"found": 12, "registered": 3, "skipped": 9, ...}

Both are idempotent: chunking the same content at the same length again returns the
existing timeline, and a scan skips keys that are registered already.
"""

from __future__ import annotations

from pathlib import Path

from mpr.settings import apply_offline_defaults

apply_offline_defaults()  # before Prefect reads its settings

import fsspec  # noqa: E402
from prefect import flow, get_run_logger, task  # noqa: E402
from prefect.artifacts import create_table_artifact  # noqa: E402
from prefect.cache_policies import NONE  # noqa: E402
from prefect.task_runners import ThreadPoolTaskRunner  # noqa: E402
from sqlalchemy import select  # noqa: E402
from sqlalchemy.exc import IntegrityError  # noqa: E402

from mpr.db.models import MediaAsset  # noqa: E402
from mpr.db.session import session_scope  # noqa: E402
from mpr.errors import InputError  # noqa: E402
from mpr.media import (  # noqa: E402
    MediaSource,
    check_chunk_s,
    find_timeline,
    known_keys,
    local_copy,
    probe_key,
    probe_media,
    register_asset,
    resolve_source,
    save_timeline,
    split_media,
    timeline_summary,
    work_dir,
)
from mpr.storage import media_in, media_kind, safe_key  # noqa: E402

SCAN_WORKERS = 4  # files probed at once (remote ones are downloaded first)


# ---- chunk_source -------------------------------------------------------------------


@task(name="split-source", cache_policy=NONE)
def split_source(src: MediaSource, chunk_s: float, out_dir: str) -> tuple[dict, list[tuple[str, dict]]]:
    """Probe the source and cut it into `out_dir`; returns its metadata and (chunk path, metadata)."""
    fs, path = fsspec.core.url_to_fs(src.uri)
    label = f"source {src.uri}"
    with local_copy(fs, path) as local:  # a remote source's copy goes as soon as it is cut
        source_meta = probe_media(local, label=label)
        pieces = split_media(local, Path(out_dir), chunk_s, label)
    chunks = [(str(piece), probe_media(str(piece), f"chunk {piece.name} of {src.uri}", count_frames=True))
              for piece in pieces]
    return source_meta, chunks


@task(name="upload-chunks", cache_policy=NONE, retries=2, retry_delay_seconds=[2, 10])
def upload_chunks(paths: list[str], prefix: str) -> list[str]:
    """Put every chunk file under `prefix` in media-in (re-putting a file is harmless on retry)."""
    root = media_in()
    return [root.put_file(path, f"{prefix}/{Path(path).name}") for path in paths]


@task(name="register-timeline", cache_policy=NONE)
def register_timeline(src: MediaSource, source_meta: dict, chunk_s: float,
                      chunks: list[tuple[str, dict]]) -> tuple[dict, list[str]]:
    """Chunk assets, timeline and its chunk list in one transaction: all or nothing."""
    with session_scope() as session:
        timeline, unused = save_timeline(session, src, source_meta, chunk_s, chunks)
        return timeline_summary(timeline, reused=False), unused


def remove_files(keys: list[str], why: str) -> None:
    """Delete chunk files under media-in that no row names (any more); best effort, warns."""
    root = media_in()
    for key in keys:
        try:
            root.fs.rm(root.path(key))
        except OSError as exc:
            get_run_logger().warning(f"could not remove {why} chunk {key}: {exc}")
    if not root.remote:  # emptied local folders stay behind (S3 has no folders): prune them up to the root
        for folder in {Path(root.path(key)).parent for key in keys}:
            while folder != Path(root.base) and Path(root.base) in folder.parents:
                try:
                    folder.rmdir()
                except OSError:
                    break  # not empty: other chunks live there
                folder = folder.parent


def discard_uploads(keys: list[str]) -> None:
    """After a failed registration: remove the uploaded chunks no row names (another timeline of
    the same content may name them). Never masks the failure it cleans up after."""
    try:
        with session_scope() as session:
            registered = set(session.scalars(select(MediaAsset.key).where(MediaAsset.root == "in",
                                                                          MediaAsset.key.in_(keys))))
        remove_files([key for key in keys if key not in registered], "unregistered")
    except Exception as exc:
        get_run_logger().warning(f"could not clean up the uploaded chunks: {exc}")


@flow(name="chunk-source", persist_result=False)
def chunk_source(source: str, chunk_s: float = 60.0) -> dict:
    """Cut SOURCE into about `chunk_s`-second chunks (stream copy, at keyframes) under media-in
    `chunks/...`, and register them as a Timeline named after the source.

    source: a key under MPR_MEDIA_IN, a local path, or an s3:// URL.
    Returns {"timeline_id", "name", "chunks", "duration_s", "chunk_s", "keys", "offsets_s", "reused"}.
    """
    logger = get_run_logger()
    chunk_s = check_chunk_s(chunk_s)
    src = resolve_source(source)
    with session_scope() as session:
        existing = find_timeline(session, src, chunk_s)
        summary = timeline_summary(existing, reused=True) if existing else None
    if summary:
        logger.info(f"{src.name}: already chunked at {chunk_s:g} s (timeline {summary['timeline_id']})")
        return summary
    with work_dir() as tmp:
        source_meta, pieces = split_source(src, chunk_s, str(tmp))
        keys = upload_chunks([path for path, _ in pieces], src.chunk_prefix(chunk_s))
    try:
        summary, unused = register_timeline(src, source_meta, chunk_s,
                                            [(key, meta) for key, (_, meta) in zip(keys, pieces)])
    except Exception:
        discard_uploads(keys)  # no rows were written: no files either
        raise
    remove_files(unused, "unused")
    logger.info(f"{src.name}: {summary['chunks']} chunks, {summary['duration_s']:.2f} s "
                f"(timeline {summary['timeline_id']})")
    create_table_artifact(
        key="chunk-source",
        table=[{"position": i, "key": k, "offset_s": o} for i, (k, o) in enumerate(zip(keys, summary["offsets_s"]))],
        description=f"Timeline {summary['timeline_id']} `{src.name}`: {summary['chunks']} chunks of ~{chunk_s:g} s")
    return summary


# ---- scan_media ---------------------------------------------------------------------


@task(name="register-media", task_run_name="register-media[{key}]", cache_policy=NONE)
def register_media(key: str) -> dict:
    """Probe one new file and register it; a file ffmpeg cannot read is reported, not registered."""
    try:
        meta = probe_key(media_in(), key)
    except InputError as exc:
        get_run_logger().warning(f"not registered: {exc}")
        return {"key": key, "status": "failed", "error": str(exc)}
    try:
        with session_scope() as session:
            created = register_asset(session, "in", key, meta)[1]
    except IntegrityError:  # a concurrent scan registered it first
        created = False
    return {"key": key, "status": "registered" if created else "skipped", **meta}


def media_keys(logger) -> tuple[list[str], list[str]]:
    """Keys under media-in with a video/audio extension: (usable, unsafe). An unsafe key is one
    safe_key refuses or would change (S3 allows names like 'a/../b.mp4' or 'a//b.mp4')."""
    usable, unsafe = [], []
    for key in media_in().walk():
        if not media_kind(key):
            continue
        try:
            if safe_key(key) != key:
                raise InputError(f"media key {key!r}: not in normal form")
            usable.append(key)
        except InputError as exc:
            logger.warning(f"not registered: {exc}")
            unsafe.append(key)
    return usable, unsafe


@flow(name="scan-media", persist_result=False, task_runner=ThreadPoolTaskRunner(max_workers=SCAN_WORKERS))
def scan_media() -> dict:
    """Register every video/audio file under MPR_MEDIA_IN (recursively) not registered yet.

    Returns {"found", "registered", "skipped", "failed"}: found counts files with a media
    extension; failed lists the keys that could not be probed or are unsafe.
    """
    logger = get_run_logger()
    usable, unsafe = media_keys(logger)
    with session_scope() as session:
        known = known_keys(session, "in")
    new = [key for key in usable if key not in known]
    results = register_media.map(new).result() if new else []
    by_status = {status: [r for r in results if r["status"] == status] for status in ("registered", "skipped")}
    failed = unsafe + [r["key"] for r in results if r["status"] == "failed"]
    summary = {"found": len(usable) + len(unsafe), "registered": len(by_status["registered"]),
               "skipped": len(usable) - len(new) + len(by_status["skipped"]), "failed": failed}
    logger.info(f"{media_in().url}: {summary['found']} media files, {summary['registered']} registered, "
                f"{summary['skipped']} known, {len(failed)} failed")
    if by_status["registered"] or failed:
        create_table_artifact(key="media-scan", table=_scan_rows(by_status["registered"], results, unsafe),
                              description=f"Scan of {media_in().url}")
    return summary


def _scan_rows(registered: list[dict], results: list[dict], unsafe: list[str]) -> list[dict]:
    """One uniform row per registered or failed key (the UI renders the first row's columns)."""
    columns = ("key", "kind", "duration_s", "width", "height", "video_codec", "audio_codec", "error")
    failed = [r for r in results if r["status"] == "failed"] + [{"key": k, "error": "unsafe key"} for k in unsafe]
    return [{c: r.get(c) for c in columns} for r in registered + failed]
