"""Synthetic YOLO dataset for the project's object detector (board / overlay / logo).

Every sample is drawn with the pieces of :mod:`mpr.synth` (pinhole camera,
pitch, stands, crowd texture, board designs, text masks) and its boxes come
from the same geometry, never from the pixels:

* ``pitch`` scenes: the far board row seen by the broadcast camera at a random
  pan and zoom (wide to tight), with brand texts and emblems on the boards and
  on tarps over the stands, and players whose shirts may carry a logo;
* ``closeup`` scenes: one to three large players (jersey-like shapes) over a
  crowd or grass background, with a wordmark or emblem on the chest or sleeve;
* ``crowd`` scenes: a crowd close-up, sometimes with a mid-size player.

Broadcast overlays (score bug, channel corner bug, lower third) are added to
any scene.  Labelling rule: each board segment is ``board``; each overlay
panel is ``overlay``; every brand word or emblem, wherever it is drawn (board,
tarp, shirt, overlay), is ``logo``.  Team codes, clock, score and person names
in overlays are not brand words and are not labelled.

Domain randomisation: grass hue and brightness, random brand words (syllables
as well as ``DEFAULT_BRANDS``), fonts, colours, zoom, pan, tilt, perspective,
motion blur, noise, resolution and JPEG quality.  A sample is a pure function
of (seed, split, index).  Boxes are clipped to the image; boxes under
``MIN_BOX`` pixels on a side are dropped.
"""

from __future__ import annotations

import argparse
import json
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import yaml

from mpr.synth import (
    BOARD_H, BOARD_PPM, BOARD_W, BOARD_Y, CAM_POS, DEFAULT_BRANDS, FONT_DIR, HERSHEY_FONTS,
    N_BOARDS, PALETTE, SKIN, STAND_HALF_X, STAND_LEN, STAND_PPM, WIDE_FOCAL, YAW_MAX, Camera,
    _board_design, _board_plane, _crowd_texture, _draw_pitch, _line_quads, _load_fonts,
    _plane_homography, _project, _stand_plane, _stripe_quads, _text_mask, _warp_plane,
)

CLASSES = ("board", "overlay", "logo")
BOARD, OVERLAY, LOGO = range(3)
MIN_BOX = 4  # pixels; smaller boxes are dropped
MIN_VISIBLE = {BOARD: 0.15, OVERLAY: 0.5, LOGO: 0.4}  # fraction of a box that must be in the frame
SCENE_WEIGHTS = {"pitch": 0.6, "closeup": 0.28, "crowd": 0.12}
WIDTHS = (768, 960, 1280)  # 16:9 frames

_CONS = "bdfgklmnprstvz" + "bcdfghklmnprst"  # common consonants twice as likely
_VOWELS = "aeiouy"
_CLUSTERS = ("br", "tr", "st", "kr", "fl", "gr", "pl", "sk", "nd", "nt", "rk", "ll")


# ---------------------------------------------------------------- words, fonts, colours


def _fonts() -> list:
    """DejaVu TTFs (all styles) plus Hershey faces."""
    ttfs = sorted(str(p) for p in Path(FONT_DIR).glob("DejaVu*.ttf") if "Math" not in p.name)
    return (ttfs or _load_fonts(FONT_DIR)) + list(HERSHEY_FONTS)


def brand_word(rng) -> str:
    """A brand-like word: sometimes one of DEFAULT_BRANDS, mostly random syllables."""
    if rng.random() < 0.12:
        word = str(rng.choice(DEFAULT_BRANDS))
    else:
        words = []
        for _ in range(1 if rng.random() < 0.75 else 2):
            w = ""
            for i in range(int(rng.integers(1, 4))):
                onset = str(rng.choice(_CLUSTERS)) if rng.random() < 0.2 else str(rng.choice(list(_CONS)))
                w += onset + str(rng.choice(list(_VOWELS)))
                if rng.random() < 0.35:
                    w += str(rng.choice(list(_CONS)))
            words.append(w)
        word = " ".join(words)
        if rng.random() < 0.1:
            word = "".join(ch for ch in word.upper() if ch != " ")[: int(rng.integers(2, 5))]  # DNB-like
    case = rng.random()
    return word.upper() if case < 0.35 else word.lower() if case < 0.55 else word.title()


def _random_colour(rng) -> tuple[int, int, int]:
    hsv = np.uint8([[[rng.integers(0, 180), rng.integers(0, 256), rng.integers(30, 256)]]])
    return tuple(int(c) for c in cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0])


def _luma(c) -> float:
    return 0.114 * c[0] + 0.587 * c[1] + 0.299 * c[2]


def _colour_pair(rng) -> tuple[tuple, tuple]:
    """(background, foreground) with a clear luminance contrast."""
    if rng.random() < 0.4:
        return PALETTE[int(rng.integers(len(PALETTE)))]
    bg = _random_colour(rng)
    for _ in range(20):
        fg = (255, 255, 255) if rng.random() < 0.3 else (15, 15, 15) if rng.random() < 0.2 else _random_colour(rng)
        if abs(_luma(fg) - _luma(bg)) > 80:
            return bg, fg
    return bg, ((255, 255, 255) if _luma(bg) < 128 else (10, 10, 10))


# ---------------------------------------------------------------- patches


def _ink(word: str, font, max_w: float, max_h: float) -> np.ndarray:
    """Ink mask (float 0..1) of word fitting max_w x max_h; tiny sizes are rendered larger and shrunk."""
    mask = _text_mask(word, font, max(max_w, 24.0), max(max_h, 12.0))
    fit = min(1.0, max(max_w, 2.0) / mask.shape[1], max(max_h, 2.0) / mask.shape[0])
    if fit < 1:
        size = (max(1, round(mask.shape[1] * fit)), max(1, round(mask.shape[0] * fit)))
        mask = cv2.resize(mask, size, interpolation=cv2.INTER_AREA)
    return mask.astype(np.float32) / 255


def _emblem(word: str, font, height: int, bg, fg, shape: str, max_w: float | None = None):
    """A brand mark: (BGR float patch, alpha 0..1).  shape: none, pill, ellipse, rect."""
    height = max(6, int(height))
    if shape == "none":
        mask = _ink(word, font, max_w or 20 * height, height)
        patch = np.empty(mask.shape + (3,), np.float32)
        patch[:] = fg
        return patch, mask
    text = _ink(word, font, (max_w or 20 * height) * 0.8, 0.55 * height)
    th, tw = text.shape
    w = int(tw + (0.9 if shape == "ellipse" else 0.45) * height)
    if max_w:
        w = min(w, int(max_w))
    w = max(w, 6)
    alpha = np.zeros((height, w), np.uint8)
    if shape == "ellipse":
        cv2.ellipse(alpha, (w // 2, height // 2), (w // 2 - 1, height // 2 - 1), 0, 0, 360, 255, -1, cv2.LINE_AA)
    elif shape == "pill":
        r = height // 2
        cv2.rectangle(alpha, (r, 0), (max(r, w - r - 1), height - 1), 255, -1)
        cv2.circle(alpha, (r, r), r, 255, -1, cv2.LINE_AA)
        cv2.circle(alpha, (max(r, w - r - 1), r), r, 255, -1, cv2.LINE_AA)
    else:
        alpha[:] = 255
    patch = np.empty((height, w, 3), np.float32)
    patch[:] = bg
    th, tw = min(th, height), min(tw, w)
    y0, x0 = (height - th) // 2, (w - tw) // 2
    t = text[:th, :tw, None]
    patch[y0:y0 + th, x0:x0 + tw] = patch[y0:y0 + th, x0:x0 + tw] * (1 - t) + np.float32(fg) * t
    return patch, alpha.astype(np.float32) / 255


def _paste(img: np.ndarray, patch: np.ndarray, alpha: np.ndarray, x: float, y: float,
           opacity: float = 1.0) -> tuple[float, float, float, float]:
    """Alpha-blend patch with its top-left at (x, y), clipped; returns its unclipped box."""
    x, y = int(round(x)), int(round(y))
    ph, pw = alpha.shape
    x0, y0 = max(x, 0), max(y, 0)
    x1, y1 = min(x + pw, img.shape[1]), min(y + ph, img.shape[0])
    if x1 > x0 and y1 > y0:
        a = alpha[y0 - y:y1 - y, x0 - x:x1 - x, None] * opacity
        roi = img[y0:y1, x0:x1].astype(np.float32)
        img[y0:y1, x0:x1] = (roi * (1 - a) + patch[y0 - y:y1 - y, x0 - x:x1 - x] * a).astype(img.dtype)
    return float(x), float(y), float(x + pw), float(y + ph)


def _ink_box(alpha: np.ndarray, box) -> tuple[float, float, float, float]:
    """The tight box of alpha's ink inside a pasted box."""
    ys, xs = np.nonzero(alpha > 0.15)
    if not len(xs):
        return box
    return box[0] + xs.min(), box[1] + ys.min(), box[0] + xs.max() + 1, box[1] + ys.max() + 1


def _random_logo(rng, fonts, height: float, bg=None, fg=None, max_w=None, shapes=None):
    """A random brand word or emblem patch and its alpha."""
    shape = str(rng.choice(shapes or ("none", "none", "pill", "ellipse", "rect")))
    if bg is None or fg is None:
        bg, fg = _colour_pair(rng)
    return _emblem(brand_word(rng), fonts[int(rng.integers(len(fonts)))], height, bg, fg, shape, max_w)


# ---------------------------------------------------------------- boards and stands


def _board_segment(rng, fonts, ppm: float) -> tuple[np.ndarray, list]:
    """One board texture (BOARD_W x BOARD_H metres) and its logo boxes in texture pixels."""
    bg, fg = _colour_pair(rng)
    mode = rng.random()
    if mode < 0.45:  # one big name (the synth clip design)
        tex, box = _board_design(brand_word(rng), fonts[int(rng.integers(len(fonts)))], (bg, fg), ppm)
        return tex, [box]
    h, w = round(BOARD_H * ppm), round(BOARD_W * ppm)
    tex = np.empty((h, w, 3), np.uint8)
    tex[:] = bg
    boxes = []
    if mode < 0.8:  # a repeated small mark (like the Coop pills)
        word, font = brand_word(rng), fonts[int(rng.integers(len(fonts)))]
        shape = str(rng.choice(("none", "pill", "pill", "ellipse", "rect")))
        ebg, efg = _colour_pair(rng) if shape != "none" else (bg, fg)
        patch, alpha = _emblem(word, font, int(rng.uniform(0.45, 0.75) * h), ebg, efg, shape, 0.45 * w)
        n = int(rng.integers(1, max(2, int(w / (patch.shape[1] * 1.6)) + 1)))
        n = min(n, 6)
        gap = w / n
        for i in range(n):
            x = gap * (i + 0.5) - patch.shape[1] / 2
            y = (h - patch.shape[0]) / 2
            box = _paste(tex, patch, alpha, x, y)
            boxes.append(_ink_box(alpha, box) if shape == "none" else box)
    else:  # two different marks side by side
        for i in range(2):
            patch, alpha = _random_logo(rng, fonts, rng.uniform(0.4, 0.7) * h, max_w=0.42 * w)
            x = w * (0.25 + 0.5 * i) - patch.shape[1] / 2
            box = _paste(tex, patch, alpha, x, (h - patch.shape[0]) / 2)
            boxes.append(_ink_box(alpha, box))
    return tex, boxes


def _board_row(rng, fonts, ppm: float) -> tuple[np.ndarray, list, list]:
    """Row texture of N_BOARDS segments, segment boxes and logo boxes (texture pixels)."""
    segs, boards, logos, x = [], [], [], 0
    for _ in range(N_BOARDS):
        tex, boxes = _board_segment(rng, fonts, ppm)
        segs.append(tex)
        boards.append((x, 0, x + tex.shape[1], tex.shape[0]))
        logos += [(bx0 + x, by0, bx1 + x, by1) for bx0, by0, bx1, by1 in boxes]
        x += tex.shape[1]
    return np.hstack(segs), boards, logos


def _stands(rng, fonts, width: int) -> tuple[np.ndarray, list]:
    """Crowd on the stands, with a few sponsor tarps; logo boxes in texture pixels."""
    ppm = STAND_PPM * width
    tex = _crowd_texture(rng, int(STAND_LEN * ppm), int(2 * STAND_HALF_X * ppm), max(4, int(0.8 * ppm)))
    tex = np.ascontiguousarray(tex)
    logos = []
    for _ in range(int(rng.integers(0, 4))):
        tw, th = int(rng.uniform(12, 30) * ppm), int(rng.uniform(4, 8) * ppm)
        x, y = int(rng.uniform(0, tex.shape[1] - tw)), int(rng.uniform(0.3, 1.0) * (tex.shape[0] - th))
        bg, _ = _colour_pair(rng)
        tex[y:y + th, x:x + tw] = bg
        for i in range(int(rng.integers(1, 4))):
            patch, alpha = _random_logo(rng, fonts, rng.uniform(0.2, 0.4) * th, max_w=0.3 * tw,
                                        shapes=("none", "none", "ellipse"))
            px = x + rng.uniform(0.05, 0.65) * tw
            py = y + rng.uniform(0.1, 0.6) * th
            if px + patch.shape[1] <= x + tw and py + patch.shape[0] <= y + th:
                box = _paste(tex, patch, alpha, px, py)
                logos.append(_ink_box(alpha, box))
    return tex, logos


def _project_boxes(h: np.ndarray, boxes, cls: int) -> list:
    out = []
    for x0, y0, x1, y1 in boxes:
        c = cv2.perspectiveTransform(np.float32([[[x0, y0], [x1, y0], [x1, y1], [x0, y1]]]), h)[0]
        out.append((cls, *c.min(0), *c.max(0)))
    return out


# ---------------------------------------------------------------- people


def _draw_person(img, rng, fonts, cx: float, top: float, height: float, logo_p: float) -> list:
    """A jersey-like figure (head at top, feet at top+height); returns its logo boxes."""
    hh = height
    shirt, shorts = _random_colour(rng), _random_colour(rng)
    skin = SKIN[int(rng.integers(len(SKIN)))]
    sh_w, waist = 0.13 * hh * rng.uniform(0.9, 1.15), 0.1 * hh * rng.uniform(0.9, 1.1)
    y_sh, y_waist = top + 0.15 * hh, top + 0.47 * hh
    pts = lambda a: np.int32(np.round(a))  # noqa: E731
    # legs and shorts
    for sx in (-1, 1):
        cv2.rectangle(img, pts((cx + sx * 0.02 * hh, y_waist)), pts((cx + sx * 0.08 * hh, top + hh)), skin, -1)
        cv2.rectangle(img, pts((cx + sx * 0.02 * hh, top + 0.8 * hh)), pts((cx + sx * 0.08 * hh, top + hh)),
                      (240, 240, 240) if rng.random() < 0.5 else shorts, -1)
    cv2.rectangle(img, pts((cx - waist, y_waist - 0.02 * hh)), pts((cx + waist, top + 0.6 * hh)), shorts, -1)
    # arms, sleeves, torso
    for sx in (-1, 1):
        arm = np.array([[cx + sx * sh_w, y_sh], [cx + sx * (sh_w + 0.05 * hh), y_sh + 0.3 * hh],
                        [cx + sx * (sh_w + 0.01 * hh), y_sh + 0.3 * hh], [cx + sx * (sh_w - 0.04 * hh), y_sh]])
        cv2.fillPoly(img, [pts(arm)], skin, cv2.LINE_AA)
        sleeve = np.array([[cx + sx * (sh_w - 0.05 * hh), y_sh], [cx + sx * (sh_w + 0.02 * hh), y_sh],
                           [cx + sx * (sh_w + 0.05 * hh), y_sh + 0.12 * hh],
                           [cx + sx * (sh_w - 0.01 * hh), y_sh + 0.13 * hh]])
        cv2.fillPoly(img, [pts(sleeve)], shirt, cv2.LINE_AA)
    torso = np.array([[cx - sh_w, y_sh], [cx + sh_w, y_sh], [cx + waist, y_waist], [cx - waist, y_waist]])
    cv2.fillPoly(img, [pts(torso)], shirt, cv2.LINE_AA)
    pattern = rng.random()
    if pattern < 0.3:  # vertical stripes or hoops in a second colour
        second = _random_colour(rng)
        layer = img.copy()
        n = int(rng.integers(3, 7))
        for i in range(n):
            if rng.random() < 0.5:
                x = cx - sh_w + (2 * i + 0.5) * sh_w / n
                cv2.rectangle(layer, pts((x, y_sh)), pts((x + sh_w / n, y_waist)), second, -1)
            else:
                y = y_sh + (2 * i + 0.5) * (y_waist - y_sh) / (2 * n)
                cv2.rectangle(layer, pts((cx - sh_w, y)), pts((cx + sh_w, y + (y_waist - y_sh) / (2 * n))), second, -1)
        m = np.zeros(img.shape[:2], np.uint8)
        cv2.fillPoly(m, [pts(torso)], 1)
        img[m > 0] = layer[m > 0]
    # head
    cv2.circle(img, pts((cx, top + 0.065 * hh)), max(1, int(0.06 * hh)), skin, -1, cv2.LINE_AA)
    if rng.random() < 0.7:
        cv2.ellipse(img, pts((cx, top + 0.045 * hh)), (max(1, int(0.062 * hh)), max(1, int(0.04 * hh))),
                    0, 180, 360, _random_colour(rng) if rng.random() < 0.2 else (30, 30, 40), -1)
    logos = []
    if rng.random() < logo_p:
        fg = (255, 255, 255) if _luma(shirt) < 140 else (20, 20, 20)
        if rng.random() < 0.3:
            fg = _colour_pair(rng)[1] if abs(_luma(_colour_pair(rng)[1]) - _luma(shirt)) > 80 else fg
        emblem_bg = _colour_pair(rng)[0]
        shape = str(rng.choice(("none", "none", "none", "ellipse", "pill")))
        width = 1.6 * waist * rng.uniform(0.7, 1.0)
        patch, alpha = _emblem(brand_word(rng), fonts[int(rng.integers(len(fonts)))],
                               rng.uniform(0.03, 0.07) * hh, emblem_bg, fg, shape, width)
        y = top + rng.uniform(0.22, 0.3) * hh
        box = _paste(img, patch, alpha, cx - patch.shape[1] / 2, y)
        logos.append((LOGO, *_ink_box(alpha, box)))
        if rng.random() < 0.3:  # a small mark on a sleeve
            patch, alpha = _random_logo(rng, fonts, 0.025 * hh, bg=emblem_bg, fg=fg, max_w=0.06 * hh)
            sx = rng.choice([-1, 1])
            box = _paste(img, patch, alpha, cx + sx * (sh_w - 0.005 * hh) - patch.shape[1] / 2, y_sh + 0.04 * hh)
            logos.append((LOGO, *_ink_box(alpha, box)))
    return logos


def _cover(boxes: list, region) -> list:
    """Drop boxes mostly covered by region (x0, y0, x1, y1), drawn on top of them."""
    out = []
    for b in boxes:
        iw = max(0.0, min(b[3], region[2]) - max(b[1], region[0]))
        ih = max(0.0, min(b[4], region[3]) - max(b[2], region[1]))
        if iw * ih < 0.4 * (b[3] - b[1]) * (b[4] - b[2]):
            out.append(b)
    return out


# ---------------------------------------------------------------- scenes


def _jitter_hsv(img: np.ndarray, rng, hue: float, sat: float, val: float) -> np.ndarray:
    hsv = cv2.cvtColor(img, cv2.COLOR_BGR2HSV).astype(np.float32)
    hsv[..., 0] = (hsv[..., 0] + rng.uniform(-hue, hue)) % 180
    hsv[..., 1] *= rng.uniform(1 - sat, 1 + sat)
    hsv[..., 2] *= rng.uniform(1 - val, 1 + val)
    return cv2.cvtColor(np.clip(hsv, 0, 255).astype(np.uint8), cv2.COLOR_HSV2BGR)


def _pitch_scene(rng, fonts, w: int, h: int) -> tuple[np.ndarray, list]:
    zoom = float(np.exp(rng.uniform(np.log(0.35), np.log(2.2))))
    focal = WIDE_FOCAL * w * zoom
    row = np.arctan((CAM_POS[2] - BOARD_H / 2) / (BOARD_Y - CAM_POS[1]))
    tilt = row + np.arctan(rng.uniform(-0.05, 0.4) * h / focal)
    yaw = rng.uniform(-1.15 * YAW_MAX, 1.15 * YAW_MAX)
    p = Camera(yaw, tilt, focal, (w, h)).matrix()
    img = np.empty((h, w, 3), np.uint8)
    _draw_pitch(img, p, SimpleNamespace(stripe_quads=_stripe_quads(), line_quads=_line_quads()))
    img = _jitter_hsv(img, rng, 10, 0.35, 0.3)
    boxes = []
    stands, tarp_logos = _stands(rng, fonts, w)
    hs = _plane_homography(p, *_stand_plane(STAND_PPM * w))
    _warp_plane(img, _jitter_hsv(stands, rng, 8, 0.3, 0.3), hs)
    boxes += _project_boxes(hs, tarp_logos, LOGO)
    ppm = BOARD_PPM * w * min(zoom, 2.0) * rng.uniform(0.8, 1.2)
    tex, board_boxes, logo_boxes = _board_row(rng, fonts, ppm)
    hb = _plane_homography(p, *_board_plane(ppm))
    _warp_plane(img, tex, hb)
    boxes += _project_boxes(hb, board_boxes, BOARD) + _project_boxes(hb, logo_boxes, LOGO)
    # players on the pitch, far ones first
    for y in sorted(rng.uniform(22, 66, int(rng.integers(0, 9))), reverse=True):
        x = (y - CAM_POS[1]) * np.tan(yaw) + rng.uniform(-30, 30) / zoom
        (u, v1), (_, v0) = _project(p, np.array([[x, y, 0.0], [x, y, 1.85]]))
        if -50 < u < w + 50 and v1 - v0 > 8:
            logos = _draw_person(img, rng, fonts, u, v0, v1 - v0, 0.8)
            boxes = _cover(boxes, (u - 0.15 * (v1 - v0), v0, u + 0.15 * (v1 - v0), v1)) + logos
    return img, boxes


def _crowd_background(rng, w: int, h: int) -> np.ndarray:
    img = _crowd_texture(rng, h, w, int(rng.uniform(0.06, 0.3) * h))
    img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.5, 4))
    return _jitter_hsv(img, rng, 10, 0.3, 0.35)


def _closeup_scene(rng, fonts, w: int, h: int) -> tuple[np.ndarray, list]:
    if rng.random() < 0.6:
        img = _crowd_background(rng, w, h)
    else:  # grass with blurred stripes
        img = np.empty((h, w, 3), np.uint8)
        img[:] = (62, 150, 78)
        for x in range(0, w, int(rng.integers(60, 300))):
            img[:, x:x + int(rng.integers(30, 150))] = (50, 128, 62)
        img = _jitter_hsv(cv2.GaussianBlur(img, (0, 0), 3), rng, 12, 0.35, 0.35)
    boxes = []
    n = int(rng.integers(1, 4))
    for i in range(n):
        height = rng.uniform(0.9, 3.2) * h
        cx = rng.uniform(0.1, 0.9) * w
        top = rng.uniform(-0.12, 0.1) * height
        logos = _draw_person(img, rng, fonts, cx, top, height, 0.9)
        boxes = _cover(boxes, (cx - 0.15 * height, top, cx + 0.15 * height, top + height)) + logos
    shade = cv2.resize(rng.uniform(0.7, 1.2, (3, 4)).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
    img = np.clip(img * shade[..., None], 0, 255).astype(np.uint8)
    return img, boxes


def _crowd_scene(rng, fonts, w: int, h: int) -> tuple[np.ndarray, list]:
    img = _crowd_background(rng, w, h)
    boxes = []
    if rng.random() < 0.4:
        height = rng.uniform(0.4, 1.0) * h
        boxes = _draw_person(img, rng, fonts, rng.uniform(0.1, 0.9) * w, rng.uniform(0, h - height * 0.8),
                             height, 0.9)
    return img, boxes


# ---------------------------------------------------------------- overlays


def _text_patch(rng, fonts, text: str, height: float, fg, max_w: float):
    return _emblem(text, fonts[int(rng.integers(len(fonts)))], height, None, fg, "none", max_w)


def _overlays(img: np.ndarray, rng, fonts, boxes: list) -> list:
    h, w = img.shape[:2]
    s = w / 1280
    out = list(boxes)

    def panel(x0, y0, x1, y1, colour, opacity):
        region = (x0, y0, x1, y1)
        nonlocal out
        out = _cover(out, region)
        roi = img[int(y0):int(y1), int(x0):int(x1)].astype(np.float32)
        img[int(y0):int(y1), int(x0):int(x1)] = (roi * (1 - opacity) + np.float32(colour) * opacity).astype(np.uint8)
        out.append((OVERLAY, x0, y0, x1, y1))

    letters = "ABCDEFGHIJKLMNOPRSTUVWXYZ"
    if rng.random() < 0.6:  # score bug
        bh, bw = rng.uniform(28, 48) * s, rng.uniform(200, 360) * s
        x0 = rng.choice([rng.uniform(10, 60) * s, (w - bw) / 2, w - bw - rng.uniform(10, 60) * s])
        y0 = rng.uniform(10, 50) * s
        bg, fg = _colour_pair(rng)
        sponsor = rng.random() < 0.35
        full_w = bw + (0.4 * bw if sponsor else 0)
        x0 = min(x0, w - full_w - 2)
        panel(x0, y0, x0 + full_w, y0 + bh, bg, rng.uniform(0.75, 1.0))
        t1, t2 = ("".join(rng.choice(list(letters), 3)) for _ in range(2))
        score = f"{rng.integers(0, 5)}-{rng.integers(0, 5)}"
        text = f"{t1} {score} {t2}  {rng.integers(0, 95):02d}:{rng.integers(0, 60):02d}"
        patch, alpha = _text_patch(rng, fonts, text, 0.55 * bh, fg, 0.9 * bw)
        _paste(img, patch, alpha, x0 + 0.05 * bw, y0 + (bh - patch.shape[0]) / 2)
        if sponsor:
            patch, alpha = _random_logo(rng, fonts, 0.6 * bh, max_w=0.35 * bw)
            box = _paste(img, patch, alpha, x0 + bw + 0.02 * bw, y0 + (bh - patch.shape[0]) / 2)
            out.append((LOGO, *_ink_box(alpha, box)))
    if rng.random() < 0.4:  # channel / competition corner bug: a brand word
        patch, alpha = _random_logo(rng, fonts, rng.uniform(22, 50) * s, max_w=220 * s)
        ph, pw = alpha.shape
        pad = rng.uniform(4, 12) * s
        x0 = rng.choice([rng.uniform(10, 50) * s, w - pw - 2 * pad - rng.uniform(10, 50) * s])
        y0 = rng.choice([rng.uniform(10, 50) * s, h - ph - 2 * pad - rng.uniform(10, 50) * s])
        x0, y0 = max(0.0, x0), max(0.0, y0)
        if rng.random() < 0.6:
            panel(x0, y0, x0 + pw + 2 * pad, y0 + ph + 2 * pad, _random_colour(rng), rng.uniform(0.4, 1.0))
        else:
            out = _cover(out, (x0, y0, x0 + pw + 2 * pad, y0 + ph + 2 * pad))
            out.append((OVERLAY, x0 + pad, y0 + pad, x0 + pad + pw, y0 + pad + ph))
        box = _paste(img, patch, alpha, x0 + pad, y0 + pad, rng.uniform(0.7, 1.0))
        out.append((LOGO, *_ink_box(alpha, box)))
    if rng.random() < 0.3:  # lower third: a name, sometimes a sponsor mark
        bh, bw = rng.uniform(40, 90) * s, rng.uniform(0.3, 0.7) * w
        x0, y0 = rng.uniform(0.03, 0.2) * w, h - bh - rng.uniform(0.05, 0.2) * h
        bw = min(bw, w - x0 - 2)
        bg, fg = _colour_pair(rng)
        panel(x0, y0, x0 + bw, y0 + bh, bg, rng.uniform(0.7, 1.0))
        name = " ".join(str(rng.choice(list(letters))) + str(rng.choice(list("aeiou"))) +
                        "".join(rng.choice(list("nrstlkdm"), 3)) for _ in range(2)).upper()
        patch, alpha = _text_patch(rng, fonts, name, 0.4 * bh, fg, 0.6 * bw)
        _paste(img, patch, alpha, x0 + 0.04 * bw, y0 + 0.3 * bh)
        if rng.random() < 0.5:
            patch, alpha = _random_logo(rng, fonts, 0.5 * bh, max_w=0.3 * bw)
            box = _paste(img, patch, alpha, x0 + bw - patch.shape[1] - 0.03 * bw, y0 + 0.25 * bh)
            out.append((LOGO, *_ink_box(alpha, box)))
    return out


# ---------------------------------------------------------------- degradation and boxes


def _degrade(img: np.ndarray, rng) -> np.ndarray:
    h, w = img.shape[:2]
    if rng.random() < 0.3:
        k = int(rng.integers(2, 14))
        img = cv2.blur(img, (k, 1))
    if rng.random() < 0.2:
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.5, 1.5))
    if rng.random() < 0.3:
        f = rng.uniform(0.4, 0.8)
        small = cv2.resize(img, (int(w * f), int(h * f)), interpolation=cv2.INTER_AREA)
        img = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    if rng.random() < 0.3:
        img = np.clip(img + rng.normal(0, rng.uniform(2, 10), img.shape), 0, 255).astype(np.uint8)
    return img


def clip_boxes(boxes: list, w: int, h: int) -> list:
    """Clip (cls, x0, y0, x1, y1) boxes to the frame; drop small or mostly outside ones."""
    out = []
    for cls, x0, y0, x1, y1 in boxes:
        area = max(1e-6, (x1 - x0) * (y1 - y0))
        cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
        if cx1 - cx0 < MIN_BOX or cy1 - cy0 < MIN_BOX:
            continue
        if (cx1 - cx0) * (cy1 - cy0) / area < MIN_VISIBLE[cls]:
            continue
        out.append((int(cls), float(cx0), float(cy0), float(cx1), float(cy1)))
    return out


def render_sample(seed: int, split: str, index: int) -> tuple[np.ndarray, list, str]:
    """One sample: (BGR image after JPEG round trip, clipped boxes, scene kind)."""
    rng = np.random.default_rng([seed, {"train": 0, "val": 1}.get(split, 2), index])
    fonts = _fonts()
    w = int(rng.choice(WIDTHS))
    h = (w * 9 // 16) // 2 * 2
    kind = str(rng.choice(list(SCENE_WEIGHTS), p=list(SCENE_WEIGHTS.values())))
    img, boxes = {"pitch": _pitch_scene, "closeup": _closeup_scene, "crowd": _crowd_scene}[kind](rng, fonts, w, h)
    if rng.random() < 0.75:
        boxes = _overlays(img, rng, fonts, boxes)
    img = _degrade(img, rng)
    quality = int(rng.integers(35, 96))
    img = cv2.imdecode(cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])[1], cv2.IMREAD_COLOR)
    return img, clip_boxes(boxes, w, h), kind


def yolo_lines(boxes: list, w: int, h: int) -> list[str]:
    return [f"{c} {(x0 + x1) / 2 / w:.6f} {(y0 + y1) / 2 / h:.6f} {(x1 - x0) / w:.6f} {(y1 - y0) / h:.6f}"
            for c, x0, y0, x1, y1 in boxes]


def _write_one(args) -> tuple[str, list[int]]:
    out, seed, split, index = args
    img, boxes, kind = render_sample(seed, split, index)
    stem = f"syn_{split}_{index:06d}"
    cv2.imwrite(str(out / "images" / split / f"{stem}.jpg"), img, [cv2.IMWRITE_JPEG_QUALITY, 95])
    h, w = img.shape[:2]
    (out / "labels" / split / f"{stem}.txt").write_text("".join(line + "\n" for line in yolo_lines(boxes, w, h)))
    return kind, [b[0] for b in boxes]


def write_data_yaml(root: Path, train: str = "images/train", val: str = "images/val") -> Path:
    path = root / "data.yaml"
    path.write_text(yaml.safe_dump({"path": str(root.resolve()), "train": train, "val": val,
                                    "names": dict(enumerate(CLASSES))}, sort_keys=False))
    return path


def build_dataset(out_dir: str | Path, n_train: int, n_val: int, seed: int = 0, workers: int = 1) -> dict:
    """Render n_train + n_val samples as a YOLO dataset under out_dir; returns counts."""
    out = Path(out_dir)
    for split in ("train", "val"):
        (out / "images" / split).mkdir(parents=True, exist_ok=True)
        (out / "labels" / split).mkdir(parents=True, exist_ok=True)
    jobs = [(out, seed, "train", i) for i in range(n_train)] + [(out, seed, "val", i) for i in range(n_val)]
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            results = list(pool.map(_write_one, jobs, chunksize=8))
    else:
        results = [_write_one(j) for j in jobs]
    stats = {"params": {"n_train": n_train, "n_val": n_val, "seed": seed},
             "images": {"train": n_train, "val": n_val}, "scenes": {}, "boxes": dict.fromkeys(CLASSES, 0)}
    for kind, classes in results:
        stats["scenes"][kind] = stats["scenes"].get(kind, 0) + 1
        for c in classes:
            stats["boxes"][CLASSES[c]] += 1
    write_data_yaml(out)
    (out / "stats.json").write_text(json.dumps(stats, indent=1))
    return stats


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m mpr.detector_data", description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--n-train", type=int, default=800)
    ap.add_argument("--n-val", type=int, default=150)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=1)
    args = ap.parse_args(argv)
    print(yaml.safe_dump(build_dataset(args.out, args.n_train, args.n_val, args.seed, args.workers)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
