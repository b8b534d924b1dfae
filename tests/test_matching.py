"""Fuzzy brand matching: normalisation, OCR confusions, names split across boxes."""

from __future__ import annotations

import pytest

from mpr.brands import load_brands
from mpr.matching import BrandMatcher, tokens
from mpr.records import TextRead

BRANDS = load_brands([
    {"name": "Emirates", "aliases": ["Fly Emirates"]},
    {"name": "Norsk Tipping"},
    {"name": "Audi"},
    {"name": "Société Générale"},
    {"name": "Coop"},
    {"name": "Rema 1000"},
    {"name": "apotal.de"},
])


def read(text, box, score=0.95, t=0.0):
    return TextRead(t=t, frame_key="f.jpg", text=text, score=score, box=box)


@pytest.mark.parametrize("text, brand", [
    ("EMIRATES", "Emirates"),
    ("Fly Emirates", "Emirates"),
    ("FLYEMIRATES", "Emirates"),          # merged words: the name inside longer text
    ("C00P", "Coop"),                     # 0 read for O
    ("AUD1", "Audi"),                     # 1 read for I
    ("NORSK TlPPlNG", "Norsk Tipping"),   # l read for I
    ("societe generale", "Société Générale"),  # accents and case
    ("Norsk   Tipping", "Norsk Tipping"),     # spacing
    ("REMA 1OOO", "Rema 1000"),           # O read for 0
    ("www.apotal.de", "apotal.de"),
    ("Emlrates", "Emirates"),             # one wrong letter
])
def test_matches_despite_ocr_noise(text, brand):
    hit = BrandMatcher(BRANDS, min_score=80).best(text)
    assert hit is not None and hit[0] == brand


@pytest.mark.parametrize("text", ["AUDIENCE", "cooperation partner", "SCORE 2-1", "Emergency", "Aud"])
def test_short_names_need_whole_tokens_and_noise_stays_unmatched(text):
    assert BrandMatcher(BRANDS, min_score=80).best(text) is None


def test_min_score_controls_strictness():
    assert BrandMatcher(BRANDS, min_score=95).best("Emiratos") is None
    assert BrandMatcher(BRANDS, min_score=80).best("Emiratos")[0] == "Emirates"


def test_multi_word_name_split_across_boxes_on_one_line():
    reads = [read("NORSK", (100, 50, 180, 80)), read("TIPPING", (190, 50, 300, 80)),
             read("COOP", (600, 300, 660, 320))]
    matches = BrandMatcher(BRANDS, min_score=80).match_frame(reads)
    assert sorted((m.brand, m.reads) for m in matches) == [("Coop", (2,)), ("Norsk Tipping", (0, 1))]


def test_boxes_on_different_lines_are_not_joined():
    reads = [read("NORSK", (100, 50, 180, 80)), read("TIPPING", (100, 300, 210, 330))]
    assert BrandMatcher(BRANDS, min_score=80).match_frame(reads) == []


def test_tokens_fold_confusions_on_both_sides():
    assert tokens("C0OP 5Port") == tokens("COOP SPort") == ["coop", "sport"]


def test_match_brands_warns_of_names_the_ocr_charset_cannot_read(tmp_path):
    from mpr.records import Frame, TextRead, TextSet
    from mpr.source import ChunkSpec, SourceInfo
    from tasks.match_brands import MatchBrandsConfig, match_brands
    from tasks.stage import StageContext

    ctx = StageContext(source=SourceInfo(uri="x.mp4", kind="video", fingerprint="f", local_path="x.mp4"),
                       store_root=str(tmp_path), key="match_brands-1", chunk=ChunkSpec(0, 0, 1, 0, 1),
                       brands=load_brands([{"name": "Kirin", "aliases": ["キリン"]}, {"name": "Müller"}]))
    frame = Frame(index=0, t=0.0, key="frames/a.jpg", width=640, height=360)
    reads = [TextRead(t=0.0, frame_key=frame.key, text="KIRIN", score=0.9, box=(0, 0, 50, 10))]
    latin = match_brands([TextSet(chunk=0, frames=[frame], reads=reads, charset="latin")], MatchBrandsConfig(), ctx)
    assert [d.brand for d in latin.detections] == ["Kirin"]
    assert latin.notes == ["brand 'Kirin': 'キリン' has letters run_ocr.charset 'latin' cannot read "
                           "(set run_ocr.charset: full)"]
    full = match_brands([TextSet(chunk=0, frames=[frame], reads=reads, charset="full")], MatchBrandsConfig(), ctx)
    assert full.notes == []


def placed(text, box, places=None):
    """A read on a horizontal line `box`, its characters evenly spread unless `places` says."""
    x1, y1, x2, y2 = box
    n = len(text)
    return TextRead(t=0.0, frame_key="f.jpg", text=text, score=0.95, box=box,
                    quad=((x1, y1), (x2, y1), (x2, y2), (x1, y2)),
                    places=tuple(places or [(i + 0.5) / n for i in range(n)]))


def test_one_read_holding_a_name_twice_gives_two_matches_each_where_its_characters_are():
    from mpr.matching import place_box

    reads = [placed("COOP REMA 1000 COOP", (0, 0, 190, 20))]  # a board row read as one line, 10 px a character
    matches = BrandMatcher(BRANDS, min_score=80).match_frame(reads)
    assert sorted((m.brand, m.text, m.spans) for m in matches) == [
        ("Coop", "COOP", ((0, 0, 4),)), ("Coop", "COOP", ((0, 15, 19),)), ("Rema 1000", "REMA 1000", ((0, 5, 14),))]
    boxes = sorted(place_box(reads[0], *m.spans[0][1:]) for m in matches)
    # character i is centred at 10 i + 5 px; a box reaches 0.6 of the pitch beyond its end characters,
    # and to the line's own ends when its text reaches them
    assert [tuple(round(v) for v in b) for b in boxes] == [(0, 0, 41, 20), (49, 0, 141, 20), (149, 0, 190, 20)]


def test_a_name_read_from_a_wide_box_gets_the_box_of_its_characters():
    from mpr.matching import place_box

    # "AUDI" read from a 1000 px wide gap window: its characters sit at 600-680 px
    wide = placed("AUDI", (0, 100, 1000, 130), places=[0.61, 0.63, 0.65, 0.67])
    (match,) = BrandMatcher(BRANDS, min_score=80).match_frame([wide])
    x1, y1, x2, y2 = place_box(wide, *match.spans[0][1:])
    assert 595 < x1 < 610 and 670 < x2 < 685 and (y1, y2) == (100, 130)
    # where the characters are is unknown: the read's box
    bare = TextRead(t=0.0, frame_key="f.jpg", text="AUDI", score=0.95, box=(0, 100, 1000, 130))
    assert place_box(bare, 0, 4) == bare.box
