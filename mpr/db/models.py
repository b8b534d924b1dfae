"""The database schema (SQLAlchemy 2): media, timelines, brands, runs and their results.

Media keys are relative to their storage root (`MPR_MEDIA_IN` / `MPR_MEDIA_OUT`), so a
database moves between a laptop (local folders) and the cloud (s3://) unchanged.
A run is identified by `run_key` (source fingerprint + profile + every resolved stage
config + brand list): re-running the same thing replaces its rows instead of adding more.
Schema changes go through alembic migrations in `mpr/db/migrations`.
"""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import JSON, BigInteger, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import DateTime


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    type_annotation_map = {dict: JSON, list: JSON, datetime: DateTime(timezone=True)}


class MediaAsset(Base):
    """One media file under a storage root, with what probing found."""

    __tablename__ = "media_asset"
    __table_args__ = (UniqueConstraint("root", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    root: Mapped[str] = mapped_column(String(16), default="in")  # in | out: which media root the key is under
    key: Mapped[str] = mapped_column(String(1024))  # relative to the root, '/'-separated, never '..'
    kind: Mapped[str] = mapped_column(String(16))  # video | audio | image
    size_bytes: Mapped[int] = mapped_column(BigInteger, default=0)  # matches exceed 2 GiB
    duration_s: Mapped[float | None] = mapped_column(Float)
    fps: Mapped[float | None] = mapped_column(Float)
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    video_codec: Mapped[str | None] = mapped_column(String(64))
    audio_codec: Mapped[str | None] = mapped_column(String(64))
    fingerprint: Mapped[str | None] = mapped_column(String(64), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Timeline(Base):
    """The ordered chunks of one long source (what `chunk_source` produced)."""

    __tablename__ = "timeline"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(1024), unique=True)  # the source's key or URI
    source_asset_id: Mapped[int | None] = mapped_column(ForeignKey("media_asset.id", ondelete="SET NULL"))
    chunk_s: Mapped[float] = mapped_column(Float)
    duration_s: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    chunks: Mapped[list[TimelineChunk]] = relationship(
        order_by="TimelineChunk.position", cascade="all, delete-orphan", back_populates="timeline")


class TimelineChunk(Base):
    __tablename__ = "timeline_chunk"
    __table_args__ = (UniqueConstraint("timeline_id", "position"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    timeline_id: Mapped[int] = mapped_column(ForeignKey("timeline.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)  # 0, 1, 2, ... in source order
    asset_id: Mapped[int] = mapped_column(ForeignKey("media_asset.id", ondelete="RESTRICT"))
    offset_s: Mapped[float] = mapped_column(Float)  # where the chunk starts in the source
    timeline: Mapped[Timeline] = relationship(back_populates="chunks")
    asset: Mapped[MediaAsset] = relationship()


class Brand(Base):
    __tablename__ = "brand"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(256), unique=True)  # canonical name
    logo_key: Mapped[str | None] = mapped_column(String(1024))  # exemplar image (brands file or media root)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    aliases: Mapped[list[BrandAlias]] = relationship(cascade="all, delete-orphan", back_populates="brand")


class BrandAlias(Base):
    """A text that means a brand: from the brands file, learned from escalation, or added by hand."""

    __tablename__ = "brand_alias"
    __table_args__ = (UniqueConstraint("brand_id", "match_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    brand_id: Mapped[int] = mapped_column(ForeignKey("brand.id", ondelete="CASCADE"))
    text: Mapped[str] = mapped_column(String(512))
    match_key: Mapped[str] = mapped_column(String(512), index=True)  # normalised text (mpr.registry.alias_key)
    source: Mapped[str] = mapped_column(String(16))  # ocr | local_vlm | cloud_llm | manual
    status: Mapped[str] = mapped_column(String(16), default="learned")  # learned | approved | rejected
    confidence: Mapped[float] = mapped_column(Float, default=1.0)
    seen: Mapped[int] = mapped_column(Integer, default=1)
    provenance: Mapped[dict] = mapped_column(default=dict)  # run, stage, resolver, source, t
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    brand: Mapped[Brand] = relationship(back_populates="aliases")


class Run(Base):
    """One analysis of one source with one profile and config; its results hang off it."""

    __tablename__ = "run"

    id: Mapped[int] = mapped_column(primary_key=True)
    run_key: Mapped[str] = mapped_column(String(128), unique=True)
    flow_run_id: Mapped[str | None] = mapped_column(String(64), index=True)  # the latest Prefect flow run
    source: Mapped[str] = mapped_column(String(1024), index=True)  # media key, timeline:ID or URI as given
    asset_id: Mapped[int | None] = mapped_column(ForeignKey("media_asset.id", ondelete="SET NULL"))
    timeline_id: Mapped[int | None] = mapped_column(ForeignKey("timeline.id", ondelete="SET NULL"))
    fingerprint: Mapped[str] = mapped_column(String(64), default="")
    profile: Mapped[str] = mapped_column(String(256))
    overrides: Mapped[dict] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(16), default="running")  # running | completed | failed | cancelled
    error: Mapped[str | None] = mapped_column(Text)
    report: Mapped[dict | None] = mapped_column()  # report.json minus brands/detections (those are rows)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column()


class Detection(Base):
    __tablename__ = "detection"
    __table_args__ = (Index("ix_detection_run_brand", "run_id", "brand"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("run.id", ondelete="CASCADE"))
    timeline_id: Mapped[int | None] = mapped_column(ForeignKey("timeline.id", ondelete="SET NULL"))
    t: Mapped[float] = mapped_column(Float)  # source seconds
    brand: Mapped[str] = mapped_column(String(256))
    confidence: Mapped[float] = mapped_column(Float)
    x1: Mapped[float] = mapped_column(Float)
    y1: Mapped[float] = mapped_column(Float)
    x2: Mapped[float] = mapped_column(Float)
    y2: Mapped[float] = mapped_column(Float)
    text: Mapped[str] = mapped_column(Text, default="")
    source_stage: Mapped[str] = mapped_column(String(32))  # match_brands | escalate_vlm | escalate_cloud
    resolver: Mapped[str] = mapped_column(String(128), default="ocr")
    region: Mapped[str] = mapped_column(String(16), default="frame")
    frame: Mapped[str] = mapped_column(String(512), default="")
    match_score: Mapped[float] = mapped_column(Float, default=0.0)
    exposure: Mapped[int | None] = mapped_column(Integer, nullable=True)  # exposure id within the run's report
    share: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    zone: Mapped[str] = mapped_column(String(16), default="", server_default="")
    placement: Mapped[str | None] = mapped_column(String(16), nullable=True)
    sharpness: Mapped[float | None] = mapped_column(Float, nullable=True)
    contrast: Mapped[float | None] = mapped_column(Float, nullable=True)


class Exposure(Base):
    """One segment of one brand: a closed interval of sample times and the seconds it stands for."""

    __tablename__ = "exposure"
    __table_args__ = (Index("ix_exposure_run_brand", "run_id", "brand"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("run.id", ondelete="CASCADE"))
    brand: Mapped[str] = mapped_column(String(256))
    start: Mapped[float] = mapped_column(Float)
    end: Mapped[float] = mapped_column(Float)
    exposure_s: Mapped[float] = mapped_column(Float)
    confidence: Mapped[float] = mapped_column(Float)
    detections: Mapped[int] = mapped_column(Integer)
    source_stage: Mapped[str] = mapped_column(String(32), default="match_brands")


# "Exposure seconds per brand per match": the latest completed run of each source and profile.
BRAND_EXPOSURE_VIEW = """
CREATE VIEW brand_exposure AS
SELECT r.source AS source, r.profile AS profile, r.id AS run_id, e.brand AS brand,
       SUM(e.exposure_s) AS exposure_s, COUNT(*) AS segments, SUM(e.detections) AS detections
FROM exposure e JOIN run r ON r.id = e.run_id
WHERE r.status = 'completed'
  AND r.finished_at = (SELECT MAX(r2.finished_at) FROM run r2
                       WHERE r2.source = r.source AND r2.profile = r.profile AND r2.status = 'completed')
GROUP BY r.source, r.profile, r.id, e.brand
"""
