"""Fuzzy brand matching of OCR text with rapidfuzz, and brand spotting in the recogniser's scores.

Text and brand names are normalised the same way (accents, case, spacing, OCR
confusions such as 0/O, 1/l/I, 5/S), so a confusion costs nothing on either side.
Text boxes on one line are also tried together, for names split across boxes.
What fuzzy matching leaves, spotting (`mpr.spotting`) looks for in the scores the
recogniser gave each line: names its greedy reading got wrong ("PUmn" for PUMA).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from rapidfuzz import fuzz, process

from mpr.brands import BrandList
from mpr.folding import fold_char
from mpr.records import Box, TextRead
from mpr.spotting import Spot, Spotter, Trace
from mpr.vision.rectify import covered, iou

TOKEN = re.compile(r"[^\W_]+")
PARTIAL_MIN_LEN = 6  # shorter names only match whole tokens: "audi" must not match "audience"
MAX_BOXES_PER_NAME = 3
SHORT_NAME = 4
SPOT_MIN_LEN = 3  # shorter names are left to fuzzy matching: two letters turn up anywhere


def tokens(text: str) -> list[str]:
    return [token for token, _ in token_places(text)]


def token_places(text: str) -> list[tuple[str, tuple[int, ...]]]:
    """Normalised tokens of `text`, each with the index in `text` of every one of its characters
    (characters are folded one by one, so a folded one can be traced back)."""
    folded, origin = [], []
    for i, char in enumerate(text):
        f = fold_char(char)
        folded.append(f)
        origin += [i] * len(f)
    joined = "".join(folded)
    return [(m.group(), tuple(origin[m.start():m.end()])) for m in TOKEN.finditer(joined)]


@dataclass(frozen=True)
class Match:
    brand: str
    score: float  # 0-100
    reads: tuple[int, ...]  # indexes of the text reads that make the name
    text: str  # the matched characters of those reads
    spans: tuple[tuple[int, int, int], ...] = ()  # (read, first character, end) of each read's matched part


@dataclass(frozen=True)
class Spotted:
    """A brand name spotted in one read's recogniser scores."""

    brand: str
    read: int  # index of the read
    cost: float  # nats its alignment loses to the greedy reading (mpr.spotting)
    probability: float  # geometric mean of its characters' probabilities
    score: float  # 0-100: 100 * exp(-cost / characters)
    box: Box  # frame pixels of the part of the line it was spotted on
    text: str  # what greedy decoding read there


class _Hit(NamedTuple):
    brand: str
    score: float
    span: tuple[int, int]  # the matched characters of the candidate
    name: int  # index of the name (or alias) matched
    inside: bool  # found inside longer text (partial alignment), not as the whole candidate


@dataclass(frozen=True)
class _Token:
    text: str  # normalised
    read: int
    chars: tuple[int, ...]  # index in the read's text of each character of `text`


class BrandMatcher:
    def __init__(self, brands: BrandList, min_score: float):
        self.min_score = min_score
        self.names: list[str] = []  # compact normalised alias
        self.owner: list[str] = []  # canonical brand of each alias
        self.words: list[int] = []  # how many tokens each alias is written in
        self.max_tokens = 1
        for brand in brands.brands:
            for alias in [brand.name, *brand.aliases]:
                toks = tokens(alias)
                if toks:
                    self.names.append("".join(toks))
                    self.owner.append(brand.name)
                    self.words.append(len(toks))
                    self.max_tokens = max(self.max_tokens, len(toks))
        self.long_names = [i for i, n in enumerate(self.names) if len(n) >= PARTIAL_MIN_LEN]
        self._spot_names = [i for i, n in enumerate(self.names) if len(n) >= SPOT_MIN_LEN]
        self._spotter = Spotter([self.names[i] for i in self._spot_names])
        self._spot_len = np.array([len(self.names[i]) for i in self._spot_names], float)
        self._spot_index = {name: i for i, name in enumerate(self._spot_names)}

    def best(self, text: str) -> tuple[str, float] | None:
        """Best brand for one piece of text, or None below `min_score`."""
        found = [hit for hit, _ in self._hits([_Token(t, 0, c) for t, c in token_places(text)])]
        return max(found, key=lambda h: h.score)[:2] if found else None

    def _hits(self, toks: list[_Token]):
        """The hit and its tokens, for every run of up to max_tokens + 1 consecutive tokens over at
        most MAX_BOXES_PER_NAME reads that matches."""
        for start in range(len(toks)):
            for end in range(start + 1, min(len(toks), start + self.max_tokens + 1) + 1):
                window = toks[start:end]
                if len({t.read for t in window}) > MAX_BOXES_PER_NAME:
                    break
                hit = self._score("".join(t.text for t in window))
                if hit:
                    yield hit, window

    def _score(self, candidate: str) -> _Hit | None:
        hits = process.extract(candidate, self.names, scorer=fuzz.ratio, score_cutoff=self.min_score, limit=5)
        # a short name ("Audi") only matches text of its own length: "Aud" or "Audio" are too risky
        hit = next((h for h in hits if len(h[0]) > SHORT_NAME or len(h[0]) == len(candidate)), None)
        best = _Hit(self.owner[hit[2]], hit[1], (0, len(candidate)), hit[2], False) if hit else None
        for i in self.long_names:  # a name inside longer merged text, e.g. "flyemirates"
            name = self.names[i]
            if len(candidate) >= len(name) + 2:
                found = fuzz.partial_ratio_alignment(name, candidate, score_cutoff=self.min_score)
                if found and (best is None or found.score > best.score):
                    best = _Hit(self.owner[i], found.score, (found.dest_start, found.dest_end), i, True)
        return best

    def _supported(self, read: TextRead, name: int, cost_per_char: float) -> bool:
        """Whether the recogniser's scores of `read` support name `name` somewhere on its line at
        most `cost_per_char` nats per character (+1) worse than its greedy reading; letters cut off
        at either end of the line ("tibox" for Altibox) cost twice that each, so that at most about
        half the name can be missing. True when the read has no scores or the name is too short
        to spot."""
        spot = self._spot_index.get(name)
        if not read.trace or spot is None:
            return True
        cost = self._spotter.cost(Trace.decode(read.trace), spot, 2 * cost_per_char)
        return cost <= cost_per_char * (len(self.names[name]) + 1)

    def _plausible(self, hit: _Hit, window: list[_Token], reads: list[TextRead], verify: float) -> bool:
        """Whether an inexact match stands. A name inside longer text must not cross a word
        break ("arena intility" holds "renaint", 86 from "renault") and, within one read, needs
        the recogniser's scores of that read to support it (`_supported`): "STADION AN DER" holds
        "nander", 80 from "santander" by fuzz.partial_ratio, but the recogniser saw no S, A or T
        before it. So does a whole-token match within one read that joins more words than the
        name has ("sonep ur") or drops no letter ("fatea" for "fanta"). Whole tokens with letters
        dropped are not checked: OCR drops thin letters, and "ORBIT MOE" for Orbit Mobile is as
        far from the scores as a wrong brand would be."""
        if hit.inside:
            touched = _touched(window, *hit.span)
            if len(touched) > self.words[hit.name]:
                return False
            one = {t.read for t in touched}
            return len(one) > 1 or self._supported(reads[one.pop()], hit.name, verify)
        one = {t.read for t in window}
        misread = sum(len(t.text) for t in window) >= len(self.names[hit.name])  # no letter dropped
        if len(one) > 1 or not (misread or len(window) > self.words[hit.name]):
            return True
        return self._supported(reads[one.pop()], hit.name, verify)

    def match_frame(self, reads: list[TextRead], verify: float = 0.0) -> list[Match]:
        """Non-overlapping brand matches among one frame's reads, best first: a name may span
        reads on one line, and one read may hold several names (a board row read as one line).
        With `verify` > 0, an inexact match is vetted (`_plausible`)."""
        found = []
        for group in _lines(reads):
            toks = [_Token(t, i, chars) for i in group for t, chars in token_places(reads[i].text)]
            for hit, window in self._hits(toks):
                if verify and hit.score < 100 and not self._plausible(hit, window, reads, verify):
                    continue
                found.append((hit.score, len(window), hit.brand, window, hit.span))
        chosen, used = [], set()
        for score, _, brand, window, (a, b) in sorted(found, key=lambda f: (-f[0], f[1])):
            ids = {id(t) for t in window}
            if used.isdisjoint(ids):
                used |= ids
                chosen.append(_match(brand, score, window, a, b, reads))
        return chosen

    def spot_frame(self, reads: list[TextRead], taken: list[Box], cost_per_char: float,
                   min_probability: float) -> list[Spotted]:
        """Names spotted in one frame's reads, best first, none overlapping another or a box in
        `taken` (what fuzzy matching found). A name may lose at most `cost_per_char` nats per
        character, plus one, to the greedy reading; its characters' probabilities must average
        (geometrically) `min_probability`; and a name shorter than PARTIAL_MIN_LEN must stand
        alone on its line (no letter read right before or after it), as fuzzy matching asks."""
        return choose_spots(self.spots(reads, cost_per_char, min_probability), taken)

    def spots(self, reads: list[TextRead], cost_per_char: float, min_probability: float) -> list[Spotted]:
        """Every name `spot_frame` would consider, overlapping ones included (what it computes
        from the reads alone: match_brands keeps it, `choose_spots` picks among it)."""
        if cost_per_char <= 0 or not self._spot_names:
            return []
        budget = cost_per_char * (self._spot_len + 1)
        which = [i for i, read in enumerate(reads) if read.trace]
        traces = [Trace.decode(reads[i].trace) for i in which]
        found = []
        for i, trace, spots in zip(which, traces, self._spotter.spot_all(traces, budget)):
            for spot in spots:
                name = self.names[self._spot_names[spot.name]]
                if spot.probability < min_probability or (len(name) < PARTIAL_MIN_LEN and not spot.bounded):
                    continue
                box, text = _spot_place(reads[i], trace, spot)
                found.append(Spotted(self.owner[self._spot_names[spot.name]], i, spot.cost, spot.probability,
                                     round(100 * float(np.exp(-spot.cost / len(name))), 1), box, text))
        return found


def choose_spots(found: list[Spotted], taken: list[Box]) -> list[Spotted]:
    """The best spots first, none overlapping another or a box in `taken`."""
    chosen: list[Spotted] = []
    for hit in sorted(found, key=lambda h: -h.score):
        if not any(_overlaps(hit.box, other) for other in [*taken, *(c.box for c in chosen)]):
            chosen.append(hit)
    return chosen


def _overlaps(a: Box, b: Box) -> bool:
    return iou(a, b) > 0.3 or covered(a, b) > 0.5 or covered(b, a) > 0.5


def _spot_place(read: TextRead, trace: Trace, spot: Spot) -> tuple[Box, str]:
    """Frame box and greedy text of the part of the read a spotted name covers."""
    places = [trace.place(t) for t in spot.steps]  # SPOT_MIN_LEN letters or more
    pitch = float(np.median(np.diff(places)))
    lo, hi = places[0] - 0.6 * pitch, places[-1] + 0.6 * pitch
    text = read.text
    if len(read.places) == len(read.text):
        text = "".join(c for c, p in zip(read.text, read.places) if lo <= p <= hi).strip()
    return line_box(read, max(0.0, lo), min(1.0, hi)), text


def _touched(window: list[_Token], a: int, b: int) -> list[_Token]:
    """The window's tokens that characters a:b of their joined text fall in."""
    out, start = [], 0
    for t in window:
        if start < b and start + len(t.text) > a:
            out.append(t)
        start += len(t.text)
    return out


def _match(brand: str, score: float, window: list[_Token], a: int, b: int, reads: list[TextRead]) -> Match:
    """The match of candidate characters a:b of the window's joined tokens, traced to its reads."""
    chars = [(t.read, c) for t in window for c in t.chars][a:b]
    spans = []
    for read in dict.fromkeys(r for r, _ in chars):
        mine = [c for r, c in chars if r == read]
        spans.append((read, min(mine), max(mine) + 1))
    text = " ".join(reads[r].text[s:e] for r, s, e in spans)
    return Match(brand, score, tuple(r for r, _, _ in spans), text, tuple(spans))


def place_box(read: TextRead, start: int, end: int) -> Box:
    """Frame box of characters start:end of a read: the part of its line they cover, from where
    OCR placed each character, 0.6 of the character pitch either side. An end of the line stays
    where it is when the text reaches to within about a character of it (the text detector's
    box is tighter than that estimate); it moves in over empty space (a read of a wide crop or
    of a gap in a board row). The read's box when where the characters lie is unknown."""
    n = len(read.text)
    if read.quad is None or len(read.places) != n or n == 0:
        return read.box
    places = np.array(read.places)
    tl, tr, _, bl = (np.array(p) for p in read.quad)
    length = max(float(np.linalg.norm(tr - tl)), 1e-6)
    # one character: a Latin letter's pitch is about 0.7 of the line's height
    pitch = float(np.median(np.diff(places))) if n > 1 else 0.7 * float(np.linalg.norm(bl - tl)) / length
    lo, hi = places[start] - 0.6 * pitch, places[end - 1] + 0.6 * pitch
    lo = 0.0 if start == 0 and lo < pitch else max(0.0, lo)
    hi = 1.0 if end == n and hi > 1 - pitch else min(1.0, hi)
    return line_box(read, lo, hi)


def line_box(read: TextRead, lo: float, hi: float) -> Box:
    """Frame box of the part lo..hi (shares of its length) of a read's line; the read's box
    when the line's corners are unknown or the part is all of it."""
    if read.quad is None or (lo <= 0.0 and hi >= 1.0):
        return read.box
    tl, tr, br, bl = (np.array(p) for p in read.quad)
    pts = np.array([tl + lo * (tr - tl), tl + hi * (tr - tl), bl + hi * (br - bl), bl + lo * (br - bl)])
    return (float(pts[:, 0].min()), float(pts[:, 1].min()), float(pts[:, 0].max()), float(pts[:, 1].max()))


def _lines(reads: list[TextRead]) -> list[list[int]]:
    """Group reads into lines (similar height and baseline, small gaps), left to right."""
    order = sorted(range(len(reads)), key=lambda i: reads[i].box[0])
    lines: list[list[int]] = []
    for i in order:
        for line in lines:
            if _continues(reads[line[-1]].box, reads[i].box):
                line.append(i)
                break
        else:
            lines.append([i])
    return lines


def _continues(left: Box, right: Box) -> bool:
    lh, rh = left[3] - left[1], right[3] - right[1]
    height = max(lh, rh, 1.0)
    same_size = min(lh, rh) / height > 0.55
    aligned = abs((left[1] + left[3]) - (right[1] + right[3])) / 2 < 0.5 * height
    gap = right[0] - left[2]
    return same_size and aligned and -0.5 * height < gap < 1.5 * height


def union(boxes: list[Box]) -> Box:
    return (min(b[0] for b in boxes), min(b[1] for b in boxes),
            max(b[2] for b in boxes), max(b[3] for b in boxes))
