"""Fuzzy brand matching of OCR text with rapidfuzz.

Text and brand names are normalised the same way (accents, case, spacing, OCR
confusions such as 0/O, 1/l/I, 5/S), so a confusion costs nothing on either side.
Text boxes on one line are also tried together, for names split across boxes.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from rapidfuzz import fuzz, process

from mpr.brands import BrandList
from mpr.records import Box, TextRead

# Characters OCR confuses, folded to one representative on both sides.
CONFUSIONS = str.maketrans({"0": "o", "1": "l", "i": "l", "|": "l", "!": "l", "5": "s", "$": "s", "8": "b"})
TOKEN = re.compile(r"[^\W_]+")
PARTIAL_MIN_LEN = 6  # shorter names only match whole tokens: "audi" must not match "audience"
MAX_BOXES_PER_NAME = 3
SHORT_NAME = 4


def tokens(text: str) -> list[str]:
    folded = unicodedata.normalize("NFKD", text)
    folded = "".join(c for c in folded if not unicodedata.combining(c)).lower().translate(CONFUSIONS)
    return TOKEN.findall(folded)


@dataclass(frozen=True)
class Match:
    brand: str
    score: float  # 0-100
    reads: tuple[int, ...]  # indexes of the text reads that make the name
    text: str


class BrandMatcher:
    def __init__(self, brands: BrandList, min_score: float):
        self.min_score = min_score
        self.names: list[str] = []  # compact normalised alias
        self.owner: list[str] = []  # canonical brand of each alias
        self.max_tokens = 1
        for brand in brands.brands:
            for alias in [brand.name, *brand.aliases]:
                toks = tokens(alias)
                if toks:
                    self.names.append("".join(toks))
                    self.owner.append(brand.name)
                    self.max_tokens = max(self.max_tokens, len(toks))
        self.long_names = [i for i, n in enumerate(self.names) if len(n) >= PARTIAL_MIN_LEN]

    def best(self, text: str) -> tuple[str, float] | None:
        """Best brand for one piece of text, or None below `min_score`."""
        toks = tokens(text)
        best: tuple[str, float] | None = None
        for size in range(1, min(len(toks), self.max_tokens + 1) + 1):
            for start in range(len(toks) - size + 1):
                found = self._score("".join(toks[start:start + size]))
                if found and (best is None or found[1] > best[1]):
                    best = found
        return best

    def _score(self, candidate: str) -> tuple[str, float] | None:
        hits = process.extract(candidate, self.names, scorer=fuzz.ratio, score_cutoff=self.min_score, limit=5)
        # a short name ("Audi") only matches text of its own length: "Aud" or "Audio" are too risky
        hit = next((h for h in hits if len(h[0]) > SHORT_NAME or len(h[0]) == len(candidate)), None)
        best = (self.owner[hit[2]], hit[1]) if hit else None
        for i in self.long_names:  # a name inside longer merged text, e.g. "flyemirates"
            name = self.names[i]
            if len(candidate) >= len(name) + 2:
                score = fuzz.partial_ratio(name, candidate)
                if score >= self.min_score and (best is None or score > best[1]):
                    best = (self.owner[i], score)
        return best

    def match_frame(self, reads: list[TextRead]) -> list[Match]:
        """Non-overlapping brand matches among one frame's reads, best first."""
        found = []
        for group in _lines(reads):
            for size in range(1, min(len(group), MAX_BOXES_PER_NAME) + 1):
                for start in range(len(group) - size + 1):
                    window = group[start:start + size]
                    text = " ".join(reads[i].text for i in window)
                    hit = self.best(text)
                    if hit:
                        found.append(Match(hit[0], hit[1], tuple(window), text))
        chosen, used = [], set()
        for m in sorted(found, key=lambda m: (-m.score, len(m.reads))):
            if used.isdisjoint(m.reads):
                chosen.append(m)
                used.update(m.reads)
        return chosen


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
