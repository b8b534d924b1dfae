"""Asking a VLM about candidate groups: batching, a concurrency limit, a budget and a response cache.

One representative crop per group of near-identical candidates is asked about. Several
crops go in one request (`batch_size`), at most `concurrency` requests at once. Before
each request the run's budget (calls, estimated cost) is checked; once spent, the
remaining groups stay unresolved and are counted. Every validated answer (a brand or
"none") is kept in a response cache keyed by provider, model, prompt version, brand list,
image and text, so a replayed run, or the same board in another chunk, never re-bills.
"""

from __future__ import annotations

import hashlib
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from mpr import settings
from mpr.escalation.providers import PROMPT_VERSION, Answer, Provider, ProviderError, Query, Usage


@dataclass
class Budget:
    """Calls and estimated cost a run may spend; shared by the threads asking."""

    max_calls: int
    max_cost_usd: float
    calls: int = 0
    cost_usd: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def take_call(self) -> bool:
        with self.lock:
            if self.calls >= self.max_calls or self.cost_usd >= self.max_cost_usd:
                return False
            self.calls += 1
            return True

    def spend(self, cost: float) -> None:
        with self.lock:
            self.cost_usd += cost


class ResponseCache:
    """One small JSON file per answer under MPR_DATA_DIR/escalation-cache."""

    def __init__(self, provider: Provider, brands: list[str], folder: Path | None = None):
        self.folder = folder or settings.data_dir() / "escalation-cache"
        self.scope = {"provider": provider.name, "model": provider.model, "prompt": PROMPT_VERSION,
                      "brands": sorted(brands)}

    def _path(self, query: Query) -> Path:
        payload = json.dumps({**self.scope, "text": query.text,
                              "image": hashlib.sha256(query.image).hexdigest()}, sort_keys=True)
        return self.folder / f"{hashlib.blake2b(payload.encode(), digest_size=16).hexdigest()}.json"

    def get(self, query: Query) -> Answer | None:
        path = self._path(query)
        if not path.exists():
            return None
        data = json.loads(path.read_text(encoding="utf-8"))
        return Answer(id=query.id, brand=data["brand"], confidence=data["confidence"])

    def put(self, query: Query, answer: Answer) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self._path(query)
        tmp = path.with_suffix(f".{threading.get_ident()}.tmp")
        tmp.write_text(json.dumps({"brand": answer.brand, "confidence": answer.confidence}), encoding="utf-8")
        tmp.replace(path)


@dataclass
class AskResult:
    answers: dict[str, Answer]  # query id -> answer (brand may be None: "none of these")
    usage: Usage
    cached: int = 0
    over_budget: int = 0  # queries not asked because the budget was spent
    notes: list[str] = field(default_factory=list)


def ask_all(provider: Provider, queries: list[Query], brands: list[str], batch_size: int, concurrency: int,
            budget: Budget, cache: ResponseCache | None) -> AskResult:
    result = AskResult(answers={}, usage=Usage())
    todo = []
    for q in queries:
        hit = cache.get(q) if cache else None
        if hit:
            result.answers[q.id] = hit
            result.cached += 1
        else:
            todo.append(q)
    batch_size = min(batch_size, provider.max_batch or batch_size)  # one request = one call of the budget
    batches = [todo[i:i + batch_size] for i in range(0, len(todo), batch_size)]
    lock = threading.Lock()
    stop = threading.Event()  # bad credentials: no point sending the other batches

    def run(batch: list[Query]) -> None:
        if stop.is_set() or not budget.take_call():
            with lock:
                result.over_budget += 0 if stop.is_set() else len(batch)
            return
        try:
            answers, usage = provider.ask(batch, brands)
        except ProviderError as exc:
            stop.set()
            with lock:
                result.notes.append(str(exc))
            return
        budget.spend(usage.cost_usd)
        with lock:
            result.usage = result.usage + usage
            for answer in answers:
                result.answers[answer.id] = answer
        if cache:
            by_id = {q.id: q for q in batch}
            for answer in answers:
                cache.put(by_id[answer.id], answer)

    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        list(pool.map(run, batches))
    if result.over_budget:
        result.notes.append(f"{provider.name}: budget reached ({budget.calls} calls, "
                            f"${budget.cost_usd:.4f}); {result.over_budget} crops not asked")
    return result
