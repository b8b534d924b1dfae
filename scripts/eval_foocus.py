"""Box-level recall of Coop and Altibox on the labelled foocus frames (../shared/data/real-dev/foocus).

    python scripts/eval_foocus.py [--profile soccer_broadcast] [--split all|heldout|train] [--set ...] [--no-logos]
                                  [--distractors N]

Runs the pipeline on the 23 labelled frames (copied to a temporary folder, never into
the repository) with the brands seen in that league, then counts a labelled box as
found when a detection of the same brand in the same frame overlaps it with IoU >=
0.3. The labelling covers only Coop and Altibox (and misses some Altibox), so only
recall is scored; detections of other brands are listed, not judged, except N distractor
brands absent from the frames (scripts/distractors.py): each of their detections is false.

`--split` picks the frames the shipped detector did not train on (heldout: odd
positions in name order; train: even positions), see models/detector/MODEL_CARD.md.
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import sys
import tempfile
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
FOOCUS = ROOT.parent / "shared" / "data" / "real-dev" / "foocus"
LABELS = FOOCUS / "labels_foocus-test_2023-02-10-12-16-05.csv"
SCORED = ("Coop", "Altibox")
LEAGUE_BRANDS = ["Coop", "Altibox", "DNB", "OBOS", "Fjordkraft", "Coca-Cola", "Norsk Tipping", "OsloTaxi",
                 "McDonald's", "Rema 1000", "Tine", "TESS"]
LOGOS = {"Coop": ["coop.jpg", "coop2.jpg"], "Altibox": ["Altibox.jpg"], "Rema 1000": ["Rema1000.jpg"],
         "Tine": ["Tine.jpg"], "TESS": ["TESS.jpg"]}  # exemplars shipped with the dataset (escalate_vlm)


def league_brands(logos: bool) -> list[dict]:
    return [{"name": b, **({"logo": [str(FOOCUS / "logos" / f) for f in LOGOS[b]]} if logos and b in LOGOS else {})}
            for b in LEAGUE_BRANDS]
IOU = 0.3


def labelled_boxes() -> dict[str, list[tuple[str, tuple[float, float, float, float]]]]:
    boxes = defaultdict(list)
    with LABELS.open() as f:
        for row in csv.DictReader(f):
            x, y, w, h = (float(row[k]) for k in ("bbox_x", "bbox_y", "bbox_width", "bbox_height"))
            boxes[row["image_name"]].append((row["label_name"], (x, y, x + w, y + h)))
    return dict(boxes)


def split_names(names: list[str], split: str) -> list[str]:
    ordered = sorted(names)
    if split == "all":
        return ordered
    return ordered[0::2] if split == "train" else ordered[1::2]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="soccer_broadcast")
    parser.add_argument("--split", choices=["all", "heldout", "train"], default="all")
    parser.add_argument("--set", dest="sets", action="append", default=[])
    parser.add_argument("--misses", action="store_true", help="list every labelled box not found")
    parser.add_argument("--no-logos", action="store_true", help="brands without their logo exemplars")
    parser.add_argument("--distractors", type=int, default=0, help="add this many absent brands to the list")
    args = parser.parse_args(argv)
    if not LABELS.exists():
        print(f"skipped: {FOOCUS} is absent")
        return 0
    os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "WARNING")
    from flows.detect import detect_brands
    from mpr.profiles import parse_set
    from mpr.vision.rectify import iou

    truth = labelled_boxes()
    names = split_names(list(truth), args.split)
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["MPR_DATABASE_URL"] = f"sqlite:///{Path(tmp) / 'mpr.db'}"  # no aliases learned by earlier runs
        folder = Path(tmp) / "frames"
        folder.mkdir()
        for name in names:
            shutil.copy(FOOCUS / "foocus_dataset_images" / name, folder / name)
        from distractors import distractor_brands

        extra = [{"name": b} for b in distractor_brands(LEAGUE_BRANDS, args.distractors)]
        report = detect_brands(str(folder), league_brands(not args.no_logos) + extra, args.profile,
                               parse_set(args.sets), str(Path(tmp) / "out"))
    found, total, by_region, by_stage = Counter(), Counter(), Counter(), Counter()
    for name in names:
        dets = [d for d in report.detections if d.frame == name]
        for brand, box in truth[name]:
            total[brand] += 1
            hit = next((d for d in dets if d.brand == brand and iou(d.box, box) >= IOU), None)
            if hit:
                found[brand] += 1
                by_region[hit.region] += 1
                by_stage[hit.source] += 1
            elif args.misses:
                print(f"missed {brand} {name} {tuple(round(v) for v in box)}")
    print(f"foocus labelled frames ({args.split}: {len(names)} images), profile {args.profile}, IoU >= {IOU}")
    print(f"{'brand':<10} {'found':>6} {'labelled':>9} {'recall':>7}")
    for brand in SCORED:
        print(f"{brand:<10} {found[brand]:>6} {total[brand]:>9} {found[brand] / max(total[brand], 1):>7.2f}")
    both = sum(found.values()), sum(total.values())
    print(f"{'both':<10} {both[0]:>6} {both[1]:>9} {both[0] / max(both[1], 1):>7.2f}")
    print("found via: " + ", ".join(f"{k} {v}" for k, v in by_region.most_common()))
    print("resolved by: " + ", ".join(f"{k} {v}" for k, v in by_stage.most_common()))
    others = Counter(d.brand for d in report.detections if d.brand not in SCORED and d.brand in LEAGUE_BRANDS)
    print("other brands detected (not scored): " + (", ".join(f"{b} {n}" for b, n in others.most_common()) or "none"))
    if args.distractors:
        wrong = [d for d in report.detections if d.brand not in LEAGUE_BRANDS]
        print(f"distractor detections (false, of {len(extra)} distractors): "
              + (", ".join(f"{b} {n}" for b, n in Counter(d.brand for d in wrong).most_common()) or "none"))
        for d in wrong:
            print(f"  false {d.brand}: read {d.text!r} by {d.resolver} in {d.frame}")
    stages = {s.name: s.seconds for s in report.stages}
    print("stage seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in stages.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
