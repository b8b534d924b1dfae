"""Profiles are fully validated before any work, with one line naming profile, stage and key."""

from __future__ import annotations

import pytest

from mpr.errors import InputError
from mpr.profiles import list_profiles, load_profile, parse_set

PIPELINE = """
pipeline:
  stages: [extract_frames, filter_scenes, run_ocr, match_brands, compile_report]
  edges:
    - extract_frames -> filter_scenes
    - filter_scenes -> run_ocr
    - run_ocr -> match_brands
    - match_brands -> compile_report [resolved]
"""


def profile_file(tmp_path, text: str, name: str = "p") -> str:
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    return str(path)


def error_of(*args, **kwargs) -> str:
    with pytest.raises(InputError) as info:
        load_profile(*args, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_shipped_profiles_load_and_order_topologically():
    assert {"soccer_broadcast", "fast", "full_frame_ocr"} <= set(list_profiles())
    profile = load_profile("soccer_broadcast")
    assert profile.stages == ["extract_frames", "filter_scenes", "field_segmentation", "detect_edges",
                              "detect_objects", "preprocess", "run_ocr", "match_brands", "escalate_vlm",
                              "escalate_cloud", "compile_report"]
    assert sorted(str(e) for e in profile.upstream("detect_objects")) == [
        "detect_edges -> detect_objects", "filter_scenes -> detect_objects"]
    assert load_profile("full_frame_ocr").stages == ["extract_frames", "filter_scenes", "run_ocr", "match_brands",
                                                     "compile_report"]
    fast = load_profile("fast")
    assert fast.stages == profile.stages and fast.configs["run_ocr"].full_frame == "no_band"
    assert profile.configs["extract_frames"].fps == 1.0
    assert [str(e) for e in profile.upstream("compile_report")] == [  # upstream-most first
        "match_brands -> compile_report [resolved]", "escalate_vlm -> compile_report [resolved]",
        "escalate_cloud -> compile_report [resolved]"]


def test_edges_not_listing_order_decide_the_order(tmp_path):
    text = """
pipeline:
  stages: [compile_report, match_brands, run_ocr, extract_frames]
  edges:
    - {from: run_ocr, to: match_brands}
    - extract_frames -> run_ocr
    - match_brands -> compile_report
"""
    assert load_profile(profile_file(tmp_path, text)).stages == [
        "extract_frames", "run_ocr", "match_brands", "compile_report"]


def test_extends_merges_configs_per_key(tmp_path):
    profile_file(tmp_path, f"name: base\n{PIPELINE}\nconfigs:\n  match_brands: {{min_score: 70}}\n"
                           "  extract_frames: {fps: 2}\n", "base")
    child = profile_file(tmp_path, "name: child\nextends: base.yaml\n"
                                   "configs:\n  extract_frames: {chunk_s: 30}\n", "child")
    profile = load_profile(child)
    assert profile.name == "child"
    assert profile.configs["extract_frames"].fps == 2 and profile.configs["extract_frames"].chunk_s == 30
    assert profile.configs["match_brands"].min_score == 70


def test_overrides_apply_and_are_validated():
    profile = load_profile("soccer_broadcast", parse_set(["match_brands.min_score=65", "extract_frames.fps=0.5"]))
    assert profile.configs["match_brands"].min_score == 65
    assert profile.configs["extract_frames"].fps == 0.5
    assert error_of("soccer_broadcast", {"match_brands": {"min_score": "high"}}) == (
        "profile soccer_broadcast: stage match_brands: key min_score: "
        "Input should be a valid number, unable to parse string as a number (got 'high')")


@pytest.mark.parametrize("text, expected", [
    (PIPELINE.replace("filter_scenes, run_ocr", "filter_scenes, detect_fish, run_ocr"),
     "stage detect_fish: unknown stage"),
    (PIPELINE + "    - match_brands -> preprocess\n", "edge match_brands -> preprocess: stage preprocess is not in"),
    (PIPELINE + "    - run_ocr -> filter_scenes\n", "pipeline has a cycle through filter_scenes -> run_ocr -> match_brands"),
    (PIPELINE + "configs:\n  run_ocr: {colour: red}\n", "stage run_ocr: key colour: unknown key"),
    (PIPELINE + "configs:\n  extract_frames: {fps: fast}\n", "stage extract_frames: key fps: Input should be a valid number"),
    (PIPELINE + "configs:\n  extract_frames: {fps: -1}\n", "stage extract_frames: key fps: Input should be greater than 0"),
    (PIPELINE + "configs:\n  escalate_fax: {x: 1}\n", "stage escalate_fax: unknown stage in configs"),
    (PIPELINE.replace("[resolved]", "[maybe]"), "stage match_brands has no route 'maybe'"),
    (PIPELINE.replace("filter_scenes -> run_ocr", "filter_scenes => run_ocr"),
     "edge 'filter_scenes => run_ocr': expected 'a -> b'"),
    (PIPELINE.replace("    - run_ocr -> match_brands\n", ""), "stage match_brands: needs an input edge"),
    (PIPELINE.replace("    - match_brands -> compile_report [resolved]\n", "    - run_ocr -> compile_report\n"),
     "edge run_ocr -> compile_report: compile_report takes DetectionSet, run_ocr gives TextSet"),
    ("pipeline: {stages: []}\n", "pipeline.stages must be a non-empty list"),
    ("name: x\nsurprise: 1\n" + PIPELINE, "unknown top-level key 'surprise'"),
    ("pipeline: [\n", "invalid YAML"),
])
def test_profile_errors_name_profile_stage_and_key(tmp_path, text, expected):
    message = error_of(profile_file(tmp_path, text))
    assert message.startswith("profile ")
    assert expected in message


@pytest.mark.parametrize("overrides, expected", [
    ({"match_brands": {"min_scor": 1}}, "stage match_brands: key min_scor: unknown key"),
    ({"escalate_tarot": {"x": 1}}, "stage escalate_tarot: unknown stage"),
    ({"match_brands": {"min_score": 101}}, "key min_score: Input should be less than or equal to 100"),
    ({"match_brands": 5}, "stage match_brands: overrides must be a mapping"),
])
def test_bad_overrides(overrides, expected):
    assert expected in error_of("soccer_broadcast", overrides)


@pytest.mark.parametrize("item", ["min_score=3", "match_brands=3", ".x=1", "match_brands.min_score"])
def test_bad_set_syntax(item):
    with pytest.raises(InputError, match="expected STAGE.KEY=VALUE"):
        parse_set([item])


def test_unknown_profile_lists_known_ones():
    assert "not found (known: " in error_of("no_such_profile")


def test_extends_by_name_and_loops(tmp_path):
    by_name = profile_file(tmp_path, "name: mine\nextends: soccer_broadcast\nconfigs:\n  match_brands: {min_score: 75}\n")
    profile = load_profile(by_name)
    assert profile.stages == load_profile("soccer_broadcast").stages
    assert profile.configs["match_brands"].min_score == 75
    profile_file(tmp_path, "extends: b.yaml\n", "a")
    profile_file(tmp_path, "extends: a.yaml\n", "b")
    assert "'extends' loops back to itself" in error_of(str(tmp_path / "a.yaml"))
