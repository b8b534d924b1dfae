"""detect_brands: the Prefect flow generated from a profile graph.

The same flow runs from the CLI, from deployments and from notebooks:

    from flows.detect import detect_brands
    report = detect_brands("match.mp4", brands="brands.yaml")
    report.to_frame()

Each stage is a cached task per chunk of frames (compile_report once per source).
Tasks are submitted in topological order with their upstream futures as inputs, so
stages without a path between them run concurrently.
"""

from __future__ import annotations

import logging
import os
from datetime import datetime, timezone
from typing import Any

from mpr.settings import apply_offline_defaults

apply_offline_defaults()  # before Prefect reads its settings

from prefect import flow, get_run_logger  # noqa: E402
from prefect.artifacts import (  # noqa: E402
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.futures import PrefectFuture, as_completed  # noqa: E402
from prefect.runtime import flow_run  # noqa: E402
from prefect.task_runners import ThreadPoolTaskRunner  # noqa: E402

from mpr import settings  # noqa: E402
from mpr.checkpoints import record_run  # noqa: E402
from mpr.db.results import asset_id, fail_run, save_results, start_run  # noqa: E402
from mpr.errors import MprError  # noqa: E402
from mpr.plan import RunPlan, digest, prepare_run  # noqa: E402
from mpr.records import Manifest, Report, ReportBody, StageRun, StageStats  # noqa: E402
from mpr.registry import learn, record_brands  # noqa: E402
from mpr.reporting import BRAND_COLUMNS, brand_rows, markdown, write_report  # noqa: E402
from mpr.storage import media_in  # noqa: E402
from mpr.timeline import load_timeline, merge_bodies, merge_stages, timeline_ref  # noqa: E402
from tasks.compile_report import CompileReportConfig  # noqa: E402
from tasks.stage import StageContext  # noqa: E402
from tasks.wrapper import stage_task  # noqa: E402

Futures = dict[tuple[str, int | None], PrefectFuture]


def task_workers() -> int:
    """Threads running stage tasks (`MPR_TASK_WORKERS`). Prefect's default is unbounded,
    which would decode every chunk of a long match at once. Tasks are submitted stage by
    stage, so each task's inputs are queued before it and a bounded pool cannot deadlock."""
    return int(os.environ.get("MPR_TASK_WORKERS") or min(8, (os.cpu_count() or 2) + 2))

PROGRESS = logging.getLogger("mpr.progress")  # the CLI prints this on stderr


@flow(name="detect-brands", persist_result=False, task_runner=ThreadPoolTaskRunner(max_workers=task_workers()))
def detect_brands(
    source: str,
    brands: str | list[dict[str, Any]],
    profile: str = "soccer_broadcast",
    overrides: dict[str, dict[str, Any]] | None = None,
    out: str | None = None,
    debug: bool = False,
) -> Report:
    """Find sponsor brands in SOURCE (video, image, image folder, fsspec URL, or
    `timeline:ID` / `timeline:NAME` for the chunks `mpr chunk` made of a long source).

    brands: a brands YAML path/URL or an inline list of {name, aliases, logo}.
    overrides: per-stage config changes, e.g. {"match_brands": {"min_score": 70}}.
    out: folder for report.json, timeline.csv, brands.csv, detections.csv.
    debug: write each vision stage's overlays (mask, lines, bands, boxes, OCR text) to
        the artifact store and link them from the markdown artifact.

    Results go to the database (`MPR_DATABASE_URL`) as well as to `out`.
    """
    ref = timeline_ref(source)
    if ref is not None:
        return detect_timeline(ref, brands, profile, overrides, out, debug)
    plan = prepare_run(source, brands, profile, overrides, debug)
    run = open_run(plan.keys[(plan.profile.stages[-1], None)], source_label(source), plan)
    try:
        futures = submit_graph(plan)
        wait_with_progress(futures)
        stages = finish_graph(plan, futures)
        body: ReportBody = futures[(plan.profile.stages[-1], None)].result()
    except BaseException as exc:
        fail_run(run, str(exc) or type(exc).__name__)
        raise
    report = make_report(body, source, plan, stages)
    return finish(report, run, plan, out)


def detect_timeline(ref: str, brands, profile: str, overrides, out: str | None, debug: bool) -> Report:
    """Every chunk of a timeline as its own source (own cache keys), merged on the source clock."""
    timeline = load_timeline(ref)
    plans = [prepare_run(uri, brands, profile, overrides, debug) for uri in timeline.uris]
    first = plans[0]
    run_key = "timeline-" + digest([p.keys[(p.profile.stages[-1], None)] for p in plans])
    run = open_run(run_key, f"timeline:{timeline.name}", first, timeline_id=timeline.id)
    try:
        futures = [submit_graph(plan) for plan in plans]
        wait_with_progress({(stage, f"{i}.{c}"): f for i, fs in enumerate(futures) for (stage, c), f in fs.items()})
        stages = merge_stages([finish_graph(plan, fs) for plan, fs in zip(plans, futures)])
        bodies = [fs[(plan.profile.stages[-1], None)].result() for plan, fs in zip(plans, futures)]
    except BaseException as exc:
        fail_run(run, str(exc) or type(exc).__name__)
        raise
    extract = first.profile.configs[first.profile.stages[0]]
    compile_config = first.profile.configs.get("compile_report") or CompileReportConfig()
    body = merge_bodies(list(zip(timeline.offsets, bodies)), timeline.duration_s, 1.0 / extract.fps,
                        compile_config.max_gap_s)
    report = make_report(body, f"timeline:{timeline.name}", first, stages)
    report.fingerprint = run_key
    return finish(report, run, first, out, timeline_id=timeline.id)


def open_run(run_key: str, label: str, plan: RunPlan, timeline_id: int | None = None) -> int:
    """The run's database row, marked running (reused when the same run is repeated)."""
    record_brands(plan.brands)
    return start_run(run_key, label, plan.profile.name, plan.profile.overrides, plan.source.fingerprint,
                     _run_id(), asset_id=asset_id(label), timeline_id=timeline_id)


def source_label(source: str) -> str:
    """What the database calls a source: its key when it lies under media-in (portable
    between machines), else the URI as given."""
    try:
        return media_in().key_of(source) or source
    except MprError:
        return source


def finish_graph(plan: RunPlan, futures: Futures) -> list[StageRun]:
    """Stage rows of one graph, recorded in the checkpoint ledger; raises if a stage failed."""
    stages = summarize_stages(plan, futures)
    record_run(settings.ledger_dir(), plan, stages, _run_id())
    failed = [s.name for s in stages if s.state == "failed"]
    if failed:
        raise MprError(f"stage {failed[0]} failed: {_failure(futures, failed[0])}")
    return stages


def make_report(body: ReportBody, source: str, plan: RunPlan, stages: list[StageRun]) -> Report:
    return Report(**body.model_dump(), source=source, profile=plan.profile.name,
                  fingerprint=plan.source.fingerprint, overrides=plan.profile.overrides, run_id=_run_id(),
                  created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"), stages=stages)


def finish(report: Report, run: int, plan: RunPlan, out: str | None, timeline_id: int | None = None) -> Report:
    """Rows first (in one transaction), then the files and artifacts: the files can always be
    rebuilt from the rows (`mpr report`)."""
    save_results(run, report, timeline_id)
    learn_aliases(plan, report)
    publish(report, out)
    return report


def learn_aliases(plan: RunPlan, report: Report) -> None:
    """OCR text an escalation stage resolved becomes a learned alias (brand registry)."""
    for stage in ("escalate_vlm", "escalate_cloud"):
        config = plan.profile.configs.get(stage)
        if config is None or not config.learn_aliases:
            continue
        found = [d for d in report.detections if d.source == stage]
        new = learn(found, {"run_id": report.run_id, "source": report.source, "profile": report.profile},
                    config.learn_min_confidence)
        if new:
            get_run_logger().info(f"brand registry: {new} new learned aliases from {stage}")


def submit_graph(plan: RunPlan) -> Futures:
    tasks = {s: stage_task(s, retries=plan.profile.retries.get(s, 0)) for s in plan.profile.stages}
    futures: Futures = {}
    for stage in plan.profile.stages:
        for chunk in plan.task_ids(stage):
            inputs = [(futures[(src, c)], when) for src, c, when in plan.inputs_of(stage, chunk)]
            ctx = StageContext(
                source=plan.source,
                store_root=plan.store_root,
                key=plan.keys[(stage, chunk)],
                chunk=plan.chunks[chunk] if chunk is not None else None,
                brands=plan.brands if plan.profile.spec(stage).uses_brands else None,
            )
            futures[(stage, chunk)] = tasks[stage].submit(
                stage=stage, chunk="all" if chunk is None else chunk, cache_key=ctx.key,
                inputs=inputs, config=plan.profile.configs[stage], ctx=ctx)
    return futures


def wait_with_progress(futures: Futures) -> None:
    """Wait for every task; progress goes to the run log, a progress artifact and `mpr.progress`."""
    names = {id(f): f"{stage}[{'all' if c is None else c}]" for (stage, c), f in futures.items()}
    artifact = create_progress_artifact(0.0, description="stage tasks done")
    logger = get_run_logger()
    total = len(futures)
    for done, future in enumerate(as_completed(list(futures.values())), start=1):
        future.wait()
        state = future.state
        label = state.name.lower() if state.is_completed() or state.is_failed() else "not run (upstream failed)"
        message = f"[{done:>{len(str(total))}}/{total}] {names[id(future)]} {label}"
        logger.info(message)
        PROGRESS.info(message)
        if artifact:
            update_progress_artifact(artifact, 100.0 * done / total)


def summarize_stages(plan: RunPlan, futures: Futures) -> list[StageRun]:
    runs = []
    for stage in plan.profile.stages:
        states = [futures[(stage, c)].state for c in plan.task_ids(stage)]
        done = [(s.name == "Cached", s.result(raise_on_failure=False).stats) for s in states if s.is_completed()]
        stats = [st for _, st in done] or [StageStats()]
        cached = sum(was_cached for was_cached, _ in done)
        if any(s.is_failed() or s.is_crashed() for s in states):
            state = "failed"
        elif any(not s.is_completed() for s in states):
            state = "skipped"  # not run: an upstream task failed
        elif all(isinstance(out := s.result(raise_on_failure=False), Manifest) and out.skipped for s in states):
            state = "skipped"  # the stage chose to do nothing (SKIP_CLOUD=1, no credential)
        else:
            state = "cached" if cached == len(states) else "completed"
        runs.append(StageRun(
            name=stage, state=state, seconds=round(sum(st.seconds for was_cached, st in done if not was_cached), 3),
            items_in=sum(s.items_in for s in stats), items_out=sum(s.items_out for s in stats),
            chunks=len(states), cached_chunks=cached,
            compute_seconds=round(sum(s.seconds for s in stats), 3)))
    return runs


def _failure(futures: Futures, stage: str) -> str:
    for (name, _), future in futures.items():
        state = future.state
        if name == stage and state.is_failed():
            exc = state.result(raise_on_failure=False)
            return str(exc) if isinstance(exc, BaseException) else (state.message or state.name)
    return "upstream failure"


def publish(report: Report, out: str | None) -> None:
    if out:
        write_report(report, out)
    create_table_artifact(
        key="brand-exposure",
        table=[dict(zip(BRAND_COLUMNS, row)) for row in brand_rows(report)],
        description=f"Brand exposure in {report.source}",
    )
    create_markdown_artifact(key="brand-report", markdown=markdown(report, out),
                             description=f"Brand timeline for {report.source}")


def _run_id() -> str | None:
    run_id = flow_run.get_id()
    return str(run_id) if run_id else None
