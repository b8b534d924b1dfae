"""Per-second brand presence on the real dev clips (../shared/data/real-dev), if present.

    python scripts/eval_real_dev.py [--profile soccer_broadcast] [--set STAGE.KEY=VALUE ...]

Truth: docs/real-dev-truth.json (one frame per second, labelled by eye). Brands: the
manifest's list per clip. Prints precision / recall / F1 per clip and over both.
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
    args = parser.parse_args(argv)
    if not REAL_DEV.exists():
        print(f"skipped: {REAL_DEV} is absent")
        return 0
    os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "WARNING")
    from flows.detect import detect_brands
    from mpr.evaluate import evaluate, load_truth
    from mpr.profiles import parse_set

    totals = {"tp": 0, "fp": 0, "fn": 0}
    for clip in json.loads(TRUTH.read_text())["clips"]:
        truth = load_truth(TRUTH, clip)
        brands = [{"name": b, "aliases": ALIASES.get(b, [])} for b in truth.brands]
        with tempfile.TemporaryDirectory() as out:
            report = detect_brands(str(REAL_DEV / clip), brands, args.profile, parse_set(args.sets), out)
        result = evaluate(report, truth)
        print(f"\n{clip}: precision {result['precision']:.2f} recall {result['recall']:.2f} "
              f"F1 {result['f1']:.2f}  (tp {result['tp']} fp {result['fp']} fn {result['fn']})")
        for brand, counts in result["per_brand"].items():
            print(f"  {brand:16} tp {counts['tp']:2} fp {counts['fp']:2} fn {counts['fn']:2}")
        for key in totals:
            totals[key] += result[key]
    tp, fp, fn = totals["tp"], totals["fp"], totals["fn"]
    precision, recall = tp / max(tp + fp, 1), tp / max(tp + fn, 1)
    print(f"\nall clips: precision {precision:.2f} recall {recall:.2f} (brand-seconds: tp {tp} fp {fp} fn {fn})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
