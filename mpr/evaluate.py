"""Per-second brand presence: a report against ground truth (precision, recall, F1).

Truth is JSON with `brands`, `presence` ({brand: [integer seconds visible]}) and
`seconds` or `duration_s` — the format `mpr synth` writes — or a file of several clips
under `clips` keyed by source file name (docs/real-dev-truth.json).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from mpr.errors import InputError
from mpr.records import Report


@dataclass
class Truth:
    brands: list[str]
    presence: dict[str, set[int]]
    seconds: int  # seconds 0 .. seconds-1 are labelled


def presence(report: Report, seconds: int) -> dict[str, set[int]]:
    """Integer seconds inside a segment of each brand (what a reader of the report sees)."""
    found: dict[str, set[int]] = {}
    for brand in report.brands:
        hits = found.setdefault(brand.brand, set())
        for s in brand.segments:
            hits.update(k for k in range(math.ceil(s.start), math.floor(s.end) + 1) if k < seconds)
    return found


def prf(tp: int, fp: int, fn: int) -> dict:
    """Precision, recall and F1 from counts (1.0 where nothing was expected or found)."""
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4),
            "tp": tp, "fp": fp, "fn": fn}


def score(truth: dict[str, list[int] | set[int]], found: dict[str, set[int]], brands: list[str]) -> dict:
    """Micro-averaged over (brand, second) pairs, restricted to `brands`; also per brand."""
    per_brand = {}
    for brand in brands:
        t, f = set(truth.get(brand, ())), found.get(brand, set())
        per_brand[brand] = prf(len(t & f), len(f - t), len(t - f))
    total = prf(*(sum(b[k] for b in per_brand.values()) for k in ("tp", "fp", "fn")))
    return {**total, "per_brand": per_brand}


def evaluate(report: Report, truth: Truth) -> dict:
    return score(truth.presence, presence(report, truth.seconds), truth.brands)


def format_scores(result: dict) -> str:
    """A text table: one row per brand, then the micro-averaged total."""
    lines = [f"{'brand':24} {'precision':>9} {'recall':>7} {'F1':>6} {'tp':>4} {'fp':>4} {'fn':>4}"]
    for name, row in [*result.get("per_brand", {}).items(), ("all (brand-seconds)", result)]:
        lines.append(f"{name:24} {row['precision']:9.2f} {row['recall']:7.2f} {row['f1']:6.2f} "
                     f"{row['tp']:4} {row['fp']:4} {row['fn']:4}")
    return "\n".join(lines)


def load_truth(path: str | Path, source_name: str) -> Truth:
    """Read a truth file; a multi-clip file is looked up by the report's source file name."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"truth file {path}: no such file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"truth file {path}: not readable JSON ({exc})") from None
    if isinstance(data, dict) and "clips" in data:
        if source_name not in data["clips"]:
            raise InputError(f"truth file {path}: no clip named {source_name} "
                             f"(has: {', '.join(data['clips'])})")
        data = data["clips"][source_name]
    elif isinstance(data, dict) and data.get("source") and Path(str(data["source"])).name != source_name:
        raise InputError(f"truth file {path}: labels {data['source']}, but the report is of {source_name}")
    try:
        seconds = data.get("seconds") or math.ceil(float(data["duration_s"]))
        return Truth(brands=[str(b) for b in data["brands"]], seconds=int(seconds),
                     presence={str(b): {int(k) for k in ks} for b, ks in data["presence"].items()})
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise InputError(f"truth file {path}: expected brands, presence and seconds or duration_s ({exc!r})") \
            from None


def load_report(path: str | Path) -> Report:
    try:
        return Report.model_validate_json(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"report {path}: no such file") from None
    except (OSError, UnicodeDecodeError, ValidationError) as exc:
        first = exc.errors()[0]["msg"] if isinstance(exc, ValidationError) else str(exc)
        raise InputError(f"report {path}: not a report.json ({first})") from None
