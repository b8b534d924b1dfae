"""Escalation: grouping, asking (budget, cache), the brand registry, and the stages in a real flow.

The cloud is a local HTTP server speaking OpenAI's chat-completions protocol, answering
every crop id it is shown with one brand, so the real SDK and the real pipeline run.
"""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import cv2
import numpy as np
import pytest

from mpr import registry
from mpr.brands import load_brands
from mpr.escalation.asking import Budget, ResponseCache, ask_all
from mpr.escalation.candidates import dhash, group_candidates
from mpr.escalation.providers import Query, make_provider
from mpr.records import Candidate, Detection

KEY = "sk-test-TOPSECRET-42"


class BrandServer:
    """OpenAI-compatible fake: answers `brand` for every crop id in the prompt; counts requests."""

    def __init__(self, brand: str | None, confidence: float = 0.9):
        self.brand, self.confidence, self.requests = brand, confidence, []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                server.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
                text = " ".join(p.get("text", "") for m in body["messages"] for p in
                                (m["content"] if isinstance(m["content"], list) else [{"text": m["content"]}]))
                ids = re.findall(r'Crop id: "([^"]+)"', text)
                reply = {"answers": [{"id": i, "brand": server.brand, "confidence": server.confidence} for i in ids]}
                data = json.dumps({
                    "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": body["model"],
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": json.dumps(reply)}}],
                    "usage": {"prompt_tokens": 1000, "completion_tokens": 40, "total_tokens": 1040}}).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, args=(0.01,), daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def cloud():
    server = BrandServer("Nordlys")
    yield server
    server.close()


def jpeg(seed: int) -> bytes:
    image = np.random.default_rng(seed).integers(0, 255, (20, 40, 3), dtype=np.uint8)
    return cv2.imencode(".jpg", image)[1].tobytes()


# --- grouping ---------------------------------------------------------------------


def cand(t, text, box, image, kind="text") -> Candidate:
    return Candidate(t=t, text=text, score=0.9, box=box, crop_key=f"k{t}", kind=kind, hash=dhash(image))


def test_near_identical_candidates_are_grouped_and_others_not():
    board = np.zeros((30, 90), np.uint8)
    cv2.putText(board, "KVIKK", (4, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.8, 255, 2)
    other = np.zeros((30, 90), np.uint8)
    cv2.putText(other, "XY", (4, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.8, 255, 2)
    cands = [cand(0, "KVIKK", (10, 10, 100, 40), board),
             cand(1, "kvikk", (12, 11, 101, 41), board + 3),  # next frame, same board
             cand(2, "KVIKK", (10, 10, 100, 40), other),  # same text, different pixels
             cand(3, "BRUS", (10, 10, 100, 40), board)]  # different text
    groups = group_candidates(cands)
    assert sorted(map(sorted, groups)) == [[0, 1], [2], [3]]


# --- asking: budget and cache -----------------------------------------------------


def test_budget_stops_asking_and_cache_never_rebills(cloud, tmp_path):
    provider = make_provider("openai_compatible", "local-vlm", None, base_url=cloud.url, timeout_s=5)
    queries = [Query(str(i), jpeg(i), f"TEXT{i}") for i in range(6)]
    cache = ResponseCache(provider, ["Nordlys"], tmp_path / "cache")
    capped = ask_all(provider, queries, ["Nordlys"], batch_size=2, concurrency=1, budget=Budget(1, 10.0),
                     cache=cache)
    assert len(cloud.requests) == 1 and capped.usage.calls == 1
    assert len(capped.answers) == 2 and capped.over_budget == 4
    assert any("budget reached" in n for n in capped.notes)
    full = ask_all(provider, queries, ["Nordlys"], batch_size=2, concurrency=2, budget=Budget(100, 10.0),
                   cache=cache)
    assert len(cloud.requests) == 3  # the two cached answers were not asked again
    assert full.cached == 2 and len(full.answers) == 6
    assert {a.brand for a in full.answers.values()} == {"Nordlys"}
    again = ask_all(provider, queries, ["Nordlys"], batch_size=2, concurrency=2, budget=Budget(100, 10.0),
                    cache=cache)
    assert len(cloud.requests) == 3 and again.cached == 6 and again.usage.calls == 0


# --- the brand registry -------------------------------------------------------------


def test_registry_learns_reviews_and_feeds_matching(db_url):
    found = [Detection(t=1, brand="Coop", confidence=0.9, box=(0, 0, 1, 1), text="C0OPX", source="escalate_cloud",
                       resolver="openai:gpt-4o-mini"),
             Detection(t=2, brand="Coop", confidence=0.3, box=(0, 0, 1, 1), text="LOWCONF", source="escalate_cloud"),
             Detection(t=3, brand="Coop", confidence=0.9, box=(0, 0, 1, 1), text="", source="escalate_vlm"),
             Detection(t=4, brand="Coop", confidence=0.9, box=(0, 0, 1, 1), text="COOP", source="match_brands"),
             Detection(t=5, brand="Coop", confidence=0.9, box=(0, 0, 1, 1), text="C00P", source="escalate_vlm",
                       resolver="continuity")]  # the text of the read it continues: matched already
    assert registry.learn(found, {"run_id": "r1"}, min_confidence=0.6) == 1
    assert registry.learn(found, {"run_id": "r2"}, min_confidence=0.6) == 0  # seen again, not new
    (alias,) = registry.load_registry().aliases
    assert (alias.text, alias.brand, alias.source, alias.status, alias.seen) == ("C0OPX", "Coop", "cloud_llm",
                                                                                 "learned", 2)
    assert alias.provenance["run_id"] == "r1" and alias.provenance["resolver"] == "openai:gpt-4o-mini"
    brands = load_brands([{"name": "Coop"}, {"name": "Kiwi"}])
    assert registry.apply_registry(brands, registry.load_registry()).brands[0].aliases == ["C0OPX"]
    registry.review("c0opx", "rejected")  # same key: case and 0/O folded
    assert registry.apply_registry(brands, registry.load_registry()).brands[0].aliases == []
    registry.add_manual("KVIKK", "Kiwi")
    registry.add_manual("KVIKK", "Coop")  # one text, two brands: ambiguous, used for neither
    applied = registry.apply_registry(brands, registry.load_registry())
    assert [b.aliases for b in applied.brands] == [[], []]
    assert registry.remove("KVIKK", "Coop") == 1
    assert registry.apply_registry(brands, registry.load_registry()).brands[1].aliases == ["KVIKK"]


# --- the stages in a real flow --------------------------------------------------------

PROFILE = """
name: escalation_test
pipeline:
  stages: [extract_frames, filter_scenes, run_ocr, match_brands, escalate_vlm, escalate_cloud, compile_report]
  edges:
    - extract_frames -> filter_scenes
    - filter_scenes -> run_ocr
    - run_ocr -> match_brands
    - match_brands -> compile_report [resolved]
    - match_brands -> escalate_vlm [unresolved]
    - escalate_vlm -> compile_report [resolved]
    - escalate_vlm -> escalate_cloud [unresolved]
    - escalate_cloud -> compile_report [resolved]
configs:
  run_ocr: {runtime: onnxruntime}
  escalate_cloud: {provider: openai, model: gpt-4o-mini, max_retries: 0}
"""


@pytest.fixture
def scene(tmp_path, data_dir):
    """A still image with one word no brand is called, and a brand list."""
    image = np.full((360, 640, 3), 255, np.uint8)
    cv2.putText(image, "VALKYRIE", (60, 200), cv2.FONT_HERSHEY_DUPLEX, 2.2, (20, 20, 20), 4)
    cv2.imwrite(str(tmp_path / "frame.jpg"), image)
    (tmp_path / "profile.yaml").write_text(PROFILE)
    return {"image": str(tmp_path / "frame.jpg"), "profile": str(tmp_path / "profile.yaml"),
            "brands": [{"name": "Nordlys"}, {"name": "Kiwi"}], "out": tmp_path / "out"}


def states(report) -> dict[str, str]:
    return {s.name: s.state for s in report.stages}


def test_cloud_resolution_is_learned_and_the_next_run_resolves_at_match_brands(scene, cloud, monkeypatch):
    from flows.detect import detect_brands

    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    overrides = {"escalate_cloud": {"base_url": cloud.url}}
    first = detect_brands(scene["image"], scene["brands"], scene["profile"], overrides, str(scene["out"]))
    assert len(cloud.requests) == 1
    (brand,) = first.brands
    assert brand.brand == "Nordlys" and brand.segments[0].source == "escalate_cloud"
    assert first.detections[0].text.upper() == "VALKYRIE" and first.detections[0].resolver == "openai:gpt-4o-mini"
    usage = first.escalation["openai:gpt-4o-mini"]
    assert usage["calls"] == 1 and usage["input_tokens"] == 1000 and usage["cost_usd"] > 0
    assert states(first)["escalate_vlm"] == "skipped"  # no logo exemplars in the brand list
    assert first.counts["cloud_resolved"] == 1 and first.unresolved == 0
    written = (scene["out"] / "report.json").read_text()
    assert KEY not in written and json.loads(written)["brands"][0]["segments"][0]["source"] == "escalate_cloud"
    (alias,) = registry.load_registry().aliases
    assert alias.brand == "Nordlys" and alias.source == "cloud_llm"

    second = detect_brands(scene["image"], scene["brands"], scene["profile"], overrides)
    assert len(cloud.requests) == 1  # zero cloud calls: the learned alias resolved it
    assert second.brands[0].segments[0].source == "match_brands"
    assert states(second)["run_ocr"] == "cached" and states(second)["match_brands"] == "completed"


def test_replay_never_rebills_and_skips_are_clean(scene, cloud, monkeypatch, tmp_path):
    from flows.detect import detect_brands

    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    overrides = {"escalate_cloud": {"base_url": cloud.url, "learn_aliases": False}}
    detect_brands(scene["image"], scene["brands"], scene["profile"], overrides)
    replay = detect_brands(scene["image"], scene["brands"], scene["profile"], overrides)
    assert len(cloud.requests) == 1 and states(replay)["escalate_cloud"] == "cached"

    monkeypatch.setenv("SKIP_CLOUD", "1")
    skipped = detect_brands(scene["image"], scene["brands"], scene["profile"], overrides)
    assert states(skipped)["escalate_cloud"] == "skipped" and not skipped.brands and skipped.unresolved == 1
    assert skipped.overrides["escalate_cloud"]["skip"] is True

    monkeypatch.delenv("SKIP_CLOUD")
    monkeypatch.delenv("OPENAI_API_KEY")
    no_key = detect_brands(scene["image"], scene["brands"], scene["profile"], overrides)
    assert states(no_key)["escalate_cloud"] == "skipped"
    assert any("no API key for openai" in w for w in no_key.warnings)
    assert len(cloud.requests) == 1


def test_exemplar_backend_resolves_text_by_its_logo(tmp_path, data_dir):
    """OCR reads the word-mark ("ZAPTO") but it is not the brand's name: the logo exemplar resolves it."""
    from flows.detect import detect_brands

    logo = np.full((70, 260, 3), (40, 40, 200), np.uint8)
    cv2.putText(logo, "ZAPTO", (18, 52), cv2.FONT_HERSHEY_DUPLEX, 1.7, (255, 255, 255), 3)
    cv2.imwrite(str(tmp_path / "logo.png"), logo)
    image = np.full((360, 640, 3), 90, np.uint8)
    image[150:206, 300:508] = cv2.resize(logo, (208, 56), interpolation=cv2.INTER_AREA)
    cv2.imwrite(str(tmp_path / "frame.png"), image)
    (tmp_path / "brands.yaml").write_text("brands:\n  - name: Kazoo\n    logo: logo.png\n  - name: Other\n")
    report = detect_brands(str(tmp_path / "frame.png"), str(tmp_path / "brands.yaml"), write_profile(tmp_path))
    assert [b.brand for b in report.brands] == ["Kazoo"]
    assert report.brands[0].segments[0].source == "escalate_vlm"
    assert report.detections[0].resolver == "exemplar" and report.detections[0].text.upper() == "ZAPTO"
    (alias,) = registry.load_registry().aliases  # learned: the next run reads "ZAPTO" as Kazoo
    assert (alias.brand, alias.source) == ("Kazoo", "local_vlm")


def write_profile(folder: Path) -> str:
    (folder / "profile.yaml").write_text(PROFILE)
    return str(folder / "profile.yaml")


def test_mpr_brands_lists_adds_reviews_and_removes(data_dir):
    from tests.conftest import run_mpr

    env = {"MPR_DATA_DIR": str(data_dir)}
    assert run_mpr("brands", "add", "K1WI", "Kiwi", env=env).returncode == 0
    listing = run_mpr("brands", "list", "--json", env=env)
    (alias,) = json.loads(listing.stdout)
    assert (alias["text"], alias["brand"], alias["source"], alias["status"]) == ("K1WI", "Kiwi", "manual", "approved")
    assert run_mpr("brands", "review", "k1wi", "reject", env=env).returncode == 0
    assert "rejected" in run_mpr("brands", "list", env=env).stdout
    assert run_mpr("brands", "remove", "K1WI", env=env).returncode == 0
    missing = run_mpr("brands", "remove", "K1WI", env=env)
    assert missing.returncode == 2 and missing.stderr.strip() == "mpr: error: alias 'K1WI': not in the registry"


def test_escalation_config_errors_are_one_line(data_dir, tmp_path):
    from tests.conftest import run_mpr

    bad = run_mpr("detect", "samples/demo.mp4", "--brands", "samples/brands.yaml",
                  "--set", "escalate_vlm.backend=openai_compatible")
    assert bad.returncode == 2 and bad.stderr.strip() == (
        "mpr: error: profile soccer_broadcast: stage escalate_vlm: backend openai_compatible needs base_url "
        "and model, or server_block")
    (tmp_path / "brands.yaml").write_text("brands:\n  - name: X\n    logo: missing.png\n")
    missing = run_mpr("detect", "samples/demo.mp4", "--brands", tmp_path / "brands.yaml")
    assert missing.returncode == 2
    assert missing.stderr.strip() == f"mpr: error: brands file {tmp_path / 'brands.yaml'}: X: logo missing.png: no such file"


def test_a_rerun_of_match_brands_reuses_its_text_crops_without_decoding_frames(tmp_path):
    """Unresolved-text crops are keyed by frame, box and padding, not by match_brands' config:
    a rerun with another min_score finds them (the frame itself may be gone) and hashes alike."""
    import cv2
    import numpy as np

    from mpr.brands import load_brands
    from mpr.records import Frame, TextRead, TextSet
    from mpr.source import ChunkSpec, SourceInfo
    from tasks.match_brands import CROP_VERSION, MatchBrandsConfig, match_brands
    from tasks.stage import StageContext

    store_root = str(tmp_path / "store")
    image = np.full((360, 640, 3), 200, np.uint8)
    cv2.putText(image, "ZEBRAWORD", (40, 120), cv2.FONT_HERSHEY_DUPLEX, 1.5, (20, 20, 20), 3)
    ctx = StageContext(source=SourceInfo(uri="x.mp4", kind="video", fingerprint="f", local_path="x.mp4"),
                       store_root=store_root, key="match_brands-1", chunk=ChunkSpec(0, 0, 1, 0, 1),
                       brands=load_brands([{"name": "Nordlys"}]))
    key = ctx.store.put_image("frames/extract_frames-ab/000000.jpg", image)
    texts = TextSet(chunk=0, frames=[Frame(index=0, t=0.0, key=key, width=640, height=360)],
                    reads=[TextRead(t=0.0, frame_key=key, text="ZEBRAWORD", score=0.95, box=(35, 85, 300, 130))])
    [first] = match_brands([texts], MatchBrandsConfig(), ctx).unresolved
    (tmp_path / "store" / key).unlink()
    rerun = StageContext(**{**ctx.__dict__, "key": "match_brands-2"})
    [again] = match_brands([texts], MatchBrandsConfig(min_score=70), rerun).unresolved
    assert (again.crop_key, again.hash) == (first.crop_key, first.hash) and first.hash
    assert first.crop_key.startswith(f"text-crops/{CROP_VERSION}/frames/extract_frames-ab/000000/")


def test_a_logo_found_where_match_brands_already_found_the_brand_is_not_a_second_detection():
    """Spotted names have no fuzzy reading of their read's text: the exemplar search must also
    look at what match_brands detected, by place and brand."""
    from mpr.records import Detection
    from tasks.escalate_vlm import _found_already

    spotted = Detection(t=1.0, brand="Coop", confidence=0.4, box=(100.0, 50.0, 160.0, 70.0), resolver="spotting")
    assert _found_already([spotted], "Coop", (98.0, 48.0, 162.0, 72.0))
    assert not _found_already([spotted], "Altibox", (98.0, 48.0, 162.0, 72.0))
    assert not _found_already([spotted], "Coop", (300.0, 50.0, 360.0, 70.0))
