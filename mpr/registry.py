"""The brand registry: aliases learned from escalation, with provenance, used on later runs.

When escalate_vlm or escalate_cloud resolves OCR text that matched no brand ("C0OP",
"corp"), that text becomes a learned alias of the brand it resolved to, so the next run
resolves it at match_brands without asking again. Each alias records its source
(local_vlm, cloud_llm, manual), the run, stage, resolver and confidence that led to it,
and a review status: `learned` (active until reviewed), `approved`, `rejected`
(kept so it is not learned again, never used). `mpr brands` lists, adds, removes and
reviews them.

Aliases live in the results database (`brand` and `brand_alias` tables, see
mpr/db/models.py), so every machine sharing the database shares what was learned.
A registry file from before the database (`MPR_DATA_DIR/brand-registry.json`) is
imported once.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Literal

from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from mpr import settings
from mpr.brands import BrandList
from mpr.db import models as m
from mpr.db.session import session_scope, sqlite_missing
from mpr.errors import InputError
from mpr.matching import tokens
from mpr.records import Detection

Source = Literal["ocr", "local_vlm", "cloud_llm", "manual"]
Status = Literal["learned", "approved", "rejected"]
STAGE_SOURCE: dict[str, Source] = {"match_brands": "ocr", "escalate_vlm": "local_vlm", "escalate_cloud": "cloud_llm"}
ACTIVE = ("learned", "approved")


class Alias(BaseModel):
    text: str  # as OCR read it
    brand: str  # canonical brand name
    source: Source
    status: Status = "learned"
    confidence: float = 1.0
    seen: int = 1  # resolutions that taught it
    provenance: dict = Field(default_factory=dict)  # run_id, stage, resolver, source uri, t, crop_key
    created_at: str = ""
    updated_at: str = ""

    @property
    def key(self) -> str:
        return alias_key(self.text)


class Registry(BaseModel):
    version: int = 1
    aliases: list[Alias] = Field(default_factory=list)

    def find(self, text: str, brand: str | None = None) -> list[Alias]:
        key = alias_key(text)
        return [a for a in self.aliases if a.key == key and (brand is None or a.brand == brand)]

    def active_for(self, names: list[str]) -> dict[str, list[str]]:
        """brand -> learned alias texts to match, for the brands of one run. A text
        learned for two brands is ambiguous and used for neither until reviewed."""
        owners: dict[str, set[str]] = {}
        for a in self.aliases:
            if a.status in ACTIVE and a.brand in names:
                owners.setdefault(a.key, set()).add(a.brand)
        out: dict[str, list[str]] = {}
        for a in self.aliases:
            if a.status in ACTIVE and owners.get(a.key) == {a.brand}:
                out.setdefault(a.brand, []).append(a.text)
        return out


def alias_key(text: str) -> str:
    """Texts that match the same way (case, accents, spacing, OCR confusions) share a key."""
    return "".join(tokens(text))


def load_registry() -> Registry:
    """Every alias in the database, learned, approved and rejected."""
    if sqlite_missing() and not (settings.data_dir() / "brand-registry.json").exists():
        return Registry()  # nothing learned yet: reading must not create the database
    with session_scope() as session:
        _import_legacy_file(session)
        rows = session.scalars(select(m.BrandAlias).join(m.Brand).order_by(m.BrandAlias.id)).all()
        return Registry(aliases=[_alias(row) for row in rows])


def _alias(row: m.BrandAlias) -> Alias:
    return Alias(text=row.text, brand=row.brand.name, source=row.source, status=row.status,
                 confidence=row.confidence, seen=row.seen, provenance=row.provenance or {},
                 created_at=_iso(row.created_at), updated_at=_iso(row.updated_at))


def _iso(value: datetime | None) -> str:
    return value.isoformat(timespec="seconds") if value else ""


def _brand(session: Session, name: str) -> m.Brand:
    """The brand row, created when missing (a concurrent creator wins, then we read its row)."""
    brand = session.scalars(select(m.Brand).where(m.Brand.name == name)).first()
    if brand is not None:
        return brand
    try:
        with session.begin_nested():
            brand = m.Brand(name=name)
            session.add(brand)
        return brand
    except IntegrityError:
        return session.scalars(select(m.Brand).where(m.Brand.name == name)).one()


def _rows(session: Session, text: str, brand: str | None = None) -> list[m.BrandAlias]:
    query = select(m.BrandAlias).join(m.Brand).where(m.BrandAlias.match_key == alias_key(text))
    if brand is not None:
        query = query.where(m.Brand.name == brand)
    return list(session.scalars(query.with_for_update()))


def record_brands(brands: BrandList) -> None:
    """The run's brands (canonical name, logo exemplar) as rows; aliases stay in the brands file."""
    with session_scope() as session:
        for b in brands.brands:
            row = _brand(session, b.name)
            logos = b.logos
            row.logo_key = logos[0] if logos else row.logo_key


def _import_legacy_file(session: Session) -> None:
    """Aliases learned before the database existed (a JSON file) move into it once."""
    legacy = settings.data_dir() / "brand-registry.json"
    if not legacy.exists():
        return
    old = Registry.model_validate(json.loads(legacy.read_text(encoding="utf-8")))
    for a in old.aliases:
        if not _rows(session, a.text, a.brand):
            session.add(m.BrandAlias(brand=_brand(session, a.brand), text=a.text, match_key=a.key, source=a.source,
                                     status=a.status, confidence=a.confidence, seen=a.seen, provenance=a.provenance))
    session.flush()
    legacy.rename(legacy.with_suffix(".json.imported"))


def apply_registry(brands: BrandList, registry: Registry | None = None) -> BrandList:
    """The run's brand list with the registry's active learned aliases added."""
    learned = (registry or load_registry()).active_for(brands.names)
    if not learned:
        return brands
    out = brands.model_copy(deep=True)
    for brand in out.brands:
        known = {alias_key(t) for t in [brand.name, *brand.aliases]}
        for text in learned.get(brand.name, []):
            if alias_key(text) not in known:
                brand.aliases.append(text)
                known.add(alias_key(text))
    return out


def learn(detections: list[Detection], run: dict, min_confidence: float, min_letters: int = 3) -> int:
    """Record the OCR text of escalation resolutions as learned aliases; returns how many are new.
    Continuity detections carry the text of the read they continue, which matched already."""
    teach = [d for d in detections if d.source in ("escalate_vlm", "escalate_cloud") and d.resolver != "continuity"
             and d.confidence >= min_confidence and sum(c.isalpha() for c in d.text) >= min_letters]
    if not teach:
        return 0
    new = 0
    with session_scope() as session:
        for d in teach:
            known = _rows(session, d.text, d.brand)
            if known:
                known[0].seen += 1
                known[0].confidence = max(known[0].confidence, d.confidence)
                known[0].updated_at = _now()
                continue
            session.add(m.BrandAlias(
                brand=_brand(session, d.brand), text=d.text, match_key=alias_key(d.text),
                source=STAGE_SOURCE[d.source], confidence=d.confidence,
                provenance={**run, "stage": d.source, "resolver": d.resolver, "t": d.t}))
            session.flush()
            new += 1
    return new


def add_manual(text: str, brand: str) -> Alias:
    if not alias_key(text):
        raise InputError(f"alias {text!r}: needs letters or digits")
    with session_scope() as session:
        for row in _rows(session, text, brand):
            session.delete(row)
        session.flush()
        row = m.BrandAlias(brand=_brand(session, brand), text=text, match_key=alias_key(text), source="manual",
                           status="approved")
        session.add(row)
        session.flush()
        return _alias(row)


def remove(text: str, brand: str | None = None) -> int:
    with session_scope() as session:
        gone = _rows(session, text, brand)
        for row in gone:
            session.delete(row)
    if not gone:
        raise InputError(f"alias {text!r}: not in the registry")
    return len(gone)


def review(text: str, status: Status, brand: str | None = None) -> int:
    with session_scope() as session:
        found = _rows(session, text, brand)
        for row in found:
            row.status, row.updated_at = status, _now()
    if not found:
        raise InputError(f"alias {text!r}: not in the registry")
    return len(found)


def _now() -> datetime:
    return datetime.now(timezone.utc)
