"""Exposure analytics end to end: a synthetic clip with known exposures through `mpr detect`.

Acceptance (issue 7): exposure seconds per brand within ±0.5 s, exposure counts exact,
share of screen within ±10% relative. The clip has a cut to a close-up between two wide
shots, a board occluded for one sample, two brands on screen together, a lower-third and
a corner graphic shown with a board of the same brand.
"""

from __future__ import annotations

import json

import pytest

from mpr.synth import write_brands_file
from mpr.synth_exposures import Placement, Scenario, Shot, _board, render, score
from tests.conftest import run_mpr

pytestmark = pytest.mark.slow


def scenario() -> Scenario:
    shots = [Shot(8, "wide", pan=-30, seed=21), Shot(3, "closeup", pan=-20, seed=22), Shot(7, "wide", pan=15, seed=23)]
    a, _, c = shots
    return Scenario("e2e", shots, [
        _board("Nordlys", 0, a, 330, 0, 8, text="NORDLYS", text_h=44, bg=(120, 45, 20), gaps=[(3.5, 4.5)]),
        _board("Kestrel Air", 0, a, 880, 0, 8, fg=(15, 15, 15), bg=(0, 205, 250)),
        Placement("Orbit Mobile", "overlay", 2.5, 5.5, (120, 604), text_h=34, bg=(70, 25, 30)),
        _board("Nordlys", 11, c, 300, 11, 18, text="NORDLYS", text_h=44, bg=(120, 45, 20)),
        Placement("Nordlys", "overlay", 12.5, 15.5, (930, 44), text_h=32, bg=(120, 45, 20), text="NORDLYS"),
    ])


def test_exposures_of_a_synthetic_clip_match_its_truth(tmp_path):
    truth = render(tmp_path / "clip.mp4", scenario())
    write_brands_file(tmp_path / "brands.yaml", ["Nordlys", "Kestrel Air", "Orbit Mobile", "Vanta Bank"])
    done = run_mpr("detect", tmp_path / "clip.mp4", "--brands", tmp_path / "brands.yaml", "--profile", "fast",
                   "--out", tmp_path / "out", "--no-video")
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    scores = score(report, truth)
    assert {b: (v["truth_count"], v["measured_count"]) for b, v in scores["brands"].items()} == {
        "Nordlys": (3, 3), "Kestrel Air": (1, 1), "Orbit Mobile": (1, 1)}
    assert scores["counts_exact"] and not scores["missed"] and not scores["spurious"], scores
    assert scores["max_span_error"] <= 0.5, scores  # brand seconds: union of exposures, gaps within tolerance
    assert scores["max_share_rel_error"] <= 0.10, scores
    nordlys = next(b for b in report["brands"] if b["brand"] == "Nordlys")
    assert sorted((e["start"], e["placement"]) for e in nordlys["exposures"]) == [
        (0.0, "perimeter_board"), (11.0, "perimeter_board"), (13.0, "overlay")]
    assert all(0 < e["quality"] <= 1 and e["media_value"] > 0 for e in nordlys["exposures"])
