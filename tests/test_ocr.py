"""The OCR engine's detect/recognise split, its two runtimes, and how run_ocr merges lines."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from mpr.ocr import detect_scale, get_engine, line_image, rec_batch, rec_width
from mpr.ocr_models import is_latin, readable
from tasks.run_ocr import Line, _quad_box, distinct, row_gaps


def text_image(words: list[str], size: tuple[int, int] = (360, 640)) -> np.ndarray:
    img = np.full((*size, 3), 235, np.uint8)
    for n, word in enumerate(words):
        cv2.putText(img, word, (40, 80 + 90 * n), cv2.FONT_HERSHEY_DUPLEX, 1.6, (20, 20, 20), 3, cv2.LINE_AA)
    return img


@pytest.mark.parametrize("runtime", ["openvino", "onnxruntime"])
def test_both_runtimes_find_and_read_the_same_lines(runtime):
    engine = get_engine("rapidocr", runtime=runtime)
    image = text_image(["KESTREL", "NORDLYS 2024"])
    quads = engine.detect(image)
    texts = [t for t, score in engine.recognize([line_image(image, q) for q in quads]) if score > 0.8]
    assert texts == ["KESTREL", "NORDLYS 2024"]
    assert all(q.shape == (4, 2) for q in quads)


def test_openvino_models_are_compiled_with_the_thread_count_streams_and_a_uint8_input():
    engine = get_engine("rapidocr", runtime="openvino", threads=2, streams=2)
    for network in (engine._det, engine._rec):
        requests = [network._free.get() for _ in range(2)]  # one infer request per stream
        assert network._free.empty()
        for request in requests:
            network._free.put(request)
        compiled = requests[0].get_compiled_model()
        assert compiled.get_property("INFERENCE_NUM_THREADS") == 2 and compiled.get_property("NUM_STREAMS") == 2
        assert compiled.inputs[0].get_element_type().get_type_name() == "u8"  # normalised in the graph
    assert engine.recognize([line_image(text_image(["KESTREL"]), engine.detect(text_image(["KESTREL"]))[0])])[0][0] \
        == "KESTREL"


@pytest.mark.parametrize("runtime", ["openvino", "onnxruntime"])
def test_latin_charset_reads_latin_lines_as_the_full_one_and_other_scripts_as_little(runtime):
    full = get_engine("rapidocr", runtime=runtime, charset="full")
    latin = get_engine("rapidocr", runtime=runtime, charset="latin")
    words = text_image(["KESTREL", "Nordlys-24"])
    lines = [line_image(words, q) for q in full.detect(words)]
    assert [t for t, _ in latin.recognize(lines)] == [t for t, _ in full.recognize(lines)] == ["KESTREL", "Nordlys-24"]
    assert all(is_latin(c) for text, _ in latin.recognize(lines) for c in text)
    # the output layer keeps the Latin classes only: a few hundred of PP-OCR's 18,710
    assert 300 < len(latin._rec._decode.character) < 1000 < 18000 < len(full._rec._decode.character)


def test_a_line_reads_the_same_whatever_is_read_with_it():
    """Padded to the widest line of its batch, a line read differently (score, spotting trace)
    when a long line joined the call; each is now padded to its own width: only its pixels count."""
    engine = get_engine("rapidocr", runtime="openvino", charset="latin")
    word = text_image(["Pumn"], size=(160, 300))
    line = line_image(word, engine.detect(word)[0])
    faint = cv2.resize(cv2.resize(line, None, fx=0.2, fy=0.2, interpolation=cv2.INTER_AREA), line.shape[1::-1])
    alone = engine.read([faint])[0]
    among = engine.read([np.hstack([line] * 8), faint, line])[1]
    assert (among.text, among.score, among.places, among.trace) == (alone.text, alone.score, alone.places, alone.trace)


def test_is_latin_and_readable():
    assert all(map(is_latin, "AzÄéßøŁő€™-.&'"))
    assert not any(map(is_latin, "日本キリンДж가"))
    assert readable("Müller & Co. 2024", "latin") and not readable("キリン", "latin") and readable("キリン", "full")


def test_detect_maps_quads_back_to_the_image_at_any_scale():
    engine = get_engine("rapidocr", runtime="openvino")
    image = text_image(["KESTREL"])
    full, half = engine.detect(image), engine.detect(image, 2.0)
    assert len(full) == len(half) == 1
    assert np.abs(full[0] - half[0]).max() < 6  # same place in image pixels


def test_recognize_nothing_is_nothing():
    assert get_engine("rapidocr", runtime="openvino").recognize([]) == []


def test_detect_scale_enlarges_small_frames_only_and_caps_the_long_side():
    assert detect_scale((360, 640), 960) == pytest.approx(960 / 360)
    assert detect_scale((1080, 1920), 960) == 1.0
    assert detect_scale((360, 6400), 960, max_long_side=2000) == pytest.approx(2000 / 6400)


def test_lines_two_images_found_are_kept_once_from_the_larger_view():
    px = np.zeros((10, 40, 3), np.uint8)
    frame = Line(px, (100, 100, 200, 120), 1.0, "frame")
    band = Line(px, (102, 99, 199, 121), 2.5, "board_band")
    elsewhere = Line(px, (400, 100, 500, 120), 1.0, "frame")
    assert distinct([frame, band, elsewhere], 0.5) == [band, elsewhere]
    assert len(distinct([frame, band, elsewhere], 1.0)) == 3  # 1: every line is recognised


def quad(x1, y1, x2, y2):
    return np.array([[x1, y1], [x2, y1], [x2, y2], [x1, y2]], np.float32)


def test_row_gaps_are_the_long_empty_stretches_of_each_text_row():
    upper = [quad(100, 10, 160, 20), quad(165, 11, 200, 20), quad(400, 10, 450, 20)]  # 5 px gap: too short
    lower = [quad(0, 30, 580, 50)]  # spans the strip but for the last 20 px (one row height)
    gaps = [_quad_box(q) for q in row_gaps(upper + lower, 600, 60, min_gap=2)]
    # upper row (10 px tall): 0-100, 200-400 and 450-600, each widened by a quarter row height
    assert [(round(x1), round(x2)) for x1, _, x2, _ in gaps] == [(0, 102), (198, 402), (448, 600)]
    assert all(y1 == pytest.approx(8) and y2 == pytest.approx(22) for _, y1, _, y2 in gaps)
    pieces = [_quad_box(q) for q in row_gaps(upper, 600, 60, min_gap=2, window=8)]  # pieces of <= 80 px + overlap
    assert len(pieces) == 2 + 3 + 2 and max(x2 - x1 for x1, _, x2, _ in pieces) <= 80 + 2 * 8
    assert row_gaps([], 600, 60, min_gap=2) == []


def test_a_word_the_detector_left_out_of_a_board_row_is_read_from_its_gap():
    strip = np.full((60, 900, 3), 240, np.uint8)
    for x, word in [(20, "FLATEX"), (330, "ELTEN"), (600, "SONEPAR")]:
        cv2.putText(strip, word, (x, 45), cv2.FONT_HERSHEY_DUPLEX, 1.2, (20, 20, 20), 2, cv2.LINE_AA)
    found = [quad(15, 15, 200, 50), quad(595, 15, 830, 50)]  # as if detection missed ELTEN
    engine = get_engine("rapidocr", runtime="openvino")
    gaps = row_gaps(found, strip.shape[1], strip.shape[0], min_gap=2)
    texts = engine.recognize([line_image(strip, q) for q in gaps])
    assert [t for t, score in texts if score > 0.5] == ["ELTEN"]


def test_recogniser_batches_come_in_few_widths_padded_with_grey():
    assert [rec_width(r) for r in (1.0, 6.6, 7.0, 13.0, 14.0, 26.0, 27.0, 60.0)] == [192, 320, 384, 640, 768, 1280, 1536, 3072]
    wide, narrow = np.zeros((30, 300, 3), np.uint8), np.zeros((30, 60, 3), np.uint8)
    batch = rec_batch([wide, narrow], 512)
    assert batch.shape == (2, 48, 512, 3) and batch.dtype == np.uint8
    assert (batch[0, :, :480] == 0).all() and (batch[0, :, 480:] == 128).all()  # 300 x 48/30 = 480 px of line
    assert (batch[1, :, :96] == 0).all() and (batch[1, :, 96:] == 128).all()


def test_detecting_images_of_one_size_in_batches_finds_what_one_call_each_finds():
    engine = get_engine("rapidocr", runtime="openvino")
    images = [text_image(words, (120, 480)) for words in (["KESTREL"], ["NORDLYS"], []) * 7]  # 21: two batches
    one_each = [engine.detect(image) for image in images]
    batched = engine.detect_same_size(images)
    assert [len(q) for q in batched] == [len(q) for q in one_each] == [1, 1, 0] * 7
    assert all(np.abs(a - b).max() <= 1 for qa, qb in zip(one_each, batched) for a, b in zip(qa, qb))


@pytest.mark.parametrize("runtime", ["openvino", "onnxruntime"])
def test_read_places_each_character_where_it_is_drawn(runtime):
    """A word drawn at a known place in a wide, mostly empty line: the recogniser's place for
    its first and last character lies inside the word's ink, left to right."""
    engine = get_engine("rapidocr", runtime=runtime, charset="latin")
    line = np.full((60, 900, 3), 235, np.uint8)
    cv2.putText(line, "KESTREL", (500, 45), cv2.FONT_HERSHEY_DUPLEX, 1.4, (20, 20, 20), 3, cv2.LINE_AA)
    ink = np.flatnonzero((line < 128).any(axis=(0, 2)))
    (text, score, places, _), = engine.read([line])
    assert text == "KESTREL" and len(places) == 7 and list(places) == sorted(places)
    xs = [p * line.shape[1] for p in places]
    assert ink[0] <= xs[0] < xs[-1] <= ink[-1]
    assert engine.recognize([line]) == [(text, score)]


def faint_word_frames():
    """Frames holding a clear word and a small, faint, blurred one, from invisible to clear, with
    the faint word's box: the detector is sure of the first word, and of the second only from some
    contrast on; just under it, it is unsure (where exactly depends on the CPU's arithmetic)."""
    for blur in (3, 5):
        for contrast in range(26, 62, 2):
            image = np.full((120, 300, 3), 120, np.uint8)
            cv2.putText(image, "KESTREL", (20, 40), cv2.FONT_HERSHEY_DUPLEX, 1.0, (20, 20, 20), 2, cv2.LINE_AA)
            cv2.putText(image, "ORBIT", (40, 90), cv2.FONT_HERSHEY_DUPLEX, 0.35, (120 + contrast,) * 3, 1,
                        cv2.LINE_AA)
            yield cv2.GaussianBlur(image, (blur, blur), 0), (36, 75, 110, 100)


def inside(quad: np.ndarray, box: tuple[int, int, int, int]) -> bool:
    (x1, y1), (x2, y2) = quad.min(0), quad.max(0)
    return x1 >= box[0] and y1 >= box[1] and x2 <= box[2] and y2 <= box[3]


def test_weak_lines_come_from_the_same_inference_as_the_sure_ones():
    engine = get_engine("rapidocr", runtime="openvino", charset="latin")
    weak_seen = 0
    for image, faint in faint_word_frames():
        sure, weak = engine.detect_weak(image, 1.0, 0.3)
        plain = engine.detect(image)
        assert len(sure) == len(plain) and all(np.allclose(a, b) for a, b in zip(sure, plain))  # detect's own
        assert not any(np.allclose(w, s) for w in weak for s in sure)
        weak_seen += any(inside(q, faint) for q in weak)
    assert weak_seen  # the faint word is a weak line in at least one strength


def test_run_ocr_reads_weak_lines_for_spotting_only(tmp_path):
    from mpr.records import Frame, FrameSet
    from mpr.source import SourceInfo
    from tasks.run_ocr import RunOcrConfig, run_ocr
    from tasks.stage import StageContext

    engine = get_engine("rapidocr", runtime="openvino", charset="latin")
    image, faint = next((im, box) for im, box in faint_word_frames()
                        if any(inside(q, box) for q in engine.detect_weak(im, 1.0, 0.3)[1]))
    ctx = StageContext(source=SourceInfo(uri="f.png", kind="image", fingerprint="f", local_path="f.png"),
                       store_root=str(tmp_path), key="k")
    frames = FrameSet(chunk=0, frames=[Frame(index=0, t=0.0, key=ctx.store.put_image("0.png", image),
                                             width=300, height=120)])
    seen = dict(det_limit_side_len=120, charset="latin")  # the frame at its own size, as probed above
    off = run_ocr([frames], RunOcrConfig(**seen), ctx)
    on = run_ocr([frames], RunOcrConfig(**seen, weak_lines=0.3), ctx)
    def at_faint(reads):
        return [r for r in reads if inside(np.array(r.box).reshape(2, 2), faint)]

    assert [r.text for r in on.reads] == [r.text for r in off.reads] == ["KESTREL"]
    assert not at_faint(off.faint) and at_faint(on.faint)  # read, for spotting only
    assert all(r.trace for r in at_faint(on.faint))
    none = run_ocr([frames], RunOcrConfig(**seen, weak_lines=0.3, max_weak_lines=0), ctx)
    assert not at_faint(none.faint)
