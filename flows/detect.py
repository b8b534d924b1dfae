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
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from mpr.settings import apply_offline_defaults, tune_malloc

apply_offline_defaults()  # before Prefect reads its settings
tune_malloc()  # before the task threads start

from prefect import flow, get_run_logger  # noqa: E402
from prefect.artifacts import (  # noqa: E402
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.exceptions import TerminationSignal  # noqa: E402
from prefect.flow_runs import pause_flow_run  # noqa: E402
from prefect.futures import PrefectFuture, as_completed  # noqa: E402
from prefect.runtime import flow_run  # noqa: E402
from prefect.task_runners import ThreadPoolTaskRunner  # noqa: E402
from prefect.utilities.annotations import opaque  # noqa: E402

from mpr import settings  # noqa: E402
from mpr.checkpoints import record_run  # noqa: E402
from mpr.db.results import asset_id, fail_run, save_results, start_run  # noqa: E402
from mpr.errors import InputError, MprError  # noqa: E402
from mpr.placement import connect, dask_address  # noqa: E402
from mpr.profiles import load_profile  # noqa: E402
from mpr.plan import RunPlan, digest, prepare_run  # noqa: E402
from mpr.records import Manifest, Report, ReportBody, StageRun, StageStats  # noqa: E402
from mpr.registry import learn, record_brands  # noqa: E402
from mpr.reporting import BRAND_COLUMNS, brand_rows, markdown, write_report  # noqa: E402
from mpr.storage import media_in  # noqa: E402
from mpr.timeline import load_timeline, merge_bodies, merge_stages, timeline_ref  # noqa: E402
from tasks.compile_report import CompileReportConfig  # noqa: E402
from tasks.wrapper import stage_task  # noqa: E402

Futures = dict[tuple[str, int | None], PrefectFuture]


def task_workers() -> int:
    """Threads running stage tasks (`MPR_TASK_WORKERS`). Prefect's default is unbounded,
    which would decode every chunk of a long match at once. Tasks are submitted stage by
    stage, so each task's inputs are queued before it and a bounded pool cannot deadlock."""
    return int(os.environ.get("MPR_TASK_WORKERS") or min(8, (os.cpu_count() or 2) + 2))

PROGRESS = logging.getLogger("mpr.progress")  # the CLI prints this on stderr
PROGRESS_EVERY_S = 2.0  # the progress artifact's update interval


@flow(name="detect-brands", persist_result=False, task_runner=ThreadPoolTaskRunner(max_workers=task_workers()))
def detect_brands(
    source: str,
    brands: str | list[dict[str, Any]],
    profile: str = "soccer_broadcast",
    overrides: dict[str, dict[str, Any]] | None = None,
    out: str | None = None,
    debug: bool = False,
    dask: str | None = None,
    pause_after: list[str] | None = None,
    step: bool = False,
    video: bool = True,
) -> Report:
    """Find sponsor brands in SOURCE (video, image, image folder, fsspec URL, or
    `timeline:ID` / `timeline:NAME` for the chunks `mpr chunk` made of a long source).

    brands: a brands YAML path/URL or an inline list of {name, aliases, logo}.
    overrides: per-stage config changes, e.g. {"match_brands": {"min_score": 70}}.
    out: folder for report.json, timeline.csv, brands.csv, detections.csv.
    debug: write each vision stage's overlays (mask, lines, bands, boxes, OCR text) to
        the artifact store and link them from the markdown artifact.
    dask: a Dask scheduler (tcp://HOST:PORT) or saved DaskCluster block name whose GPU
        workers run the profile's `gpu: true` stages (default `MPR_DASK`; none: all local).
    pause_after: stages after which the run pauses until `mpr resume RUN_ID`.
    step: pause after every stage.
    video: with `out` and a video source, also write annotated.mp4 (boxes, labels and running
        exposure counters on the source video; it costs a decode and an encode of the whole video).

    Results go to the database (`MPR_DATABASE_URL`) as well as to `out`.
    """
    ref = timeline_ref(source)
    if ref is not None:
        return detect_timeline(ref, brands, profile, overrides, out, debug, Control(dask, pause_after, step))
    plan = prepare_run(source, brands, profile, overrides, debug)
    control = Control(dask, pause_after, step).check(plan)
    run = open_run(plan.keys[(plan.profile.stages[-1], None)], source_label(source), plan)
    try:
        [futures] = run_graphs([plan], control)
        stages = finish_graph(plan, futures)
        body: ReportBody = futures[(plan.profile.stages[-1], None)].result()
    except BaseException as exc:
        stopped(run, exc)
        raise
    report = make_report(body, source, plan, stages)
    annotate = plan.source.local_path if video and plan.source.kind == "video" else None
    return finish(report, run, plan, out, video_source=annotate)


def detect_timeline(ref: str, brands, profile: str, overrides, out: str | None, debug: bool,
                    control: Control) -> Report:
    """Every chunk of a timeline as its own source (own cache keys), merged on the source clock."""
    timeline = load_timeline(ref)
    compile_config = load_profile(profile, overrides).configs.get("compile_report") or CompileReportConfig()
    chunk_overrides = overrides
    if compile_config.ignore:  # ignore ranges are on the timeline's clock: the merge applies them, not each chunk
        chunk_overrides = {**(overrides or {}), "compile_report": {**(overrides or {}).get("compile_report", {}),
                                                                   "ignore": []}}
    plans = [prepare_run(uri, brands, profile, chunk_overrides, debug) for uri in timeline.uris]
    first = plans[0]
    control.check(first)
    run_key = "timeline-" + digest([p.keys[(p.profile.stages[-1], None)] for p in plans])
    run = open_run(run_key, f"timeline:{timeline.name}", first, timeline_id=timeline.id)
    try:
        futures = run_graphs(plans, control)
        stages = merge_stages([finish_graph(plan, fs) for plan, fs in zip(plans, futures)])
        bodies = [fs[(plan.profile.stages[-1], None)].result() for plan, fs in zip(plans, futures)]
    except BaseException as exc:
        stopped(run, exc)
        raise
    extract = first.profile.configs[first.profile.stages[0]]
    body = merge_bodies(list(zip(timeline.offsets, bodies)), timeline.duration_s, 1.0 / extract.fps, compile_config)
    report = make_report(body, f"timeline:{timeline.name}", first, stages)
    report.fingerprint = run_key
    return finish(report, run, first, out, timeline_id=timeline.id)


def open_run(run_key: str, label: str, plan: RunPlan, timeline_id: int | None = None) -> int:
    """The run's database row, marked running (reused when the same run is repeated)."""
    record_brands(plan.brands)
    return start_run(run_key, label, plan.profile.name, plan.profile.overrides, plan.source.fingerprint,
                     _run_id(), asset_id=asset_id(label), timeline_id=timeline_id)


def stopped(run: int, exc: BaseException) -> None:
    """Record why the run's row will not complete: cancelled (Prefect turns the SIGTERM of a
    cancellation into TerminationSignal) or failed."""
    if isinstance(exc, TerminationSignal):
        fail_run(run, "cancelled (SIGTERM)", status="cancelled")
    else:
        fail_run(run, str(exc) or type(exc).__name__)


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


def finish(report: Report, run: int, plan: RunPlan, out: str | None, timeline_id: int | None = None,
           video_source: str | None = None) -> Report:
    """Rows first (in one transaction), then the files and artifacts: the files can always be
    rebuilt from the rows (`mpr report`)."""
    save_results(run, report, timeline_id)
    learn_aliases(plan, report)
    publish(report, out, video_source)
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


@dataclass
class Control:
    """Where GPU stages run and where the run pauses; checked against the plan before any work."""

    dask: str | None = None
    pause_after: list[str] | None = None
    step: bool = False
    pauses: set[str] = field(default_factory=set)

    def check(self, plan: RunPlan) -> Control:
        stages = plan.profile.stages
        unknown = [s for s in self.pause_after or [] if s not in stages]
        if unknown:
            raise InputError(f"pause_after: stage {unknown[0]} is not in profile {plan.profile.name} "
                             f"({', '.join(stages)})")
        self.pauses = set(stages[:-1]) if self.step else set(self.pause_after or []) - {stages[-1]}
        self.dask = dask_address(self.dask) if plan.profile.gpu else None
        if self.dask:
            connect(self.dask, plan.store_root)
        return self

    def place(self, plan: RunPlan, stage: str) -> str | None:
        return self.dask if stage in plan.profile.gpu else None


def run_graphs(plans: list[RunPlan], control: Control) -> list[Futures]:
    """Submit every stage task of each plan (same profile), stage by stage, pausing after
    the stages `control` names; return once all are done."""
    profile = plans[0].profile
    tasks = {s: stage_task(s, retries=profile.retries.get(s, 0)) for s in profile.stages}
    graphs: list[Futures] = [{} for _ in plans]
    progress = Progress(sum(len(plan.keys) for plan in plans), many=len(plans) > 1)
    for stage in profile.stages:
        for i, (plan, futures) in enumerate(zip(plans, graphs)):
            submit_stage(plan, stage, tasks[stage], futures, control.place(plan, stage))
            progress.add(i, stage, futures)
        if stage in control.pauses:
            if progress.wait():  # nothing failed so far: worth stopping to look
                pause_after_stage(stage)
    progress.wait()
    return graphs


def submit_stage(plan: RunPlan, stage: str, task, futures: Futures, dask: str | None) -> None:
    """Upstream futures go in `opaque`: Prefect waits for them and records the dependency, but
    does not walk every field of every upstream result looking for more futures (that walk
    cost a 10-minute replay about 14 s of CPU)."""
    for chunk in plan.task_ids(stage):
        inputs = [(opaque(futures[(src, c)]), when) for src, c, when in plan.inputs_of(stage, chunk)]
        ctx = plan.context(stage, chunk)
        futures[(stage, chunk)] = task.submit(
            stage=stage, chunk="all" if chunk is None else chunk, cache_key=ctx.key,
            inputs=inputs, config=opaque(plan.profile.configs[stage]), ctx=opaque(ctx), dask=dask)


def pause_after_stage(stage: str) -> None:
    """Hold the run (state Paused) until `mpr resume RUN_ID`; finished tasks stay in memory."""
    message = f"paused after {stage}: resume with `mpr resume {_run_id()}`"
    get_run_logger().info(message)
    PROGRESS.info(message)
    pause_flow_run(timeout=int(os.environ.get("MPR_PAUSE_TIMEOUT_S") or 3600), poll_interval=2,
                   key=f"after-{stage}")
    PROGRESS.info(f"resumed after {stage}")


class Progress:
    """Progress of the submitted tasks: the run log, a progress artifact and `mpr.progress`."""

    def __init__(self, total: int, many: bool):
        self.total, self.many, self.done = total, many, 0
        self.pending: dict[PrefectFuture, str] = {}
        self.failed = False
        self.artifact = create_progress_artifact(0.0, description="stage tasks done")
        self.shown, self.shown_at = 0, time.monotonic()  # tasks done at the artifact's last update

    def add(self, graph: int, stage: str, futures: Futures) -> None:
        for (name, chunk), future in futures.items():
            if name == stage:
                label = "all" if chunk is None else chunk
                self.pending[future] = f"{stage}[{f'{graph}.{label}' if self.many else label}]"

    def wait(self) -> bool:
        """Wait for what was submitted so far; True when nothing failed."""
        logger = get_run_logger()
        for future in as_completed(list(self.pending)):
            future.wait()
            state = future.state
            self.failed |= not state.is_completed()
            self.done += 1
            label = state.name.lower() if state.is_completed() or state.is_failed() else "not run (upstream failed)"
            message = f"[{self.done:>{len(str(self.total))}}/{self.total}] {self.pending.pop(future)} {label}"
            logger.info(message)
            PROGRESS.info(message)
            self.update_artifact()
        self.update_artifact(final=True)
        return not self.failed

    def update_artifact(self, final: bool = False) -> None:
        """At most every PROGRESS_EVERY_S: each update is an API call, and a replay finishes
        tens of cached tasks a second."""
        now = time.monotonic()
        if self.artifact and self.shown != self.done and (final or now - self.shown_at >= PROGRESS_EVERY_S):
            update_progress_artifact(self.artifact, 100.0 * self.done / self.total)
            self.shown, self.shown_at = self.done, now


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
            compute_seconds=round(sum(s.seconds for s in stats), 3),
            worker=",".join(sorted({s.worker for s in stats}))))
    return runs


def _failure(futures: Futures, stage: str) -> str:
    for (name, _), future in futures.items():
        state = future.state
        if name == stage and state.is_failed():
            exc = state.result(raise_on_failure=False)
            return str(exc) if isinstance(exc, BaseException) else (state.message or state.name)
    return "upstream failure"


def publish(report: Report, out: str | None, video_source: str | None = None) -> None:
    if out:
        write_report(report, out, video_source)
    create_table_artifact(
        key="brand-exposure",
        table=[dict(zip(BRAND_COLUMNS, row)) for row in brand_rows(report)],
        description=f"Brand exposure in {report.source}",
    )
    create_markdown_artifact(key="brand-report", markdown=markdown(report, out, bool(out and video_source)),
                             description=f"Brand timeline for {report.source}")


def _run_id() -> str | None:
    run_id = flow_run.get_id()
    return str(run_id) if run_id else None
