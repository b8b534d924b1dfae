"""Profiles: the pipeline graph and typed per-stage configs, loaded and validated up front.

A profile is YAML with `name`, optional `extends`, `pipeline` (stages, edges with an
optional routing condition) and `configs` (one mapping per stage). Every error is one
line naming the profile, the stage and the key.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from mpr.errors import InputError
from mpr.records import ROUTES, ReportBody
from tasks.registry import STAGES

PROFILES_DIR = Path(__file__).resolve().parent.parent / "profiles"
EDGE_RE = re.compile(r"^\s*(\w+)\s*->\s*(\w+)\s*(?:\[\s*(\w+)\s*\])?\s*$")
STAGE_OPTIONS = {"retries", "gpu"}


@dataclass(frozen=True)
class Edge:
    src: str
    dst: str
    when: str | None = None  # routing condition: only that part of src's output flows

    def __str__(self) -> str:
        return f"{self.src} -> {self.dst}" + (f" [{self.when}]" if self.when else "")


@dataclass
class Profile:
    name: str
    path: str
    description: str
    stages: list[str]  # topological order
    edges: list[Edge]
    configs: dict[str, BaseModel]
    retries: dict[str, int] = field(default_factory=dict)
    gpu: set[str] = field(default_factory=set)  # stages placed on a Dask GPU worker when there is one
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)

    def upstream(self, stage: str) -> list[Edge]:
        """Edges into `stage`, upstream-most first (a later input carries the earlier ones' facts)."""
        return sorted((e for e in self.edges if e.dst == stage), key=lambda e: self.stages.index(e.src))

    def _stage_entry(self, stage: str) -> str | dict[str, Any]:
        options = {"retries": self.retries.get(stage, 0), "gpu": stage in self.gpu}
        options = {k: v for k, v in options.items() if v}
        return {"name": stage, **options} if options else stage

    def config_dict(self, stage: str) -> dict[str, Any]:
        return self.configs[stage].model_dump(mode="json")

    def to_dict(self) -> dict[str, Any]:
        """The resolved profile, as `mpr profiles show` prints it."""
        return {
            "name": self.name,
            "description": self.description,
            "pipeline": {
                "stages": [self._stage_entry(s) for s in self.stages],
                "edges": [str(e) for e in self.edges],
            },
            "configs": {s: self.config_dict(s) for s in self.stages},
        }


def profile_paths() -> list[Path]:
    extra = [Path(p) for p in os.environ.get("MPR_PROFILES_PATH", "").split(os.pathsep) if p]
    return [*extra, PROFILES_DIR]


def list_profiles() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for folder in reversed(profile_paths()):
        for path in sorted(folder.glob("*.yaml")):
            found[path.stem] = path
    return dict(sorted(found.items()))


def _find(name_or_path: str) -> Path:
    if name_or_path.endswith((".yaml", ".yml")) or os.sep in name_or_path:
        path = Path(name_or_path)
        if not path.is_file():
            raise InputError(f"profile {name_or_path}: no such file")
        return path
    path = list_profiles().get(name_or_path)
    if path is None:
        known = ", ".join(list_profiles()) or "none"
        raise InputError(f"profile {name_or_path}: not found (known: {known})")
    return path


def _read_raw(name_or_path: str, seen: tuple[str, ...] = ()) -> tuple[dict, Path]:
    path = _find(name_or_path)
    label = path.stem
    if str(path.resolve()) in seen:
        raise InputError(f"profile {label}: 'extends' loops back to itself")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise InputError(f"profile {label}: invalid YAML ({exc.__class__.__name__})") from None
    if not isinstance(raw, dict):
        raise InputError(f"profile {label}: expected a mapping")
    unknown = set(raw) - {"name", "description", "extends", "pipeline", "configs"}
    if unknown:
        raise InputError(f"profile {label}: unknown top-level key '{sorted(unknown)[0]}'")
    raw.setdefault("name", label)
    if raw.get("extends"):
        parent = str(raw["extends"])
        if parent.endswith((".yaml", ".yml")) and not Path(parent).is_absolute():
            parent = str(path.parent / parent)  # a relative path is relative to this profile
        base, _ = _read_raw(parent, (*seen, str(path.resolve())))
        raw = _merge_profile(base, raw)
    return raw, path


def _merge_profile(base: dict, child: dict) -> dict:
    """The child's pipeline keys replace the base's; configs merge per stage and key."""
    merged = {**base, **{k: v for k, v in child.items() if k not in ("pipeline", "configs")}}
    merged["pipeline"] = {**(base.get("pipeline") or {}), **(child.get("pipeline") or {})}
    configs = {s: dict(c or {}) for s, c in (base.get("configs") or {}).items()}
    for stage, values in (child.get("configs") or {}).items():
        configs[stage] = {**configs.get(stage, {}), **(values or {})}
    merged["configs"] = configs
    merged.pop("extends", None)
    return merged


def parse_set(items: list[str]) -> dict[str, dict[str, Any]]:
    """`--set STAGE.KEY=VALUE` (VALUE parsed as YAML) into nested overrides."""
    overrides: dict[str, dict[str, Any]] = {}
    for item in items:
        target, sep, value = item.partition("=")
        stage, dot, key = target.strip().partition(".")
        if not sep or not dot or not stage or not key:
            raise InputError(f"--set {item}: expected STAGE.KEY=VALUE")
        try:
            parsed = yaml.safe_load(value) if value.strip() else ""
        except yaml.YAMLError:
            parsed = value
        overrides.setdefault(stage, {})[key] = parsed
    return overrides


def load_profile(name_or_path: str, overrides: dict | None = None) -> Profile:
    """Load, merge `extends`, apply overrides, validate everything; raise InputError."""
    raw, path = _read_raw(name_or_path)
    name = str(raw.get("name"))
    pipeline = raw.get("pipeline") or {}
    if not isinstance(pipeline, dict):
        raise InputError(f"profile {name}: pipeline must be a mapping")
    stages, retries, gpu = _parse_stages(name, pipeline.get("stages"))
    edges = _parse_edges(name, pipeline.get("edges") or [], stages)
    order = _toposort(name, stages, edges)
    _check_shape(name, order, edges)
    configs_raw = raw.get("configs") or {}
    if not isinstance(configs_raw, dict):
        raise InputError(f"profile {name}: configs must be a mapping of stage -> settings")
    overrides = _check_overrides(name, overrides or {}, stages)
    configs = {}
    for stage in order:
        values = {**(configs_raw.get(stage) or {}), **overrides.get(stage, {})}
        configs[stage] = _validate_config(name, stage, values)
    for stage in configs_raw:
        if stage not in STAGES:
            raise InputError(f"profile {name}: stage {stage}: unknown stage in configs ({_known()})")
    return Profile(name=name, path=str(path), description=str(raw.get("description", "")).strip(),
                   stages=order, edges=edges, configs=configs, retries=retries, gpu=gpu,
                   overrides=overrides)


def _known() -> str:
    return "known: " + ", ".join(STAGES)


def _parse_stages(name: str, items: Any) -> tuple[list[str], dict[str, int], set[str]]:
    """Stage names in listed order, their retries, and the stages placed on a GPU worker
    (`gpu: true|false` per stage; the stage's own default otherwise)."""
    if not isinstance(items, list) or not items:
        raise InputError(f"profile {name}: pipeline.stages must be a non-empty list")
    stages, retries, gpu = [], {}, set()
    for item in items:
        options = {}
        if isinstance(item, dict):
            options = dict(item)
            item = options.pop("name", None)
        if not isinstance(item, str) or item not in STAGES:
            raise InputError(f"profile {name}: stage {item}: unknown stage ({_known()})")
        for key, value in options.items():
            if key not in STAGE_OPTIONS:
                raise InputError(f"profile {name}: stage {item}: key {key}: unknown stage option "
                                 f"(known: {', '.join(sorted(STAGE_OPTIONS))})")
            if key == "gpu" and not isinstance(value, bool):
                raise InputError(f"profile {name}: stage {item}: key gpu: must be true or false")
            if key == "retries" and (not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 10):
                raise InputError(f"profile {name}: stage {item}: key {key}: must be an integer 0-10")
            if key == "retries":
                retries[item] = value
        if item in stages:
            raise InputError(f"profile {name}: stage {item}: listed twice")
        stages.append(item)
        if options.get("gpu", STAGES[item].gpu):
            gpu.add(item)
    return stages, retries, gpu


def _parse_edges(name: str, items: Any, stages: list[str]) -> list[Edge]:
    if not isinstance(items, list):
        raise InputError(f"profile {name}: pipeline.edges must be a list")
    edges = []
    for item in items:
        if isinstance(item, str) and (m := EDGE_RE.match(item)):
            edge = Edge(*m.groups())
        elif isinstance(item, dict) and {"from", "to"} <= set(item) <= {"from", "to", "when"}:
            edge = Edge(str(item["from"]), str(item["to"]), item.get("when"))
        else:
            raise InputError(f"profile {name}: edge {item!r}: expected 'a -> b', 'a -> b [when]' "
                             "or {from, to, when}")
        for end in (edge.src, edge.dst):
            if end not in stages:
                raise InputError(f"profile {name}: edge {edge}: stage {end} is not in pipeline.stages")
        if edge.when is not None:
            routes = ROUTES.get(STAGES[edge.src].produces, ())
            if edge.when not in routes:
                raise InputError(f"profile {name}: edge {edge}: stage {edge.src} has no route "
                                 f"'{edge.when}' (routes: {', '.join(routes) or 'none'})")
        edges.append(edge)
    return edges


def _toposort(name: str, stages: list[str], edges: list[Edge]) -> list[str]:
    """Kahn's algorithm, stable in the listed order; reports a cycle by its members."""
    indegree = {s: 0 for s in stages}
    for e in edges:
        indegree[e.dst] += 1
    ready = [s for s in stages if indegree[s] == 0]
    order = []
    while ready:
        stage = ready.pop(0)
        order.append(stage)
        for e in edges:
            if e.src == stage:
                indegree[e.dst] -= 1
                if indegree[e.dst] == 0:
                    ready.append(e.dst)
    if len(order) < len(stages):
        cycle = [s for s in stages if s not in order]
        raise InputError(f"profile {name}: pipeline has a cycle through {' -> '.join(cycle)}")
    return order


def _check_shape(name: str, order: list[str], edges: list[Edge]) -> None:
    """Roots read the source, every other stage gets what it accepts, one report at the end."""
    for stage in order:
        spec = STAGES[stage]
        ups = [e.src for e in edges if e.dst == stage]
        if spec.accepts is None and ups:
            raise InputError(f"profile {name}: stage {stage}: reads the source and takes no inputs")
        if spec.accepts is not None and not ups:
            raise InputError(f"profile {name}: stage {stage}: needs an input edge")
        for up in ups:
            if not issubclass(STAGES[up].produces, spec.accepts):
                raise InputError(f"profile {name}: edge {up} -> {stage}: {stage} takes "
                                 f"{spec.accepts.__name__}, {up} gives {STAGES[up].produces.__name__}")
    finals = [s for s in order if STAGES[s].produces is ReportBody]
    if len(finals) != 1 or finals[0] != order[-1] or any(e.src == finals[0] for e in edges):
        raise InputError(f"profile {name}: pipeline must end in exactly one compile_report stage")
    for e in edges:  # a stage over the whole source can only feed another one (it has no chunks)
        if STAGES[e.src].scope == "source" and STAGES[e.dst].scope != "source":
            raise InputError(f"profile {name}: edge {e}: {e.src} runs once over the whole source, "
                             f"{e.dst} per chunk")


def _check_overrides(name: str, overrides: Any, stages: list[str]) -> dict[str, dict[str, Any]]:
    if not isinstance(overrides, dict):
        raise InputError(f"profile {name}: overrides must be a mapping of stage -> {{key: value}}")
    for stage, values in overrides.items():
        if stage not in STAGES:
            raise InputError(f"profile {name}: stage {stage}: unknown stage ({_known()})")
        if stage not in stages:
            raise InputError(f"profile {name}: stage {stage}: not in this profile's pipeline")
        if not isinstance(values, dict):
            raise InputError(f"profile {name}: stage {stage}: overrides must be a mapping of key -> value")
    return overrides


def _validate_config(name: str, stage: str, values: Any) -> BaseModel:
    model = STAGES[stage].config
    if not isinstance(values, dict):
        raise InputError(f"profile {name}: stage {stage}: config must be a mapping")
    for key in values:
        if key not in model.model_fields:
            known = ", ".join(model.model_fields) or "none"
            raise InputError(f"profile {name}: stage {stage}: key {key}: unknown key (known: {known})")
    try:
        return model(**values)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(p) for p in err["loc"])
        if not key:  # a check across keys
            raise InputError(f"profile {name}: stage {stage}: {err['msg'].removeprefix('Value error, ')}") from None
        got = err.get("input")
        raise InputError(f"profile {name}: stage {stage}: key {key}: {err['msg']} (got {got!r})") from None
