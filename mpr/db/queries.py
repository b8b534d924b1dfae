"""Questions across runs: exposure seconds per brand per match (the `brand_exposure` view)."""

from __future__ import annotations

from sqlalchemy import text

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
