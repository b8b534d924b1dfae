"""Board lines and overlay regions from the pitch mask and the frames.

Perimeter boards stand just beyond the far touchline, so the far edge of the grass
is their foot. That edge is found with Canny on the mask and probabilistic Hough,
keeping only segments with grass below and no grass above; collinear segments are
joined into lines. The band above each line is the board band; its height at each
end is where the strongest horizontal edge (the top of the boards) lies above the
line, so the band is a trapezoid that perspective rectification turns into a strip.

Overlays (score bug, corner bugs, lower thirds) are what stays put while the picture
moves: edges present in nearly every sampled frame of a chunk, in the top and bottom
margins of the frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from mpr.records import Box, Quad


@dataclass(frozen=True)
class Line:
    """A board-foot line in frame pixels, from x0 to x1."""

    x0: float
    y0: float
    x1: float
    y1: float

    @property
    def angle(self) -> float:
        return float(np.degrees(np.arctan2(self.y1 - self.y0, self.x1 - self.x0)))

    def y_at(self, x: float) -> float:
        return self.y0 + (self.y1 - self.y0) * (x - self.x0) / max(self.x1 - self.x0, 1e-6)


def board_lines(mask: np.ndarray, scale: float, max_angle: float = 30.0, min_extent: float = 0.1,
                max_lines: int = 3) -> list[Line]:
    """Far grass edges (mask at `scale` of the frame) as lines in frame pixels."""
    height, width = mask.shape
    edges = cv2.Canny(mask, 50, 150)
    grass_above = np.ones_like(mask, bool)
    grass_above[2:] = mask[:-2] > 0
    grass_below = np.zeros_like(mask, bool)
    grass_below[:-2] = mask[2:] > 0
    edges[grass_above | ~grass_below] = 0  # keep edges with grass below them and none above
    edges[:2], edges[-2:], edges[:, :2], edges[:, -2:] = 0, 0, 0, 0  # the frame border is no boundary
    segments = cv2.HoughLinesP(edges, 1, np.pi / 180, threshold=max(10, width // 40),
                               minLineLength=max(8, width // 25), maxLineGap=max(3, width // 60))
    if segments is None:
        return []
    segs = [s for s in segments.reshape(-1, 4).astype(float)
            if abs(np.degrees(np.arctan2(s[3] - s[1], s[2] - s[0]))) <= max_angle]
    lines = []
    for group in _collinear_groups(segs):
        pts = np.array([p for s in group for p in ((s[0], s[1]), (s[2], s[3]))], np.float32)
        vx, vy, cx, cy = cv2.fitLine(pts, cv2.DIST_HUBER, 0, 0.01, 0.01).ravel()
        x0, x1 = float(pts[:, 0].min()), float(pts[:, 0].max())
        if x1 - x0 < min_extent * width or abs(vx) < 1e-6:
            continue
        slope = vy / vx
        lines.append(Line(x0 / scale, (cy + slope * (x0 - cx)) / scale, x1 / scale, (cy + slope * (x1 - cx)) / scale))
    lines.sort(key=lambda ln: -(ln.x1 - ln.x0))
    return lines[:max_lines]


def _collinear_groups(segs: list[np.ndarray], max_angle_diff: float = 5.0, max_offset: float = 4.0) -> list[list]:
    """Greedy grouping, longest segment first: same direction and lying on the same line."""
    segs = sorted(segs, key=lambda s: -np.hypot(s[2] - s[0], s[3] - s[1]))
    groups: list[list] = []
    for seg in segs:
        angle = np.degrees(np.arctan2(seg[3] - seg[1], seg[2] - seg[0]))
        mid = ((seg[0] + seg[2]) / 2, (seg[1] + seg[3]) / 2)
        for group in groups:
            g = group[0]
            g_angle = np.degrees(np.arctan2(g[3] - g[1], g[2] - g[0]))
            # distance of this segment's midpoint to the group's first (longest) segment line
            nx, ny = -(g[3] - g[1]), g[2] - g[0]
            offset = abs((mid[0] - g[0]) * nx + (mid[1] - g[1]) * ny) / max(np.hypot(nx, ny), 1e-6)
            if abs(angle - g_angle) <= max_angle_diff and offset <= max_offset:
                group.append(seg)
                break
        else:
            groups.append([seg])
    return groups


def board_band(gray: np.ndarray, line: Line, min_h: float, max_h: float, margin: float = 0.2,
               rows: float = 1.0) -> tuple[Quad, float]:
    """Trapezoid over the boards standing on `line` and the estimated board height.

    Board heights are measured at both halves of the line (perspective makes the near
    end taller); the band reaches `rows` board heights up, since a second row of
    boards or stand banners often sits right above the first.
    """
    heights = []
    for a, b in ((line.x0, (line.x0 + line.x1) / 2), ((line.x0 + line.x1) / 2, line.x1)):
        heights.append(_board_height(gray, line, a, b, min_h, max_h))
    h_left, h_right = heights
    # heights were measured at the half centres; extrapolate to the ends (perspective)
    span = max(line.x1 - line.x0, 1.0)
    grad = (h_right - h_left) / (span / 2)
    h0 = float(np.clip(h_left - grad * span / 4, min_h, max_h))
    h1 = float(np.clip(h_right + grad * span / 4, min_h, max_h))
    up = rows + margin
    quad = ((line.x0, line.y0 - h0 * up), (line.x1, line.y1 - h1 * up),
            (line.x1, line.y1 + h1 * margin), (line.x0, line.y0 + h0 * margin))
    return quad, (h0 + h1) / 2


def _board_height(gray: np.ndarray, line: Line, xa: float, xb: float, min_h: float, max_h: float) -> float:
    """Distance above the line to the strongest horizontal edge (the boards' top)."""
    width = int(max(8, xb - xa))
    depth = int(max_h) + 2
    src = np.float32([[xa, line.y_at(xa) - depth], [xb, line.y_at(xb) - depth],
                      [xb, line.y_at(xb)], [xa, line.y_at(xa)]])
    dst = np.float32([[0, 0], [width, 0], [width, depth], [0, depth]])
    strip = cv2.warpPerspective(gray, cv2.getPerspectiveTransform(src, dst), (width, depth),
                                borderMode=cv2.BORDER_REPLICATE)
    profile = np.abs(cv2.Sobel(strip.astype(np.float32), cv2.CV_32F, 0, 1, ksize=3)).mean(axis=1)
    dist = depth - np.arange(depth)  # row r lies depth - r pixels above the line
    valid = (dist >= min_h) & (dist <= max_h)
    if not valid.any() or profile[valid].max() <= 0:
        return (min_h + max_h) / 2
    return float(dist[valid][np.argmax(profile[valid])])


def quad_box(quad: Quad, width: int, height: int) -> Box:
    xs, ys = [p[0] for p in quad], [p[1] for p in quad]
    return (max(0.0, min(xs)), max(0.0, min(ys)), min(float(width), max(xs)), min(float(height), max(ys)))


def overlay_boxes(grays: list[np.ndarray], scale: float, persistence: float = 0.9,
                  top: float = 0.25, bottom: float = 0.3) -> list[Box]:
    """Boxes (frame pixels) of graphics whose edges stay put in the top/bottom margins.

    `grays` are the chunk's kept frames, downscaled by `scale`; at least 4 are needed
    for persistence to mean anything.
    """
    if len(grays) < 4:
        return []
    height, width = grays[0].shape
    kernel = np.ones((3, 3), np.uint8)
    hits = np.zeros((height, width), np.float32)
    for gray in grays:
        hits += cv2.dilate(cv2.Canny(gray, 60, 160), kernel) > 0
    steady = ((hits / len(grays)) >= persistence).astype(np.uint8) * 255
    steady[int(top * height):int((1 - bottom) * height)] = 0
    steady = cv2.morphologyEx(steady, cv2.MORPH_CLOSE, np.ones((5, 9), np.uint8))
    n, _, stats, _ = cv2.connectedComponentsWithStats(steady)
    boxes = []
    for x, y, w, h, area in stats[1:]:
        if w >= 0.03 * width and h >= 0.02 * height and w * h <= 0.15 * width * height and area >= 20:
            boxes.append((x / scale, y / scale, (x + w) / scale, (y + h) / scale))
    return boxes


def fixed_on_screen(box: Box, gray: np.ndarray, neighbours: list[np.ndarray], min_kept: float = 0.7,
                    min_edges: int = 20) -> bool:
    """Whether the picture in `box` stays at the same screen place in a neighbouring sample, as an
    overlay graphic does; boards, banners and dugouts move with the camera between samples a
    second apart. True where it cannot be told: no neighbour, too few edges in the box.

    Compared are the box's strong edges across (x gradient) and along (y gradient) the frame,
    each as the share found again, within a pixel, in the neighbour: a semi-transparent graphic
    keeps its glyphs' edges while the picture behind it changes, and a pan keeps a board's
    horizontal edges but moves its letters' vertical ones, so the lower share decides.
    The detector's overlay class is trained on synthetic frames and also fires on real stand
    banners; the steady-overlay search is fooled by long horizontal edges under a pan.
    """
    x1, y1, x2, y2 = (max(0, round(v)) for v in box)
    patch = gray[y1:y2, x1:x2]
    if not neighbours or min(patch.shape) < 4:
        return True
    edges = [_strong_edges(patch, axis) for axis in (0, 1)]
    if min(e.sum() for e in edges) < min_edges:
        return True
    near = np.ones((3, 3), np.uint8)
    for other in neighbours:
        there = other[y1:y2, x1:x2]
        if there.shape != patch.shape:
            continue
        kept = [(e & (cv2.dilate(_strong_edges(there, axis).astype(np.uint8), near) > 0)).sum() / e.sum()
                for axis, e in enumerate(edges)]
        if min(kept) >= min_kept:
            return True
    return False


def _strong_edges(gray: np.ndarray, axis: int) -> np.ndarray:
    """Pixels with a strong gradient along x (axis 0) or y (axis 1): the patch's top tenth, at least 40."""
    grad = np.abs(cv2.Sobel(gray, cv2.CV_32F, 1 - axis, axis))
    return grad > max(40.0, float(np.percentile(grad, 90)))
