"""The closer look at near misses (mpr.closer_look) and its use in match_brands."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from mpr.brands import load_brands
from mpr.closer_look import look_closer, look_region, views
from mpr.matching import BrandMatcher
from mpr.ocr import get_engine
from mpr.records import Frame, TextRead, TextSet
from mpr.source import SourceInfo
from mpr.spotting import encode
from mpr.vision.rectify import covered
from tasks.match_brands import MatchBrandsConfig, match_brands
from tasks.stage import StageContext
from tests.test_spotting import scores, word

ENGINE = {"name": "rapidocr", "runtime": "openvino", "threads": 0, "charset": "latin", "streams": 1}


def small_word_frame() -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """A 720p frame with one 10-px word, and the box of its ink."""
    frame = np.full((720, 1280, 3), (60, 120, 60), np.uint8)
    cv2.rectangle(frame, (560, 380), (760, 420), (235, 235, 235), -1)  # a board
    cv2.putText(frame, "KESTREL", (600, 406), cv2.FONT_HERSHEY_DUPLEX, 0.45, (30, 30, 30), 1, cv2.LINE_AA)
    ys, xs = np.nonzero((frame < 100).all(axis=2))
    return frame, (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)


def test_a_small_word_is_read_enlarged_and_placed_in_the_frame_at_any_angle():
    frame, ink = small_word_frame()
    engine = get_engine(ENGINE["name"], **{k: v for k, v in ENGINE.items() if k != "name"})
    part = (ink[0] - 2.0, ink[1] - 3.0, ink[0] + 22.0, ink[3] + 3.0)  # a read of its first letters only
    for angle in (0.0, 20.0, -20.0):
        looks = [look for look in look_closer(frame, part, engine, angle) if look.text == "KESTREL"]
        assert looks, angle
        assert covered(ink, looks[0].box) > 0.9 and covered(looks[0].box, (550, 370, 770, 430)) > 0.9, angle
        if angle == 0.0:
            assert looks[0].quad is not None and len(looks[0].places) == len("KESTREL")


def test_the_region_leaves_room_for_the_rest_of_a_name_and_only_compact_words_are_turned_or_small_lines_enlarged():
    (x1, y1, x2, y2), zoom = look_region((720, 1280), (100.0, 50.0, 120.0, 60.0))
    assert (x1, y1, x2, y2) == (75, 42, 145, 68) and zoom == pytest.approx(4.0)
    assert look_region((720, 1280), (0.0, 0.0, 400.0, 100.0)) == ((0, 0, 650, 180), 1.0)  # clipped, never shrunk
    angles = [0.0, 20.0, -20.0]
    assert views((0, 0, 60, 50), angles) == angles  # a compact word, read as large as it is and turned
    assert views((0, 0, 300, 20), angles) == [0.0]  # a small long line: enlarged 2x, not turned
    assert views((0, 0, 300, 50), angles) == []  # a large long line would read as it did


def near_miss_texts(ctx: StageContext) -> TextSet:
    """A frame holding a small "KESTREL" first read as "KEXTWEJ": the brand spots in that read's
    scores over the spotting budget (three letters each ~3 nats behind) but within the near-miss one."""
    frame, ink = small_word_frame()
    key = ctx.store.put_image("frames/f/000000.jpg", frame)
    unsure = lambda got, wanted: {got: 0.95, wanted: 0.05}  # noqa: E731
    steps = ["-", *word("ke"), unsure("x", "s"), "-", *word("t"), unsure("w", "r"), "-", *word("e"),
             unsure("j", "l"), "-"]
    first = TextRead(t=0.0, frame_key=key, text="KEXTWEJ", score=0.9, box=(ink[0] - 2.0, ink[1] - 3.0, ink[2] + 2.0,
                                                                           ink[3] + 3.0),
                     trace=encode(scores(steps), 0.1))
    return TextSet(chunk=0, frames=[Frame(index=0, t=0.0, key=key, width=1280, height=720)], reads=[first],
                   engine=ENGINE)


def test_match_brands_looks_closer_at_a_near_miss_and_keeps_what_it_read(tmp_path, monkeypatch):
    ctx = StageContext(source=SourceInfo(uri="x.mp4", kind="video", fingerprint="f", local_path="x.mp4"),
                       store_root=str(tmp_path), key="k", brands=load_brands([{"name": "Kestrel"}, {"name": "Coop"}]))
    texts = near_miss_texts(ctx)
    _, ink = small_word_frame()
    assert match_brands([texts], MatchBrandsConfig(region_kinds=[], closer_look=0), ctx).detections == []
    (found,) = match_brands([texts], MatchBrandsConfig(region_kinds=[]), ctx).detections
    assert (found.brand, found.resolver) == ("Kestrel", "closer_look") and covered(ink, found.box) > 0.9
    assert list((tmp_path / "closer-looks").rglob("*.json"))  # what the look read is kept
    assert list((tmp_path / "spots").rglob("*.json"))  # and what spotting found, near misses included

    def no_engine(*args, **kwargs):
        raise AssertionError("a rerun must not read again")

    monkeypatch.setattr("tasks.match_brands.get_engine", no_engine)
    spotted_again = []
    spots = BrandMatcher.spots
    monkeypatch.setattr(BrandMatcher, "spots", lambda self, reads, cost, p: spotted_again.append(cost) or
                        spots(self, reads, cost, p))
    again = match_brands([texts], MatchBrandsConfig(region_kinds=[], min_score=79), ctx).detections
    assert [(d.brand, d.box) for d in again] == [(found.brand, found.box)]
    assert spotted_again == [0.75]  # the look's reads only: the frame's spots and near misses are read back


def test_closer_look_angles_are_bounded():
    with pytest.raises(ValueError, match="closer_angles"):
        MatchBrandsConfig(closer_angles=[0, 120])



def test_the_closer_look_confirms_the_near_missed_brand_by_spotting_it_and_no_other(tmp_path, monkeypatch):
    """What the look reads goes to fuzzy matching and is spotted for the near-missed brand only:
    "KEXTREL" is 86 for fuzzy matching (under closer_min_score 90) but spells KESTREL within the
    spotting budget (its X has S close behind); a look that spells Coop that well finds nothing."""
    from mpr.closer_look import Look

    ctx = StageContext(source=SourceInfo(uri="x.mp4", kind="video", fingerprint="f", local_path="x.mp4"),
                       store_root=str(tmp_path), key="k", brands=load_brands([{"name": "Kestrel"}, {"name": "Coop"}]))
    texts = near_miss_texts(ctx)
    box = texts.reads[0].box
    kestrel = ["-", *word("ke"), {"x": 0.55, "s": 0.45}, "-", *word("trel"), "-"]
    coop = ["-", *word("co"), {"a": 0.55, "o": 0.45}, "-", *word("p"), "-"]
    looks = {"KEXTREL": kestrel, "COAP": coop}
    for text, steps in looks.items():
        look = Look(box, None, text, 0.9, (), encode(scores(steps), 1 / len(steps)))
        monkeypatch.setattr("tasks.match_brands._look", lambda *args, look=look: [look])
        found = match_brands([texts], MatchBrandsConfig(region_kinds=[]), ctx).detections
        assert [(d.brand, d.resolver) for d in found] == ([("Kestrel", "closer_look")] if text == "KEXTREL" else [])


def test_frames_are_matched_at_once_on_the_engines_streams_and_reported_in_frame_order(tmp_path, monkeypatch):
    """With two OCR streams two frames' closer looks run at the same time (a barrier both must
    reach); the detections come back in frame order, the same as one stream gives."""
    import threading

    from mpr.closer_look import Look

    ctx = StageContext(source=SourceInfo(uri="x.mp4", kind="video", fingerprint="f", local_path="x.mp4"),
                       store_root=str(tmp_path), key="k", brands=load_brands([{"name": "Kestrel"}]))
    one = near_miss_texts(ctx)
    image = ctx.store.get_image(one.frames[0].key)
    frames = [one.frames[0].model_copy(update={"index": i, "t": float(i),
                                               "key": ctx.store.put_image(f"frames/f/{i:06d}.jpg", image)})
              for i in range(4)]
    reads = [one.reads[0].model_copy(update={"t": f.t, "frame_key": f.key}) for f in frames]
    kestrel = Look(reads[0].box, None, "KESTREL", 0.9, (), b"")
    barrier = threading.Barrier(2, timeout=10)

    def look(*args):
        barrier.wait()  # a BrokenBarrierError when no other frame is looked at meanwhile
        return [kestrel]

    monkeypatch.setattr("tasks.match_brands._look", look)
    texts = one.model_copy(update={"frames": frames, "reads": reads, "engine": {**ENGINE, "streams": 2}})
    found = match_brands([texts], MatchBrandsConfig(region_kinds=[]), ctx).detections
    assert [(d.t, d.brand, d.resolver) for d in found] == [(float(i), "Kestrel", "closer_look") for i in range(4)]

    monkeypatch.setattr("tasks.match_brands._look", lambda *args: [kestrel])
    alone = match_brands([texts.model_copy(update={"engine": ENGINE})], MatchBrandsConfig(region_kinds=[]), ctx)
    assert [(d.t, d.box) for d in alone.detections] == [(d.t, d.box) for d in found]
