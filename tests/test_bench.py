"""`mpr bench`: real-time factor, Prefect overhead, replay cost and decode floor in one process."""

from __future__ import annotations

import json
import math

import pytest

from tests.conftest import run_mpr
from tests.media import small_clip
from tests.test_database import PROFILE

pytestmark = pytest.mark.slow
NUMBERS = ("real_time_factor", "prefect_overhead_ratio", "replay_ratio", "peak_rss_mb", "peak_rss_mb_bench", "decode_fps",
           "decode_grab_fps", "video_seconds", "flow_seconds", "direct_seconds", "replay_seconds", "flow_warm_seconds",
           "prefect_overhead_ratio_cold")


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    folder = small_clip(tmp_path_factory.mktemp("clip"))
    (folder / "profile.yaml").write_text(PROFILE)  # OCR only: quick
    return folder


def bench(clip, *extra):
    result = run_mpr("bench", clip / "match.mp4", "--brands", clip / "brands.yaml",
                     "--profile", clip / "profile.yaml", "--json", *extra)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_bench_loops_the_source_and_reports_every_figure(clip, data_dir):
    """One bench run (each costs Prefect's start-up and four flow runs): the 6 s clip looped to 12 s."""
    figures = bench(clip, "--minutes", "0.2")
    for key in NUMBERS:
        assert isinstance(figures[key], (int, float)) and math.isfinite(figures[key]) and figures[key] > 0, key
    assert figures["profile"] == "db_test" and figures["source"].endswith("match_0.2min.mp4")
    assert abs(figures["video_seconds"] - 12.0) <= 1.0
    assert figures["replay_ratio"] < 1  # the rerun takes everything upstream of match_brands from the cache
    assert set(figures["stages"]) == {"extract_frames", "filter_scenes", "run_ocr", "match_brands",
                                      "compile_report"}
    assert sum(s["share"] for s in figures["stages"].values()) == pytest.approx(1.0, abs=0.01)
    assert figures["decode_frames"] >= 11 * 25  # every frame of the looped clip was decoded
    assert figures["peak_rss_mb"] <= figures["peak_rss_mb_bench"]  # the first flow run is part of the bench
    assert not data_dir.exists()  # the bench used its own temporary data dir


@pytest.mark.parametrize("args", [["missing.mp4"], ["{clip}", "--minutes", "0"], ["{clip}", "--minutes", "601"]])
def test_bad_input_is_one_line_and_exit_2(clip, tmp_path, args):
    args = [a.format(clip=clip / "match.mp4") for a in args]
    result = run_mpr("bench", *args, "--brands", clip / "brands.yaml", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().startswith("mpr: error: ") and len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr and not result.stdout
