"""The whole pipeline on a generated broadcast clip: accuracy, caching, CLI and Python API.

These run the real stages (OpenCV, RapidOCR, rapidfuzz) under a real Prefect (ephemeral
server in the CLI subprocess, the test process's own in-process).
"""

from __future__ import annotations

import json

import cv2
import fsspec
import numpy as np
import pytest

from mpr.records import Report
from mpr.synth import ClipSpec, render_clip, write_brands_file
from tests.conftest import run_mpr

pytestmark = pytest.mark.slow
VISION = ["field_segmentation", "detect_edges", "detect_objects", "preprocess"]
UPSTREAM = ["extract_frames", "filter_scenes", *VISION, "run_ocr"]
ESCALATION = {"escalate_vlm": "skipped", "escalate_cloud": "skipped"}  # no logo exemplars, no API key


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clip")
    spec = ClipSpec(seconds=20.0, seed=11)
    truth = render_clip(folder / "match.mp4", spec)
    write_brands_file(folder / "brands.yaml", spec.brands)
    (folder / "truth.json").write_text(json.dumps(truth))
    return {"video": folder / "match.mp4", "brands": folder / "brands.yaml", "truth": truth,
            "truth_file": folder / "truth.json", "folder": folder}


@pytest.fixture(scope="module")
def shared_data(tmp_path_factory):
    """One data dir for the module: later tests replay the checkpoints of earlier ones."""
    with pytest.MonkeyPatch.context() as mp:
        path = tmp_path_factory.mktemp("mpr-data")
        mp.setenv("MPR_DATA_DIR", str(path))
        yield path


def states(report: dict) -> dict[str, str]:
    return {s["name"]: s["state"] for s in report["stages"]}


def test_cli_detects_brands_then_replays_only_what_changed(clip, shared_data, tmp_path):
    first = run_mpr("detect", clip["video"], "--brands", clip["brands"], "--out", tmp_path / "a")
    assert first.returncode == 0, first.stderr
    report = json.loads((tmp_path / "a" / "report.json").read_text())
    assert states(report) == {**{s: "completed" for s in [*UPSTREAM, "match_brands", "compile_report"]},
                              **ESCALATION}
    assert "escalate_cloud skipped: no API key for anthropic" in first.stdout
    scored = run_mpr("eval", tmp_path / "a" / "report.json", "--truth", clip["truth_file"], "--json")
    assert scored.returncode == 0, scored.stderr
    result = json.loads(scored.stdout)
    print("per-second presence on the synthetic clip:", result)
    assert result["f1"] >= 0.95, result
    assert set(result["per_brand"]) == set(clip["truth"]["brands"])
    assert report["frames_analyzed"] == 20 and report["duration_s"] == 20.0
    seconds = {s["name"]: s["seconds"] for s in report["stages"]}
    assert all(seconds[s] > 0 for s in [*UPSTREAM, "match_brands", "compile_report"]), seconds  # each its own
    for name in ("timeline.csv", "brands.csv", "detections.csv"):
        assert (tmp_path / "a" / name).stat().st_size > 0
    assert "[11/11] compile_report[all] completed" in first.stderr  # progress is visible
    assert "Stages" in first.stdout and "exposure s" in first.stdout

    second = run_mpr("detect", clip["video"], "--brands", clip["brands"], "--out", tmp_path / "b",
                     "--set", "match_brands.min_score=70")
    assert second.returncode == 0, second.stderr
    replay = json.loads((tmp_path / "b" / "report.json").read_text())
    assert states(replay) == {**{s: "cached" for s in UPSTREAM}, **ESCALATION,
                              "match_brands": "completed", "compile_report": "completed"}
    table = {line.split("│")[1].strip(): line.split("│")[2].strip()
             for line in second.stdout.splitlines() if line.count("│") > 5}
    assert all(table[s] == "cached" for s in UPSTREAM) and table["match_brands"] == "completed"
    assert replay["overrides"] == {"match_brands": {"min_score": 70}}

    tree = run_mpr("checkpoints", clip["video"])
    assert tree.returncode == 0
    assert tree.stdout.count("match_brands [") == 2 and tree.stdout.count("run_ocr [") == 1
    assert "min_score=70.0" in tree.stdout and "min_score=80.0" in tree.stdout


def test_changing_detect_edges_recomputes_it_and_downstream_only(clip, shared_data, tmp_path):
    result = run_mpr("detect", clip["video"], "--brands", clip["brands"], "--out", tmp_path,
                     "--set", "detect_edges.band_rows=1.5")
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    downstream = ["detect_edges", "detect_objects", "preprocess", "run_ocr", "match_brands", "compile_report"]
    assert states(report) == {"extract_frames": "cached", "filter_scenes": "cached", "field_segmentation": "cached",
                              **{s: "completed" for s in downstream}, **ESCALATION}


def test_debug_overlays_are_written_and_linked(clip, shared_data, tmp_path):
    from flows.detect import detect_brands
    from mpr.reporting import markdown

    frame = clip["folder"] / "frame.png"
    cap = cv2.VideoCapture(str(clip["video"]))
    cap.set(cv2.CAP_PROP_POS_FRAMES, 125)
    cv2.imwrite(str(frame), cap.read()[1])
    report = detect_brands(str(frame), str(clip["brands"]), debug=True)
    stages = {url.rsplit("/", 2)[-2].split("-")[0] for url in report.overlays}
    assert stages == {"field_segmentation", "detect_edges", "detect_objects", "run_ocr"}
    for url in report.overlays:
        with fsspec.open(url, "rb") as f:
            assert cv2.imdecode(np.frombuffer(f.read(), np.uint8), cv2.IMREAD_COLOR) is not None
    assert "Debug overlays (4)" in markdown(report, None)


def test_python_api_returns_a_typed_report_and_reuses_checkpoints(clip, shared_data):
    from flows.detect import detect_brands

    report = detect_brands(str(clip["video"]), str(clip["brands"]))
    assert isinstance(report, Report)
    assert {s.name: s.state for s in report.stages}["run_ocr"] in ("cached", "completed")
    frame = report.to_frame()
    assert list(frame.columns[:3]) == ["brand", "start", "end"] and len(frame) == sum(
        len(b.segments) for b in report.brands)
    again = detect_brands(str(clip["video"]), str(clip["brands"]), overrides={"compile_report": {"max_gap_s": 0}})
    assert {s.name: s.state for s in again.stages} == {
        **{s: "cached" for s in [*UPSTREAM, "match_brands"]}, **ESCALATION, "compile_report": "completed"}
    assert sum(len(b.segments) for b in again.brands) >= sum(len(b.segments) for b in report.brands)


def test_still_image_and_fsspec_folder(clip, shared_data, tmp_path):
    from flows.detect import detect_brands

    cap = cv2.VideoCapture(str(clip["video"]))
    frames = []
    for k in range(0, 20, 4):
        cap.set(cv2.CAP_PROP_POS_FRAMES, k * 25)
        frames.append(cap.read()[1])
    cap.release()
    still = tmp_path / "still.jpg"
    cv2.imwrite(str(still), frames[0])
    report = detect_brands(str(still), str(clip["brands"]))
    assert report.duration_s == 0.0 and report.frames_analyzed == 1
    expected = {b for b, secs in clip["truth"]["presence"].items() if 0 in secs}
    assert expected and {b.brand for b in report.brands} >= expected
    assert all((s.start, s.end) == (0.0, 0.0) for b in report.brands for s in b.segments)

    mem = fsspec.filesystem("memory")
    for i, image in enumerate(frames):
        mem.pipe(f"/shots/{i:02d}.jpg", cv2.imencode(".jpg", image)[1].tobytes())
    folder = detect_brands("memory://shots", [{"name": n} for n in clip["truth"]["brands"]])
    assert folder.frames_analyzed == 5 and folder.brands


def test_truncated_clip_is_analysed_to_its_last_good_frame(clip, shared_data, tmp_path):
    from flows.detect import detect_brands

    short = tmp_path / "short.mp4"
    render_clip(short, ClipSpec(seconds=6.0, seed=5, width=640, height=360))
    data = short.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    report = detect_brands(str(cut), str(clip["brands"]), out=str(tmp_path / "out"),
                           overrides={"extract_frames": {"chunk_s": 2}})
    assert report.truncated and report.readable_until_s is not None and report.readable_until_s < 6
    assert {s.name: s.chunks for s in report.stages} == {
        **{stage: 3 for stage in ["extract_frames", "filter_scenes", *VISION, "run_ocr", "match_brands",
                                  "escalate_vlm"]},
        "escalate_cloud": 1, "compile_report": 1}
    assert report.frames_analyzed == int(report.readable_until_s) + 1
    assert all(s.end <= report.readable_until_s for b in report.brands for s in b.segments)
    assert any("truncated or corrupt" in w for w in report.warnings)
    assert json.loads((tmp_path / "out" / "report.json").read_text())["truncated"] is True
