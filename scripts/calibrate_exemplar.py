"""Calibrate and check the offline logo matcher (mpr/escalation/exemplar.py) on foocus frames.

    python scripts/calibrate_exemplar.py [--data DIR] [--seed 0] [--dump DIR]

Data: ../shared/data/real-dev/foocus (frames, a CSV of Coop/Altibox boxes, logos/).
Prints "skipped: ... absent" when it is not there.

match_crop is scored on crops like those the pipeline gives it (a box padded by 0.25 x its
height on every side):
  positives  each labelled box, against all exemplars (right brand = true positive);
  cross      each labelled box against only the other brands' exemplars (any hit is false);
  negatives  windows with the labelled boxes' size distribution that overlap no labelled box:
             random ones (upper two thirds, where boards are) and ones around other text
             (MSER blobs merged into lines).
A threshold sweep prints precision (true hits / all hits), recall per brand and the
false-positive rate of the negatives.

search_region is scored on full-width strips 2x a labelled box's height centred on it
(logo = half the strip) and on strips that cross no labelled box: a hit is correct when
it overlaps a labelled box of its brand with IoU >= 0.3. Some Altibox boards are not
labelled, so a few "false" hits may be real logos (--dump writes false hits out).

Frames are split by sorted name: even positions calibrate the threshold (the lowest with
precision >= 0.95 for both functions and at most 1 % of the negative crops hit), odd
positions are held out; both halves are printed at the chosen threshold and at the
module's DEFAULT_MIN_SCORE. Scoring runs at min_score 0 (search_region at the sweep's
lowest), which refines every best place; the ms per call at DEFAULT_MIN_SCORE, as the
pipeline calls them, are timed separately. OpenCV runs on one thread.
"""

from __future__ import annotations

import argparse
import csv
import random
import sys
import time
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from mpr.escalation.exemplar import DEFAULT_MIN_SCORE, match_crop, prepare_exemplar, search_region  # noqa: E402

FOOCUS = ROOT.parent / "shared" / "data" / "real-dev" / "foocus"
LOGO_BRANDS = {"coop": "Coop", "coop2": "Coop", "altibox": "Altibox", "rema1000": "Rema 1000", "tess": "TESS",
               "tine": "Tine"}
SCORED = ("Coop", "Altibox")
PAD = 0.25
THRESHOLDS = [round(0.4 + 0.025 * i, 3) for i in range(13)]  # 0.4 .. 0.7


def load(data: Path):
    exemplars = [prepare_exemplar(LOGO_BRANDS.get(p.stem.lower(), p.stem), cv2.imread(str(p)), str(p))
                 for p in sorted((data / "logos").iterdir()) if p.suffix.lower() in (".jpg", ".png", ".jpeg")]
    boxes = defaultdict(list)
    with next(data.glob("labels_*.csv")).open() as f:
        for row in csv.DictReader(f):
            x, y, w, h = (float(row[k]) for k in ("bbox_x", "bbox_y", "bbox_width", "bbox_height"))
            boxes[row["image_name"]].append((row["label_name"], (x, y, x + w, y + h)))
    names = sorted(boxes)
    images = {n: cv2.imread(str(data / "foocus_dataset_images" / n)) for n in names}
    return exemplars, boxes, images, {n: ("calibrate", "held-out")[i % 2] for i, n in enumerate(names)}


def padded(image, box, pad=PAD):
    h, w = image.shape[:2]
    x1, y1, x2, y2 = box
    p = pad * (y2 - y1)
    return image[max(0, int(y1 - p)):min(h, int(np.ceil(y2 + p))), max(0, int(x1 - p)):min(w, int(np.ceil(x2 + p)))]


def overlaps(a, b) -> bool:
    return min(a[2], b[2]) > max(a[0], b[0]) and min(a[3], b[3]) > max(a[1], b[1])


def iou(a, b) -> float:
    iw, ih = min(a[2], b[2]) - max(a[0], b[0]), min(a[3], b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def text_boxes(image) -> list[tuple[float, float, float, float]]:
    """Line-like boxes of other text: MSER blobs of letter size, merged horizontally."""
    gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    mask = np.zeros_like(gray)
    for x, y, w, h in cv2.MSER_create(delta=5, min_area=20, max_area=2000).detectRegions(gray)[1]:
        if 6 <= h <= 60 and 0.1 <= w / h <= 2.5:
            mask[y:y + h, x:x + w] = 255
    mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, np.ones((3, 9), np.uint8))
    n, _, stats, _ = cv2.connectedComponentsWithStats(mask)
    return [(x, y, x + w, y + h) for x, y, w, h, _ in stats[1:] if 8 <= h <= 80 and 1.5 <= w / h <= 12]


def negative_boxes(image, labelled, sizes, rng, n_random=25, n_text=25):
    H, W = image.shape[:2]
    out, tries = [], 0
    while len(out) < n_random and tries < 2000:
        tries += 1
        w, h = rng.choice(sizes)
        x, y = rng.uniform(0, W - w), rng.uniform(0, 0.67 * H - h)
        out.append((x, y, x + w, y + h))
        if any(overlaps(_grow(out[-1]), _grow(b)) for b in labelled):
            out.pop()
    texts = [b for b in text_boxes(image) if not any(overlaps(_grow(b), _grow(l)) for l in labelled)]
    return out + rng.sample(texts, min(n_text, len(texts)))


def _grow(box, pad=PAD):
    p = pad * (box[3] - box[1])
    return box[0] - p, box[1] - p, box[2] + p, box[3] + p


def score_crops(exemplars, boxes, images, split, rng, dump):
    """Rows of (split, kind, true brand, hit brand, score)."""
    sizes = [(b[2] - b[0], b[3] - b[1]) for v in boxes.values() for _, b in v]
    rows, t, calls, timed = [], 0.0, 0, []
    for name, image in images.items():
        labelled = [b for _, b in boxes[name]]
        jobs = [("positive", brand, padded(image, b), exemplars) for brand, b in boxes[name]]
        jobs += [("cross", brand, padded(image, b), [e for e in exemplars if e.brand != brand])
                 for brand, b in boxes[name]]
        jobs += [("negative", "", padded(image, b), exemplars) for b in negative_boxes(image, labelled, sizes, rng)]
        timed += jobs[::10]
        for kind, brand, crop, exs in jobs:
            start = time.perf_counter()
            hit = match_crop(crop, exs, 0.0)
            t, calls = t + time.perf_counter() - start, calls + 1
            rows.append((split[name], kind, brand, hit.brand if hit else "", hit.score if hit else 0.0))
            if dump and kind != "positive" and hit and hit.score >= DEFAULT_MIN_SCORE:
                cv2.imwrite(str(dump / f"{kind}_{hit.brand}_{hit.score:.2f}_{name[:-4]}_{len(rows)}.png"), crop)
    print(f"match_crop at min_score 0: {calls} calls, {1000 * t / calls:.1f} ms per call ({len(exemplars)} exemplars)")
    start = time.perf_counter()
    for _, _, crop, exs in timed:
        match_crop(crop, exs, DEFAULT_MIN_SCORE)
    print(f"match_crop at {DEFAULT_MIN_SCORE}: {1000 * (time.perf_counter() - start) / len(timed):.1f} ms per call")
    return rows


def crop_figures(rows, split, thr):
    rows = [r for r in rows if split in ("all", r[0])]
    pos = [r for r in rows if r[1] == "positive"]
    neg = [r for r in rows if r[1] == "negative"]
    cross = [r for r in rows if r[1] == "cross"]
    tp = sum(r[4] >= thr and r[3] == r[2] for r in pos)
    hits = sum(r[4] >= thr for r in rows)
    recall = {b: (sum(r[4] >= thr and r[3] == b for r in pos if r[2] == b), sum(r[2] == b for r in pos))
              for b in SCORED}
    return dict(precision=tp / hits if hits else 1.0, recall=recall,
                wrong=sum(r[4] >= thr and r[3] != r[2] for r in pos),
                neg_fpr=(sum(r[4] >= thr for r in neg), len(neg)), cross_fpr=(sum(r[4] >= thr for r in cross), len(cross)))


def fmt(f) -> str:
    rec = "  ".join(f"{b} {k}/{n} ({k / max(n, 1):.2f})" for b, (k, n) in f["recall"].items())
    return (f"precision {f['precision']:.3f}  recall {rec}  wrong-brand {f['wrong']}  "
            f"neg FPR {f['neg_fpr'][0]}/{f['neg_fpr'][1]} ({f['neg_fpr'][0] / max(f['neg_fpr'][1], 1):.3f})  "
            f"cross FPR {f['cross_fpr'][0]}/{f['cross_fpr'][1]}")


def strips(image, labelled, rng, n_empty=3):
    """Strips 2x a labelled box's height centred on it (deduplicated), and empty ones."""
    H, W = image.shape[:2]
    out = []
    for _, (x1, y1, x2, y2) in labelled:
        h, cy = y2 - y1, (y1 + y2) / 2
        s = (0, max(0, cy - h), W, min(H, cy + h))
        if not any(iou(s, o) > 0.7 for o, _ in out):
            out.append((s, True))
    heights = [2 * (b[3] - b[1]) for _, b in labelled]
    for _ in range(50):
        if sum(not full for _, full in out) >= n_empty:
            break
        h = rng.choice(heights)
        y = rng.uniform(0, H - h)
        s = (0, y, W, y + h)
        if not any(overlaps(_grow(s, 0), _grow(b, 0.1)) for _, b in labelled):
            out.append((s, False))
    return out


def score_regions(exemplars, boxes, images, split, rng, dump):
    """Rows of (split, frame, score, labelled boxes matched, strip has logos), one per hit,
    found once at the sweep's lowest threshold (greedy NMS keeps the same hits above any
    higher one)."""
    rows, t, calls = [], 0.0, 0
    for name, image in images.items():
        for (x1, y1, x2, y2), has_logo in strips(image, boxes[name], rng):
            strip = image[int(y1):int(y2), int(x1):int(x2)]
            start = time.perf_counter()
            hits = search_region(strip, exemplars, THRESHOLDS[0], max_hits=100)
            t, calls = t + time.perf_counter() - start, calls + 1
            for h in hits:
                box = (h.box[0] + int(x1), h.box[1] + int(y1), h.box[2] + int(x1), h.box[3] + int(y1))
                match = frozenset(i for i, (b, lb) in enumerate(boxes[name]) if b == h.brand and iou(box, lb) >= 0.3)
                rows.append((split[name], name, h.score, match, has_logo))
                if dump and not match and h.score >= DEFAULT_MIN_SCORE:
                    cv2.imwrite(str(dump / f"region_{h.brand}_{h.score:.2f}_{name[:-4]}_{calls}.png"), padded(image, box))
    print(f"search_region at min_score {THRESHOLDS[0]}: {calls} calls, {1000 * t / calls:.0f} ms per call "
          f"(full-width strips of 1280 px frames)")
    frames = list(images)[::4]
    for kind, regions in (("full-width strips", [(n, s) for n in frames for s, _ in strips(images[n], boxes[n], rng)[:2]]),
                          ("board-like regions 8:1", [(n, board(images[n], b)) for n in frames for _, b in boxes[n][:2]])):
        start = time.perf_counter()
        for n, (x1, y1, x2, y2) in regions:
            search_region(images[n][int(y1):int(y2), int(x1):int(x2)], exemplars, DEFAULT_MIN_SCORE)
        print(f"search_region at {DEFAULT_MIN_SCORE}, {kind}: {1000 * (time.perf_counter() - start) / len(regions):.0f} ms per call")
    return rows


def board(image, box):
    """A region 8:1 around a box, its height 2x the box's (like a detector box of a board)."""
    h, w = image.shape[:2]
    cx, cy, r = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2, box[3] - box[1]
    return max(0, cx - 8 * r), max(0, cy - r), min(w, cx + 8 * r), min(h, cy + r)


def region_figures(rows, boxes, split, half, thr):
    rows = [r for r in rows if half in ("all", r[0]) and r[2] >= thr]
    correct = sum(bool(r[3]) for r in rows)
    found = {(r[1], i) for r in rows for i in r[3]}
    labelled = sum(len(v) for n, v in boxes.items() if half in ("all", split[n]))
    return dict(precision=correct / len(rows) if rows else 1.0, correct=correct, found=(len(found), labelled),
                false=sum(not r[3] and r[4] for r in rows), false_empty=sum(not r[4] for r in rows))


def fmt_region(f) -> str:
    return (f"precision {f['precision']:.3f}  correct hits {f['correct']}  labelled boxes found "
            f"{f['found'][0]}/{f['found'][1]}  false hits {f['false']} (+{f['false_empty']} in strips without logos)")


def choose(crop_rows, region_rows, boxes, split) -> float:
    """The lowest threshold with, on the calibration half, precision >= 0.95 for both
    functions and at most 1 % of the negative crops hit."""
    for thr in THRESHOLDS:
        c, r = crop_figures(crop_rows, "calibrate", thr), region_figures(region_rows, boxes, split, "calibrate", thr)
        if c["precision"] >= 0.95 and c["neg_fpr"][0] <= 0.01 * c["neg_fpr"][1] and r["precision"] >= 0.95:
            return thr
    return THRESHOLDS[-1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=FOOCUS)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dump", type=Path, help="write false hits' crops here (outside the repository)")
    args = ap.parse_args()
    if not args.data.is_dir():
        print(f"skipped: {args.data} absent")
        return 0
    if args.dump:
        args.dump.mkdir(parents=True, exist_ok=True)
    cv2.setNumThreads(1)
    rng = random.Random(args.seed)
    exemplars, boxes, images, split = load(args.data)
    crop_rows = score_crops(exemplars, boxes, images, split, rng, args.dump)
    region_rows = score_regions(exemplars, boxes, images, split, rng, args.dump)
    print("\nthreshold sweep, calibration half (even positions of the frames sorted by name):")
    for thr in THRESHOLDS:
        print(f"  {thr:.3f}  match_crop: {fmt(crop_figures(crop_rows, 'calibrate', thr))}")
        print(f"         search_region: {fmt_region(region_figures(region_rows, boxes, split, 'calibrate', thr))}")
    thr = choose(crop_rows, region_rows, boxes, split)
    print(f"\nchosen threshold {thr:.3f}; module DEFAULT_MIN_SCORE = {DEFAULT_MIN_SCORE}")
    for t in sorted({thr, DEFAULT_MIN_SCORE}):
        for half in ("calibrate", "held-out", "all"):
            print(f"  {half:9s} at {t:.3f}  match_crop: {fmt(crop_figures(crop_rows, half, t))}")
            print(f"  {'':9s}           search_region: {fmt_region(region_figures(region_rows, boxes, split, half, t))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
