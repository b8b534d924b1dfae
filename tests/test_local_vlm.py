"""escalate_vlm's `transformers` backend with a real model: a tiny LLaVA built and trained here
(tests/tiny_vlm.py) and loaded from its folder as any downloaded VLM would be, on the CPU."""

from __future__ import annotations

import json
import shutil

import cv2
import numpy as np
import pytest

pytest.importorskip("torch", reason="the vlm extra is not installed (pip install 'mpr[vlm]')")
pytest.importorskip("transformers", reason="the vlm extra is not installed (pip install 'mpr[vlm]')")

from mpr import registry  # noqa: E402
from mpr.escalation.local_vlm import TransformersProvider  # noqa: E402
from mpr.escalation.providers import Query  # noqa: E402
from tests import tiny_vlm  # noqa: E402
from tests.test_escalation import PROFILE, states  # noqa: E402


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    return tiny_vlm.build(tmp_path_factory.mktemp("vlm") / "tiny-llava", train_steps=200)


def test_the_model_answers_from_the_image_with_usage_counted(trained):
    provider = TransformersProvider(str(trained), device="cpu", max_new_tokens=32)
    assert provider.model.startswith("tiny-llava@")  # the fingerprint tells weights apart in caches and reports
    for seed in range(100, 110):  # crops it never saw; the OCR hint is the same for both kinds
        light = seed % 2 == 0
        answers, usage = provider.ask([Query("0", tiny_vlm.crop_jpeg(light, seed), "VALKYRIE")], tiny_vlm.BRANDS)
        assert [a.brand for a in answers] == [tiny_vlm.LIGHT_BRAND if light else tiny_vlm.DARK_BRAND]
        assert (usage.calls, usage.malformed, usage.failed, usage.cost_usd) == (1, 0, 0, 0.0)
        assert usage.input_tokens > 100 and usage.output_tokens == 4  # prompt with image tokens; 3 pieces + end


def test_a_malformed_reply_is_asked_again_once_then_left_unresolved(tmp_path):
    untrained = tiny_vlm.build(tmp_path / "untrained")  # random weights: never valid JSON
    provider = TransformersProvider(str(untrained), max_new_tokens=24)
    answers, usage = provider.ask([Query("0", tiny_vlm.crop_jpeg(True, 1), "")], tiny_vlm.BRANDS)
    assert answers == [] and (usage.calls, usage.malformed, usage.failed) == (2, 2, 1)


def test_in_a_flow_it_resolves_text_is_cached_by_weights_and_learns(trained, tmp_path, data_dir):
    """OCR reads "VALKYRIE", no brand's name; the local VLM, shown the light crop, says Nordlys."""
    from flows.detect import detect_brands

    model = tmp_path / "model"
    shutil.copytree(trained, model)
    image = np.full((360, 640, 3), 255, np.uint8)
    cv2.putText(image, "VALKYRIE", (60, 200), cv2.FONT_HERSHEY_DUPLEX, 2.2, (20, 20, 20), 4)
    cv2.imwrite(str(tmp_path / "frame.jpg"), image)
    (tmp_path / "profile.yaml").write_text(PROFILE)
    brands = [{"name": b} for b in tiny_vlm.BRANDS]
    vlm = {"backend": "transformers", "model_path": str(model), "device": "cpu", "learn_aliases": False}

    def run(**extra):
        return detect_brands(str(tmp_path / "frame.jpg"), brands, str(tmp_path / "profile.yaml"),
                             {"escalate_vlm": {**vlm, **extra}}, str(tmp_path / "out"))

    first = run()
    assert [b.brand for b in first.brands] == ["Nordlys"] and first.brands[0].segments[0].source == "escalate_vlm"
    (found,) = first.detections
    assert found.text.upper() == "VALKYRIE" and found.resolver.startswith("transformers:model@")
    usage = first.escalation[found.resolver]
    assert (usage["calls"], usage["asked"], usage["cost_usd"]) == (1, 1, 0.0) and usage["input_tokens"] > 0
    assert first.counts["vlm_resolved"] == 1 and first.unresolved == 0
    assert found.resolver in (tmp_path / "out" / "report.json").read_text()

    assert states(run())["escalate_vlm"] == "cached"
    shutil.rmtree(model)
    tiny_vlm.build(model, train_steps=200, seed=1)  # retrained weights at the same path: asked again
    retrained = run()
    assert states(retrained)["escalate_vlm"] == "completed"
    assert retrained.detections[0].resolver != found.resolver and retrained.brands[0].brand == "Nordlys"

    run(learn_aliases=True)
    (alias,) = registry.load_registry().aliases  # the next run reads "VALKYRIE" as Nordlys at match_brands
    assert (alias.brand, alias.source) == ("Nordlys", "local_vlm")
    assert json.loads((tmp_path / "out" / "report.json").read_text())["brands"][0]["brand"] == "Nordlys"


def test_model_folder_errors_are_one_line(data_dir, tmp_path):
    from tests.conftest import run_mpr

    unset = run_mpr("detect", "samples/demo.mp4", "--brands", "samples/brands.yaml",
                    "--set", "escalate_vlm.backend=transformers")
    assert unset.returncode == 2 and unset.stderr.strip() == (
        "mpr: error: profile soccer_broadcast: stage escalate_vlm: backend transformers needs model_path "
        "(a local model folder)")
    (tmp_path / "empty").mkdir()
    image = np.full((360, 640, 3), 255, np.uint8)  # text no brand is called: escalate_vlm has something to ask
    cv2.putText(image, "VALKYRIE", (60, 200), cv2.FONT_HERSHEY_DUPLEX, 2.2, (20, 20, 20), 4)
    cv2.imwrite(str(tmp_path / "frame.jpg"), image)
    (tmp_path / "profile.yaml").write_text(PROFILE)
    for folder, reason in (("empty", "cannot load a transformers VLM from"), ("missing", "model folder not found")):
        run = run_mpr("detect", tmp_path / "frame.jpg", "--brands", "samples/brands.yaml", "--profile",
                      tmp_path / "profile.yaml", "--set", "escalate_vlm.backend=transformers",
                      "--set", f"escalate_vlm.model_path={tmp_path / folder}", "--out", tmp_path / "out")
        last = run.stderr.strip().splitlines()[-1]
        assert run.returncode == 1 and "Traceback" not in run.stderr, run.stderr
        assert last.startswith("mpr: error: stage escalate_vlm failed: escalate_vlm: ") and reason in last, last
        assert not (tmp_path / "out" / "report.json").exists()
