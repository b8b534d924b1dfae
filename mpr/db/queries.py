"""Questions across runs: exposure seconds per brand per match (the `brand_exposure` view),
and which media assets still wait for a run of a profile (the batch flow's work list)."""

from __future__ import annotations

from sqlalchemy import and_, exists, or_, select, text

from mpr.db import models as m
from mpr.db.session import session_scope

COLUMNS = ["source", "profile", "run_id", "brand", "exposure_s", "segments", "detections"]


def exposure_per_brand(source: str | None = None, profile: str | None = None, brand: str | None = None) -> list[dict]:
    """One row per source, profile and brand from the newest completed run of each source+profile."""
    clauses, params = [], {}
    for name, value in (("source", source), ("profile", profile), ("brand", brand)):
        if value is not None:
            clauses.append(f"{name} = :{name}")
            params[name] = value
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    sql = f"SELECT {', '.join(COLUMNS)} FROM brand_exposure {where} ORDER BY source, profile, exposure_s DESC, brand"
    with session_scope() as session:
        rows = session.execute(text(sql), params).mappings().all()
    return [{**row, "exposure_s": round(float(row["exposure_s"]), 3), "segments": int(row["segments"]),
             "detections": int(row["detections"])} for row in rows]


def pending_assets(profile: str, kind: str = "video", include_done: bool = False) -> list[str]:
    """Keys of the media-in assets of `kind` that have no completed run with `profile`
    (the profile's name, as `Run.profile` stores it), sorted. `include_done`: every one.

    A run counts when it names the asset (`Run.asset_id`), or, made before the file was
    registered, names its key as the source. Chunks of a timeline are left out: they are
    analysed through their timeline (`timeline:ID`), not one by one.
    """
    query = select(m.MediaAsset.key).where(
        m.MediaAsset.root == "in", m.MediaAsset.kind == kind,
        ~exists().where(m.TimelineChunk.asset_id == m.MediaAsset.id))
    if not include_done:
        query = query.where(~exists().where(
            m.Run.status == "completed", m.Run.profile == profile,
            or_(m.Run.asset_id == m.MediaAsset.id,
                and_(m.Run.asset_id.is_(None), m.Run.source == m.MediaAsset.key))))
    with session_scope() as session:
        return list(session.scalars(query.order_by(m.MediaAsset.key)))
