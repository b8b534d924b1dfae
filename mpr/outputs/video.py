"""annotated.mp4: the source video with the run's detections drawn on it.

Every source frame is decoded in order, scaled to at most `max_width` and shows the
detections of the sample that stands for its time (a sample holds its boxes for
`sample_interval_s`): a box in the brand's own colour (stable across runs) with a
`Brand #exposure` tag, a panel of running exposure seconds per brand (bottom-left,
clear of score bugs and perimeter boards) and a time code (bottom-right). Frames
stream straight into ffmpeg/libx264, so memory stays flat whatever the length; the
file only takes its final name once it is complete.
"""

from __future__ import annotations

import bisect
import os
import tempfile
import zlib
from collections import defaultdict
from collections.abc import Iterable, Iterator
from pathlib import Path

import cv2
import imageio_ffmpeg
import numpy as np

from mpr.records import Detection, Report

_PALETTE_RGB = [  # distinct, saturated, visible on grass, crowds and dark graphics (and on report.html's white)
    (230, 25, 75), (255, 225, 25), (0, 130, 255), (255, 140, 0), (145, 60, 255), (70, 240, 240),
    (240, 50, 230), (190, 255, 60), (255, 160, 200), (0, 170, 150), (154, 99, 36), (190, 175, 255),
]
PALETTE = [(b, g, r) for r, g, b in _PALETTE_RGB]  # BGR, as cv2 draws
FONT = cv2.FONT_HERSHEY_SIMPLEX
PANEL_ROWS = 8  # brands listed in the counter panel at most
NAME_CHARS = 18  # longer brand names are cut in the panel
EPS = 1e-3  # sample times are rounded to ms


def brand_colour(brand: str) -> tuple[int, int, int]:
    """A brand's own BGR colour, the same in every run (CRC32 of the name into PALETTE)."""
    return PALETTE[_slot(brand)]


def brand_colours(brands: Iterable[str]) -> dict[str, tuple[int, int, int]]:
    """Colours for a set of brands: each its own `brand_colour`, unless another brand took it.

    Brands claim slots in name order; a taken slot passes to the next free one, so a
    given set of brands always gets the same colours and (up to len(PALETTE)) no two share one.
    """
    taken: set[int] = set()
    colours = {}
    for brand in sorted(set(brands)):
        taken = taken if len(taken) < len(PALETTE) else set()
        slot = _slot(brand)
        while slot in taken:
            slot = (slot + 1) % len(PALETTE)
        taken.add(slot)
        colours[brand] = PALETTE[slot]
    return colours


def _slot(brand: str) -> int:
    return zlib.crc32(brand.encode("utf-8")) % len(PALETTE)


def write_annotated_video(report: Report, video_path: str, out_path: str | Path, *, max_width: int = 1280,
                          crf: int = 23, preset: str = "veryfast") -> Path:
    """Write `video_path` with `report`'s detections drawn on it to `out_path` (H.264 mp4).

    Raises ValueError when the source cannot be read; a truncated source gives the
    frames that could be read.
    """
    cap = cv2.VideoCapture(str(video_path))
    try:
        ok, first = cap.read() if cap.isOpened() else (False, None)
        if not ok or first is None:
            raise ValueError(f"cannot read video {video_path}")
        fps = _fps(cap)
        source = (first.shape[1], first.shape[0])
        size = _output_size(*source, max_width)
        overlay = _Overlay(report, size, source, fps)
        return _encode(_frames(cap, first, size, overlay, fps), size, fps, Path(out_path), crf, preset)
    finally:
        cap.release()


def frame_at(path: str | Path, t: float) -> np.ndarray:
    """The BGR frame on screen at `t` seconds of the video at `path` (seek, decode one)."""
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise ValueError(f"cannot read video {path}")
        cap.set(cv2.CAP_PROP_POS_FRAMES, int(t * _fps(cap) + EPS))
        ok, frame = cap.read()
        if not ok or frame is None:
            raise ValueError(f"no frame at {t:.3f}s in {path}")
        return frame
    finally:
        cap.release()


# ---- reading and encoding ----------------------------------------------------------


def _fps(cap: cv2.VideoCapture) -> float:
    fps = cap.get(cv2.CAP_PROP_FPS) or 0.0
    return fps if 0 < fps < 1000 else 25.0


def _output_size(width: int, height: int, max_width: int) -> tuple[int, int]:
    """At most max_width wide, aspect kept, both sides even (yuv420p)."""
    scale = min(1.0, max_width / width)
    return max(2, round(width * scale) // 2 * 2), max(2, round(height * scale) // 2 * 2)


def _frames(cap: cv2.VideoCapture, first: np.ndarray, size: tuple[int, int], overlay: _Overlay,
            fps: float) -> Iterator[np.ndarray]:
    """Annotated frames, one at a time, until the end or the first failed read."""
    frame, index = first, 0
    while frame is not None:
        if (frame.shape[1], frame.shape[0]) != size:
            frame = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
        overlay.draw(frame, index / fps)
        yield frame
        ok, frame = cap.read()
        frame, index = (frame if ok else None), index + 1


def _encode(frames: Iterator[np.ndarray], size: tuple[int, int], fps: float, out_path: Path, crf: int,
            preset: str) -> Path:
    """Stream BGR frames into libx264 via a temporary file next to out_path, then rename it."""
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out_path.stem}-", suffix=".part.mp4", dir=out_path.parent)
    os.close(fd)
    try:
        writer = imageio_ffmpeg.write_frames(
            tmp, size, fps=fps, codec="libx264", quality=None, pix_fmt_in="bgr24", pix_fmt_out="yuv420p",
            output_params=["-crf", str(crf), "-preset", preset, "-movflags", "+faststart"],
            macro_block_size=1, ffmpeg_log_level="error")
        writer.send(None)
        try:
            for frame in frames:
                writer.send(frame)  # BGR straight in (pix_fmt_in bgr24): no RGB copy needed
        finally:
            writer.close()
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; the video is for sharing
        os.replace(tmp, out_path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return out_path


# ---- drawing ------------------------------------------------------------------------


class _Overlay:
    """Draws the boxes, the counter panel and the time code for output frames of `size`."""

    def __init__(self, report: Report, size: tuple[int, int], source: tuple[int, int], fps: float):
        self.size = size
        base = report.frame_size if all(report.frame_size) else source
        self.sx, self.sy = size[0] / base[0], size[1] / base[1]
        self.interval = report.sample_interval_s or 1.0 / fps
        self.samples: dict[float, list[Detection]] = defaultdict(list)
        for d in report.detections:
            self.samples[d.t].append(d)
        self.times = sorted(self.samples)
        self.colours = brand_colours([d.brand for d in report.detections] + [b.brand for b in report.brands])
        self._exposures(report)
        self._layout(size[1])

    def _exposures(self, report: Report) -> None:
        pairs = [(b.brand, e) for b in report.brands for e in b.exposures]
        self.brands = sorted({brand for brand, _ in pairs})
        index = {brand: i for i, brand in enumerate(self.brands)}
        self.exp_brand = np.array([index[brand] for brand, _ in pairs], np.int64)
        self.exp_start = np.array([e.start for _, e in pairs], np.float64)
        self.exp_dur = np.array([e.duration_s for _, e in pairs], np.float64)

    def _layout(self, height: int) -> None:
        """Font scale, stroke and spacing relative to the frame height; fixed panel columns."""
        s = height / 720
        self.scale, self.thick = max(0.35, 0.55 * s), max(1, round(1.4 * s))
        self.pad, self.margin = max(2, round(5 * s)), max(3, round(12 * s))
        self.text_h = cv2.getTextSize("Ag", FONT, self.scale, self.thick)[0][1]
        self.row_h = self.text_h + 2 * self.pad
        names = [_short(b) for b in self.brands] or [""]
        most = float(self.exp_dur.sum()) if len(self.exp_dur) else 0.0
        self.name_w = max(self._width(n) for n in names)
        self.secs_w = self._width(f"{most:.1f} s")
        self.count_w = self._width(f"({max(1, len(self.exp_start))})")

    def _width(self, text: str) -> int:
        return cv2.getTextSize(text, FONT, self.scale, self.thick)[0][0]

    def draw(self, img: np.ndarray, t: float) -> None:
        for d in self.detections_at(t):
            self._box(img, d)
        self._panel(img, self.counters(t))
        self._timecode(img, t)

    def detections_at(self, t: float) -> list[Detection]:
        """Detections of the latest sample at or before t that still stands for t."""
        i = bisect.bisect_right(self.times, t + EPS) - 1
        if i < 0 or t - self.times[i] >= self.interval - 1e-6:
            return []
        return self.samples[self.times[i]]

    def counters(self, t: float) -> list[tuple[str, float, int]]:
        """(brand, exposure seconds up to t, exposures started) of brands seen, most seconds first."""
        if not len(self.exp_start):
            return []
        started = self.exp_start <= t + EPS
        secs = np.minimum(np.maximum(t - self.exp_start, 0.0), self.exp_dur)
        total = np.bincount(self.exp_brand, weights=secs, minlength=len(self.brands))
        count = np.bincount(self.exp_brand, weights=started, minlength=len(self.brands))
        rows = [(b, float(total[i]), int(count[i])) for i, b in enumerate(self.brands) if count[i]]
        return sorted(rows, key=lambda r: (-r[1], r[0]))[:PANEL_ROWS]

    def _box(self, img: np.ndarray, d: Detection) -> None:
        x1, y1 = round(d.box[0] * self.sx), round(d.box[1] * self.sy)
        x2, y2 = round(d.box[2] * self.sx), round(d.box[3] * self.sy)
        colour = self.colours[d.brand]
        cv2.rectangle(img, (x1, y1), (x2, y2), colour, 2)
        label = d.brand if d.exposure is None else f"{d.brand} #{d.exposure}"
        tag_w, tag_h = self._width(label) + 2 * self.pad, self.row_h
        tx = min(max(x1 - 1, 0), max(0, self.size[0] - tag_w))
        ty = y1 - 1 - tag_h if y1 - 1 - tag_h >= 0 else max(0, y1 + 1)  # inside the box at the top edge
        cv2.rectangle(img, (tx, ty), (tx + tag_w, ty + tag_h), colour, -1)
        self._text(img, label, (tx + self.pad, ty + self.pad + self.text_h), _ink(colour))

    def _panel(self, img: np.ndarray, rows: list[tuple[str, float, int]]) -> None:
        if not rows:
            return
        gap, swatch = 2 * self.pad, self.text_h
        width = swatch + self.name_w + self.secs_w + self.count_w + 3 * gap + 2 * self.pad
        x0, y1 = self.margin, self.size[1] - self.margin  # bottom-left: clear of score bugs and boards
        x1, y0 = x0 + width, y1 - len(rows) * self.row_h - self.pad
        _shade(img, x0, y0, x1, y1)
        for k, (brand, secs, count) in enumerate(rows):
            base = y0 + self.pad // 2 + k * self.row_h + self.pad + self.text_h
            sx = x0 + self.pad
            cv2.rectangle(img, (sx, base - swatch), (sx + swatch, base), self.colours[brand], -1)
            self._text(img, _short(brand), (sx + swatch + gap, base), (255, 255, 255))
            secs_text, count_text = f"{secs:.1f} s", f"({count})"
            right = sx + swatch + gap + self.name_w + gap + self.secs_w
            self._text(img, secs_text, (right - self._width(secs_text), base), (255, 255, 255))
            self._text(img, count_text, (x1 - self.pad - self._width(count_text), base), (190, 190, 190))

    def _timecode(self, img: np.ndarray, t: float) -> None:
        w, h = self.size
        seconds = int(t + EPS)
        text = f"{seconds // 60:02d}:{seconds % 60:02d}"
        x1, y1 = w - self.margin, h - self.margin
        x0, y0 = x1 - self._width(text) - 2 * self.pad, y1 - self.row_h
        _shade(img, x0, y0, x1, y1)
        self._text(img, text, (x0 + self.pad, y1 - self.pad), (255, 255, 255))

    def _text(self, img: np.ndarray, text: str, org: tuple[int, int], colour) -> None:
        cv2.putText(img, text, org, FONT, self.scale, colour, self.thick, cv2.LINE_AA)


def _shade(img: np.ndarray, x0: int, y0: int, x1: int, y1: int) -> None:
    """Darken a rectangle (a semi-transparent black panel)."""
    x0, y0 = max(0, x0), max(0, y0)
    roi = img[y0:y1, x0:x1]
    roi[:] = cv2.convertScaleAbs(roi, alpha=0.3, beta=8)


def _ink(colour: tuple[int, int, int]) -> tuple[int, int, int]:
    """Black or white text, whichever reads better on `colour` (BGR)."""
    b, g, r = colour
    return (0, 0, 0) if 0.299 * r + 0.587 * g + 0.114 * b > 140 else (255, 255, 255)


def _short(brand: str) -> str:
    return brand if len(brand) <= NAME_CHARS else brand[: NAME_CHARS - 1].rstrip() + "."
