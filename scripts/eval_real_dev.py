"""Per-second brand presence on the real dev clips (../shared/data/real-dev), if present.

    python scripts/eval_real_dev.py [--profile soccer_broadcast] [--set STAGE.KEY=VALUE ...] [--distractors N]

Truth: docs/real-dev-truth.json (one frame per second, labelled by eye). Brands: the
manifest's list per clip, plus N distractor brands absent from the footage
(scripts/distractors.py: every second one is found is a false positive). Prints precision /
recall / F1 per clip and over both.
The footage is never copied into the repository.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REAL_DEV = ROOT.parent / "shared" / "data" / "real-dev"
TRUTH = ROOT / "docs" / "real-dev-truth.json"
# The manifest's brands; aliases are the other ways the same brand is written on boards.
ALIASES = {"apotal.de": ["apotal"], "reuter.com": ["reuter"], "NHK": ["NHK BS1"]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="soccer_broadcast")
    parser.add_argument("--set", dest="sets", action="append", default=[])
    parser.add_argument("--distractors", type=int, default=0, help="add this many absent brands to each list")
    args = parser.parse_args(argv)
    if not REAL_DEV.exists():
        print(f"skipped: {REAL_DEV} is absent")
        return 0
    os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "WARNING")
    from flows.detect import detect_brands
    from mpr.evaluate import evaluate, format_scores, load_truth, prf
    from mpr.profiles import parse_set
    from distractors import distractor_brands

    totals = {"tp": 0, "fp": 0, "fn": 0}
    for clip in json.loads(TRUTH.read_text())["clips"]:
        truth = load_truth(TRUTH, clip)
        extra = distractor_brands(truth.brands, args.distractors)
        truth.brands += extra
        brands = [{"name": b, "aliases": ALIASES.get(b, [])} for b in truth.brands]
        with tempfile.TemporaryDirectory() as out:
            report = detect_brands(str(REAL_DEV / clip), brands, args.profile, parse_set(args.sets), out)
        result = evaluate(report, truth)
        result["per_brand"] = {b: r for b, r in result["per_brand"].items() if r["tp"] + r["fp"] + r["fn"]}
        print(f"\n{clip}\n{format_scores(result)}")
        for d in (d for d in report.detections if d.brand in extra):
            print(f"  false {d.brand} at {d.t:.1f} s: read {d.text!r} by {d.resolver} in {d.region}")
        for key in totals:
            totals[key] += result[key]
    print(f"\nall clips\n{format_scores(prf(**totals))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
