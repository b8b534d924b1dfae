"""Brand spotting in the recogniser's scores (mpr.spotting) and its use in match_brands."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from mpr.brands import load_brands
from mpr.matching import BrandMatcher
from mpr.records import TextRead, TextSet
from mpr.spotting import BLANK, SEP, SYMBOLS, Spotter, Trace, encode, symbol_of

BRANDS = load_brands([{"name": "PUMA"}, {"name": "Coop"}, {"name": "Santander"}, {"name": "Audi"}])


def scores(spec: list[dict[str, float] | str]) -> np.ndarray:
    """Output steps from a spec: a character (certain), "-" (blank), " " (separator), or a
    mapping of characters to probabilities (the rest goes to the blank)."""
    out = np.zeros((len(spec), SYMBOLS), np.float32)
    for t, step in enumerate(spec):
        step = {"-": {}, " ": {" ": 1.0}}.get(step, step) if isinstance(step, str) and len(step) == 1 \
            and step in "- " else ({step: 1.0} if isinstance(step, str) else step)
        for char, p in step.items():
            out[t, symbol_of(char)] += p
        out[t, BLANK] += 1 - out[t].sum()
    return out


def word(text: str) -> list:
    """A clean reading of `text`: each character on a step, blanks between."""
    return [s for c in text for s in (c, "-")]


def spot(spec, names, max_cost=6.0):
    trace = Trace.decode(encode(scores(spec), 0.01))
    return {names[s.name]: s for s in Spotter(names).spot(trace, np.full(len(names), max_cost))}


def test_a_clean_reading_costs_nothing_and_an_absent_name_is_not_spotted():
    found = spot(["-", *word("puma"), "-"], ["puma", "santander", "coop"])
    assert set(found) == {"puma"}
    assert found["puma"].cost == pytest.approx(0, abs=0.01) and found["puma"].probability > 0.95
    assert found["puma"].steps == (1, 3, 5, 7)


def test_a_runner_up_letter_is_found_where_greedy_decoding_read_another():
    # "PUmn": the last letter read as n, with a (runner-up) 30% for a
    spec = ["-", *word("pum"), {"n": 0.6, "a": 0.3}, "-"]
    found = spot(spec, ["puma"])
    assert found["puma"].cost == pytest.approx(np.log(0.6 / 0.3), abs=0.05)
    # with almost nothing on the a, the same reading costs log(0.999 / 0.0005) = 7.6 nats
    assert spot(["-", *word("pum"), {"n": 0.999, "a": 0.0005}, "-"], ["puma"], max_cost=7) == {}
    assert spot(["-", *word("pum"), {"n": 0.999, "a": 0.0005}, "-"], ["puma"], max_cost=8)["puma"].cost > 7


def test_a_repeated_letter_needs_a_blank_between_its_two_readings():
    assert spot(word("coop"), ["coop"])["coop"].cost == pytest.approx(0, abs=0.01)
    # "cop": one o, no second spike: the second o must take a blank step
    assert spot(word("cop"), ["coop"], max_cost=30)["coop"].cost > 9  # no step left for a second o: two are forced


def test_a_name_is_found_anywhere_on_a_longer_line_and_knows_whether_it_stands_alone():
    alone = spot([*word("ab"), " ", "-", *word("puma"), " ", *word("cd")], ["puma"])["puma"]
    inside = spot([*word("ab"), *word("puma"), *word("cd")], ["puma"])["puma"]
    assert alone.cost == pytest.approx(0, abs=0.01) and alone.bounded
    assert inside.cost == pytest.approx(0, abs=0.01) and not inside.bounded
    assert alone.steps[0] == 6  # a, -, b, -, " ", -, then p


def test_trace_keeps_the_scores_to_a_32nd_of_a_nat_in_a_few_hundred_bytes():
    rng = np.random.default_rng(0)
    folded = rng.dirichlet(np.full(SYMBOLS, 0.1), size=40).astype(np.float32)
    data = encode(folded, 0.02)
    trace = Trace.decode(data)
    assert len(data) < 1000 and trace.logp.shape == (40, SYMBOLS) and trace.step_share == pytest.approx(0.02)
    assert np.abs(trace.logp - np.log(np.maximum(folded, 1e-4))).max() <= 1 / 32 + 1e-6
    assert trace.place(0) == pytest.approx(0.01)


def test_symbols_fold_as_matching_does():
    assert symbol_of("O") == symbol_of("0") == symbol_of("o")
    assert symbol_of("I") == symbol_of("1") == symbol_of("l")
    assert symbol_of("é") == symbol_of("e")
    assert symbol_of(" ") == symbol_of(".") == symbol_of("-") == SEP
    assert symbol_of("ø") not in (SEP, BLANK, symbol_of("o"))


def read_with(spec, text, box=(100.0, 50.0, 300.0, 80.0), score=0.6):
    steps = scores(spec)
    quad = ((box[0], box[1]), (box[2], box[1]), (box[2], box[3]), (box[0], box[3]))
    return TextRead(t=0.0, frame_key="f.jpg", text=text, score=score, box=box, quad=quad,
                    trace=encode(steps, 1 / len(steps)))


def test_matcher_spots_what_fuzzy_matching_misses_where_it_is_on_the_line():
    spec = [" ", *word("flatex"), " ", "-", *word("pum"), {"n": 0.6, "a": 0.35}, "-", " "]
    read = read_with(spec, "flatex PUmn")
    matcher = BrandMatcher(BRANDS, 80)
    assert matcher.best(read.text) is None  # "pumn" is one letter off a four-letter name
    (hit,) = matcher.spot_frame([read], [], 0.75, 0.3)
    assert hit.brand == "PUMA" and hit.read == 0 and 0.3 < hit.probability < 1 and 0 < hit.score < 100
    # the box is the right part of the line: PUMA's letters are on steps 15-21 of 24, the box
    # reaches 0.6 of a letter's pitch (2 steps) beyond them
    x = [100 + 200 * (s + 0.5) / 24 for s in (15 - 1.2, 21 + 1.2)]
    assert hit.box[0] == pytest.approx(x[0], abs=1) and hit.box[2] == pytest.approx(x[1], abs=1)
    assert hit.box[1] == 50 and hit.box[3] == 80


def test_matcher_spotting_is_off_strict_or_blocked_by_what_fuzzy_matching_found():
    read = read_with(["-", *word("pum"), {"n": 0.6, "a": 0.35}, "-"], "PUmn")
    matcher = BrandMatcher(BRANDS, 80)
    assert matcher.spot_frame([read], [], 0.0, 0.3) == []  # off
    assert matcher.spot_frame([read], [], 0.75, 0.9) == []  # the letters are not that sure
    assert matcher.spot_frame([read], [read.box], 0.75, 0.3) == []  # fuzzy matching found something there
    glued = read_with([*word("xy"), *word("pum"), {"n": 0.6, "a": 0.35}, *word("zz")], "xyPUmnzz")
    assert matcher.spot_frame([glued], [], 0.75, 0.3) == []  # a short name inside a longer word


def test_match_brands_turns_spots_of_faint_reads_into_detections(tmp_path):
    from mpr.records import Frame
    from mpr.source import SourceInfo
    from tasks.match_brands import MatchBrandsConfig, match_brands
    from tasks.stage import StageContext

    faint = read_with(["-", *word("pum"), {"n": 0.6, "a": 0.35}, "-"], "PUmn", score=0.3)
    clear = TextRead(t=0.0, frame_key="f.jpg", text="SANTANDER", score=0.95, box=(400.0, 50.0, 600.0, 80.0))
    texts = TextSet(chunk=0, frames=[Frame(index=0, t=0.0, key="f.jpg", width=800, height=450)],
                    reads=[clear], faint=[faint])
    ctx = StageContext(source=SourceInfo(uri="x.mp4", kind="video", fingerprint="f", local_path="x.mp4"), store_root=str(tmp_path),
                       key="k", brands=BRANDS)
    out = match_brands([texts], MatchBrandsConfig(region_kinds=[]), ctx)
    got = {(d.brand, d.resolver) for d in out.detections}
    assert got == {("Santander", "ocr"), ("PUMA", "spotting")}
    assert all(not r.trace for r in out.reads) and out.faint == []  # the scores stop at match_brands
    off = match_brands([texts], MatchBrandsConfig(region_kinds=[], spot_cost=0), ctx)
    assert {d.brand for d in off.detections} == {"Santander"}


def test_the_recogniser_scores_lines_for_spotting():
    """A real recogniser on a drawn word: the trace spots the word where it is drawn."""
    from mpr.ocr import get_engine

    engine = get_engine("rapidocr", runtime="openvino", charset="latin")
    line = np.full((60, 900, 3), 235, np.uint8)
    cv2.putText(line, "KESTREL", (500, 45), cv2.FONT_HERSHEY_DUPLEX, 1.4, (20, 20, 20), 3, cv2.LINE_AA)
    ink = np.flatnonzero((line < 128).any(axis=(0, 2)))
    (text, score, places, data), = engine.read([line])
    trace = Trace.decode(data)
    (hit,) = Spotter(["kestrel"]).spot(trace, np.array([3.0]))
    assert text == "KESTREL" and hit.cost < 0.5 and hit.bounded
    assert ink[0] - 20 <= trace.place(hit.first) * 900 and trace.place(hit.last) * 900 <= ink[-1] + 20
    assert Spotter(["santander"]).spot(trace, np.array([3.0])) == []


def test_run_ocr_keeps_lines_below_min_text_score_for_spotting_only(tmp_path):
    from mpr.records import Frame, FrameSet
    from mpr.source import SourceInfo
    from tasks.run_ocr import RunOcrConfig, run_ocr
    from tasks.stage import StageContext

    ctx = StageContext(source=SourceInfo(uri="f.png", kind="image", fingerprint="f", local_path="f.png"),
                       store_root=str(tmp_path), key="k")
    image = np.full((360, 640, 3), 235, np.uint8)
    cv2.putText(image, "KESTREL", (40, 80), cv2.FONT_HERSHEY_DUPLEX, 1.6, (20, 20, 20), 3, cv2.LINE_AA)
    frames = FrameSet(chunk=0, frames=[Frame(index=0, t=0.0, key=ctx.store.put_image("0.png", image),
                                             width=640, height=360)])
    strict = run_ocr([frames], RunOcrConfig(min_text_score=1.0), ctx)  # nothing is read clearly enough
    assert strict.reads == [] and [r.text for r in strict.faint] == ["KESTREL"]
    (hit,) = Spotter(["kestrel"]).spot(Trace.decode(strict.faint[0].trace), np.array([3.0]))
    assert hit.cost < 0.5
    usual = run_ocr([frames], RunOcrConfig(), ctx)
    assert [r.text for r in usual.reads] == ["KESTREL"] and usual.faint == [] and usual.reads[0].trace


def test_a_name_may_run_off_the_line_at_a_cost_per_letter_left_out():
    spotter = Spotter(["altlbox", "rexona"])
    cut_short = Trace.decode(encode(scores(word("tlbox")), 0.1))  # "tibox": Altibox's box cut on the left
    assert spotter.cost(cut_short, 0, cut=1.5) == pytest.approx(3.0, abs=0.05)  # two letters off the line
    assert spotter.cost(cut_short, 0, cut=1.5) < spotter.cost(cut_short, 0, cut=3.0)
    inner = Trace.decode(encode(scores(word("rena")), 0.1))  # "rexona" would need x and o inside the line
    assert spotter.cost(inner, 1, cut=1.5) > 0.75 * (6 + 1)  # over the budget match_brands gives it


def test_fuzzy_matches_inside_longer_text_must_be_supported_by_the_scores():
    brands = load_brands([{"name": "Santander"}, {"name": "Emirates"}, {"name": "Orbit Mobile"}])
    matcher = BrandMatcher(brands, 80)
    stadium = read_with(word("stadlon") + [" "] + word("an") + [" "] + word("der"), "STADION AN DER")
    assert [m.brand for m in matcher.match_frame([stadium])] == ["Santander"]  # "nander" inside the line
    assert matcher.match_frame([stadium], verify=0.75) == []  # no S, A or T before it in the scores
    merged = read_with(word("flyemlrates"), "FLYEMlRATES")
    assert [m.brand for m in matcher.match_frame([merged], verify=0.75)] == ["Emirates"]
    # a whole-token match with letters dropped is not checked: OCR drops thin letters ("ORBIT MOE")
    dropped = read_with(word("orblt") + [" "] + word("moe"), "ORBIT MOE")
    assert [m.brand for m in matcher.match_frame([dropped], verify=0.75)] == ["Orbit Mobile"]


def test_an_inexact_match_joining_more_words_of_a_read_than_the_name_has_must_be_supported():
    matcher = BrandMatcher(load_brands([{"name": "Renault"}, {"name": "sonepar"}]), 80)
    # the ends of two "intility arena" boards: "renalnt" is 86 from "renault" once joined
    boards = read_with(word("rena") + [" "] + word("lnt"), "rena int")
    assert [m.brand for m in matcher.match_frame([boards])] == ["Renault"]
    assert matcher.match_frame([boards], verify=0.75) == []  # no U where the recogniser saw a space and N
    # a name OCR split with a space and misread a letter of still matches when the scores hold it
    split = read_with(word("sonep") + [{" ": 0.5, "a": 0.4}] + ["-", {"u": 0.55, "a": 0.45}, "-", "r", "-"],
                      "sonep ur")
    assert [m.brand for m in matcher.match_frame([split], verify=0.75)] == ["sonepar"]


def test_inexact_whole_words_with_no_letter_dropped_are_vetted_and_word_breaks_are_not_crossed():
    matcher = BrandMatcher(load_brands([{"name": "Fanta"}, {"name": "Renault"}]), 80)
    misread = read_with(word("fatea"), "fatea")  # 80 from "fanta"; no N where the recogniser saw T
    assert [m.brand for m in matcher.match_frame([misread])] == ["Fanta"]
    assert matcher.match_frame([misread], verify=0.75) == []
    likely = read_with(word("fa") + [{"n": 0.4, "t": 0.5}, "-", *word("ta")], "fatta")
    assert [m.brand for m in matcher.match_frame([likely], verify=0.75)] == ["Fanta"]
    # inside longer text across a word break: dropped whatever the scores say
    boards = read_with(word("arena") + [{" ": 0.5, "u": 0.4}, "-", *word("lntlllty")], "arena intility")
    assert [m.brand for m in matcher.match_frame([boards])] == ["Renault"]
    assert matcher.match_frame([boards], verify=0.75) == []
