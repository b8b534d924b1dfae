"""Synthetic soccer-broadcast clips with per-second brand ground truth.

Scene model
-----------
World coordinates are metres: x runs along the touchlines (halfway line at
x=0), y across the pitch (near touchline y=0, far touchline y=68), z up.
The main camera stands behind the near touchline at ``CAM_POS`` and, like a
real broadcast camera, only rotates (pan = yaw) and zooms (focal length).
Every frame is drawn by projecting world geometry through that pinhole
camera, so the far side is narrower and everything moves consistently:

* the pitch: mowing stripes, white markings drawn as thin ground quads (so
  their foreshortening is right) and a few stick-figure players kept far
  enough from the boards that they never cover them;
* a row of LED advertising boards standing behind the far touchline, each
  showing one brand design (font, letter case, colours).  The row rotates its
  designs every few seconds, and each board shot starts from the arrangement
  that gives the brands the most even screen time;
* sloped stands with a crowd behind the boards.

Shots are separated by hard cuts: wide, crowd close-up (no boards), tight
(zoomed wide), wide, ...  In board shots the camera pans between random
keyframes with ease-in/out, so speed and direction vary; occasional short
whip pans produce strong horizontal motion blur.  A score bug is overlaid,
frames are optionally JPEG-degraded and piped to ffmpeg/libx264.

Truth rule
----------
The truth is computed from the same camera model that renders the frames,
never from the pixels, at the frames k*fps (k = 0, 1, ... while inside the
clip).  A board's text box (ink bounding box of the rendered name) is
legible when it is fully inside the frame vertically, clear of the score
bug, and meets ``LEGIBLE``: at least 70% of its width inside the frame, at
least 9 px high, motion blur at most 0.32 times that height (limits measured
with RapidOCR, see ``Limits``).  ``presence[brand]`` lists the seconds k at
which some board with that brand is legible.  ``uncertain[brand]`` lists the
seconds at which the brand is near the limit (legible under
``POSSIBLY_LEGIBLE`` but not under ``CLEARLY_LEGIBLE``), in either direction;
a scorer may ignore those (brand, second) pairs.
"""

from __future__ import annotations

import argparse
import json
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np
import yaml
from PIL import Image, ImageDraw, ImageFont

DEFAULT_BRANDS = [
    "Nordlys", "Vanta Bank", "Kestrel Air", "Orbit Mobile",
    "Solberg", "Polaris Energy", "Helix Tyres", "Brightwater",
]
FONT_DIR = "/usr/share/fonts/truetype/dejavu"
FONT_FILES = (
    "DejaVuSans-Bold.ttf", "DejaVuSans.ttf", "DejaVuSerif-Bold.ttf",
    "DejaVuSansMono-Bold.ttf", "DejaVuSansCondensed-Bold.ttf",
    "DejaVuSans-BoldOblique.ttf", "DejaVuSerif.ttf", "DejaVuSansCondensed.ttf",
)
HERSHEY_FONTS = (
    cv2.FONT_HERSHEY_DUPLEX, cv2.FONT_HERSHEY_TRIPLEX, cv2.FONT_HERSHEY_SIMPLEX,
    cv2.FONT_HERSHEY_COMPLEX, cv2.FONT_HERSHEY_DUPLEX | cv2.FONT_ITALIC,
)

# Scene geometry (metres).
CAM_POS = np.array([0.0, -32.0, 22.0])
PITCH_L, PITCH_W = 105.0, 68.0
BOARD_Y, BOARD_H, BOARD_W, N_BOARDS = 70.5, 1.1, 9.0, 11
STAND_Y, STAND_SLOPE, STAND_LEN, STAND_HALF_X = 71.5, np.radians(33), 30.0, 75.0
LINE_W = 0.12
MIN_GROUND_Y = 20.0  # nothing nearer is ever in view; keeps all geometry in front of the camera
YAW_MAX = 0.40  # keeps the view centre within the board row

# Camera and rendering parameters, relative to the frame width where it matters.
WIDE_FOCAL = 3.3  # focal length in frame widths
TIGHT_ZOOM = 1.2
BOARD_PPM = 56 / 1280  # board texture pixels per metre, per frame-width pixel
STAND_PPM = 24 / 1280
SHUTTER = 0.4  # exposure as a fraction of the frame interval


class Limits(NamedTuple):
    """Thresholds of the truth rule for one board's text box."""

    min_inside: float  # fraction of the text width inside the frame
    min_height: float  # projected text height, pixels
    max_blur: float  # motion-blur length per pixel of text height


# Calibrated on rendered clips with RapidOCR and fuzzy matching (rapidfuzz ratio
# >= 80): names cut to 65% of their width or more were read ~90% of the time,
# below 50% never; blur up to 0.3 text heights read, from 0.45 on it did not;
# unblurred whole names read down to 7 px high.  Between POSSIBLY and CLEARLY
# a reader may go either way.
LEGIBLE = Limits(0.7, 9.0, 0.32)
CLEARLY_LEGIBLE = Limits(0.9, 12.0, 0.25)
POSSIBLY_LEGIBLE = Limits(0.5, 6.0, 0.5)

LED_PERIOD, LED_STEP = 4.0, 5  # seconds between board rotations, designs moved per rotation

SHOT_CYCLE = ("wide", "crowd", "tight")
SHOT_SECONDS = {"wide": (4.5, 7.5), "tight": (3.5, 5.5), "crowd": (1.6, 2.8)}

# (board, text) colour pairs in BGR, all with a strong luminance contrast.
PALETTE = (
    ((110, 40, 20), (255, 255, 255)), ((245, 245, 245), (30, 20, 200)),
    ((0, 210, 250), (15, 15, 15)), ((20, 20, 20), (0, 210, 255)),
    ((35, 25, 200), (255, 255, 255)), ((60, 100, 0), (255, 255, 255)),
    ((20, 130, 245), (10, 10, 10)), ((230, 160, 60), (10, 10, 10)),
    ((130, 30, 90), (255, 255, 255)), ((225, 220, 220), (90, 30, 20)),
)
GRASS = ((62, 150, 78), (50, 128, 62))  # light / dark mowing stripe, BGR
SURROUND, LINE_COLOUR = (45, 115, 55), (235, 235, 235)
TEAMS = (((40, 40, 210), (250, 250, 250)), ((180, 90, 20), (30, 30, 30)))  # shirt, shorts
SKIN = ((150, 180, 225), (90, 120, 170), (60, 85, 120), (170, 200, 235))
SEAT = (70, 60, 55)


@dataclass
class ClipSpec:
    """What to render.  ``jpeg_quality`` (1-100) adds JPEG artefacts before encoding."""

    seconds: float = 20.0
    fps: int = 25
    width: int = 1280
    height: int = 720
    brands: list[str] = field(default_factory=lambda: list(DEFAULT_BRANDS))
    seed: int = 0
    crf: int = 26
    jpeg_quality: int | None = None
    font_dir: str = FONT_DIR  # a directory without DejaVu TTFs selects Hershey fonts

    def __post_init__(self) -> None:
        if self.width % 2 or self.height % 2:
            raise ValueError("width and height must be even for yuv420p")
        if not self.brands:
            raise ValueError("at least one brand is needed")
        if self.fps < 1 or round(self.seconds * self.fps) < 1:
            raise ValueError("the clip needs at least one frame")


@dataclass(frozen=True)
class Camera:
    """Pinhole camera at CAM_POS; ``tilt`` looks down, positive ``yaw`` pans right."""

    yaw: float
    tilt: float
    focal: float
    size: tuple[int, int]

    def matrix(self) -> np.ndarray:
        """3x4 world-to-pixel projection matrix."""
        w, h = self.size
        k = np.array([[self.focal, 0, w / 2], [0, self.focal, h / 2], [0, 0, 1]])
        fwd = np.array([np.sin(self.yaw) * np.cos(self.tilt),
                        np.cos(self.yaw) * np.cos(self.tilt), -np.sin(self.tilt)])
        right = np.array([np.cos(self.yaw), -np.sin(self.yaw), 0.0])
        rot = np.stack([right, np.cross(fwd, right), fwd])
        return k @ rot @ np.hstack([np.eye(3), -CAM_POS[:, None]])


@dataclass
class Shot:
    """One camera shot, frames [start, end)."""

    kind: str
    start: int
    end: int
    focal: float = 0.0
    tilt: float = 0.0
    keys: np.ndarray | None = None  # pan keyframes (shot seconds, yaw)
    led_offset: int = 0  # design shown on the first board at the start of the shot
    led_phase: float = 0.0  # seconds into the LED rotation period at the start
    crowd: np.ndarray | None = None  # close-up image, wider than the frame
    drift: int = 0  # close-up pan in pixels per frame


@dataclass
class Scene:
    """Everything random about a clip, drawn once from the seed."""

    spec: ClipSpec
    shots: list[Shot]
    designs: list[tuple[str, np.ndarray, tuple]]  # (brand, board texture, text ink box)
    stands: np.ndarray
    players: np.ndarray  # rows: x offset, y, amplitude, omega, phase, team
    stripe_quads: np.ndarray  # world (M, 4, 3) ground quads
    line_quads: np.ndarray
    rows: dict = field(default_factory=dict)  # cache: LED offset -> (row texture, text boxes)


# ---------------------------------------------------------------- geometry


def _project(p: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Project (N, 3) world points to (N, 2) pixels."""
    h = np.c_[pts, np.ones(len(pts))] @ p.T
    return h[:, :2] / h[:, 2:3]


def _plane_homography(p: np.ndarray, origin, ex, ey) -> np.ndarray:
    """Texture-pixel to image homography for the plane origin + u*ex + v*ey."""
    basis = np.vstack([np.column_stack([ex, ey, origin]), [0.0, 0.0, 1.0]])
    return p @ basis


def _board_plane(ppm: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Origin (top-left) and texture axes of the board row."""
    origin = np.array([-N_BOARDS * BOARD_W / 2, BOARD_Y, BOARD_H])
    return origin, np.array([1 / ppm, 0, 0]), np.array([0, 0, -1 / ppm])


def _stand_plane(ppm: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Origin (top-left, highest row) and texture axes of the sloped stands."""
    c, s = np.cos(STAND_SLOPE), np.sin(STAND_SLOPE)
    origin = np.array([-STAND_HALF_X, STAND_Y + STAND_LEN * c, STAND_LEN * s])
    return origin, np.array([1 / ppm, 0, 0]), np.array([0, -c / ppm, -s / ppm])


def _ground(quads_xy) -> np.ndarray:
    """(M, 4, 2) ground-plane quads to (M, 4, 3) world points."""
    quads_xy = np.asarray(quads_xy, float)
    return np.concatenate([quads_xy, np.zeros(quads_xy.shape[:2] + (1,))], axis=2)


def _stripe_quads() -> np.ndarray:
    """The 20 mowing stripes across the pitch length (visible far part)."""
    xs = np.linspace(-PITCH_L / 2, PITCH_L / 2, 21)
    return _ground([[(a, MIN_GROUND_Y), (b, MIN_GROUND_Y), (b, PITCH_W), (a, PITCH_W)]
                    for a, b in zip(xs[:-1], xs[1:])])


def _line_quads() -> np.ndarray:
    """Pitch markings (the visible far part) as (M, 4, 3) thin ground quads."""
    hl, circle = PITCH_L / 2, np.linspace(0, 2 * np.pi, 65)
    lines = [np.array([[-hl, PITCH_W], [hl, PITCH_W]]),
             np.array([[0, MIN_GROUND_Y], [0, PITCH_W]]),
             np.c_[9.15 * np.cos(circle), 34 + 9.15 * np.sin(circle)]]
    for sx in (-1, 1):
        lines += [
            np.array([[sx * hl, MIN_GROUND_Y], [sx * hl, PITCH_W]]),
            np.array([[sx * hl, 54.16], [sx * (hl - 16.5), 54.16], [sx * (hl - 16.5), MIN_GROUND_Y]]),
            np.array([[sx * hl, 43.16], [sx * (hl - 5.5), 43.16],
                      [sx * (hl - 5.5), 24.84], [sx * hl, 24.84]]),
        ]
        arc = np.linspace(-0.93, 0.93, 17)  # the part of the penalty arc outside the area
        lines.append(np.c_[sx * (hl - 11 - 9.15 * np.cos(arc)), 34 + 9.15 * np.sin(arc)])
    quads = []
    for line in lines:
        for a, b in zip(line[:-1], line[1:]):
            d = (b - a) / np.linalg.norm(b - a)
            n = np.array([-d[1], d[0]]) * LINE_W / 2
            quads.append([a + n, b + n, b - n, a - n])
    return _ground(quads)


# ---------------------------------------------------------------- textures


def _load_fonts(font_dir: str) -> list:
    """TTF paths found in font_dir, or Hershey font faces when there are none."""
    paths = [Path(font_dir) / name for name in FONT_FILES]
    return [str(p) for p in paths if p.is_file()] or list(HERSHEY_FONTS)


def _crop_ink(mask: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(mask > 40)
    return mask[ys.min():ys.max() + 1, xs.min():xs.max() + 1]


def _text_mask(text: str, font, max_w: float, max_h: float) -> np.ndarray:
    """Grey-level ink mask of text, as large as fits in max_w x max_h."""
    if isinstance(font, str):
        ink = _crop_ink(_ttf_mask(text, font, 100))
        scale = min(max_w / ink.shape[1], max_h / ink.shape[0])
        mask = _crop_ink(_ttf_mask(text, font, max(8, int(100 * scale))))
    else:
        ink = _crop_ink(_hershey_mask(text, font, 1.0))
        scale = min(max_w / ink.shape[1], max_h / ink.shape[0])
        mask = _crop_ink(_hershey_mask(text, font, scale))
    fit = min(1.0, max_w / mask.shape[1], max_h / mask.shape[0])
    return cv2.resize(mask, None, fx=fit, fy=fit, interpolation=cv2.INTER_AREA) if fit < 1 else mask


def _ttf_mask(text: str, path: str, size: int) -> np.ndarray:
    font = ImageFont.truetype(path, size)
    left, top, right, bottom = font.getbbox(text)
    img = Image.new("L", (right - left + 4, bottom - top + 4), 0)
    ImageDraw.Draw(img).text((2 - left, 2 - top), text, font=font, fill=255)
    return np.asarray(img)


def _hershey_mask(text: str, face: int, scale: float) -> np.ndarray:
    thickness = max(1, round(2.2 * scale))
    (w, h), base = cv2.getTextSize(text, face, scale, thickness)
    pad = 2 * thickness + 2
    mask = np.zeros((h + base + 2 * pad, w + 2 * pad), np.uint8)
    cv2.putText(mask, text, (pad, pad + h), face, scale, 255, thickness, cv2.LINE_AA)
    return mask


def _board_design(text: str, font, colours, ppm: float) -> tuple[np.ndarray, tuple]:
    """Texture of one board and the ink box (x0, y0, x1, y1) of its text."""
    bg, fg = (np.array(c, np.float32) for c in colours)
    h, w = round(BOARD_H * ppm), round(BOARD_W * ppm)
    board = np.empty((h, w, 3), np.float32)
    board[:] = bg
    board[round(0.88 * h):] = 0.6 * bg + 0.4 * fg  # accent strip along the bottom edge
    mask = _text_mask(text, font, 0.88 * w, 0.7 * h).astype(np.float32)[..., None] / 255
    th, tw = mask.shape[:2]
    x0, y0 = (w - tw) // 2, round(0.44 * h - th / 2)
    board[y0:y0 + th, x0:x0 + tw] = board[y0:y0 + th, x0:x0 + tw] * (1 - mask) + fg * mask
    return board.astype(np.uint8), (x0, y0, x0 + tw, y0 + th)


def _designs(brands: list[str], fonts: list, ppm: float, rng) -> list[tuple[str, np.ndarray, tuple]]:
    """Two designs per brand (upper case and as written), interleaved by brand.

    The LED row shows consecutive designs (cyclically); stepping the palette by
    3 of 10 keeps neighbouring boards in different colours.
    """
    out, first = [], int(rng.integers(len(PALETTE)))
    for variant in range(2):
        for i, brand in enumerate(brands):
            text = brand.upper() if (i + variant) % 2 == 0 else brand
            colours = PALETTE[(first + 3 * len(out)) % len(PALETTE)]
            font = fonts[rng.integers(len(fonts))]
            out.append((brand, *_board_design(text, font, colours, ppm)))
    return out


def _crowd_texture(rng, h: int, w: int, cell_h: int) -> np.ndarray:
    """Rows of spectators, one cell per seat (head and shirt), some seats empty."""
    cell_w = max(4, int(cell_h * 0.65))
    rows, cols = h // cell_h + 1, w // cell_w + 2
    yy, xx = np.mgrid[0:cell_h, 0:cell_w] / np.array([cell_h, cell_w])[:, None, None]
    head = np.tile((xx - 0.5) ** 2 + ((yy - 0.25) * 1.3) ** 2 < 0.04, (rows, cols))
    shirt = np.tile((yy > 0.42) & (np.abs(xx - 0.5) < 0.42), (rows, cols))
    shirt_rgb = np.array([c[0] for c in TEAMS] + [(200, 200, 200), (30, 160, 220), (60, 60, 60)], np.uint8)
    per_seat = np.concatenate([  # shirt colour, skin colour, occupied
        shirt_rgb[rng.integers(len(shirt_rgb), size=(rows, cols))],
        np.array(SKIN, np.uint8)[rng.integers(len(SKIN), size=(rows, cols))],
        (rng.random((rows, cols, 1)) > 0.12).astype(np.uint8)], axis=2)
    per_px = np.repeat(np.repeat(per_seat, cell_h, 0), cell_w, 1)
    tex = np.empty(per_px.shape[:2] + (3,), np.uint8)
    tex[:] = SEAT
    occupied = per_px[..., 6] > 0
    tex[shirt & occupied] = per_px[shirt & occupied, :3]
    tex[head & occupied] = per_px[head & occupied, 3:6]
    for r in range(1, rows, 2):  # stagger alternate rows
        band = slice(r * cell_h, (r + 1) * cell_h)
        tex[band] = np.roll(tex[band], cell_w // 2, axis=1)
    return cv2.GaussianBlur(np.ascontiguousarray(tex[:h, :w]), (0, 0), 0.8)


# ---------------------------------------------------------------- planning


def _pan_keys(rng, seconds: float) -> np.ndarray:
    """Pan keyframes: mostly moderate moves and holds, sometimes a whip pan."""
    t, yaw = 0.0, rng.uniform(-YAW_MAX, YAW_MAX)
    keys = [(t, yaw)]
    while t < seconds:
        whip = rng.random() < 0.15
        dur = rng.uniform(0.5, 0.8) if whip else rng.uniform(1.2, 3.2)
        step = (rng.uniform(0.18, 0.3) if whip else rng.uniform(0.0, 0.12)) * rng.choice([-1, 1])
        if abs(yaw + step) > YAW_MAX:  # turn back before the end of the board row
            step = -step
        t, yaw = t + dur, float(np.clip(yaw + step, -YAW_MAX, YAW_MAX))
        keys.append((t, yaw))
    return np.array(keys)


def _shot_bounds(spec: ClipSpec, rng) -> list[tuple[str, int, int]]:
    """(kind, start frame, end frame) of each shot; cuts fall on frames."""
    total = int(round(spec.seconds * spec.fps))
    bounds, start, i = [], 0, 0
    while start < total:
        kind = SHOT_CYCLE[i % len(SHOT_CYCLE)]
        end = min(total, start + int(rng.uniform(*SHOT_SECONDS[kind]) * spec.fps))
        if total - end < spec.fps:  # no sliver of a shot at the end
            end = total
        bounds.append((kind, start, end))
        start, i = end, i + 1
    return bounds


def _board_tilt(focal: float, height: int, rng) -> float:
    """Tilt that puts the board row at about a third of the frame height."""
    row = np.arctan((CAM_POS[2] - BOARD_H / 2) / (BOARD_Y - CAM_POS[1]))
    return row + np.arctan(rng.uniform(0.13, 0.19) * height / focal)


def _make_shot(kind: str, start: int, end: int, spec: ClipSpec, rng) -> Shot:
    shot = Shot(kind, start, end)
    if kind == "crowd":
        shot.drift = int(rng.choice([-1, 1]))
        shot.crowd = _crowd_texture(rng, spec.height, spec.width + end - start + 2, spec.height // 6)
        return shot
    shot.focal = WIDE_FOCAL * spec.width * (TIGHT_ZOOM if kind == "tight" else 1.0)
    shot.tilt = _board_tilt(shot.focal, spec.height, rng)
    shot.keys = _pan_keys(rng, (end - start) / spec.fps)
    shot.led_phase = rng.uniform(0, LED_PERIOD)
    return shot


def _make_scene(spec: ClipSpec) -> Scene:
    rng = np.random.default_rng(spec.seed)
    designs = _designs(spec.brands, _load_fonts(spec.font_dir), BOARD_PPM * spec.width, rng)
    shots = [_make_shot(kind, a, b, spec, rng) for kind, a, b in _shot_bounds(spec, rng)]
    sppm = STAND_PPM * spec.width
    stands = _crowd_texture(rng, int(STAND_LEN * sppm), int(2 * STAND_HALF_X * sppm), max(4, int(0.8 * sppm)))
    players = np.c_[rng.uniform(-16, 16, 12), rng.uniform(38, 58, 12), rng.uniform(1, 4, 12),
                    rng.uniform(0.3, 0.9, 12), rng.uniform(0, 2 * np.pi, 12), np.arange(12) % 2]
    scene = Scene(spec, shots, designs, stands, players, _stripe_quads(), _line_quads())
    _balance_leds(scene)
    return scene


def _balance_leds(scene: Scene) -> None:
    """Choose each board shot's LED offset so that all brands get screen time.

    The camera path is random, so a fixed LED layout could leave some brand
    unseen; shot by shot, keep the offset with the best (leximin) running
    count of legible seconds per brand.
    """
    counts = dict.fromkeys(scene.spec.brands, 0)
    for shot in scene.shots:
        if shot.kind != "crowd":
            offsets = range(len(scene.designs))
            shot.led_offset = max(offsets, key=lambda o: sorted(_tally(scene, shot, o, counts).values()))
            counts = _tally(scene, shot, shot.led_offset, counts)


def _tally(scene: Scene, shot: Shot, offset: int, counts: dict[str, int]) -> dict[str, int]:
    """counts plus each brand's legible seconds in shot, after setting its LED offset."""
    fps, counts = scene.spec.fps, dict(counts)
    shot.led_offset = offset
    for k in range(-(-shot.start // fps), -(-shot.end // fps)):  # seconds whose frame is in the shot
        for brand in _brand_states(scene, k * fps)[0]:
            counts[brand] += 1
    return counts


def _board_row(scene: Scene, shot: Shot, frame: int) -> tuple[np.ndarray, list]:
    """Row texture and (brand, text box) list shown at frame; the LED row rotates."""
    t = (frame - shot.start) / scene.spec.fps + shot.led_phase
    offset = (shot.led_offset + LED_STEP * int(t // LED_PERIOD)) % len(scene.designs)
    if offset not in scene.rows:
        row = [scene.designs[(offset + b) % len(scene.designs)] for b in range(N_BOARDS)]
        bw = row[0][1].shape[1]
        boxes = [(brand, (x0 + b * bw, y0, x1 + b * bw, y1))
                 for b, (brand, _, (x0, y0, x1, y1)) in enumerate(row)]
        scene.rows[offset] = (np.hstack([tex for _, tex, _ in row]), boxes)
    return scene.rows[offset]


def _shot_at(scene: Scene, frame: int) -> Shot:
    return next(s for s in scene.shots if s.start <= frame < s.end)


def _yaw(shot: Shot, t: float) -> float:
    """Pan angle at shot time t: smoothstep between keyframes."""
    k = shot.keys
    i = int(np.clip(np.searchsorted(k[:, 0], t, side="right") - 1, 0, len(k) - 2))
    u = np.clip((t - k[i, 0]) / (k[i + 1, 0] - k[i, 0]), 0, 1)
    return float(k[i, 1] + (k[i + 1, 1] - k[i, 1]) * u * u * (3 - 2 * u))


def _camera(scene: Scene, shot: Shot, frame: int) -> Camera:
    t = (frame - shot.start) / scene.spec.fps
    return Camera(_yaw(shot, t), shot.tilt, shot.focal, (scene.spec.width, scene.spec.height))


def _blur_px(scene: Scene, shot: Shot, frame: int) -> float:
    """Horizontal motion-blur length (pixels) caused by the pan during exposure."""
    if shot.kind == "crowd":
        return 0.0
    t, dt = (frame - shot.start) / scene.spec.fps, 1 / scene.spec.fps
    dyaw = abs(_yaw(shot, t + dt) - _yaw(shot, t))
    return SHUTTER * shot.focal * np.cos(shot.tilt) * dyaw


# ---------------------------------------------------------------- drawing


def _fill(img: np.ndarray, polys: np.ndarray, colour) -> None:
    """Anti-aliased fill of (N, k, 2) pixel polygons with sub-pixel precision."""
    pts = np.round(polys * 16).astype(np.int32)
    cv2.fillPoly(img, list(pts), colour, cv2.LINE_AA, shift=4)


def _draw_pitch(img: np.ndarray, p: np.ndarray, scene: Scene) -> None:
    img[:] = SURROUND
    stripes = _project(p, scene.stripe_quads.reshape(-1, 3)).reshape(-1, 4, 2)
    _fill(img, stripes[0::2], GRASS[0])
    _fill(img, stripes[1::2], GRASS[1])
    _fill(img, _project(p, scene.line_quads.reshape(-1, 3)).reshape(-1, 4, 2), LINE_COLOUR)


def _warp_plane(img: np.ndarray, tex: np.ndarray, h: np.ndarray) -> None:
    """Paint a planar texture (mapped by homography h) onto img, in place."""
    th, tw = tex.shape[:2]
    corners = cv2.perspectiveTransform(np.float32([[[0, 0], [tw, 0], [tw, th], [0, th]]]), h)[0]
    x0, y0 = np.maximum(np.floor(corners.min(0)).astype(int), 0)
    x1, y1 = np.minimum(np.ceil(corners.max(0)).astype(int), (img.shape[1], img.shape[0]))
    if x1 <= x0 or y1 <= y0:
        return
    roi = img[y0:y1, x0:x1].copy()
    shift = np.array([[1, 0, -x0], [0, 1, -y0], [0, 0, 1]], float)
    cv2.warpPerspective(tex, shift @ h, (x1 - x0, y1 - y0), dst=roi,
                        flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_TRANSPARENT)
    img[y0:y1, x0:x1] = roi


def _draw_players(img: np.ndarray, p: np.ndarray, players: np.ndarray, yaw: float, t: float) -> None:
    """Stick figures near where the camera looks; they stay below the board row."""
    for off, y, amp, om, ph, team in sorted(players, key=lambda r: -r[1]):
        x = (y - CAM_POS[1]) * np.tan(yaw) + off + amp * np.sin(om * t + ph)
        (u, v1), (_, v0) = _project(p, np.array([[x, y, 0.0], [x, y, 1.8]]))
        h = v1 - v0
        shirt, shorts = TEAMS[int(team)]
        for colour, half_w, top, bottom in ((shorts, 0.09, 0.5, 1.0), (shirt, 0.14, 0.2, 0.55)):
            cv2.rectangle(img, (int(u - half_w * h), int(v0 + top * h)),
                          (int(u + half_w * h), int(v0 + bottom * h)), colour, -1)
        cv2.circle(img, (int(u), int(v0 + 0.1 * h)), max(1, int(0.09 * h)), SKIN[int(team)], -1, cv2.LINE_AA)


def _score_bug_rect(spec: ClipSpec) -> tuple[int, int, int, int]:
    s = spec.width / 1280
    return int(24 * s), int(22 * s), int(330 * s), int(64 * s)


def _draw_score_bug(img: np.ndarray, spec: ClipSpec, t: float) -> None:
    x0, y0, x1, y1 = _score_bug_rect(spec)
    s = spec.width / 1280
    clock = 34 * 60 + 12 + int(t)  # the match clock runs with the clip
    cv2.rectangle(img, (x0, y0), (x1, y1), (40, 25, 20), -1)
    cv2.rectangle(img, (x0, y0), (x0 + int(8 * s), y1), (40, 40, 210), -1)
    text = f"MPR 1-0 SYN   {clock // 60:02d}:{clock % 60:02d}"
    cv2.putText(img, text, (x0 + int(18 * s), y1 - int(12 * s)), cv2.FONT_HERSHEY_DUPLEX,
                0.75 * s, (255, 255, 255), max(1, round(1.5 * s)), cv2.LINE_AA)


def _motion_blur(img: np.ndarray, length: float) -> np.ndarray:
    return cv2.blur(img, (int(round(length)), 1)) if length >= 1.5 else img


def _jpeg(img: np.ndarray, quality: int | None) -> np.ndarray:
    if not quality:
        return img
    return cv2.imdecode(cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])[1], cv2.IMREAD_COLOR)


def _render_frame(scene: Scene, frame: int) -> np.ndarray:
    spec, shot = scene.spec, _shot_at(scene, frame)
    img = np.empty((spec.height, spec.width, 3), np.uint8)
    if shot.kind == "crowd":
        x = (frame - shot.start) if shot.drift > 0 else (shot.end - frame)
        img[:] = shot.crowd[:, x:x + spec.width]
    else:
        cam = _camera(scene, shot, frame)
        p = cam.matrix()
        _draw_pitch(img, p, scene)
        _warp_plane(img, scene.stands, _plane_homography(p, *_stand_plane(STAND_PPM * spec.width)))
        row = _board_row(scene, shot, frame)[0]
        _warp_plane(img, row, _plane_homography(p, *_board_plane(BOARD_PPM * spec.width)))
        _draw_players(img, p, scene.players, cam.yaw, frame / spec.fps)
        img = _motion_blur(img, _blur_px(scene, shot, frame))
    _draw_score_bug(img, spec, frame / spec.fps)
    return _jpeg(img, spec.jpeg_quality)


# ---------------------------------------------------------------- truth


def _readable(box_px: np.ndarray, spec: ClipSpec, blur: float, limits: Limits) -> bool:
    """Truth rule for one projected text box (corners tl, tr, br, bl)."""
    height = min(box_px[3, 1] - box_px[0, 1], box_px[2, 1] - box_px[1, 1])
    left, right = box_px[:, 0].min(), box_px[:, 0].max()
    top, bottom = box_px[:, 1].min(), box_px[:, 1].max()
    inside = (min(right, spec.width) - max(left, 0)) / (right - left)
    bx0, by0, bx1, by1 = _score_bug_rect(spec)
    under_bug = left < bx1 and right > bx0 and top < by1 and bottom > by0
    return (top >= 0 and bottom <= spec.height and not under_bug and inside >= limits.min_inside
            and height >= limits.min_height and blur <= limits.max_blur * height)


def _brand_states(scene: Scene, frame: int) -> tuple[set[str], set[str]]:
    """Brands legible at frame, and brands near the legibility limit there."""
    shot = _shot_at(scene, frame)
    if shot.kind == "crowd":
        return set(), set()
    p = _camera(scene, shot, frame).matrix()
    origin, ex, ey = _board_plane(BOARD_PPM * scene.spec.width)
    blur = _blur_px(scene, shot, frame)
    legible, possible, clear = set(), set(), set()
    for brand, (x0, y0, x1, y1) in _board_row(scene, shot, frame)[1]:
        corners = np.array([origin + u * ex + v * ey for u, v in ((x0, y0), (x1, y0), (x1, y1), (x0, y1))])
        box = _project(p, corners)
        for found, limits in ((legible, LEGIBLE), (possible, POSSIBLY_LEGIBLE), (clear, CLEARLY_LEGIBLE)):
            if _readable(box, scene.spec, blur, limits):
                found.add(brand)
    return legible, possible - clear


def _truth(scene: Scene, source: str) -> dict:
    spec = scene.spec
    n_frames = scene.shots[-1].end
    presence: dict[str, list[int]] = {b: [] for b in spec.brands}
    uncertain: dict[str, list[int]] = {b: [] for b in spec.brands}
    for k in range((n_frames - 1) // spec.fps + 1):
        legible, near_limit = _brand_states(scene, k * spec.fps)
        for brand in legible:
            presence[brand].append(k)
        for brand in near_limit:
            uncertain[brand].append(k)
    return {
        "source": source,
        "duration_s": n_frames / spec.fps,
        "fps": spec.fps,
        "size": [spec.width, spec.height],
        "brands": list(spec.brands),
        "presence": presence,
        "uncertain": uncertain,
        "shots": [{"start": s.start / spec.fps, "end": s.end / spec.fps} for s in scene.shots],
    }


# ---------------------------------------------------------------- output


def _encode(scene: Scene, out_path: Path) -> None:
    """Stream frames as raw BGR into ffmpeg/libx264."""
    import imageio_ffmpeg  # here, not at the top: rendering detector data needs no encoder

    spec = scene.spec
    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error",
           "-f", "rawvideo", "-pix_fmt", "bgr24", "-s", f"{spec.width}x{spec.height}",
           "-r", str(spec.fps), "-i", "-", "-an", "-c:v", "libx264", "-preset", "veryfast",
           "-crf", str(spec.crf), "-pix_fmt", "yuv420p", "-movflags", "+faststart", str(out_path)]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        for frame in range(scene.shots[-1].end):
            proc.stdin.write(_render_frame(scene, frame).tobytes())
    except BrokenPipeError:
        pass  # ffmpeg exited early; its stderr says why
    finally:
        err = proc.communicate()[1].decode(errors="replace")  # closes stdin, waits
    if proc.returncode != 0:
        raise RuntimeError(f"ffmpeg failed: {err.strip()}")


def render_clip(out_path: str | Path, spec: ClipSpec) -> dict:
    """Render the clip described by spec to out_path (mp4) and return its truth dict."""
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    scene = _make_scene(spec)
    _encode(scene, out_path)
    return _truth(scene, out_path.name)


def write_brands_file(path: str | Path, brands: list[str],
                      aliases: dict[str, list[str]] | None = None) -> None:
    """Write the brands YAML: ``brands: [{name: ..., aliases: [...]}, ...]``."""
    aliases = aliases or {}
    entries = [{"name": b, **({"aliases": aliases[b]} if aliases.get(b) else {})} for b in brands]
    Path(path).write_text(yaml.safe_dump({"brands": entries}, sort_keys=False, allow_unicode=True))


def main(argv: list[str] | None = None, parser_class: type = argparse.ArgumentParser) -> int:
    ap = parser_class(prog="mpr synth", description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path, help="output .mp4")
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--height", type=int, default=720)
    ap.add_argument("--fps", type=int, default=25)
    ap.add_argument("--crf", type=int, default=26)
    ap.add_argument("--jpeg-quality", type=int, default=None)
    ap.add_argument("--brands-out", type=Path, help="also write the brands YAML here")
    ap.add_argument("--truth-out", type=Path, help="default: OUT with suffix .truth.json")
    args = ap.parse_args(argv)
    spec = ClipSpec(seconds=args.seconds, fps=args.fps, width=args.width, height=args.height,
                    seed=args.seed, crf=args.crf, jpeg_quality=args.jpeg_quality)
    truth = render_clip(args.out, spec)
    truth_out = args.truth_out or args.out.with_suffix(".truth.json")
    truth_out.write_text(json.dumps(truth, indent=1))
    if args.brands_out:
        write_brands_file(args.brands_out, spec.brands)
    print(f"wrote {args.out} and {truth_out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
