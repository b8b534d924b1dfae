"""The checkpoint ledger: which stage configs were computed for a source, and when.

Prefect's result store holds the checkpoints themselves (files named by cache key);
this ledger is the index `mpr checkpoints SOURCE` prints as a tree of config paths.
One JSON line per stage per run, in a file per source fingerprint.
"""

from __future__ import annotations

import fcntl
import json
from collections import defaultdict
from datetime import datetime, timezone
from collections.abc import Callable
from pathlib import Path

from mpr.plan import RunPlan
from mpr.records import StageRun


def ledger_path(folder: Path, fingerprint: str) -> Path:
    return folder / f"{fingerprint}.jsonl"


def record_run(folder: Path, plan: RunPlan, stages: list[StageRun], run_id: str | None) -> None:
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    lines = []
    for run in stages:
        lines.append(json.dumps({
            "time": now,
            "run_id": run_id,
            "source": plan.source.uri,
            "profile": plan.profile.name,
            "stage": run.name,
            "lineage": plan.lineage[run.name],
            "parents": [plan.lineage[e.src] for e in plan.profile.upstream(run.name)],
            "config": plan.profile.config_dict(run.name),
            "state": run.state,
            "keys": [plan.keys[(run.name, c)] for c in plan.task_ids(run.name)],
        }, sort_keys=True))
    folder.mkdir(parents=True, exist_ok=True)
    with open(ledger_path(folder, plan.source.fingerprint), "a", encoding="utf-8") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)  # concurrent runs on one source append whole lines
        fh.write("\n".join(lines) + "\n")


def read_ledger(folder: Path, fingerprint: str) -> list[dict]:
    path = ledger_path(folder, fingerprint)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def render_tree(entries: list[dict], exists: Callable[[str], bool]) -> list[str]:
    """One node per config path; children are the downstream configs tried on top of it."""
    nodes: dict[str, dict] = {}
    for e in entries:
        node = nodes.setdefault(e["lineage"], {**e, "first": e["time"], "runs": 0, "states": defaultdict(int)})
        node["last"] = e["time"]
        node["runs"] += 1
        node["states"][e["state"]] += 1
    children: dict[str | None, list[dict]] = defaultdict(list)
    for node in nodes.values():
        parent = next((p for p in node["parents"] if p in nodes), None)
        children[parent].append(node)
    lines: list[str] = []

    def walk(parent: str | None, depth: int) -> None:
        for node in sorted(children[parent], key=lambda n: n["first"]):
            config = " ".join(f"{k}={v}" for k, v in sorted(node["config"].items()))
            stored = sum(exists(k) for k in node["keys"])
            states = ", ".join(f"{s} {n}" for s, n in sorted(node["states"].items()))
            lines.append(f"{'  ' * depth}{node['stage']} [{node['lineage']}]  {config}")
            lines.append(f"{'  ' * depth}    first {node['first']}  last {node['last']}  runs {node['runs']} "
                         f"({states})  checkpoints {stored}/{len(node['keys'])} stored")
            walk(node["lineage"], depth + 1)

    walk(None, 0)
    return lines
