"""Brands found on the real dev stills (../shared/data/real-dev/stills), if present.

    python scripts/eval_stills.py [--profile soccer_broadcast] [--set STAGE.KEY=VALUE ...] [--distractors N]

Truth: the brands the dev manifest lists by eye for each still; every still is searched
for all of them (and N distractor brands absent from all, scripts/distractors.py), so a brand found
on the wrong still counts as a false one. Prints what
each still found, missed and found extra, then the totals. Nothing is copied into the
repository.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STILLS = ROOT.parent / "shared" / "data" / "real-dev" / "stills"
TRUTH = {
    "sportsfield_ucl_2009.png": ["Vodafone", "MasterCard", "Maestro", "PlayStation", "Heineken"],
    "sportsfield_world_cup_2018.png": ["Gazprom"],
    "sccvsd_wc2014_bra_mex_16.jpg": ["Itaú", "Wiseup", "Polysporin"],
    "mradovic_ucl_napoli_barca_frame.jpg": ["Turkish Airlines"],
    "roboflow_dfl_121364_9_1_unionberlin.jpg": ["Delock", "Aroundtown", "wefox"],
    "debian_opencvdoc_messi5.jpg": ["unicef", "Nike"],
}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="soccer_broadcast")
    parser.add_argument("--set", dest="sets", action="append", default=[])
    parser.add_argument("--distractors", type=int, default=0, help="add this many absent brands to the list")
    args = parser.parse_args(argv)
    if not STILLS.exists():
        print(f"skipped: {STILLS} is absent")
        return 0
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "WARNING")
    from flows.detect import detect_brands
    from mpr.profiles import parse_set

    from distractors import distractor_brands

    names = sorted({b for names in TRUTH.values() for b in names})
    brands = [{"name": name} for name in names + distractor_brands(names, args.distractors)]
    found = missed = extra = 0
    for still, wanted in TRUTH.items():
        with tempfile.TemporaryDirectory() as out:
            report = detect_brands(str(STILLS / still), brands, args.profile, parse_set(args.sets), out)
        got = {row.brand for row in report.brands}
        want = set(wanted)
        print(f"{still}: found {sorted(got & want)}, missed {sorted(want - got)}, extra {sorted(got - want)}")
        found, missed, extra = found + len(got & want), missed + len(want - got), extra + len(got - want)
    print(f"\nall stills: {found} of {found + missed} brands found, {extra} false")
    return 0


if __name__ == "__main__":
    sys.exit(main())
