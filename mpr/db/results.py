"""Runs and their results in the database: written idempotently, read back into reports.

A run row is keyed by `run_key` (the final stage's cache key: source fingerprint +
profile + every resolved stage config + brand list), so re-running the same thing
reuses the row and *replaces* its detections and exposures. The replacement is one
transaction: a run interrupted mid-write leaves the previous rows (or none), never a mix.
Runs on different sources touch different rows, so they do not wait on each other
(PostgreSQL row locks; SQLite serialises the short write transactions, see the README).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timezone

from sqlalchemy import delete, insert, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from mpr.db import models as m
from mpr.db.session import session_scope, with_retries
from mpr.errors import InputError
from mpr.records import BrandExposure, Detection, Report, Segment

REPORT_EXCLUDE = {"brands", "detections"}  # stored as rows (the brands' exposure figures under BRAND_FIGURES)
BRAND_FIGURES = "brand_figures"  # Run.report key: per brand, the BrandExposure fields that are not rows
ROW_FIELDS = {"brand", "exposure_s", "detections", "segments"}
MEASURES = ("exposure", "share", "zone", "placement", "sharpness", "contrast")


@with_retries
def start_run(run_key: str, source: str, profile: str, overrides: dict, fingerprint: str,
              flow_run_id: str | None, asset_id: int | None = None, timeline_id: int | None = None) -> int:
    """Create or reuse the run row for this key and mark it running; returns its id."""
    with session_scope() as session:
        _create_if_missing(session, run_key, source, profile)
        run = _locked_run(session, run_key)
        run.source, run.profile, run.overrides, run.fingerprint = source, profile, overrides, fingerprint
        run.flow_run_id, run.asset_id, run.timeline_id = flow_run_id, asset_id, timeline_id
        run.status, run.error, run.started_at, run.finished_at = "running", None, _now(), None
        session.flush()
        return run.id


@with_retries
def fail_run(run_id: int, error: str, status: str = "failed") -> None:
    """Mark a run `failed` (or `cancelled`) with its error."""
    with session_scope() as session:
        run = session.get(m.Run, run_id)
        if run is not None:
            run.status, run.error, run.finished_at = status, error[:2000], _now()


@with_retries
def save_results(run_id: int, report: Report, timeline_id: int | None = None) -> None:
    """Replace the run's detections and exposures with the report's, in one transaction."""
    with session_scope() as session:
        run = session.get(m.Run, run_id, with_for_update=True)
        session.execute(delete(m.Detection).where(m.Detection.run_id == run_id))
        session.execute(delete(m.Exposure).where(m.Exposure.run_id == run_id))
        if report.detections:
            session.execute(insert(m.Detection), [_detection_row(run_id, timeline_id, d) for d in report.detections])
        exposures = [_exposure_row(run_id, b.brand, s) for b in report.brands for s in b.segments]
        if exposures:
            session.execute(insert(m.Exposure), exposures)
        run.report = {**report.model_dump(mode="json", exclude=REPORT_EXCLUDE),
                      BRAND_FIGURES: {b.brand: b.model_dump(mode="json", exclude=ROW_FIELDS) for b in report.brands}}
        run.status, run.error, run.finished_at = "completed", None, _now()


def _detection_row(run_id: int, timeline_id: int | None, d: Detection) -> dict:
    x1, y1, x2, y2 = d.box
    return dict(run_id=run_id, timeline_id=timeline_id, t=d.t, brand=d.brand, confidence=d.confidence,
                x1=x1, y1=y1, x2=x2, y2=y2, text=d.text, source_stage=d.source, resolver=d.resolver,
                region=d.region, frame=d.frame, match_score=d.match_score, **{k: getattr(d, k) for k in MEASURES})


def _exposure_row(run_id: int, brand: str, s: Segment) -> dict:
    return dict(run_id=run_id, brand=brand, start=s.start, end=s.end, exposure_s=s.exposure_s,
                confidence=s.confidence, detections=s.detections, source_stage=s.source)


def _create_if_missing(session: Session, run_key: str, source: str, profile: str) -> None:
    """INSERT ... ON CONFLICT DO NOTHING: runs of one key that start together (two runs of
    the same source at once) all get the one row instead of a unique-key error."""
    dialect = {"postgresql": postgresql, "sqlite": sqlite}[session.get_bind().dialect.name]
    session.execute(dialect.insert(m.Run).values(
        run_key=run_key, source=source, profile=profile, overrides={}, fingerprint="", status="running",
        started_at=_now()).on_conflict_do_nothing(index_elements=["run_key"]))


def _locked_run(session: Session, run_key: str) -> m.Run | None:
    return session.scalars(select(m.Run).where(m.Run.run_key == run_key).with_for_update()).first()


def _now() -> datetime:
    return datetime.now(timezone.utc)


# ---- reading back ---------------------------------------------------------------------


def find_runs(ref: str, session: Session) -> list[m.Run]:
    """Completed runs matching RUN (row id, run key or Prefect flow run id) or SOURCE, newest first."""
    clauses = [m.Run.run_key == ref, m.Run.flow_run_id == ref, m.Run.source == ref]
    if ref.isdigit():
        clauses.append(m.Run.id == int(ref))
    query = (select(m.Run).where(or_(*clauses), m.Run.status == "completed")
             .order_by(m.Run.finished_at.desc(), m.Run.id.desc()))
    return list(session.scalars(query))


def load_report(ref: str, profile: str | None = None) -> Report:
    """The report of a run, rebuilt from its rows (the newest completed run of a source)."""
    with session_scope() as session:
        runs = [r for r in find_runs(ref, session) if profile is None or r.profile == profile]
        if not runs:
            raise InputError(f"no completed run matches {ref!r}" + (f" with profile {profile}" if profile else ""))
        return report_of(session, runs[0])


def report_of(session: Session, run: m.Run) -> Report:
    detections = [_detection(row) for row in session.scalars(
        select(m.Detection).where(m.Detection.run_id == run.id).order_by(m.Detection.t, m.Detection.brand,
                                                                         m.Detection.id))]
    segments: dict[str, list[Segment]] = defaultdict(list)
    for row in session.scalars(select(m.Exposure).where(m.Exposure.run_id == run.id)
                               .order_by(m.Exposure.brand, m.Exposure.start)):
        segments[row.brand].append(Segment(start=row.start, end=row.end, confidence=row.confidence,
                                           detections=row.detections, source=row.source_stage,
                                           exposure_s=row.exposure_s))
    per_brand = defaultdict(int)
    for d in detections:
        per_brand[d.brand] += 1
    stored = dict(run.report or {})
    figures = stored.pop(BRAND_FIGURES, {})
    brands = [BrandExposure(brand=b, exposure_s=round(sum(s.exposure_s for s in segs), 3),
                            detections=per_brand[b], segments=segs, **figures.get(b, {})) for b, segs in segments.items()]
    brands.sort(key=lambda b: (-b.exposure_s, b.brand))
    return Report(**stored, brands=brands, detections=detections)


def _detection(row: m.Detection) -> Detection:
    return Detection(t=row.t, brand=row.brand, confidence=row.confidence, box=(row.x1, row.y1, row.x2, row.y2),
                     text=row.text, source=row.source_stage, resolver=row.resolver, match_score=row.match_score,
                     region=row.region, frame=row.frame, **{k: getattr(row, k) for k in MEASURES})


def asset_id(key: str) -> int | None:
    """The registered media-in asset with this key, if any (`mpr scan` / `mpr chunk` register them)."""
    with session_scope() as session:
        return session.scalars(select(m.MediaAsset.id).where(m.MediaAsset.root == "in",
                                                             m.MediaAsset.key == key)).first()
