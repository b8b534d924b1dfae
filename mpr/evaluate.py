"""Per-second brand presence: a report against ground truth (precision, recall, F1)."""

from __future__ import annotations

import math

from mpr.records import Report


def presence(report: Report, seconds: int) -> dict[str, set[int]]:
    """Integer seconds inside a segment of each brand (what a reader of the report sees)."""
    found: dict[str, set[int]] = {}
    for brand in report.brands:
        hits = found.setdefault(brand.brand, set())
        for s in brand.segments:
            hits.update(k for k in range(math.ceil(s.start), math.floor(s.end) + 1) if k < seconds)
    return found


def score(truth: dict[str, list[int] | set[int]], found: dict[str, set[int]], brands: list[str]) -> dict:
    """Micro-averaged over (brand, second) pairs, restricted to `brands`."""
    tp = fp = fn = 0
    per_brand = {}
    for brand in brands:
        t, f = set(truth.get(brand, ())), found.get(brand, set())
        per_brand[brand] = {"tp": len(t & f), "fp": len(f - t), "fn": len(t - f)}
        tp, fp, fn = tp + len(t & f), fp + len(f - t), fn + len(t - f)
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4),
            "tp": tp, "fp": fp, "fn": fn, "per_brand": per_brand}
