"""compile_report's segment/exposure rules and the run plan's cache keys."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from mpr.plan import prepare_run
from mpr.profiles import parse_set
from mpr.records import Detection, DetectionSet, Frame
from mpr.source import SourceInfo
from tasks.compile_report import CompileReportConfig, compile_report
from tasks.stage import StageContext


def frame(t, **kw):
    return Frame(index=int(t), t=t, key=f"f{t}.jpg", width=1280, height=720, **kw)


def hit(t, brand="Nordlys", confidence=0.9):
    return Detection(t=t, brand=brand, confidence=confidence, box=(0, 0, 10, 10))


def compile_(frames, detections, duration=10.0, readable=None, **config):
    ctx = StageContext(source=SourceInfo(uri="clip.mp4", kind="video", fingerprint="x", local_path="clip.mp4",
                                         duration_s=duration), store_root="/tmp", key="k")
    sets = [DetectionSet(chunk=0, frames=frames, detections=detections, interval_s=1.0, readable_until_s=readable)]
    return compile_report(sets, CompileReportConfig(**config), ctx)


def test_hits_merge_into_closed_segments_within_the_gap_tolerance():
    frames = [frame(float(t)) for t in range(10)]
    body = compile_(frames, [hit(0.0), hit(1.0), hit(2.0), hit(6.0), hit(6.0), hit(9.0)], max_gap_s=2.0)
    (brand,) = body.brands
    assert [(s.start, s.end) for s in brand.segments] == [(0.0, 2.0), (6.0, 6.0), (9.0, 9.0)]
    assert brand.exposure_s == 3.0 + 1.0 + 1.0  # each sample stands for one interval
    assert brand.detections == 6 and brand.segments[1].detections == 2


def test_exposure_is_clipped_to_the_duration():
    body = compile_([frame(0.0), frame(6.0)], [hit(6.0)], duration=6.75)
    assert body.brands[0].exposure_s == 0.75


def test_dropped_duplicates_count_as_showing_what_they_repeat():
    frames = [frame(0.0), frame(1.0, dropped="duplicate", same_as=0.0),
              frame(2.0, dropped="duplicate", same_as=1.0), frame(3.0, dropped="blank")]
    body = compile_(frames, [hit(0.0)])
    assert [(s.start, s.end) for s in body.brands[0].segments] == [(0.0, 2.0)]
    assert body.frames_analyzed == 4 and body.frames_kept == 1


def test_truncated_source_is_reported_and_bounds_exposure():
    body = compile_([frame(0.0), frame(1.0)], [hit(1.0)], duration=10.0, readable=1.0)
    assert body.truncated and body.readable_until_s == 1.0
    assert body.brands[0].exposure_s == 1.0


def test_min_confidence_filters_detections():
    body = compile_([frame(0.0)], [hit(0.0, confidence=0.3)], min_confidence=0.5)
    assert body.brands == []


@pytest.fixture
def still(tmp_path) -> Path:
    path = tmp_path / "still.png"
    cv2.imwrite(str(path), np.full((60, 80, 3), 128, np.uint8))
    return path


def test_changing_one_stage_config_changes_only_its_key_and_downstream(data_dir, still):
    brands = [{"name": "Nordlys"}]
    base = prepare_run(str(still), brands)
    again = prepare_run(str(still), brands)
    changed = prepare_run(str(still), brands, overrides=parse_set(["match_brands.min_score=70"]))
    assert base.keys == again.keys
    for stage in ["extract_frames", "filter_scenes", "run_ocr"]:
        assert changed.keys[(stage, 0)] == base.keys[(stage, 0)]
    assert changed.keys[("match_brands", 0)] != base.keys[("match_brands", 0)]
    assert changed.keys[("compile_report", None)] != base.keys[("compile_report", None)]
    assert all(key.startswith(stage + "-") for (stage, _), key in base.keys.items())


def test_brand_list_is_part_of_the_matching_key_only(data_dir, still):
    one = prepare_run(str(still), [{"name": "Nordlys"}])
    two = prepare_run(str(still), [{"name": "Vanta"}])
    assert one.keys[("run_ocr", 0)] == two.keys[("run_ocr", 0)]
    assert one.keys[("match_brands", 0)] != two.keys[("match_brands", 0)]


def test_source_content_is_part_of_every_key(data_dir, tmp_path, still):
    other = tmp_path / "other.png"
    cv2.imwrite(str(other), np.full((60, 80, 3), 127, np.uint8))
    a, b = prepare_run(str(still), [{"name": "N"}]), prepare_run(str(other), [{"name": "N"}])
    assert a.keys[("extract_frames", 0)] != b.keys[("extract_frames", 0)]


def test_routes_split_resolved_from_unresolved():
    from mpr.records import Candidate

    both = DetectionSet(chunk=0, detections=[hit(1.0)],
                        unresolved=[Candidate(t=1.0, text="ZEBRA", score=0.9, box=(0, 0, 5, 5), crop_key="c.jpg")])
    resolved, unresolved = both.route("resolved"), both.route("unresolved")
    assert (len(resolved.detections), len(resolved.unresolved)) == (1, 0)
    assert (len(unresolved.detections), len(unresolved.unresolved)) == (0, 1)
    with pytest.raises(ValueError):
        both.route("sideways")
