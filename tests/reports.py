"""Small hand-made reports for database tests (importable by child processes)."""

from __future__ import annotations

from mpr.records import BrandExposure, Detection, Report, Segment


def report(source: str, hits: int = 3, brand: str = "Nordlys") -> Report:
    detections = [Detection(t=float(t), brand=brand, confidence=0.9, box=(1, 2, 3, 4), text=brand.upper())
                  for t in range(hits)]
    segment = Segment(start=0.0, end=float(hits - 1), confidence=0.9, detections=hits, exposure_s=float(hits))
    return Report(source=source, profile="p", duration_s=10.0, frames_analyzed=10, frames_kept=10,
                  brands=[BrandExposure(brand=brand, exposure_s=float(hits), detections=hits, segments=[segment])],
                  detections=detections)
