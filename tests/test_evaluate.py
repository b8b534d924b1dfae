"""Per-second presence scoring and truth files (`mpr eval`)."""

from __future__ import annotations

import json

import pytest

from mpr.errors import InputError
from mpr.evaluate import evaluate, load_truth, presence, score
from mpr.records import BrandExposure, Report, Segment
from tests.conftest import run_mpr, write


def report(**segments) -> Report:
    brands = [BrandExposure(brand=b, exposure_s=0, detections=1,
                            segments=[Segment(start=s, end=e, confidence=1) for s, e in spans])
              for b, spans in segments.items()]
    return Report(source="/x/clip.mp4", profile="p", duration_s=10, frames_analyzed=10, frames_kept=10,
                  brands=brands)


def test_presence_covers_integer_seconds_inside_segments():
    assert presence(report(A=[(0.0, 2.0), (5.5, 6.2)], B=[(9.0, 12.0)]), seconds=10) == {
        "A": {0, 1, 2, 6}, "B": {9}}


def test_micro_and_per_brand_scores():
    result = score({"A": [0, 1, 2, 3], "B": [5]}, {"A": {1, 2, 3, 4}, "C": {7}}, ["A", "B"])
    assert (result["tp"], result["fp"], result["fn"]) == (3, 1, 2)  # C is not in the brand list
    assert (result["precision"], result["recall"]) == (0.75, 0.6)
    assert result["per_brand"]["B"] == {"precision": 1.0, "recall": 0.0, "f1": 0.0, "tp": 0, "fp": 0, "fn": 1}


def test_truth_formats(tmp_path):
    single = write(tmp_path / "t.json", json.dumps(
        {"source": "clip.mp4", "duration_s": 6.75, "brands": ["A"], "presence": {"A": [0, 6]}}))
    truth = load_truth(single, "clip.mp4")
    assert (truth.seconds, truth.presence) == (7, {"A": {0, 6}})
    multi = write(tmp_path / "m.json", json.dumps(
        {"clips": {"clip.mp4": {"seconds": 3, "brands": ["A"], "presence": {"A": [1]}}}}))
    assert evaluate(report(A=[(1.0, 1.0)]), load_truth(multi, "clip.mp4"))["f1"] == 1.0


@pytest.mark.parametrize("content, expected", [
    ('{"clips": {"other.mp4": {}}}', "no clip named clip.mp4 (has: other.mp4)"),
    ('{"source": "other.mp4", "duration_s": 1, "brands": [], "presence": {}}', "labels other.mp4"),
    ('{"brands": ["A"]}', "expected brands, presence and seconds or duration_s"),
    ("{not json", "not readable JSON"),
])
def test_bad_truth_files(tmp_path, content, expected):
    with pytest.raises(InputError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        load_truth(write(tmp_path / "t.json", content), "clip.mp4")


def test_eval_command_bad_report_is_one_line(tmp_path):
    result = run_mpr("eval", write(tmp_path / "r.json", '{"source": 1}'), "--truth", tmp_path / "t.json")
    assert result.returncode == 2 and result.stderr.startswith("mpr: error: report ")
    assert len(result.stderr.strip().splitlines()) == 1


def test_format_scores_has_a_row_per_brand_and_a_total():
    from mpr.evaluate import format_scores, prf

    table = format_scores(score({"A": [0, 1]}, {"A": {1}}, ["A", "B"])).splitlines()
    assert [line.split()[0] for line in table] == ["brand", "A", "B", "all"]
    assert table[-1].split()[-6:] == ["1.00", "0.50", "0.67", "1", "0", "1"]
    assert format_scores(prf(tp=3, fp=1, fn=0)).splitlines()[-1].split()[-3:] == ["3", "1", "0"]
