"""Brand spotting in the recogniser's output: is a brand name written on this line?

The recogniser (CTC) scores every character class at every output step; greedy decoding
keeps only the best class of each step, and fuzzy matching then compares that one string
with the brand names. Small, blurred or stylised text often has the right letters as the
runner-up ("PUMA" in 6-pixel type decodes as "PUmn", the Coop wordmark as "conp"): the
evidence is in the scores, not in the string. Spotting asks the scores directly, as
lexicon-driven word spotting does (CTC keyword spotting): the best CTC alignment of the
name anywhere on the line (free start and end, Viterbi), and its cost against the greedy
path over the same steps, in nats. 0 means the name is as likely as the greedy reading.

Scores are folded to the symbols `mpr.matching` compares (case, accents and its OCR
confusions fold, so "0" and "o" are one symbol), plus the CTC blank and a separator
(space, punctuation). A line's scores travel with its read to match_brands compressed
(`encode`, `Trace`): a few hundred bytes.
"""

from __future__ import annotations

import math
import struct
import zlib
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from mpr.folding import fold_char

BLANK, SEP, OTHER = 0, 1, 2  # CTC blank; space and punctuation; a letter outside LETTERS
LETTERS = "abcdefghjklmnopqrstuvwxyz234679"  # what matching's folding leaves (i->l, 0->o, 1->l, 5->s, 8->b)
SYMBOLS = 3 + len(LETTERS)
FLOOR = math.log(1e-4)  # log-probabilities below this count as this (one unlikely letter costs at most 9.2 nats)
_QUANT = 16.0  # stored as round(-log p * 16), one byte
_HEADER = struct.Struct("<Hf")  # steps, line share per step


def symbol_of(char: str) -> int:
    """The spotting symbol of one (unfolded) character."""
    f = fold_char(char)
    if len(f) == 1 and f in LETTERS:
        return 3 + LETTERS.index(f)
    if f and all(c.isalnum() for c in f):
        return OTHER
    return SEP


def class_symbols(characters: list[str]) -> np.ndarray:
    """Symbol of each recogniser class; class 0 is CTC's blank."""
    return np.array([BLANK] + [symbol_of(c) for c in characters[1:]], np.intp)


def fold(probabilities: np.ndarray, symbols: np.ndarray) -> np.ndarray:
    """(..., classes) probabilities -> (..., SYMBOLS), summed per symbol."""
    out = np.zeros(probabilities.shape[:-1] + (SYMBOLS,), np.float32)
    for s in range(SYMBOLS):  # a few dozen column sums: cheaper than a gather of every class
        cols = np.flatnonzero(symbols == s)
        if len(cols):
            out[..., s] = probabilities[..., cols].sum(-1) if len(cols) > 1 else probabilities[..., cols[0]]
    return out


def encode(folded: np.ndarray, step_share: float) -> bytes:
    """One line's folded scores (steps x SYMBOLS), as log-probabilities to 1/16 nat, clipped at
    FLOOR (as the spotter reads them) and compressed: about 400 bytes for a line of 40 steps.
    `step_share` is the line's width per output step, as a share (places are (step + 0.5) * share)."""
    q = np.round(-np.log(np.maximum(folded, math.exp(FLOOR))) * _QUANT).astype(np.uint8)
    return _HEADER.pack(len(folded), step_share) + zlib.compress(q.tobytes(), 6)


@dataclass(frozen=True)
class Trace:
    """A line's scores as log-probabilities per output step and symbol."""

    logp: np.ndarray  # steps x SYMBOLS
    step_share: float

    @classmethod
    def decode(cls, data: bytes) -> Trace:
        return _decode(cls, data)

    def place(self, step: float) -> float:
        return min(1.0, (step + 0.5) * self.step_share)


@lru_cache(maxsize=512)
def _decode(cls: type[Trace], data: bytes) -> Trace:
    """A frame's reads are spotted, verified and looked at several times over: decoded once
    (read-only, since shared; 512 lines of 100 steps are about 7 MB)."""
    steps, share = _HEADER.unpack_from(data)
    q = np.frombuffer(zlib.decompress(data[_HEADER.size:]), np.uint8).reshape(steps, SYMBOLS)
    logp = -q.astype(np.float32) / _QUANT
    logp.setflags(write=False)
    return cls(logp, share)


@dataclass(frozen=True)
class Spot:
    name: int  # index into the Spotter's names
    cost: float  # nats the name's best alignment loses to the greedy path over the same steps (>= 0)
    steps: tuple[int, ...]  # the output step each character of the name is read at
    probability: float  # geometric mean of the name's characters' probabilities at those steps
    bounded: bool  # no other letter read right before or after it on the line

    @property
    def first(self) -> int:
        return self.steps[0]

    @property
    def last(self) -> int:
        return self.steps[-1]


class Spotter:
    """Best CTC alignments of a list of names (normalised, compact: "hollandcaslno") in traces."""

    def __init__(self, names: list[str]):
        self.names = names
        size = 2 * max((len(n) for n in names), default=0) + 1
        self._ext = np.zeros((len(names), size), np.intp)  # blank, c1, blank, c2, ..., cL, blank
        self._length = np.array([len(n) for n in names], np.intp)
        for i, name in enumerate(names):
            self._ext[i, 1:2 * len(name):2] = [symbol_of(c) for c in name]
        # a state may skip the blank before it unless it repeats the character two states back
        self._skip = np.zeros_like(self._ext, bool)
        self._skip[:, 2:] = (self._ext[:, 2:] != BLANK) & (self._ext[:, 2:] != self._ext[:, :-2])
        self._chars = [np.array([symbol_of(c) for c in n], np.intp) for n in names]
        self._counts = np.zeros((len(names), SYMBOLS), np.float32)  # how often each name uses each symbol
        for i, chars in enumerate(self._chars):
            np.add.at(self._counts[i], chars, 1)

    def spot(self, trace: Trace, max_cost: np.ndarray) -> list[Spot]:
        """The best alignment of each name whose cost is at most its `max_cost` (one per name)."""
        return self.spot_all([trace], max_cost)[0]

    def spot_all(self, traces: list[Trace], max_cost: np.ndarray) -> list[list[Spot]]:
        """`spot` for several lines at once: every (line, name) pair that can pass is aligned in
        one dynamic programme, which is what keeps spotting cheap next to recognition."""
        pairs, relatives = [], []
        for i, trace in enumerate(traces):
            relative = trace.logp - trace.logp.max(1, keepdims=True)  # <= 0: loss against the greedy symbol
            relatives.append(relative)
            if not len(relative):
                continue
            # no alignment beats using each character's best step: names that cannot pass are skipped
            bound = self._counts @ -relative.max(0)
            pairs += [(i, int(n)) for n in np.flatnonzero(bound <= max_cost)]
        out: list[list[Spot]] = [[] for _ in traces]
        if not pairs:
            return out
        lines, names = (np.array(v, np.intp) for v in zip(*pairs))
        steps = max(len(relatives[i]) for i in lines)
        ext = self._ext[names]
        # each pair's cost of every state at every step; past a line's end only blanks, at no cost
        emit = np.full((len(pairs), steps, ext.shape[1]), NEG, np.float32)
        emit[:, :, ::2] = 0.0
        for row, (i, n) in enumerate(pairs):
            emit[row, :len(relatives[i])] = relatives[i][:, ext[row]]
        costs, ends, back = _viterbi(emit, self._skip[names], self._length[names])
        greedy = {}
        for row, (i, n) in enumerate(pairs):
            if costs[row] > max_cost[n]:
                continue
            trace, chars = traces[i], self._chars[n]
            found = _character_steps(_backtrack(back[:, row], ends[row]), trace.logp, chars)
            probability = float(np.exp(np.mean(trace.logp[list(found), chars])))
            if i not in greedy:
                greedy[i] = _greedy_emissions(trace.logp)
            out[i].append(Spot(n, float(costs[row]), found, probability, _bounded(greedy[i], found[0], found[-1])))
        return out


    def cost(self, trace: Trace, name: int, cut: float) -> float:
        """The cost of name `name`'s best alignment in `trace`, where it may also run off either
        end of the line at `cut` per character left out (see `_viterbi`)."""
        relative = trace.logp - trace.logp.max(1, keepdims=True)
        if not len(relative):
            return float("inf")
        ext = self._ext[name:name + 1]
        emit = relative[:, ext[0]][None].copy()
        costs, _, _ = _viterbi(emit, self._skip[name:name + 1], self._length[name:name + 1], cut,
                               np.array([len(relative)]), track=False)
        return float(costs[0])


NEG = np.float32(-1e9)


def _viterbi(emit: np.ndarray, skip: np.ndarray, length: np.ndarray, cut: float | None = None,
             line_steps: np.ndarray | None = None, track: bool = True):
    """Free-start, free-end Viterbi of each row's extended labels (blank, c1, blank, ..., cL,
    blank) over `emit` (rows x steps x states: the relative log-probability of each state's
    symbol). Returns the best cost per row (>= 0), its (end step, state), and the back-pointers
    (steps x rows x states: states moved back, 0-2, or 3 where the path starts).

    With `cut`, a name may also run off the line (a read cut short by its box): it may start
    at its k-th character on the line's first step, or end on its line's last step
    (`line_steps`) short of its last character, at `cut` per character left out.
    Without `track`, no back-pointers are kept (None): the cost alone, in about half the time."""
    rows, steps, states = emit.shape
    last = 2 * length  # the final blank; the last character is last - 1
    np.copyto(emit, NEG, where=np.arange(states)[None, None, :] > last[:, None, None])  # past a name's end
    score = np.full((rows, states), NEG, np.float32)
    back = np.zeros((steps, rows, states), np.int8) if track else None
    blocked = ~skip
    at_end = np.empty((steps, 2, rows), np.float32)  # score on the last character and the blank after it
    row_index = np.arange(rows)
    one, two = np.full((rows, states), NEG, np.float32), np.full((rows, states), NEG, np.float32)
    start = np.full(states, NEG, np.float32)
    start[:2] = 0.0  # a path begins on the leading blank or the first character, at any step
    first = start if cut is None else -cut * (np.arange(states) // 2).astype(np.float32)
    cut_off = np.full((rows, states), NEG, np.float32)  # the score on each row's last step
    for t in range(steps):
        one[:, 1:] = score[:, :-1]
        two[:, 2:] = score[:, :-2]
        np.copyto(two, NEG, where=blocked)
        prev = np.maximum(score, np.maximum(one, two))
        begin = first if t == 0 else start
        fresh = begin > prev
        if track:
            moved = np.where(prev == score, 0, np.where(prev == one, 1, 2)).astype(np.int8)
            back[t] = np.where(fresh, 3, moved)
        score = np.where(fresh, begin, prev) + emit[:, t]
        at_end[t, 0], at_end[t, 1] = score[row_index, last - 1], score[row_index, last]
        if cut is not None:
            np.copyto(cut_off, score, where=(line_steps - 1 == t)[:, None])
    flat = at_end.reshape(steps * 2, rows).argmax(0)  # the earliest best end
    step, which = np.divmod(flat, 2)
    ends = np.stack([step, last - 1 + which], 1)
    best = at_end.reshape(steps * 2, rows)[flat, row_index]
    if cut is not None:  # or the line's last step, characters left
        left = length[:, None] - (np.arange(states)[None, :] + 1) // 2
        short = cut_off - cut * np.maximum(left, 0)
        state = short.argmax(1)
        better = short[row_index, state] > best
        best = np.where(better, short[row_index, state], best)
        ends[better] = np.stack([line_steps - 1, state], 1)[better]
    return -best, ends, back


def _backtrack(back: np.ndarray, end: np.ndarray) -> list[tuple[int, int]]:
    """The best path's (step, state) pairs, first to last."""
    t, s = int(end[0]), int(end[1])
    path = []
    while t >= 0:
        path.append((t, s))
        moved = int(back[t, s])
        if moved == 3:
            break
        s, t = s - moved, t - 1
    return path[::-1]


def _character_steps(path: list[tuple[int, int]], logp: np.ndarray, chars: np.ndarray) -> tuple[int, ...]:
    """The step each character is read at: where its probability peaks among the steps the
    path spends on it (CTC emits a character at one spike, blanks around it)."""
    at: dict[int, int] = {}
    for t, s in path:
        if s % 2:
            c = s // 2
            if c not in at or logp[t, chars[c]] > logp[at[c], chars[c]]:
                at[c] = t
    return tuple(at[i] for i in range(len(chars)))


def _greedy_emissions(logp: np.ndarray) -> list[tuple[int, int]]:
    """(step, symbol) of each symbol greedy CTC decoding emits."""
    best = logp.argmax(1)
    emit = best != BLANK
    emit[1:] &= best[1:] != best[:-1]
    return [(int(t), int(best[t])) for t in np.flatnonzero(emit)]


def _bounded(greedy: list[tuple[int, int]], first: int, last: int) -> bool:
    """Whether the greedy reading has no letter next to the span first..last: the last one it
    emits before it (a step off or more: the name's first letter may be read as another one
    step early) and the first after it are separators, or there are none."""
    before = [s for t, s in greedy if t < first - 1]
    after = [s for t, s in greedy if t > last + 1]
    return (not before or before[-1] == SEP) and (not after or after[0] == SEP)
