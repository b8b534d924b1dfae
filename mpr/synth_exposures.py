"""Synthetic broadcast clips with known brand EXPOSURES, to check the exposure analytics.

`mpr.synth` draws a 3-D stadium and gives per-second presence; this generator is
deliberately 2-D and explicit, so every exposure is known exactly: a scenario lists
shots (hard cuts between them) and placements, each placement being one brand text in
one kind of placement, shown from `start` to `end` (seconds, within one shot) while its
text box moves linearly from `at_start` to `at_end` (a camera pan).

Scene
-----
* ``wide`` shot: a grey stand with a crowd at the top, a row of perimeter boards just
  above the grass line (plain LED panels moving with the shot's `pan`) and striped
  grass with a touchline and a few small players below.  ``closeup``: blurred crowd
  colours, no grass.
* ``perimeter_board``: a coloured board in the board row with the brand text;
  ``overlay``: a broadcast graphic box (lower third or corner) with an accent bar;
  ``shirt``: the text on the shirt of a large player-like figure standing on the grass.
* `gaps`: an occluder (a group of dark player-shaped figures) covers the placement's
  text fully from gap start to gap end.
* A score bug (``MPR 1-0 SYN 34:12``, not a brand) sits top left unless turned off.

Text is drawn in clean bold DejaVu Sans, unblurred, at >= 28 px, and encoded with
libx264 at crf 18, so RapidOCR reads it while it is visible.  Placements never overlap
one another on screen (`validate` checks every frame), nor the score bug.

Truth rule
----------
Frame f (time f / fps) shows a placement when ``start <= f / fps < end`` and no gap
``[g0, g1)`` holds f / fps.  The pipeline samples frame ``round(t * fps)`` at
``t = k / sample_fps``; a sample *sees* a placement when that frame shows it.

* Exposures: an occlusion shorter than ``gap_tolerance_s`` (default 2.0 s) is part of
  the exposure (the placement keeps being tracked through it).  Precisely, in samples
  (the rule of compile_report's ``track_gap_s``): consecutive samples that see a
  placement belong to one exposure while the samples hidden between them stand for at
  most ``gap_tolerance_s`` seconds; at 1 sample/s an occlusion < 2 s hides at most 2
  samples and never splits, one hiding 3 or more samples (>= 2 s long, depending on its
  phase) does.  A cut always ends an exposure (placements lie within one shot).  An exposure's ``start``/``end`` are its
  first/last sample that sees it, ``duration_s = end - start + 1 / sample_fps`` (each
  sample stands for one interval; occluded samples inside count, like the pipeline's
  segments), ``samples``/``occluded`` list the seeing and the hidden sample times.
* ``share_mean``/``share_max``: area of the text's ink box (the tight box around the
  rendered glyphs, at half coverage, in frame pixels; what an OCR text box approximates)
  / frame area, over the samples that see it.
* ``brands[b].exposure_s``: samples that see at least one placement of b x interval
  (union over placements, occluded samples not counted); ``span_s``: union of b's
  exposure spans [start, end + interval) (occlusions inside exposures counted, which is
  what gap-joining segments measure); ``exposures``: number of exposures of b.

`score(report, truth)` compares a report.json with a truth dict.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import subprocess
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import cv2
import imageio_ffmpeg
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from mpr.synth import FONT_DIR, write_brands_file

KINDS = ("perimeter_board", "overlay", "shirt")
STYLES = ("wide", "closeup")
BGR = tuple[int, int, int]
Rect = tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive)

GRASS = ((62, 150, 78), (50, 128, 62))  # light / dark stripe, BGR
LINE = (235, 235, 235)
STAND = (118, 112, 108)
PANELS = ((70, 45, 30), (45, 45, 45), (60, 70, 25), (35, 30, 75))  # plain LED panels, BGR
OCCLUDER = (28, 26, 24)
TEAMS = ((40, 40, 200), (170, 90, 25))
SKIN = (120, 150, 200)
STRIPE_W, FAN = 160, 2.2  # grass stripe width at the grass line, and how much wider at the bottom


# ---------------------------------------------------------------- scenario


@dataclass
class Shot:
    """One camera shot; `pan`: horizontal motion of the scene in px/s (negative: it moves left)."""

    duration: float
    style: str = "wide"
    pan: float = 0.0
    grass_y: int = 340  # wide: the grass line (bottom of the board row)
    row_h: int = 72  # wide: height of the board row
    seed: int = 0


@dataclass
class Placement:
    """One brand text shown in one placement from `start` to `end` (seconds, within one shot).

    `at_start`/`at_end`: top-left of the text's ink box in frame pixels at `start` and
    (linearly interpolated) at `end`; `at_end` None keeps it still.  `text_h`: ink
    height of the text in px.  `fg`: text colour, `bg`: board / box / shirt colour (BGR).
    `gaps`: [g0, g1) time ranges in which an occluder covers the text.
    """

    brand: str
    kind: str
    start: float
    end: float
    at_start: tuple[int, int]
    at_end: tuple[int, int] | None = None
    text_h: int = 40
    fg: BGR = (255, 255, 255)
    bg: BGR = (120, 45, 20)
    gaps: list[tuple[float, float]] = field(default_factory=list)
    text: str | None = None  # shown text (default: the brand as written)
    font: str = "DejaVuSans-Bold.ttf"

    @property
    def shown(self) -> str:
        return self.text or self.brand


@dataclass
class Scenario:
    name: str
    shots: list[Shot]
    placements: list[Placement]
    width: int = 1280
    height: int = 720
    fps: int = 25
    crf: int = 18
    gap_tolerance_s: float = 2.0
    score_bug: bool = True

    @property
    def brands(self) -> list[str]:
        return list(dict.fromkeys(p.brand for p in self.placements))

    @property
    def shot_frames(self) -> list[tuple[int, int]]:
        """[first, end) frame of each shot."""
        out, start = [], 0
        for shot in self.shots:
            n = round(shot.duration * self.fps)
            out.append((start, start + n))
            start += n
        return out

    @property
    def n_frames(self) -> int:
        return self.shot_frames[-1][1]

    @property
    def duration_s(self) -> float:
        return self.n_frames / self.fps


def _frame_at(t: float, fps: int) -> int:
    """First frame at or after t."""
    return math.ceil(t * fps - 1e-6)


def _board(brand: str, shot_start: float, shot: Shot, x: int, start: float, end: float, *,
           text: str | None = None, text_h: int = 40, **kw) -> Placement:
    """A perimeter board in `shot`'s board row whose text is at x at the shot start, moving with the pan."""
    y = shot.grass_y - shot.row_h + round((shot.row_h - text_h) / 2)
    at = lambda t: (round(x + shot.pan * (t - shot_start)), y)
    return Placement(brand, "perimeter_board", start, end, at(start), at(end), text_h=text_h, text=text, **kw)


def default_scenario() -> Scenario:
    """47 s at 1280x720, 25 fps, 5 brands, 5 shots (cuts at 9, 21, 25, 37 s).

    * shot 0 (wide, panning): NORDLYS board for the whole shot (one exposure);
    * shot 1 (wide): NORDLYS again after the cut, near where it was (a second exposure),
      with Kestrel Air beside it (clutter) and an Orbit Mobile lower-third 12.5-16.5 s;
    * shot 2: crowd close-up, no brand;
    * shot 3 (wide): VANTA BANK board all shot, occluded 29.5-30.5 s (one exposure), and
      a Vanta Bank corner graphic 31.5-35.5 s (a second exposure at the same time);
    * shot 4 (wide): KESTREL AIR board, ORBIT MOBILE board 37.5-42.5 s and a player
      with Helix Tyres on the shirt 38.5-45.5 s.
    """
    shots = [Shot(9, "wide", pan=-40, seed=1), Shot(12, "wide", pan=12, seed=2), Shot(4, "closeup", pan=-30, seed=3),
             Shot(12, "wide", pan=-15, seed=4), Shot(10, "wide", pan=10, seed=5)]
    a, b, _, d, e = shots
    return Scenario("default", shots, [
        _board("Nordlys", 0, a, 700, 0, 9, text="NORDLYS", text_h=44, bg=(120, 45, 20)),
        _board("Nordlys", 9, b, 200, 9, 21, text="NORDLYS", text_h=44, bg=(120, 45, 20)),
        _board("Kestrel Air", 9, b, 740, 9, 21, fg=(15, 15, 15), bg=(0, 205, 250)),
        Placement("Orbit Mobile", "overlay", 12.5, 16.5, (120, 604), text_h=34, bg=(70, 25, 30)),
        _board("Vanta Bank", 25, d, 520, 25, 37, text="VANTA BANK", bg=(35, 25, 200), gaps=[(29.5, 30.5)]),
        Placement("Vanta Bank", "overlay", 31.5, 35.5, (930, 44), text_h=32, bg=(35, 25, 160)),
        _board("Kestrel Air", 37, e, 120, 37, 47, text="KESTREL AIR", fg=(15, 15, 15), bg=(0, 205, 250)),
        _board("Orbit Mobile", 37, e, 720, 37.5, 42.5, text="ORBIT MOBILE", bg=(110, 30, 100)),
        Placement("Helix Tyres", "shirt", 38.5, 45.5, (250, 470), (530, 470), text_h=30, bg=(40, 40, 200),
                  text="HELIX TYRES", font="DejaVuSansCondensed-Bold.ttf"),
    ])


def short_scenario() -> Scenario:
    """10 s, two wide shots (cut at 6 s): NORDLYS board in both (two exposures), occluded
    2.5-4.0 s in the first (still one exposure), and a Kestrel Air lower-third 1.5-4.5 s."""
    shots = [Shot(6, "wide", pan=-30, seed=11), Shot(4, "wide", pan=20, seed=12)]
    a, b = shots
    return Scenario("short", shots, [
        _board("Nordlys", 0, a, 600, 0, 6, text="NORDLYS", text_h=44, gaps=[(2.5, 4.0)]),
        Placement("Kestrel Air", "overlay", 1.5, 4.5, (120, 604), text_h=34, bg=(70, 25, 30)),
        _board("Nordlys", 6, b, 300, 6, 10, text="NORDLYS", text_h=44),
    ])


SCENARIOS = {"default": default_scenario, "short": short_scenario}


# ---------------------------------------------------------------- geometry


@lru_cache(maxsize=64)
def _glyphs(text: str, font: str, text_h: int) -> tuple[np.ndarray, Rect]:
    """Alpha mask (0-1) of text whose ink is about text_h px high, and its ink box in mask pixels."""
    path = str(Path(FONT_DIR) / font)

    def draw(size: int) -> np.ndarray:
        f = ImageFont.truetype(path, size)
        left, top, right, bottom = f.getbbox(text)
        img = Image.new("L", (right - left + 8, bottom - top + 8), 0)
        ImageDraw.Draw(img).text((4 - left, 4 - top), text, font=f, fill=255)
        return np.asarray(img, np.float32) / 255

    def ink(mask: np.ndarray, level: float) -> Rect:
        ys, xs = np.nonzero(mask >= level)
        return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1

    probe = ink(draw(100), 0.5)
    mask = draw(max(8, round(100 * text_h / (probe[3] - probe[1]))))
    x0, y0, x1, y1 = ink(mask, 1 / 255)
    mask = mask[y0:y1, x0:x1].copy()
    return mask, ink(mask, 0.5)


def ink_size(p: Placement) -> tuple[int, int]:
    _, (x0, y0, x1, y1) = _glyphs(p.shown, p.font, p.text_h)
    return x1 - x0, y1 - y0


def text_box(p: Placement, t: float) -> Rect:
    """The ink box of p's text at time t (frame pixels)."""
    end = p.at_end or p.at_start
    u = 0.0 if p.end <= p.start else min(1.0, max(0.0, (t - p.start) / (p.end - p.start)))
    x = round(p.at_start[0] + (end[0] - p.at_start[0]) * u)
    y = round(p.at_start[1] + (end[1] - p.at_start[1]) * u)
    w, h = ink_size(p)
    return x, y, x + w, y + h


def _pads(p: Placement) -> tuple[int, int, int, int]:
    """Left, top, right, bottom margins of p's board / box around its ink box."""
    h = p.text_h
    if p.kind == "perimeter_board":
        return round(0.7 * h), round(0.4 * h), round(0.7 * h), round(0.4 * h)
    if p.kind == "overlay":
        return round(0.85 * h), round(0.45 * h), round(0.6 * h), round(0.45 * h)
    return round(0.35 * h), round(1.0 * h), round(0.35 * h), 0  # shirt: torso below, see _shirt


def _shirt(box: Rect, p: Placement) -> dict[str, Rect | tuple[int, int, int]]:
    """Parts of the shirt figure: torso, shorts, legs (rects) and head (cx, cy, r)."""
    x0, y0, x1, _ = box
    left, top, right, _ = _pads(p)
    tx0, ty0, tx1 = x0 - left, y0 - top, x1 + right
    tw = tx1 - tx0
    ty1 = ty0 + round(1.05 * tw)
    r = round(0.13 * tw)
    return {"torso": (tx0, ty0, tx1, ty1), "shorts": (tx0 + tw // 12, ty1, tx1 - tw // 12, ty1 + round(0.3 * tw)),
            "legs": (tx0 + tw // 5, ty1 + round(0.3 * tw), tx1 - tw // 5, ty1 + round(0.8 * tw)),
            "head": ((tx0 + tx1) // 2, ty0 - r + 4, r)}


def _occluder_rect(box: Rect, p: Placement) -> Rect:
    """The area a gap's occluder covers (figures from above the text down into the grass)."""
    x0, y0, x1, y1 = box
    m = max(6, round(0.3 * p.text_h))
    return x0 - m, y0 - m - round(0.5 * p.text_h), x1 + m, y1 + m + round(1.2 * p.text_h)


def element_rect(p: Placement, t: float) -> Rect:
    """Everything p draws at t (board, box or figure), for the no-overlap check."""
    box = text_box(p, t)
    if p.kind == "shirt":
        parts = _shirt(box, p)
        cx, cy, r = parts["head"]
        rects = [parts["torso"], parts["shorts"], parts["legs"], (cx - r, cy - r, cx + r, cy + r)]
        return _union(rects)
    left, top, right, bottom = _pads(p)
    return box[0] - left, box[1] - top, box[2] + right, box[3] + bottom


def _union(rects: list[Rect]) -> Rect:
    return min(r[0] for r in rects), min(r[1] for r in rects), max(r[2] for r in rects), max(r[3] for r in rects)


def _overlap(a: Rect, b: Rect) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _in_gap(p: Placement, t: float) -> bool:
    return any(g0 <= t < g1 for g0, g1 in p.gaps)


def _active(p: Placement, frame: int, fps: int) -> bool:
    return _frame_at(p.start, fps) <= frame < _frame_at(p.end, fps)


def _occluded(p: Placement, frame: int, fps: int) -> bool:
    return any(_frame_at(g0, fps) <= frame < _frame_at(g1, fps) for g0, g1 in p.gaps)


def score_bug_rect(scenario: Scenario) -> Rect:
    s = scenario.width / 1280
    return int(24 * s), int(22 * s), int(330 * s), int(64 * s)


def validate(scenario: Scenario) -> None:
    """ValueError unless every placement lies in one shot, its text stays in the frame, and
    no two placements (with their occluders) overlap on screen at any frame."""
    sc = scenario
    if sc.width % 2 or sc.height % 2:
        raise ValueError("width and height must be even for yuv420p")
    bounds = sc.shot_frames
    for i, shot in enumerate(sc.shots):
        if shot.style not in STYLES:
            raise ValueError(f"shot {i}: unknown style {shot.style!r}")
        if shot.duration <= 0 or abs(shot.duration * sc.fps - round(shot.duration * sc.fps)) > 1e-6:
            raise ValueError(f"shot {i}: duration {shot.duration} is not a whole number of frames")
    for p in sc.placements:
        name = f"{p.brand} {p.kind} {p.start}-{p.end}"
        if p.kind not in KINDS:
            raise ValueError(f"{name}: unknown kind")
        f0, f1 = _frame_at(p.start, sc.fps), _frame_at(p.end, sc.fps)
        if f1 <= f0 or not any(a <= f0 and f1 <= b for a, b in bounds):
            raise ValueError(f"{name}: must be non-empty and within one shot")
        if p.kind != "overlay" and sc.shots[_shot_index(sc, f0)].style != "wide":
            raise ValueError(f"{name}: boards and shirts need a wide shot")
        for g0, g1 in p.gaps:
            if not p.start <= g0 < g1 <= p.end:
                raise ValueError(f"{name}: gap {g0}-{g1} outside the placement")
    bug = score_bug_rect(sc) if sc.score_bug else None
    for f in range(sc.n_frames):
        t = f / sc.fps
        live = [p for p in sc.placements if _active(p, f, sc.fps)]
        rects = []
        for p in live:
            box = text_box(p, t)
            if box[0] < 0 or box[1] < 0 or box[2] > sc.width or box[3] > sc.height:
                raise ValueError(f"{p.brand} {p.kind}: text box {box} leaves the frame at {t:.2f} s")
            if bug and _overlap(box, bug):
                raise ValueError(f"{p.brand} {p.kind}: text under the score bug at {t:.2f} s")
            rect = element_rect(p, t)
            if _occluded(p, f, sc.fps):
                rect = _union([rect, _occluder_rect(box, p)])
            rects.append((p, rect))
        for i, (p, a) in enumerate(rects):
            for q, b in rects[i + 1:]:
                if _overlap(a, b):
                    raise ValueError(f"{p.brand} {p.kind} and {q.brand} {q.kind} overlap at {t:.2f} s")


def _shot_index(sc: Scenario, frame: int) -> int:
    return next(i for i, (a, b) in enumerate(sc.shot_frames) if a <= frame < b)


# ---------------------------------------------------------------- drawing


def _blend(img: np.ndarray, mask: np.ndarray, x: int, y: int, colour) -> None:
    """Alpha-blend colour through mask with its top-left at (x, y), clipped to img."""
    h, w = mask.shape
    ix0, iy0, ix1, iy1 = max(x, 0), max(y, 0), min(x + w, img.shape[1]), min(y + h, img.shape[0])
    if ix1 <= ix0 or iy1 <= iy0:
        return
    a = mask[iy0 - y:iy1 - y, ix0 - x:ix1 - x, None]
    roi = img[iy0:iy1, ix0:ix1].astype(np.float32)
    img[iy0:iy1, ix0:ix1] = (roi * (1 - a) + np.float32(colour) * a + 0.5).astype(np.uint8)


def _rect(img: np.ndarray, r: Rect, colour) -> None:
    cv2.rectangle(img, (int(r[0]), int(r[1])), (int(r[2]) - 1, int(r[3]) - 1), tuple(int(c) for c in colour), -1)


def _draw_text(img: np.ndarray, p: Placement, box: Rect) -> None:
    mask, (ix0, iy0, _, _) = _glyphs(p.shown, p.font, p.text_h)
    _blend(img, mask, box[0] - ix0, box[1] - iy0, p.fg)


def _draw_placement(img: np.ndarray, p: Placement, t: float) -> None:
    box = text_box(p, t)
    bg = np.array(p.bg, np.float32)
    if p.kind == "perimeter_board":
        r = element_rect(p, t)
        _rect(img, r, p.bg)
        _rect(img, (r[0], r[3] - max(3, p.text_h // 8), r[2], r[3]), 0.55 * bg + 0.45 * np.float32(p.fg))
    elif p.kind == "overlay":
        r = element_rect(p, t)
        roi = img[r[1]:r[3], r[0]:r[2]].astype(np.float32)
        img[r[1]:r[3], r[0]:r[2]] = (0.12 * roi + 0.88 * bg).astype(np.uint8)  # near-opaque graphic box
        _rect(img, (r[0], r[1], r[0] + max(6, p.text_h // 4), r[3]), (0, 200, 255))  # accent bar
        _rect(img, (r[0], r[3] - 3, r[2], r[3]), (235, 235, 235))
    else:
        parts = _shirt(box, p)
        cx, cy, rad = parts["head"]
        _rect(img, parts["legs"], SKIN)
        _rect(img, parts["shorts"], (245, 245, 245))
        cv2.circle(img, (cx, cy), rad, SKIN, -1, cv2.LINE_AA)
        _rect(img, parts["torso"], p.bg)
    _draw_text(img, p, box)


def _draw_occluder(img: np.ndarray, p: Placement, t: float) -> None:
    """Dark player-shaped figures side by side, together covering the text box fully."""
    x0, y0, x1, y1 = _occluder_rect(text_box(p, t), p)
    head = round(0.5 * p.text_h)
    n = max(1, math.ceil((x1 - x0) / (2.6 * p.text_h)))
    edges = np.linspace(x0, x1, n + 1).round().astype(int)
    for a, b in itertools.pairwise(edges.tolist()):
        _rect(img, (a, y0 + head, b, y1), OCCLUDER)
        r = max(4, min(head, (b - a) // 4))
        cv2.circle(img, ((a + b) // 2, y0 + head - r // 2), r, (60, 80, 110), -1, cv2.LINE_AA)
        cv2.line(img, (a, y0 + head), (a, y1 - 1), (45, 42, 40), 2)  # outline between figures


@dataclass
class _Backdrop:
    """Per-shot textures, wider than the frame so the pan can slide them."""

    tex: np.ndarray
    players: np.ndarray | None = None  # wide: x, feet y, height, team, speed, phase


def _crowd(rng, h: int, w: int, cell: int) -> np.ndarray:
    """A grey stand with spectators (one cell per seat)."""
    cw = max(4, int(cell * 0.7))
    rows, cols = h // cell + 1, w // cw + 1
    colours = np.array([(40, 40, 200), (170, 90, 25), (210, 210, 210), (30, 160, 220), (60, 60, 60),
                        (90, 120, 170)], np.uint8)
    seat = colours[rng.integers(len(colours), size=(rows, cols))]
    seat[rng.random((rows, cols)) < 0.15] = STAND
    tex = np.repeat(np.repeat(seat, cell, 0), cw, 1)[:h, :w].astype(np.float32)
    yy, xx = np.mgrid[0:h, 0:w]
    gap = ((yy % cell) < max(1, cell // 5)) | ((xx % cw) < 1)
    tex[gap] = STAND
    tex = 0.45 * tex + 0.55 * np.float32(STAND)  # greyish, far away
    return cv2.GaussianBlur(tex.astype(np.uint8), (0, 0), 0.7)


def _backdrop(sc: Scenario, shot: Shot) -> _Backdrop:
    rng = np.random.default_rng(shot.seed)
    travel = int(abs(shot.pan) * shot.duration) + 64
    w, h = sc.width + travel, sc.height
    if shot.style == "closeup":
        tex = np.empty((h, w, 3), np.uint8)
        tex[:] = (60, 55, 70)
        palette = [(40, 40, 190), (200, 200, 200), (170, 95, 30), (40, 150, 230), (120, 150, 200), (90, 60, 140)]
        for _ in range(int(w * h / 2500)):
            cx, cy = int(rng.integers(w)), int(rng.integers(h))
            c = palette[rng.integers(len(palette))]
            cv2.ellipse(tex, (cx, cy), (int(rng.integers(12, 40)), int(rng.integers(16, 50))), 0, 0, 360, c, -1)
        return _Backdrop(cv2.GaussianBlur(tex, (0, 0), 14))
    stand_h = shot.grass_y - shot.row_h
    tex = _crowd(rng, stand_h, w, 12) if stand_h > 0 else np.zeros((0, w, 3), np.uint8)
    n = 7
    players = np.c_[rng.uniform(0, w, n), rng.uniform(shot.grass_y + 120, sc.height - 20, n),
                    rng.uniform(50, 80, n), np.arange(n) % 2, rng.uniform(-25, 25, n), rng.uniform(0, 6, n)]
    return _Backdrop(tex, players)


def _pan_offset(shot: Shot, ts: float) -> float:
    """Backdrop texture column at frame x = 0, shot time ts: the scene moves by `pan` px/s."""
    return (abs(shot.pan) * shot.duration if shot.pan > 0 else 0.0) - shot.pan * ts


def _draw_wide(img: np.ndarray, sc: Scenario, shot: Shot, bd: _Backdrop, ts: float, avoid: list[Rect]) -> None:
    W, H = sc.width, sc.height
    off = _pan_offset(shot, ts)  # texture column at x=0
    off0 = round(off)
    g, top = shot.grass_y, shot.grass_y - shot.row_h
    if top > 0:
        img[:top] = bd.tex[:, off0:off0 + W]
    # board row: plain panels sliding with the pan
    panel = 256
    xs = np.arange(W) + off
    idx = np.floor(xs / panel).astype(int)
    row = np.array(PANELS, np.uint8)[idx % len(PANELS)]
    img[top:g] = row[None]
    img[top:g, (xs % panel) < 3] = (20, 20, 20)
    img[g - 5:g] = (90, 90, 90)
    # grass: a fan of mowing stripes (straight boundaries, twice as wide at the bottom as at the grass line)
    img[g:] = GRASS[0]
    spread, width = FAN, STRIPE_W
    for k in range(math.floor(off / width) - 1, math.ceil((W + off) / width) + 2):
        if k % 2:
            a, b = k * width - off, (k + 1) * width - off
            quad = np.array([[a, g], [b, g], [W / 2 + (b - W / 2) * spread, H], [W / 2 + (a - W / 2) * spread, H]])
            cv2.fillPoly(img, [np.round(quad * 16).astype(np.int32)], GRASS[1], cv2.LINE_AA, shift=4)
    cv2.line(img, (0, g + 22), (W, g + 22), LINE, 3, cv2.LINE_AA)  # far touchline
    hx = round(W / 2 + 300 - off) % (4 * W) - W  # a halfway line drifting with the pan
    cv2.line(img, (hx, g + 22), (int(W / 2 + (hx - W / 2) * 2.2), H), LINE, 3, cv2.LINE_AA)
    for x, feet, ht, team, speed, phase in bd.players:
        u = round(float(x) - off + float(speed) * ts)
        v, hh = int(feet), int(ht)
        rect = (u - hh // 4, v - hh, u + hh // 4, v)
        if any(_overlap(rect, a) for a in avoid):
            continue  # never in front of a placement
        shirt = TEAMS[int(team)]
        _rect(img, (u - hh // 5, v - int(0.78 * hh), u + hh // 5, v - int(0.42 * hh)), shirt)
        _rect(img, (u - hh // 6, v - int(0.42 * hh), u + hh // 6, v - int(0.25 * hh)), (240, 240, 240))
        swing = int(0.12 * hh * math.sin(3 * ts + phase))
        cv2.line(img, (u - 3, v - int(0.25 * hh)), (u - 3 + swing, v), SKIN, max(2, hh // 14))
        cv2.line(img, (u + 3, v - int(0.25 * hh)), (u + 3 - swing, v), SKIN, max(2, hh // 14))
        cv2.circle(img, (u, v - int(0.88 * hh)), max(3, hh // 9), SKIN, -1, cv2.LINE_AA)


def _draw_score_bug(img: np.ndarray, sc: Scenario, t: float) -> None:
    x0, y0, x1, y1 = score_bug_rect(sc)
    s = sc.width / 1280
    clock = 34 * 60 + 12 + int(t)
    cv2.rectangle(img, (x0, y0), (x1, y1), (40, 25, 20), -1)
    cv2.rectangle(img, (x0, y0), (x0 + int(8 * s), y1), (40, 40, 210), -1)
    cv2.putText(img, f"MPR 1-0 SYN   {clock // 60:02d}:{clock % 60:02d}", (x0 + int(18 * s), y1 - int(12 * s)),
                cv2.FONT_HERSHEY_DUPLEX, 0.75 * s, (255, 255, 255), max(1, round(1.5 * s)), cv2.LINE_AA)


def render_frame(sc: Scenario, frame: int, backdrops: dict[int, _Backdrop] | None = None) -> np.ndarray:
    """BGR image of one frame."""
    backdrops = {} if backdrops is None else backdrops
    i = _shot_index(sc, frame)
    shot, (first, _) = sc.shots[i], sc.shot_frames[i]
    if i not in backdrops:
        backdrops[i] = _backdrop(sc, shot)
    bd, t, ts = backdrops[i], frame / sc.fps, (frame - first) / sc.fps
    live = [p for p in sc.placements if _active(p, frame, sc.fps)]
    img = np.empty((sc.height, sc.width, 3), np.uint8)
    if shot.style == "wide":
        avoid = [element_rect(p, t) for p in live] + [_occluder_rect(text_box(p, t), p) for p in live]
        _draw_wide(img, sc, shot, bd, ts, avoid + ([score_bug_rect(sc)] if sc.score_bug else []))
    else:
        off = round(_pan_offset(shot, ts))
        img[:] = bd.tex[:, off:off + sc.width]
    order = {"perimeter_board": 0, "shirt": 1, "overlay": 2}
    for p in sorted(live, key=lambda p: order[p.kind]):
        _draw_placement(img, p, t)
        if _occluded(p, frame, sc.fps):
            _draw_occluder(img, p, t)
    if sc.score_bug:
        _draw_score_bug(img, sc, t)
    return img


def _encode(sc: Scenario, out_path: Path) -> None:
    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error",
           "-f", "rawvideo", "-pix_fmt", "bgr24", "-s", f"{sc.width}x{sc.height}", "-r", str(sc.fps),
           "-i", "-", "-an", "-c:v", "libx264", "-preset", "veryfast", "-crf", str(sc.crf),
           "-pix_fmt", "yuv420p", "-movflags", "+faststart", str(out_path)]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    backdrops: dict[int, _Backdrop] = {}
    try:
        for frame in range(sc.n_frames):
            proc.stdin.write(render_frame(sc, frame, backdrops).tobytes())
    except BrokenPipeError:
        pass  # ffmpeg exited early; its stderr says why
    finally:
        err = proc.communicate()[1].decode(errors="replace")
    if proc.returncode != 0:
        raise RuntimeError(f"ffmpeg failed: {err.strip()}")


# ---------------------------------------------------------------- truth


def sample_times(sc: Scenario, sample_fps: float = 1.0) -> list[float]:
    """The pipeline's sample times k / sample_fps inside the clip."""
    n = math.floor(sc.duration_s * sample_fps - 1e-9) + 1
    return [round(k / sample_fps, 6) for k in range(n)]


def _sample_frame(sc: Scenario, t: float) -> int:
    return min(round(t * sc.fps), sc.n_frames - 1)


def _runs(seen: list[float], interval: float, tolerance: float) -> list[list[float]]:
    """Seen sample times grouped into exposures: a run goes on while the samples missed
    between two seen ones stand for at most `tolerance` seconds."""
    runs: list[list[float]] = []
    for t in seen:
        if runs and t - runs[-1][-1] - interval <= tolerance + 1e-9:
            runs[-1].append(t)
        else:
            runs.append([t])
    return runs


def compute_truth(sc: Scenario, sample_fps: float = 1.0, source: str = "") -> dict:
    """The truth dict of scenario sc sampled at sample_fps (see the module docstring)."""
    validate(sc)
    interval = 1 / sample_fps
    times = sample_times(sc, sample_fps)
    frames = {t: _sample_frame(sc, t) for t in times}
    area = sc.width * sc.height
    exposures = []
    for pid, p in enumerate(sc.placements):
        fa, fb = _frame_at(p.start, sc.fps), _frame_at(p.end, sc.fps)
        inside = [t for t in times if fa <= frames[t] < fb]
        visible = [t for t in inside if not _occluded(p, frames[t], sc.fps)]
        for seen in _runs(visible, interval, sc.gap_tolerance_s):
            shares = []
            for t in seen:
                x0, y0, x1, y1 = text_box(p, frames[t] / sc.fps)
                shares.append((x1 - x0) * (y1 - y0) / area)
            box = text_box(p, frames[seen[0]] / sc.fps)
            exposures.append({
                "brand": p.brand, "placement": p.kind, "start": seen[0], "end": seen[-1],
                "duration_s": round(min(seen[-1] + interval, sc.duration_s) - seen[0], 6),
                "shot": _shot_index(sc, frames[seen[0]]),
                "share_mean": round(float(np.mean(shares)), 6), "share_max": round(float(np.max(shares)), 6),
                "text": p.shown, "placement_id": pid, "box_first": list(box),
                "samples": seen, "occluded": [t for t in inside if seen[0] < t < seen[-1] and t not in seen],
            })
    exposures.sort(key=lambda e: (e["start"], e["brand"], e["placement"]))
    brands = {}
    for brand in sc.brands:
        mine = [e for e in exposures if e["brand"] == brand]
        seen = {t for e in mine for t in e["samples"]}
        spans = sorted((e["start"], e["end"] + interval) for e in mine)
        span, reach = 0.0, -math.inf
        for a, b in spans:
            span += max(0.0, b - max(a, reach))
            reach = max(reach, b)
        brands[brand] = {"exposure_s": round(len(seen) * interval, 6), "span_s": round(span, 6),
                         "exposures": len(mine)}
    return {
        "source": source, "scenario": sc.name, "duration_s": sc.duration_s, "width": sc.width,
        "height": sc.height, "fps": sc.fps, "sample_fps": sample_fps, "gap_tolerance_s": sc.gap_tolerance_s,
        "shots": [round(a / sc.fps, 6) for a, _ in sc.shot_frames],
        "exposures": exposures, "brands": brands,
    }


def render(out_path: str | Path, scenario: Scenario | None = None, sample_fps: float = 1.0) -> dict:
    """Write the scenario's clip to out_path (mp4, libx264) and return its truth dict."""
    sc = scenario or default_scenario()
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    truth = compute_truth(sc, sample_fps, out_path.name)  # validates before spending time on frames
    _encode(sc, out_path)
    return truth


# ---------------------------------------------------------------- scoring


def truth_report(truth: dict) -> dict:
    """The truth shaped like report.json (`brands` with `exposures`): a perfect report."""
    interval = 1 / truth["sample_fps"]
    brands = []
    for brand, facts in truth["brands"].items():
        mine = [e for e in truth["exposures"] if e["brand"] == brand]
        brands.append({"brand": brand, "exposure_s": facts["exposure_s"], "exposure_count": facts["exposures"],
                       "exposures": [{"id": i, "brand": brand, **{k: e[k] for k in (
                           "start", "end", "duration_s", "shot", "placement", "share_mean", "share_max")}}
                           for i, e in enumerate(mine)]})
    return {"source": truth["source"], "duration_s": truth["duration_s"], "sample_interval_s": interval,
            "shots": truth["shots"], "frame_size": [truth["width"], truth["height"]], "brands": brands}


def _overlap_s(a: dict, b: dict, interval: float) -> float:
    return min(a["end"], b["end"]) + interval - max(a["start"], b["start"])


def _match(truth: list[dict], measured: list[dict], interval: float) -> list[tuple[int, int, float]]:
    """Greedy one-to-one pairs (truth index, measured index, overlap s), largest overlap first."""
    pairs = sorted(((_overlap_s(a, b, interval), -abs(a["start"] - b["start"]), i, j)
                    for i, a in enumerate(truth) for j, b in enumerate(measured)
                    if _overlap_s(a, b, interval) > 1e-9), reverse=True)
    used_t, used_m, out = set(), set(), []
    for overlap, _, i, j in pairs:
        if i not in used_t and j not in used_m:
            used_t.add(i)
            used_m.add(j)
            out.append((i, j, round(overlap, 6)))
    return sorted(out)


def _span(e: dict) -> dict:
    return {k: e.get(k) for k in ("start", "end", "placement")}


def score(report: dict, truth: dict) -> dict:
    """Compare a parsed report.json with a truth dict.

    Per brand: exposure seconds (truth, measured, error = measured - truth; also
    `span_error` against the gap-filled `span_s`, which is what a report whose seconds
    come from gap-joining segments measures), exposure counts, and for exposures matched by time overlap (same brand, greedy by overlap)
    the relative share_mean error (measured / truth - 1) and whether the placement
    agrees; unmatched ones are `missed` (truth) or `spurious` (report).  Overall:
    max_seconds_error (absolute), counts_exact, max_share_rel_error (absolute, over
    matched exposures), placement_agreement (share of matched exposures whose placement
    agrees; None when none matched), max_span_error, and the numbers of matched, missed
    and spurious exposures.
    """
    interval = report.get("sample_interval_s") or 1 / truth["sample_fps"]
    measured = {b["brand"]: b for b in report.get("brands", [])}
    names = list(truth["brands"]) + [b for b in measured if b not in truth["brands"]]
    per_brand, same, total = {}, 0, 0
    for name in names:
        t_facts = truth["brands"].get(name, {"exposure_s": 0.0, "exposures": 0})
        t_exps = [e for e in truth["exposures"] if e["brand"] == name]
        m = measured.get(name, {})
        m_exps = sorted(m.get("exposures", []), key=lambda e: e["start"])
        m_count = m.get("exposure_count", len(m_exps)) if m else 0
        matched = []
        for i, j, overlap in _match(t_exps, m_exps, interval):
            a, b = t_exps[i], m_exps[j]
            rel = b["share_mean"] / a["share_mean"] - 1 if a["share_mean"] else None
            ok = b.get("placement") == a["placement"]
            same, total = same + ok, total + 1
            matched.append({"truth": _span(a), "measured": _span(b), "overlap_s": overlap,
                            "duration_truth": a["duration_s"], "duration_measured": b.get("duration_s"),
                            "share_truth": a["share_mean"], "share_measured": b["share_mean"],
                            "share_rel_error": None if rel is None else round(rel, 4), "placement_ok": ok})
        hit_t = {i for i, _, _ in _match(t_exps, m_exps, interval)}
        hit_m = {j for _, j, _ in _match(t_exps, m_exps, interval)}
        rels = [abs(x["share_rel_error"]) for x in matched if x["share_rel_error"] is not None]
        m_s = float(m.get("exposure_s", 0.0)) if m else 0.0
        per_brand[name] = {
            "truth_s": t_facts["exposure_s"], "measured_s": m_s,
            "seconds_error": round(m_s - t_facts["exposure_s"], 6),
            "truth_span_s": t_facts.get("span_s", t_facts["exposure_s"]),
            "span_error": round(m_s - t_facts.get("span_s", t_facts["exposure_s"]), 6),
            "truth_count": t_facts["exposures"], "measured_count": m_count,
            "count_error": m_count - t_facts["exposures"],
            "matched": matched,
            "missed": [_span(e) for i, e in enumerate(t_exps) if i not in hit_t],
            "spurious": [_span(e) for j, e in enumerate(m_exps) if j not in hit_m],
            "max_share_rel_error": round(max(rels), 4) if rels else None,
            "placement_agreement": round(sum(x["placement_ok"] for x in matched) / len(matched), 4)
            if matched else None,
        }
    rels = [b["max_share_rel_error"] for b in per_brand.values() if b["max_share_rel_error"] is not None]
    return {
        "brands": per_brand,
        "max_seconds_error": round(max((abs(b["seconds_error"]) for b in per_brand.values()), default=0.0), 6),
        "max_span_error": round(max((abs(b["span_error"]) for b in per_brand.values()), default=0.0), 6),
        "counts_exact": all(b["count_error"] == 0 for b in per_brand.values()),
        "max_share_rel_error": max(rels) if rels else None,
        "placement_agreement": round(same / total, 4) if total else None,
        "matched": total,
        "missed": sum(len(b["missed"]) for b in per_brand.values()),
        "spurious": sum(len(b["spurious"]) for b in per_brand.values()),
    }


# ---------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m mpr.synth_exposures", description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path, help="output .mp4 (OUT.truth.json and brands.yaml go next to it)")
    ap.add_argument("--scenario", choices=sorted(SCENARIOS), default="default")
    ap.add_argument("--fps-sample", type=float, default=1.0, help="the pipeline's sampling rate (truth samples)")
    args = ap.parse_args(argv)
    sc = SCENARIOS[args.scenario]()
    truth = render(args.out, sc, args.fps_sample)
    truth_out = args.out.with_suffix(".truth.json")
    truth_out.write_text(json.dumps(truth, indent=1))
    brands_out = args.out.parent / "brands.yaml"
    write_brands_file(brands_out, sc.brands)
    print(f"wrote {args.out}, {truth_out} and {brands_out}: {len(truth['exposures'])} exposures of "
          f"{len(truth['brands'])} brands in {truth['duration_s']:g} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
