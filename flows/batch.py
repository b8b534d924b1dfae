"""batch_detect: the scheduled batch flow. Scan media-in, then run `detect_brands` on every
video that has no completed run with the profile yet, a few at a time.

    from flows.batch import batch_detect
    batch_detect("brands.yaml")                           # new videos under MPR_MEDIA_IN, 2 at once
    batch_detect("brands.yaml", profile="db_test", out="s3://reports/weekly", max_concurrent=4)
    # {"scanned": {"found": 3, ...}, "new": ["a.mp4", "b.mp4"], "completed": ["a.mp4"],
    #  "failed": {"b.mp4": "source .../b.mp4: not a video ..."}, "reports": {"a.mp4": ".../a_mp4-1f0e..."}}

On a schedule: deploy `flows/batch.py:batch_detect` with a cron schedule and parameters such as
`{"brands": "/data/brands.yaml", "max_concurrent": 4}`. Each video's report files go to
`OUT/<key made safe>-<8 hex of the key>/` (report.json, timeline.csv, brands.csv,
detections.csv); OUT defaults to MPR_MEDIA_OUT when set, else `out/`.

In the Prefect UI the batch run has a `scan-media` child flow run and one `detect-asset[KEY]`
task per video, each with its `detect-brands` child flow run named KEY; the `batch-summary`
table artifact lists every video and its outcome (brands, exposure, report folder, error).
Two batches overlapping may analyse the same video twice; that is harmless (the run row is
reused, its rows replaced, the stages cached), only wasted work.

One video failing does not stop the others. The batch run still ends Failed (raising
`BatchError`, whose `.summary` is the dict above) so that schedules, notifications and
automations see it; the videos that completed have their runs and report files, and the
next batch retries only the failed ones (a video counts as done once it has a completed run).
"""

from __future__ import annotations

import hashlib
import os
import re
from typing import Any

from mpr.settings import apply_offline_defaults

apply_offline_defaults()  # before Prefect reads its settings

from prefect import flow, get_run_logger, task  # noqa: E402
from prefect.artifacts import create_markdown_artifact, create_table_artifact  # noqa: E402
from prefect.cache_policies import NONE  # noqa: E402
from prefect.task_runners import ThreadPoolTaskRunner  # noqa: E402

from flows.detect import detect_brands  # noqa: E402
from flows.media import scan_media  # noqa: E402
from mpr.brands import load_brands  # noqa: E402
from mpr.db.queries import pending_assets  # noqa: E402
from mpr.errors import InputError, MprError  # noqa: E402
from mpr.profiles import load_profile  # noqa: E402
from mpr.storage import check_root, configure_s3, media_in, media_kind, media_out  # noqa: E402

MAX_CONCURRENT = 16  # detect runs at once; each has its own pool of stage tasks (MPR_TASK_WORKERS)


class BatchError(MprError):
    """Some videos of a batch failed; `summary` is what the flow would have returned."""

    def __init__(self, message: str, summary: dict):
        super().__init__(message)
        self.summary = summary


def report_folder(out: str, key: str) -> str:
    """Where one asset's report files go: a flat, safe name read from its key (`/`, `.` and
    anything unusual become `_`) plus 8 hex of the key, so `a/b.mp4` and `a_b.mp4` differ."""
    name = re.sub(r"[^A-Za-z0-9_-]+", "_", key).strip("_") or "asset"
    return f"{out.rstrip('/')}/{name}-{hashlib.sha1(key.encode()).hexdigest()[:8]}"


def default_out() -> str:
    return media_out().url if os.environ.get("MPR_MEDIA_OUT") else "out"


def check_max_concurrent(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_CONCURRENT:
        raise InputError(f"max_concurrent {value!r}: want a whole number from 1 to {MAX_CONCURRENT}")
    return value


def one_line(exc: BaseException | None, fallback: str = "failed") -> str:
    text = str(exc).strip() if exc is not None else ""
    return (text.splitlines()[0] if text else type(exc).__name__ if exc is not None else fallback)[:500]


@task(name="detect-asset", task_run_name="detect-asset[{key}]", cache_policy=NONE, persist_result=False)
def detect_asset(key: str, brands: str, profile: str, overrides: dict | None, out: str,
                 dask: str | None = None) -> dict:
    """`detect_brands` on one media-in asset; the flow called here is this task's child flow run."""
    name = key.replace("{", "{{").replace("}", "}}")  # the child run is named after the key (a format string)
    report = detect_brands.with_options(flow_run_name=name)(
        source=media_in().uri(key), brands=brands, profile=profile, overrides=overrides, out=out, dask=dask)
    return {"key": key, "report": out, "brands": [b.brand for b in report.brands],
            "exposure_s": round(sum(b.exposure_s for b in report.brands), 3),
            "frames": report.frames_analyzed}


@flow(name="batch-detect", persist_result=False)
def batch_detect(
    brands: str,
    profile: str = "soccer_broadcast",
    overrides: dict[str, dict[str, Any]] | None = None,
    out: str | None = None,
    max_concurrent: int = 2,
    force: bool = False,
    dask: str | None = None,
) -> dict:
    """Register new files under MPR_MEDIA_IN, then detect brands in every video there that has
    no completed run with this profile (every video with `force`), `max_concurrent` at once.

    brands: a brands YAML path/URL. profile, overrides: as for `detect_brands`.
    out: folder or s3:// prefix; each video's reports go to a sub-folder named from its key
        (default: MPR_MEDIA_OUT when set, else `out/`).
    dask: Dask scheduler or DaskCluster block for the GPU stages, as for `detect_brands`.
    Returns {"scanned", "new", "completed", "failed": {key: error}, "reports": {key: folder}};
    raises BatchError at the end (after the artifacts) when any video failed.
    """
    logger = get_run_logger()
    # Bad input fails the batch before any work, instead of failing every video the same way.
    max_concurrent = check_max_concurrent(max_concurrent)
    configure_s3()
    load_brands(brands)
    profile_name = load_profile(profile, overrides).name
    out = check_root(out or default_out(), "out")  # a local folder becomes an absolute path

    scanned = scan_media()
    present = {key for key in media_in().walk() if media_kind(key) == "video"}  # files gone since are skipped
    new = [key for key in pending_assets(profile_name, "video", include_done=force) if key in present]
    reports = {key: report_folder(out, key) for key in new}
    logger.info(f"{media_in().url}: {len(new)} video(s) to analyse with profile {profile_name}"
                + (" (force)" if force else "") + f", {max_concurrent} at once")

    # Concurrency: a flow's task runner is fixed when it is decorated, and `max_concurrent` is a
    # parameter, so the detect tasks go to a ThreadPoolTaskRunner made here with that many
    # threads (the runner API Prefect documents for use as a context manager). At most
    # `max_concurrent` detect-asset tasks, hence detect-brands child flow runs, run at once; the
    # others wait, Pending, in the pool's queue. Tasks submitted to it in this flow are this
    # flow run's task runs as usual (the runner carries the flow run context into its threads).
    states = {}
    if new:
        with ThreadPoolTaskRunner(max_workers=max_concurrent) as runner:
            futures = {key: runner.submit(detect_asset, {"key": key, "brands": brands, "profile": profile,
                                                         "overrides": overrides, "out": reports[key],
                                                         "dask": dask})
                       for key in new}
            for key, future in futures.items():
                future.wait()
                states[key] = future.state

    results, failed = {}, {}
    for key, state in states.items():
        if state.is_completed():
            results[key] = state.result()
        else:  # the task's exception (detect_brands' own, e.g. "stage run_ocr failed: ...")
            outcome = state.result(raise_on_failure=False)
            failed[key] = one_line(outcome if isinstance(outcome, BaseException) else None,
                                   state.message or state.name)
    summary = {"scanned": scanned, "new": new, "completed": [k for k in new if k in results],
               "failed": failed, "reports": {k: reports[k] for k in new if k in results}}
    publish(summary, results, profile_name)
    if failed:
        for key, error in failed.items():
            logger.error(f"{key}: {error}")
        shown = "; ".join(f"{k}: {e}" for k, e in list(failed.items())[:5])  # all of them: the artifact
        more = f"; and {len(failed) - 5} more" if len(failed) > 5 else ""
        raise BatchError(f"{len(failed)} of {len(new)} videos failed: {shown}{more}", summary)
    logger.info(f"{len(results)} video(s) analysed")
    return summary


def publish(summary: dict, results: dict[str, dict], profile: str) -> None:
    """The `batch-summary` artifact: one uniform row per video (the UI takes the first row's columns)."""
    if not summary["new"]:
        create_markdown_artifact(key="batch-summary", markdown=f"No new videos for profile **{profile}**.",
                                 description="Batch: nothing to do")
        return
    rows = []
    for key in summary["new"]:
        done = results.get(key)
        rows.append({"key": key, "outcome": "completed" if done else "failed",
                     "brands": ", ".join(done["brands"]) if done else "",
                     "exposure_s": done["exposure_s"] if done else None,
                     "report": done["report"] if done else "",
                     "error": summary["failed"].get(key, "")})
    create_table_artifact(key="batch-summary", table=rows,
                          description=f"Batch with profile {profile}: {len(summary['completed'])} completed, "
                                      f"{len(summary['failed'])} failed")
