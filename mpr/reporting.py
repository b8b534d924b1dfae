"""Report files (report.json, timeline.csv, brands.csv, exposures.csv, detections.csv/.parquet,
report.html, annotated.mp4) and their text tables."""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from pathlib import Path

import fsspec

from mpr.records import Report
from mpr.storage import check_root, configure_s3

STAGE_COLUMNS = ["stage", "state", "seconds", "items in", "items out", "chunks", "cached", "worker"]
REPORT_FILES = ["report.html", "report.json", "timeline.csv", "brands.csv", "exposures.csv", "detections.csv",
                "detections.parquet"]
VIDEO_FILE = "annotated.mp4"
FILE_MODE = 0o644
BRAND_COLUMNS = ["brand", "exposure s", "exposures", "quality", "media value", "share of voice", "first seen",
                 "last seen"]
EXPOSURE_COLUMNS = ["id", "brand", "start", "end", "duration_s", "shot", "placement", "share_mean", "share_max", "zone",
                    "central", "clarity", "sharpness", "contrast", "confidence", "clutter", "share_of_voice", "size",
                    "position", "quality", "media_value", "detections", "source"]
DETECTION_COLUMNS = ["t", "brand", "confidence", "text", "x1", "y1", "x2", "y2", "region", "frame", "source", "resolver",
                     "exposure", "share", "zone", "placement", "sharpness", "contrast", "match_score"]


def stage_rows(report: Report) -> list[list]:
    return [[s.name, s.state, f"{s.seconds:.2f}", s.items_in, s.items_out, s.chunks, s.cached_chunks, s.worker]
            for s in report.stages]


def brand_rows(report: Report) -> list[list]:
    return [[b.brand, f"{b.exposure_s:.1f}", b.exposure_count, f"{b.quality:.2f}", f"{b.media_value:.2f}",
             f"{100 * b.share_of_voice:.1f}%", f"{b.segments[0].start:.1f}", f"{b.segments[-1].end:.1f}"]
            for b in report.brands]


def _csv(header: list[str], rows: list[list]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue()


def render_files(report: Report, video: bool = False) -> dict[str, str | bytes]:
    """Every report file by name; report.json last (its appearance means the set is complete)."""
    from mpr.outputs.html import render_html

    timeline = [[b.brand, s.start, s.end, round(s.end - s.start, 3), s.confidence, s.detections, s.source]
                for b in report.brands for s in b.segments]
    timeline.sort(key=lambda r: (r[1], r[0]))
    brands = [[b.brand, b.exposure_s, b.detections, len(b.segments),
               round(sum(s.confidence for s in b.segments) / len(b.segments), 4), b.exposure_count, b.quality,
               b.media_value, b.share_of_voice] for b in report.brands]
    exposures = sorted((e for b in report.brands for e in b.exposures), key=lambda e: (e.start, e.id))
    return {
        "timeline.csv": _csv(["brand", "start", "end", "duration_s", "confidence", "detections", "source"], timeline),
        "brands.csv": _csv(["brand", "exposure_s", "detections", "segments", "mean_confidence", "exposures", "quality",
                            "media_value", "share_of_voice"], brands),
        "exposures.csv": _csv(EXPOSURE_COLUMNS, [[getattr(e, c) for c in EXPOSURE_COLUMNS] for e in exposures]),
        "detections.csv": _csv(DETECTION_COLUMNS, _detection_rows(report)),
        "detections.parquet": _parquet(report),
        "report.html": render_html(report, VIDEO_FILE if video else None),
        "report.json": json.dumps(report.model_dump(mode="json", exclude={"detections"}), indent=2) + "\n",
    }


def _detection_rows(report: Report) -> list[list]:
    rows = []
    for d in report.detections:
        values = {**d.model_dump(exclude={"box"}), **dict(zip(("x1", "y1", "x2", "y2"), (round(v, 1) for v in d.box)))}
        rows.append([values[c] for c in DETECTION_COLUMNS])
    return rows


def _parquet(report: Report) -> bytes:
    import pandas as pd

    frame = pd.DataFrame(_detection_rows(report), columns=DETECTION_COLUMNS)
    frame["exposure"] = frame["exposure"].astype("Int64")
    buf = io.BytesIO()
    frame.to_parquet(buf, index=False, engine="pyarrow")
    return buf.getvalue()


def write_report(report: Report, out_dir: str | Path, video_source: str | None = None) -> str:
    """Write every file, report.json last. Locally each goes to a temporary name and is
    renamed; on S3 (`s3://bucket/prefix`) objects appear whole. No half-written report.
    With `video_source` (a local video file), annotated.mp4 is written first."""
    out = str(out_dir)
    remote = out.startswith("s3://")
    url = check_root(out, "--out") if remote else out
    with tempfile.TemporaryDirectory(prefix="mpr-video-") as scratch:
        folder = Path(scratch) if remote else Path(out)
        folder.mkdir(parents=True, exist_ok=True)
        video = _annotate(report, video_source, folder / VIDEO_FILE) if video_source else None
        files = render_files(report, video=video is not None)
        if remote:
            return _write_remote(files, url, video)
        for name, content in files.items():
            _replace(folder / name, content)
        return str(folder / "report.json")


def _annotate(report: Report, video_source: str, path: Path) -> Path:
    from mpr.outputs.video import write_annotated_video

    return write_annotated_video(report, video_source, path)


def _replace(path: Path, content: str | bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "wb") as fh:
        fh.write(content.encode("utf-8") if isinstance(content, str) else content)
    os.chmod(tmp, FILE_MODE)  # mkstemp makes 0600; reports are for sharing
    os.replace(tmp, path)


def _write_remote(files: dict[str, str | bytes], url: str, video: Path | None) -> str:
    configure_s3()
    fs, base = fsspec.core.url_to_fs(url)
    if video is not None:
        fs.put_file(str(video), f"{base}/{VIDEO_FILE}")
    for name, content in files.items():
        fs.pipe_file(f"{base}/{name}", content.encode("utf-8") if isinstance(content, str) else content)
    return f"{url}/report.json"


MAX_OVERLAY_LINKS = 200


def markdown(report: Report, out_dir: str | None, video: bool = False) -> str:
    """The Prefect markdown artifact: summary, brand timeline and stage table."""
    lines = [f"# Brand report: {report.source}", "",
             f"profile **{report.profile}**, {report.duration_s:.1f} s, "
             f"{report.frames_analyzed} frames sampled, {report.frames_kept} read, "
             f"{report.unresolved} unresolved texts", ""]
    if report.warnings:
        lines += [f"> warning: {w}" for w in report.warnings] + [""]
    currency = report.summary.currency or "value"
    lines += [f"| brand | exposure s | exposures | quality | media value ({currency}) | share of voice | segments |",
              "|---|---|---|---|---|---|---|"]
    for b in report.brands:
        spans = ", ".join(f"{s.start:g}-{s.end:g}" for s in b.segments)
        lines.append(f"| {b.brand} | {b.exposure_s:.1f} | {b.exposure_count} | {b.quality:.2f} | {b.media_value:.2f} "
                     f"| {100 * b.share_of_voice:.1f}% | {spans} |")
    if report.escalation:
        lines += ["", "| escalation | calls | input tokens | output tokens | est. cost $ | from cache | resolved |",
                  "|---|---|---|---|---|---|---|"]
        lines += [f"| {p} | {u.get('calls', 0):.0f} | {u.get('input_tokens', 0):.0f} | {u.get('output_tokens', 0):.0f}"
                  f" | {u.get('cost_usd', 0):.4f} | {u.get('cached', 0):.0f} | {u.get('resolved', 0):.0f} |"
                  for p, u in report.escalation.items()]
    lines += ["", "| " + " | ".join(STAGE_COLUMNS) + " |", "|" + "---|" * len(STAGE_COLUMNS)]
    lines += ["| " + " | ".join(map(str, row)) + " |" for row in stage_rows(report)]
    if out_dir:
        where = out_dir.rstrip("/") if "://" in out_dir else Path(out_dir).resolve().as_uri()
        links = " · ".join(f"[{name}]({where}/{name})" for name in REPORT_FILES + [VIDEO_FILE] * video)
        lines += ["", f"Files in `{where}`: {links}"]
    if report.overlays:
        lines += ["", f"## Debug overlays ({len(report.overlays)})", ""]
        lines += [f"- [{url.rsplit('/', 2)[-2].split('-')[0]} {url.rsplit('/', 1)[-1]}]({url})"
                  for url in report.overlays[:MAX_OVERLAY_LINKS]]
        if len(report.overlays) > MAX_OVERLAY_LINKS:
            lines.append(f"- ... {len(report.overlays) - MAX_OVERLAY_LINKS} more in report.json `overlays`")
    return "\n".join(lines)
