"""The brands file: canonical names, aliases and optional logo exemplars."""

from __future__ import annotations

import hashlib
import json

import fsspec
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from mpr.errors import InputError


class Brand(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    aliases: list[str] = Field(default_factory=list)
    logo: str | list[str] | None = None  # exemplar image(s), relative to the brands file

    @property
    def logos(self) -> list[str]:
        return [self.logo] if isinstance(self.logo, str) else list(self.logo or [])

    @field_validator("name", "aliases", mode="after")
    @classmethod
    def _no_blank(cls, value):
        items = value if isinstance(value, list) else [value]
        if any(not str(v).strip() for v in items):
            raise ValueError("names and aliases must not be blank")
        return value


class BrandList(BaseModel):
    model_config = ConfigDict(extra="forbid")

    brands: list[Brand] = Field(min_length=1)
    base_url: str = ""  # folder of the brands file, for resolving logo paths
    logo_digests: dict[str, str] = Field(default_factory=dict)  # logo path -> content hash (cache keys)

    def digest(self) -> str:
        """Part of the cache key of every stage that reads the brand list (logo contents included)."""
        payload = json.dumps(self.model_dump(exclude={"base_url"}), sort_keys=True)
        return hashlib.blake2b(payload.encode(), digest_size=12).hexdigest()

    def logo_url(self, path: str) -> str:
        if "://" in path or path.startswith("/") or not self.base_url:
            return path
        return f"{self.base_url.rstrip('/')}/{path}"

    def read_logo(self, path: str) -> bytes:
        with fsspec.open(self.logo_url(path), "rb") as fh:
            return fh.read()

    @property
    def names(self) -> list[str]:
        return [b.name for b in self.brands]


def load_brands(spec: str | list | dict) -> BrandList:
    """Load a brands file (path or fsspec URL), or validate an inline list / mapping."""
    where = "brands"
    base = ""
    if isinstance(spec, str):
        where, base = spec, spec.rsplit("/", 1)[0] if "/" in spec else "."
        try:
            with fsspec.open(spec, "r", encoding="utf-8") as fh:
                spec = yaml.safe_load(fh)
        except FileNotFoundError:
            raise InputError(f"brands file {where}: no such file") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"brands file {where}: cannot be read ({exc})") from None
        except yaml.YAMLError as exc:
            raise InputError(f"brands file {where}: invalid YAML ({_yaml_where(exc)})") from None
    if isinstance(spec, list):
        spec = {"brands": spec}
    if not isinstance(spec, dict):
        raise InputError(f"brands file {where}: expected a mapping with a 'brands' list")
    try:
        brands = BrandList(**spec, base_url=base)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        raise InputError(f"brands file {where}: {loc}: {err['msg']}") from None
    except TypeError as exc:
        raise InputError(f"brands file {where}: {exc}") from None
    return _check_logos(brands, where)


def _check_logos(brands: BrandList, where: str) -> BrandList:
    """Every logo must be a readable image; its content hash joins the cache keys."""
    import cv2
    import numpy as np

    digests = {}
    for brand in brands.brands:
        for path in brand.logos:
            try:
                data = brands.read_logo(path)
            except (FileNotFoundError, OSError):
                raise InputError(f"brands file {where}: {brand.name}: logo {path}: no such file") from None
            if cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) is None:
                raise InputError(f"brands file {where}: {brand.name}: logo {path}: not an image")
            digests[path] = hashlib.blake2b(data, digest_size=12).hexdigest()
    return brands.model_copy(update={"logo_digests": digests})


def _yaml_where(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or "syntax error"
    return f"line {mark.line + 1}: {problem}" if mark else problem
