"""How text and brand names are folded before they are compared: case, accents and the
characters OCR confuses collapse to one representative, on both sides (mpr.matching's fuzzy
matching and mpr.spotting's alignment of names in the recogniser's scores)."""

from __future__ import annotations

import unicodedata

# Characters OCR confuses, folded to one representative on both sides.
CONFUSIONS = str.maketrans({"0": "o", "1": "l", "i": "l", "|": "l", "!": "l", "5": "s", "$": "s", "8": "b"})


def fold_char(char: str) -> str:
    """One character folded: accents dropped, lower case, OCR confusions merged (may be empty
    or, for a ligature, longer than one character)."""
    f = "".join(c for c in unicodedata.normalize("NFKD", char) if not unicodedata.combining(c))
    return f.lower().translate(CONFUSIONS)
