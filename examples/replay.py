"""The replay loop from Python (or a notebook): change one stage's config, rerun, upstream stays cached.

    python examples/replay.py samples/demo.mp4 samples/brands.yaml
"""

import sys

from flows.detect import detect_brands


def main(source: str, brands: str) -> None:
    first = detect_brands(source, brands)
    print(first.stages_frame()[["name", "state", "seconds"]])
    print(first.to_frame())
    for min_score in (70, 90):  # only match_brands and compile_report recompute
        report = detect_brands(source, brands, overrides={"match_brands": {"min_score": min_score}})
        states = {s.name: s.state for s in report.stages}
        exposure = {b.brand: b.exposure_s for b in report.brands}
        print(f"min_score={min_score}: {states}\n  exposure seconds: {exposure}")


if __name__ == "__main__":
    main(*sys.argv[1:3])
