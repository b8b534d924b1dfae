"""`mpr profiles` and `mpr checkpoints` (the detect command is covered end to end elsewhere)."""

from __future__ import annotations

import cv2
import numpy as np
import yaml

from tests.conftest import run_mpr


def test_profiles_list_and_show_resolved():
    listed = run_mpr("profiles")
    assert listed.returncode == 0
    assert [line.split()[0] for line in listed.stdout.splitlines()] == ["fast", "full_frame_ocr", "soccer_broadcast"]
    shown = run_mpr("profiles", "show", "soccer_broadcast", "--set", "match_brands.min_score=70")
    assert shown.returncode == 0, shown.stderr
    profile = yaml.safe_load(shown.stdout)
    assert profile["configs"]["match_brands"]["min_score"] == 70.0
    assert profile["configs"]["filter_scenes"]["duplicate_threshold"] == 2.5  # defaults filled in
    assert "match_brands -> compile_report [resolved]" in profile["pipeline"]["edges"]


def test_checkpoints_of_a_source_never_run(tmp_path, data_dir):
    image = tmp_path / "x.png"
    cv2.imwrite(str(image), np.zeros((8, 8, 3), np.uint8))
    result = run_mpr("checkpoints", image)
    assert result.returncode == 0 and "no checkpoints yet" in result.stdout
