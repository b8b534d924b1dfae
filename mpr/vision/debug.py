"""Debug overlays (`--debug`): what each vision stage saw, drawn on the frame."""

from __future__ import annotations

import cv2
import numpy as np

COLOURS = {"board_band": (0, 255, 255), "board": (255, 160, 0), "overlay": (255, 0, 255),
           "logo": (0, 200, 0), "frame": (200, 200, 200)}


def draw_mask(image: np.ndarray, mask: np.ndarray, coverage: float) -> np.ndarray:
    out = image.copy()
    full = cv2.resize(mask, (image.shape[1], image.shape[0]), interpolation=cv2.INTER_NEAREST) > 0
    out[full] = (0.55 * out[full] + 0.45 * np.array([0, 255, 0])).astype(np.uint8)
    cv2.putText(out, f"pitch {coverage:.0%}", (10, 30), cv2.FONT_HERSHEY_SIMPLEX, 0.9, (255, 255, 255), 2)
    return out


def draw_regions(image: np.ndarray, regions, lines=()) -> np.ndarray:
    out = image.copy()
    for line in lines:
        cv2.line(out, (int(line.x0), int(line.y0)), (int(line.x1), int(line.y1)), (0, 0, 255), 2)
    for r in regions:
        colour = COLOURS.get(r.kind, (255, 255, 255))
        if r.quad:
            cv2.polylines(out, [np.int32(r.quad)], True, colour, 2)
        else:
            x1, y1, x2, y2 = map(int, r.box)
            cv2.rectangle(out, (x1, y1), (x2, y2), colour, 2)
        label = f"{r.kind} {r.score:.2f}" if r.source == "yolo" else r.kind
        cv2.putText(out, label, (int(r.box[0]), max(12, int(r.box[1]) - 4)), cv2.FONT_HERSHEY_SIMPLEX, 0.45, colour, 1)
    return out


def draw_reads(image: np.ndarray, reads) -> np.ndarray:
    out = image.copy()
    for r in reads:
        x1, y1, x2, y2 = map(int, r.box)
        cv2.rectangle(out, (x1, y1), (x2, y2), COLOURS.get(r.region, (255, 255, 255)), 1)
        cv2.putText(out, f"{r.text} {r.score:.2f}", (x1, max(12, y1 - 3)), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                    (255, 255, 255), 1)
    return out
