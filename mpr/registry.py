"""The brand registry: aliases learned from escalation, with provenance, used on later runs.

When escalate_vlm or escalate_cloud resolves OCR text that matched no brand ("C0OP",
"corp"), that text becomes a learned alias of the brand it resolved to, so the next run
resolves it at match_brands without asking again. Each alias records its source
(local_vlm, cloud_llm, manual), the run, stage, resolver and confidence that led to it,
and a review status: `learned` (active until reviewed), `approved`, `rejected`
(kept so it is not learned again, never used). `mpr brands` lists, adds, removes and
reviews them.

Until the data layer exists this is one JSON file (`MPR_DATA_DIR/brand-registry.json`),
written under a lock by replace, so concurrent runs never corrupt it.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator, Literal

from pydantic import BaseModel, Field

from mpr import settings
from mpr.brands import BrandList
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


def registry_path() -> Path:
    return Path(os.environ.get("MPR_REGISTRY") or settings.data_dir() / "brand-registry.json")


def load_registry(path: Path | None = None) -> Registry:
    path = path or registry_path()
    if not path.exists():
        return Registry()
    try:
        return Registry.model_validate_json(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise InputError(f"brand registry {path}: not a registry file ({str(exc).splitlines()[0]})") from None


@contextmanager
def editing(path: Path | None = None) -> Iterator[Registry]:
    """Load, let the caller change, write back atomically; one writer at a time."""
    path = path or registry_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        registry = load_registry(path)
        yield registry
        fd, tmp = tempfile.mkstemp(prefix=".registry.", dir=path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(registry.model_dump_json(indent=2) + "\n")
        os.replace(tmp, path)


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


def learn(detections: list[Detection], run: dict, min_confidence: float, min_letters: int = 3,
          path: Path | None = None) -> int:
    """Record the OCR text of escalation resolutions as learned aliases; returns how many are new."""
    teach = [d for d in detections if d.source in ("escalate_vlm", "escalate_cloud")
             and d.confidence >= min_confidence and sum(c.isalpha() for c in d.text) >= min_letters]
    if not teach:
        return 0
    new = 0
    now = _now()
    with editing(path) as registry:
        for d in teach:
            known = registry.find(d.text, d.brand)
            if known:
                known[0].seen += 1
                known[0].confidence = max(known[0].confidence, d.confidence)
                known[0].updated_at = now
                continue
            registry.aliases.append(Alias(
                text=d.text, brand=d.brand, source=STAGE_SOURCE[d.source], confidence=d.confidence,
                provenance={**run, "stage": d.source, "resolver": d.resolver, "t": d.t},
                created_at=now, updated_at=now))
            new += 1
    return new


def add_manual(text: str, brand: str, path: Path | None = None) -> Alias:
    if not alias_key(text):
        raise InputError(f"alias {text!r}: needs letters or digits")
    now = _now()
    with editing(path) as registry:
        for a in registry.find(text, brand):
            registry.aliases.remove(a)
        alias = Alias(text=text, brand=brand, source="manual", status="approved", created_at=now, updated_at=now)
        registry.aliases.append(alias)
    return alias


def remove(text: str, brand: str | None = None, path: Path | None = None) -> int:
    with editing(path) as registry:
        gone = registry.find(text, brand)
        for a in gone:
            registry.aliases.remove(a)
    if not gone:
        raise InputError(f"alias {text!r}: not in the registry")
    return len(gone)


def review(text: str, status: Status, brand: str | None = None, path: Path | None = None) -> int:
    with editing(path) as registry:
        found = registry.find(text, brand)
        for a in found:
            a.status = status
            a.updated_at = _now()
    if not found:
        raise InputError(f"alias {text!r}: not in the registry")
    return len(found)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
