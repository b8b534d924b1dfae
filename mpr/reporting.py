"""Report files (report.json, timeline.csv, brands.csv, detections.csv) and their text tables."""

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
REPORT_FILES = ["report.json", "timeline.csv", "brands.csv", "detections.csv"]
BRAND_COLUMNS = ["brand", "exposure s", "detections", "segments", "first seen", "last seen"]


def stage_rows(report: Report) -> list[list]:
    return [[s.name, s.state, f"{s.seconds:.2f}", s.items_in, s.items_out, s.chunks, s.cached_chunks, s.worker]
            for s in report.stages]


def brand_rows(report: Report) -> list[list]:
    return [[b.brand, f"{b.exposure_s:.1f}", b.detections, len(b.segments),
             f"{b.segments[0].start:.1f}", f"{b.segments[-1].end:.1f}"] for b in report.brands]


def _csv(header: list[str], rows: list[list]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue()


def render_files(report: Report) -> dict[str, str]:
    timeline = [[b.brand, s.start, s.end, round(s.end - s.start, 3), s.confidence, s.detections, s.source]
                for b in report.brands for s in b.segments]
    timeline.sort(key=lambda r: (r[1], r[0]))
    brands = [[b.brand, b.exposure_s, b.detections, len(b.segments),
               round(sum(s.confidence for s in b.segments) / len(b.segments), 4)] for b in report.brands]
    detections = [[d.t, d.brand, d.confidence, d.text, *[round(v, 1) for v in d.box], d.region, d.frame,
                   d.source, d.resolver] for d in report.detections]
    return {
        "timeline.csv": _csv(["brand", "start", "end", "duration_s", "confidence", "detections", "source"], timeline),
        "brands.csv": _csv(["brand", "exposure_s", "detections", "segments", "mean_confidence"], brands),
        "detections.csv": _csv(["t", "brand", "confidence", "text", "x1", "y1", "x2", "y2", "region", "frame",
                                "source", "resolver"],
                               detections),
        # last: report.json appearing means the set is complete
        "report.json": json.dumps(report.model_dump(mode="json", exclude={"detections"}), indent=2) + "\n",
    }


def write_report(report: Report, out_dir: str | Path) -> str:
    """Write every file, report.json last. Locally each goes to a temporary name and is
    renamed; on S3 (`s3://bucket/prefix`) objects appear whole. No half-written report."""
    out = str(out_dir)
    if out.startswith("s3://"):
        return _write_remote(render_files(report), check_root(out, "--out"))
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in render_files(report).items():
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", dir=folder)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, folder / name)
    return str(folder / "report.json")


def _write_remote(files: dict[str, str], url: str) -> str:
    configure_s3()
    fs, base = fsspec.core.url_to_fs(url)
    for name, text in files.items():
        fs.pipe_file(f"{base}/{name}", text.encode("utf-8"))
    return f"{url}/report.json"


MAX_OVERLAY_LINKS = 200


def markdown(report: Report, out_dir: str | None) -> str:
    """The Prefect markdown artifact: summary, brand timeline and stage table."""
    lines = [f"# Brand report: {report.source}", "",
             f"profile **{report.profile}**, {report.duration_s:.1f} s, "
             f"{report.frames_analyzed} frames sampled, {report.frames_kept} read, "
             f"{report.unresolved} unresolved texts", ""]
    if report.warnings:
        lines += [f"> warning: {w}" for w in report.warnings] + [""]
    lines += ["| brand | exposure s | segments |", "|---|---|---|"]
    for b in report.brands:
        spans = ", ".join(f"{s.start:g}-{s.end:g}" for s in b.segments)
        lines.append(f"| {b.brand} | {b.exposure_s:.1f} | {spans} |")
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
        links = " · ".join(f"[{name}]({where}/{name})" for name in REPORT_FILES)
        lines += ["", f"Files in `{where}`: {links}"]
    if report.overlays:
        lines += ["", f"## Debug overlays ({len(report.overlays)})", ""]
        lines += [f"- [{url.rsplit('/', 2)[-2].split('-')[0]} {url.rsplit('/', 1)[-1]}]({url})"
                  for url in report.overlays[:MAX_OVERLAY_LINKS]]
        if len(report.overlays) > MAX_OVERLAY_LINKS:
            lines.append(f"- ... {len(report.overlays) - MAX_OVERLAY_LINKS} more in report.json `overlays`")
    return "\n".join(lines)
