"""OCR runtimes side by side: text-detector and recogniser time, and agreement, on the same frames.

    python scripts/bench_ocr.py [--short-side 960] [--frames 30]

Frames are sampled at 1 fps from the dev clips (../shared/data/real-dev), scaled and
padded to 1280x720 as in bench_rtf.py. Both runtimes run the same PP-OCR ONNX files;
the recogniser reads the lines onnxruntime's detector found, so texts can be compared.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
REAL_DEV = ROOT.parent / "shared" / "data" / "real-dev"
CLIPS = ["02_bundesliga_dfl_08fd33_4_848x478.mp4", "03_japan_tajikistan_nhk_360p.mp4"]


def frames_720p(limit: int) -> list[np.ndarray]:
    out = []
    for clip in CLIPS:
        cap = cv2.VideoCapture(str(REAL_DEV / clip))
        step, n = round(cap.get(cv2.CAP_PROP_FPS)), 0
        while len(out) < limit:
            ok, frame = cap.read()
            if not ok:
                break
            if n % step == 0:
                h, w = frame.shape[:2]
                s = min(1280 / w, 720 / h)
                frame = cv2.resize(frame, (round(w * s), round(h * s)))
                canvas = np.zeros((720, 1280, 3), np.uint8)
                y, x = (720 - frame.shape[0]) // 2, (1280 - frame.shape[1]) // 2
                canvas[y:y + frame.shape[0], x:x + frame.shape[1]] = frame
                out.append(canvas)
            n += 1
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--short-side", type=int, default=960)
    parser.add_argument("--frames", type=int, default=30)
    args = parser.parse_args(argv)
    if not REAL_DEV.exists():
        print(f"skipped: {REAL_DEV} is absent")
        return 0
    from mpr.ocr import detect_scale, get_engine, line_image

    frames = frames_720p(args.frames)
    engines = {rt: get_engine("rapidocr", runtime=rt) for rt in ("onnxruntime", "openvino")}
    lines = [[line_image(f, q) for q in engines["onnxruntime"].detect(f, detect_scale(f.shape, args.short_side))]
             for f in frames]
    texts, rows = {}, {}
    for rt, engine in engines.items():
        engine.recognize(lines[0][:2])  # warm-up
        start = time.perf_counter()
        for f in frames:
            engine.detect(f, detect_scale(f.shape, args.short_side))
        det = time.perf_counter() - start
        start = time.perf_counter()
        texts[rt] = [engine.recognize(ls) for ls in lines]
        rec = time.perf_counter() - start
        rows[rt] = (det / len(frames) * 1000, rec / max(sum(map(len, lines)), 1) * 1000)
    n_lines = sum(map(len, lines))
    same = sum(a[0] == b[0] for fa, fb in zip(texts["onnxruntime"], texts["openvino"]) for a, b in zip(fa, fb))
    print(f"{len(frames)} frames 1280x720, text detector at short side {args.short_side}, {n_lines} lines")
    print(f"{'runtime':<12} {'det ms/frame':>13} {'rec ms/line':>12}")
    for rt, (det, rec) in rows.items():
        print(f"{rt:<12} {det:>13.0f} {rec:>12.1f}")
    base, ov = rows["onnxruntime"], rows["openvino"]
    print(f"openvino speed-up: det {base[0] / ov[0]:.2f}x, rec {base[1] / ov[1]:.2f}x; "
          f"same text on {same}/{n_lines} lines")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
