"""The known-exposure clip generator (mpr.synth_exposures): the video, its truth and score()."""

from __future__ import annotations

import copy
import json

import cv2
import numpy as np
import pytest

from mpr import synth_exposures as se


@pytest.fixture(scope="module")
def short_clip(tmp_path_factory):
    folder = tmp_path_factory.mktemp("synth_exposures")
    out = folder / "short.mp4"
    assert se.main([str(out), "--scenario", "short"]) == 0
    return out, json.loads(out.with_suffix(".truth.json").read_text())


def _frames_at_seconds(path) -> dict[float, np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    fps = cap.get(cv2.CAP_PROP_FPS)
    out, i = {}, 0
    while True:
        ok, img = cap.read()
        if not ok:
            break
        if i % round(fps) == 0:
            out[i / fps] = img
        i += 1
    cap.release()
    return out


def test_video_decodes_to_the_scenario(short_clip):
    out, truth = short_clip
    cap = cv2.VideoCapture(str(out))
    n, fps = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)), cap.get(cv2.CAP_PROP_FPS)
    size = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    cap.release()
    assert (fps, size) == (25, (1280, 720))
    assert n / fps == truth["duration_s"] == 10.0
    assert (out.parent / "brands.yaml").read_text().count("- name:") == 2


def test_truth_is_self_consistent(short_clip):
    _, truth = short_clip
    interval = 1 / truth["sample_fps"]
    assert truth["shots"] == [0.0, 6.0]
    for e in truth["exposures"]:
        assert 0 < e["share_mean"] <= e["share_max"] < 1
        assert e["start"] <= e["end"] and e["duration_s"] == e["end"] - e["start"] + interval
        assert truth["shots"][e["shot"]] <= e["start"]
        assert e["shot"] == len(truth["shots"]) - 1 or e["end"] < truth["shots"][e["shot"] + 1]
        assert len(e["samples"]) + len(e["occluded"]) == round(e["duration_s"] / interval)
    for brand, facts in truth["brands"].items():
        mine = [e for e in truth["exposures"] if e["brand"] == brand]
        assert facts["exposures"] == len(mine)
        assert facts["exposure_s"] == len({t for e in mine for t in e["samples"]}) * interval


def test_occlusion_joins_and_cut_splits(short_clip):
    _, truth = short_clip
    nordlys = [e for e in truth["exposures"] if e["brand"] == "Nordlys"]
    assert [(e["start"], e["end"], e["shot"], e["occluded"]) for e in nordlys] == [
        (0.0, 5.0, 0, [3.0]), (6.0, 9.0, 1, [])]  # occluded 2.5-4.0 s: still one exposure; the cut at 6 s splits
    assert truth["brands"]["Nordlys"] == {"exposure_s": 9.0, "span_s": 10.0, "exposures": 2}
    kestrel = [e for e in truth["exposures"] if e["brand"] == "Kestrel Air"]
    assert [(e["placement"], e["start"], e["end"], e["duration_s"]) for e in kestrel] == [("overlay", 2.0, 4.0, 3.0)]


def test_long_occlusion_splits():
    sc = se.short_scenario()
    sc.placements[0].gaps = [(1.5, 3.5)]  # hides 2 and 3: 2 s of missed samples <= gap_tolerance_s
    nordlys = [e for e in se.compute_truth(sc)["exposures"] if e["brand"] == "Nordlys"]
    assert [(e["start"], e["end"], e["occluded"]) for e in nordlys] == [(0.0, 5.0, [2.0, 3.0]), (6.0, 9.0, [])]
    sc.placements[0].gaps = [(0.5, 3.5)]  # hides 1, 2 and 3: 3 s missed
    nordlys = [e for e in se.compute_truth(sc)["exposures"] if e["brand"] == "Nordlys"]
    assert [(e["start"], e["end"], e["duration_s"]) for e in nordlys] == [(0.0, 0.0, 1.0), (4.0, 5.0, 2.0),
                                                                         (6.0, 9.0, 4.0)]


def test_pixels_follow_the_truth(short_clip):
    """The text colour is in the ink box exactly when the truth says the text is visible."""
    out, truth = short_clip
    sc = se.short_scenario()
    frames = _frames_at_seconds(out)
    board = sc.placements[0]  # white NORDLYS on blue, occluded at 3 s
    for t in (0.0, 1.0, 2.0, 3.0, 4.0, 5.0):
        x0, y0, x1, y1 = se.text_box(board, t)
        white = (frames[t][y0:y1, x0:x1].min(axis=2) > 200).mean()
        assert (white > 0.2) == (t in truth["exposures"][0]["samples"]), (t, white)


def test_default_scenario_truth():
    truth = se.compute_truth(se.default_scenario())
    assert 40 <= truth["duration_s"] <= 50 and len(truth["brands"]) == 5
    rows = {(e["brand"], e["placement"], e["start"], e["end"]) for e in truth["exposures"]}
    assert ("Vanta Bank", "perimeter_board", 25.0, 36.0) in rows and ("Vanta Bank", "overlay", 32.0, 35.0) in rows
    assert ("Helix Tyres", "shirt", 39.0, 45.0) in rows
    assert not [e for e in truth["exposures"] if e["shot"] == 2]  # the close-up
    assert {b: f["exposures"] for b, f in truth["brands"].items()} == {
        "Nordlys": 2, "Kestrel Air": 2, "Orbit Mobile": 2, "Vanta Bank": 2, "Helix Tyres": 1}


def test_overlapping_placements_are_refused():
    sc = se.short_scenario()
    sc.placements.append(se.Placement("Helix Tyres", "overlay", 1.0, 2.0, (130, 610), text_h=30))
    with pytest.raises(ValueError, match="overlap"):
        se.validate(sc)


def test_score_of_the_truth_is_perfect(short_clip):
    _, truth = short_clip
    result = se.score(se.truth_report(truth), truth)
    assert result["max_seconds_error"] == 0 and result["counts_exact"]
    assert result["brands"]["Nordlys"]["span_error"] == -1.0  # the occluded second
    assert result["max_share_rel_error"] == 0 and result["placement_agreement"] == 1
    assert (result["matched"], result["missed"], result["spurious"]) == (3, 0, 0)


def test_score_of_a_perturbed_report(short_clip):
    _, truth = short_clip
    report = copy.deepcopy(se.truth_report(truth))
    nordlys = next(b for b in report["brands"] if b["brand"] == "Nordlys")
    first, second = nordlys["exposures"]
    first["share_mean"] *= 1.5  # box 50% too large
    first["end"] = 2.0  # the occlusion split it: one exposure became two
    share = truth["exposures"][0]["share_mean"]
    nordlys["exposures"].insert(1, {**first, "start": 4.0, "end": 5.0, "share_mean": share})
    nordlys["exposure_count"] = 3
    nordlys["exposure_s"] -= 1.0
    second["placement"] = "overlay"
    kestrel = next(b for b in report["brands"] if b["brand"] == "Kestrel Air")
    report["brands"].remove(kestrel)  # missed entirely
    report["brands"].append({"brand": "Solberg", "exposure_s": 2.0, "exposure_count": 1, "exposures": [
        {"start": 1.0, "end": 2.0, "duration_s": 2.0, "share_mean": 0.01, "placement": "perimeter_board"}]})
    result = se.score(report, truth)
    b = result["brands"]
    assert (b["Nordlys"]["seconds_error"], b["Nordlys"]["count_error"]) == (-1.0, 1)
    assert b["Nordlys"]["max_share_rel_error"] == 0.5 and b["Nordlys"]["placement_agreement"] == 0.5
    assert b["Nordlys"]["spurious"] == [{"start": 4.0, "end": 5.0, "placement": "perimeter_board"}]
    assert (b["Kestrel Air"]["seconds_error"], b["Kestrel Air"]["measured_count"]) == (-3.0, 0)
    assert b["Kestrel Air"]["missed"] == [{"start": 2.0, "end": 4.0, "placement": "overlay"}]
    assert (b["Solberg"]["seconds_error"], b["Solberg"]["truth_count"]) == (2.0, 0)
    assert result["max_seconds_error"] == 3.0 and not result["counts_exact"]
    assert result["max_share_rel_error"] == 0.5 and result["placement_agreement"] == 0.5
    assert (result["matched"], result["missed"], result["spurious"]) == (2, 1, 2)
