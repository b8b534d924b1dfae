"""Visual continuity (mpr.escalation.continuity): a brand OCR read in one sample is found again,
by its picture, in nearby samples of the same shot, and only there."""

import cv2
import numpy as np

from mpr.brands import load_brands
from mpr.escalation.continuity import Sample, propagate, samples
from mpr.records import Detection, Frame, TextRead, TextSet
from mpr.source import ChunkSpec, SourceInfo
from tasks.escalate_vlm import EscalateVlmConfig, escalate_vlm
from tasks.match_brands import MatchBrandsConfig, match_brands
from tasks.stage import StageContext

W, H = 640, 360


def board_frame(word: str, x: int, seed: int = 0, scale: float = 1.0) -> np.ndarray:
    """A gray frame: noisy grass, a dark board row at y 100-140 with `word` on it at x."""
    rng = np.random.default_rng(seed)
    img = rng.normal(110, 6, (H, W)).clip(0, 255).astype(np.uint8)
    img[100:140] = 40
    cv2.putText(img, word, (x, 132), cv2.FONT_HERSHEY_DUPLEX, 1.1 * scale, 235, 2, cv2.LINE_AA)
    return img


def read(t: float, brand: str, x: int, region: str = "board_band") -> Detection:
    (w, h), _ = cv2.getTextSize(brand.upper(), cv2.FONT_HERSHEY_DUPLEX, 1.1, 2)
    return Detection(t=t, brand=brand, confidence=0.9, box=(x, 132 - h, x + w, 134), text=brand.upper(),
                     region=region)


def run(frames: dict[str, np.ndarray], shots: list[int], reads: list[Detection], window: int = 3):
    keys = list(frames)
    timeline = [Sample(k, float(i), shot) for i, (k, shot) in enumerate(zip(keys, shots))]
    return propagate(reads, timeline, frames.__getitem__, window, 0.8)


def test_a_read_word_is_found_again_as_the_camera_pans():
    frames = {f"f{i}": board_frame("KESTREL", 200 + 25 * i, seed=i) for i in range(4)}
    found = run(frames, [0, 0, 0, 0], [read(0.0, "Kestrel", 200)])
    assert [d.t for d in found] == [1.0, 2.0, 3.0]
    for d in found:
        x = 200 + 25 * d.t
        assert abs(d.box[0] - x) <= 3 and d.resolver == "continuity" and d.source == "escalate_vlm"
        assert 0.8 * 0.9 <= d.confidence <= 0.9


def test_a_zoom_between_samples_is_followed():
    frames = {"a": board_frame("KESTREL", 200), "b": board_frame("KESTREL", 210, seed=1, scale=1.12)}
    assert [d.t for d in run(frames, [0, 0], [read(0.0, "Kestrel", 200)])] == [1.0]


def test_a_changed_board_a_cut_or_a_far_sample_is_not_claimed():
    frames = {"a": board_frame("KESTREL", 200), "b": board_frame("NORDLYS", 200, seed=1),
              "c": board_frame("KESTREL", 200, seed=2), "d": board_frame("KESTREL", 200, seed=3)}
    # b shows another word; c lies beyond a cut; d is in the shot of c only
    assert run(frames, [0, 0, 1, 1], [read(0.0, "Kestrel", 200)]) == []
    # the window bounds how far a read reaches, in samples
    far = {f"f{i}": board_frame("KESTREL", 200, seed=i) for i in range(5)}
    assert [d.t for d in run(far, [0] * 5, [read(0.0, "Kestrel", 200)], window=2)] == [1.0, 2.0]


def test_a_place_where_another_brand_was_read_is_not_claimed_and_reads_are_not_repeated():
    frames = {"a": board_frame("KESTREL", 200), "b": board_frame("KESTREL", 200, seed=1),
              "c": board_frame("KESTREL", 200, seed=2)}
    other = read(1.0, "Kestrel", 200).model_copy(update={"brand": "Other"})
    kestrel_at_c = read(2.0, "Kestrel", 200)
    found = run(frames, [0, 0, 0], [read(0.0, "Kestrel", 200), other, kestrel_at_c])
    assert found == []  # b: the place is Other's; c: Kestrel was read there already


def test_overlays_are_found_at_their_place_across_cuts_and_found_ones_seed_nothing():
    def frame(seed, with_bug):
        img = board_frame("", 0, seed=seed)
        if with_bug:
            cv2.rectangle(img, (520, 10), (630, 40), 20, -1)
            cv2.putText(img, "NHK", (530, 35), cv2.FONT_HERSHEY_DUPLEX, 0.8, 250, 2, cv2.LINE_AA)
        return img
    frames = {f"f{i}": frame(i, i != 5) for i in range(12)}
    bug = Detection(t=0.0, brand="NHK", confidence=0.9, box=(528, 16, 585, 37), text="NHK", region="overlay")
    found = run(frames, [0] * 4 + [1] * 8, [bug])
    assert sorted(d.t for d in found) == [float(i) for i in range(1, 12) if i != 5]
    # what continuity found is no template itself: a read-less chain stops at the reads
    chained = [d for d in found if d.t == 3.0]
    assert run(frames, [0] * 12, chained) == []


def test_samples_skip_dropped_frames_and_count_shots():
    frames = [Frame(index=i, t=float(i), key=f"k{i}", width=W, height=H, cut=i in (0, 2),
                    dropped="duplicate" if i == 3 else None) for i in range(5)]
    assert [(s.key, s.shot) for s in samples(frames)] == [("k0", 0), ("k1", 0), ("k2", 1), ("k4", 1)]


def test_escalate_vlm_continues_what_match_brands_read_on_the_unresolved_route(tmp_path):
    """The stage as the flow calls it: match_brands' output routed `unresolved` carries the
    reads' detections (`upstream`), the frames are read from the artifact store, and only
    video sources are continued (a folder's images are unrelated stills)."""
    def context(kind):
        return StageContext(source=SourceInfo(uri="x", kind=kind, fingerprint="f", local_path="x"),
                            store_root=str(tmp_path / "store"), key=f"k-{kind}", chunk=ChunkSpec(0, 0, 3, 0, 3),
                            brands=load_brands([{"name": "Kestrel"}]))
    ctx = context("video")
    frames = [Frame(index=i, t=float(i), key=ctx.store.put_image(f"frames/f{i}.png", cv2.cvtColor(
        board_frame("KESTREL", 200 + 20 * i, seed=i), cv2.COLOR_GRAY2BGR)), width=W, height=H) for i in range(3)]
    box = read(0.0, "Kestrel", 200).box
    texts = TextSet(chunk=0, frames=frames, interval_s=1.0, reads=[TextRead(t=0.0, frame_key=frames[0].key, text="KESTREL",
                                                            score=0.95, box=box),
                                                   TextRead(t=1.0, frame_key=frames[1].key, text="XQZWV",
                                                            score=0.9, box=(10, 200, 90, 230))])
    found = match_brands([texts], MatchBrandsConfig(), ctx)
    assert [d.t for d in found.detections] == [0.0] and found.unresolved  # the unresolved route is taken
    out = escalate_vlm([found.route("unresolved")], EscalateVlmConfig(), ctx)
    assert [(d.t, d.brand, d.resolver) for d in out.detections] == [(1.0, "Kestrel", "continuity"),
                                                                     (2.0, "Kestrel", "continuity")]
    assert out.counts["continued"] == 2 and out.skipped is None
    for f in frames:  # a rerun with the same reads (another config upstream) needs no frame again
        (tmp_path / "store" / f.key).unlink()
    again = escalate_vlm([found.route("unresolved")], EscalateVlmConfig(max_hits_per_region=5), ctx)
    assert again.detections == out.detections
    assert escalate_vlm([found.route("unresolved")], EscalateVlmConfig(continuity_s=0), ctx).skipped
    assert escalate_vlm([found.route("unresolved")], EscalateVlmConfig(), context("images")).skipped
