"""`mpr bench`: how fast a profile runs, and what Prefect costs, on one input in one process.

    mpr bench SOURCE --brands B [--profile P] [--minutes M] [--set STAGE.KEY=VALUE ...] [--json]

Everything runs against a fresh, empty data dir (`MPR_DATA_DIR`, SQLite database, artifact
and result stores under a temporary folder), so nothing is cached; the environment is
restored and the folder removed afterwards. With `--minutes M` the source is first looped
with ffmpeg (`-stream_loop -1 -t M*60 -c copy`) into that folder. Measured, in this order:

- `flow_seconds`: one full `detect_brands` flow run (cold: it includes loading the models,
  as a real `mpr detect` does; Prefect's ephemeral API is started before the clock starts,
  its start-up is `prefect_startup_seconds`). `real_time_factor` = video s / flow s.
- per-stage compute seconds (the report's `stages[].seconds`) and their share of the sum.
- `direct_seconds`: the same stage functions called in a plain loop, stage by stage and chunk
  by chunk, no Prefect, against a separate empty artifact store (models already loaded).
- `flow_warm_seconds`: the flow once more against another empty data dir, models loaded like
  the direct loop's. `prefect_overhead_ratio` = warm flow s / direct s (the flow runs chunks
  in parallel threads, the loop one after the other, so the ratio can be below 1);
  `prefect_overhead_ratio_cold` = first flow s / direct s (model loading counted as overhead).
- `replay_seconds`: the flow again in the same data dir with only match_brands' config
  changed (min_score - 1): upstream stages come from the cache. `replay_ratio` = replay s /
  flow s.
- `decode_fps`: PyAV (threaded, as extract_frames decodes) decoding every frame of the
  (looped) source and converting it to BGR; `decode_grab_fps` decoding only. The physical
  floor of any profile.
- `sample_read_seconds`: reading just the profile's samples of the whole source as
  extract_frames does with decode-time cuts off: every frame decoded, the samples converted
  to BGR. `keyframe_read_seconds`: the same samples with
  `extract_frames.keyframes` (PyAV, only keyframes and the groups of pictures holding a
  sample with no keyframe near it are decoded); `keyframe_snapped_share`: the samples that
  took a keyframe; `keyframe_interval_s`: the median distance between keyframes.
- `peak_rss_mb`: peak resident memory of this process during the first flow run, models
  loading included: what `mpr detect` on the source costs. `peak_rss_mb_bench`: over the
  whole bench (all four runs). Linux resets the peak (VmHWM) when 5 is written to
  /proc/self/clear_refs; elsewhere both are the process's peak so far (getrusage). Child
  processes such as ffmpeg and Prefect's ephemeral server are not included.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from mpr.errors import InputError, MprError

MAX_MINUTES = 600.0
# Pointed into the bench's own folder (or unset) for the duration of the bench.
ISOLATED_ENV = ("MPR_DATA_DIR", "MPR_DATABASE_URL", "MPR_ARTIFACTS", "MPR_RESULTS", "MPR_RESULTS_BLOCK")


def add_parser(sub) -> None:
    """Add `bench` to the CLI's subparsers."""
    bench = sub.add_parser("bench", help="real-time factor, Prefect overhead, replay cost and decode floor")
    bench.add_argument("source")
    bench.add_argument("--brands", required=True, help="brands YAML file")
    bench.add_argument("--profile", default="soccer_broadcast", help="profile name or YAML path")
    bench.add_argument("--minutes", type=float, help="loop the source with ffmpeg to this many minutes first")
    bench.add_argument("--set", dest="sets", action="append", default=[], metavar="STAGE.KEY=VALUE",
                       help="override one stage config value (repeatable)")
    bench.add_argument("--json", action="store_true", help="print the figures as JSON")
    bench.add_argument("-v", "--verbose", action="store_true", help="show Prefect's own logs")


def run(args: argparse.Namespace) -> int:
    from mpr.profiles import parse_set

    if args.minutes is not None and not 0 < args.minutes <= MAX_MINUTES:  # NaN fails too
        raise InputError(f"mpr bench: --minutes must be > 0 and <= {MAX_MINUTES:g}, not {args.minutes:g}")
    overrides = parse_set(args.sets)
    saved = {name: os.environ.get(name) for name in ISOLATED_ENV}
    with tempfile.TemporaryDirectory(prefix="mpr-bench-") as tmp:
        try:
            result = bench(args.source, args.brands, args.profile, overrides, args.minutes, Path(tmp),
                           verbose=args.verbose)
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
            _dispose_engines()
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print_tables(result)
    return 0


def _use_data_dir(path: Path) -> None:
    for name in ISOLATED_ENV:
        os.environ.pop(name, None)
    os.environ["MPR_DATA_DIR"] = str(path)
    os.environ["MPR_DATABASE_URL"] = f"sqlite:///{path / 'mpr.db'}"


def _dispose_engines() -> None:
    """Close the bench's SQLite engines so the temporary folder can go."""
    if "mpr.db.session" not in sys.modules:
        return
    from mpr.db import session

    session._engine.cache_clear()


def bench(source: str, brands: str, profile: str, overrides: dict, minutes: float | None, tmp: Path,
          verbose: bool = False) -> dict[str, Any]:
    from mpr.plan import prepare_run

    flow_dir, direct_dir, warm_dir = tmp / "flow", tmp / "direct", tmp / "warm"
    _use_data_dir(flow_dir)
    plan = prepare_run(source, brands, profile, overrides)  # bad input fails here, before any work
    if minutes is not None:
        if plan.source.kind != "video":
            raise InputError(f"mpr bench: --minutes needs a video source, {source} is a {plan.source.kind}")
        source = str(loop_clip(Path(plan.source.local_path), minutes, tmp / "loop"))
        plan = prepare_run(source, brands, profile, overrides)
    replay_overrides = _replay_overrides(plan, overrides)

    from mpr.db.session import get_engine

    get_engine()  # the fresh SQLite database, migrated, before the clock starts
    if not verbose:
        os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "CRITICAL")
    startup = start_prefect()
    from flows.detect import detect_brands

    bench_peak = _peak_rss_mb()
    _reset_peak_rss()
    start = time.perf_counter()
    report = detect_brands(source, brands, profile, overrides)
    flow_s = time.perf_counter() - start
    flow_peak = _peak_rss_mb()

    _use_data_dir(direct_dir)
    direct_s = run_direct(source, brands, profile, overrides)
    _use_data_dir(warm_dir)  # the flow again, nothing cached but models loaded, as for the direct loop
    start = time.perf_counter()
    detect_brands(source, brands, profile, overrides)
    warm_s = time.perf_counter() - start

    replay_s = None
    if replay_overrides is not None:
        _use_data_dir(flow_dir)
        start = time.perf_counter()
        detect_brands(source, brands, profile, replay_overrides)
        replay_s = time.perf_counter() - start

    frames, decode_s, grabbed, grab_s = decode_speed(plan.source.local_path) if plan.source.kind == "video" \
        else (0, 0.0, 0, 0.0)
    reads = sample_reads(plan) if plan.source.kind == "video" else {}
    stage_total = sum(s.seconds for s in report.stages)
    video_s = report.duration_s or plan.source.duration_s
    return {
        "source": source,
        "profile": report.profile,
        "overrides": report.overrides,
        "video_seconds": round(video_s, 3),
        "frames_analyzed": report.frames_analyzed,
        "flow_seconds": round(flow_s, 3),
        "real_time_factor": _ratio(video_s, flow_s),
        "stages": {s.name: {"seconds": s.seconds, "share": _ratio(s.seconds, stage_total, 4),
                            "chunks": s.chunks, "state": s.state} for s in report.stages},
        "stage_seconds_total": round(stage_total, 3),
        "direct_seconds": round(direct_s, 3),
        "flow_warm_seconds": round(warm_s, 3),
        "prefect_overhead_ratio": _ratio(warm_s, direct_s),
        "prefect_overhead_ratio_cold": _ratio(flow_s, direct_s),
        "replay_seconds": None if replay_s is None else round(replay_s, 3),
        "replay_ratio": None if replay_s is None else _ratio(replay_s, flow_s),
        "replay_change": replay_overrides and {"match_brands": replay_overrides["match_brands"]},
        "prefect_startup_seconds": round(startup, 3),
        "decode_frames": frames,
        "decode_fps": _ratio(frames, decode_s, 1),
        "decode_grab_fps": _ratio(grabbed, grab_s, 1),
        **reads,
        "peak_rss_mb": flow_peak,
        "peak_rss_mb_bench": max(bench_peak, flow_peak, _peak_rss_mb()),
        "peak_rss_covers": "this process only: not ffmpeg, not Prefect's ephemeral server",
        "cpus": os.cpu_count(),
    }


def _reset_peak_rss() -> None:
    """Start a new peak-RSS measurement where Linux allows it (VmHWM := current RSS)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def _peak_rss_mb() -> float:
    """Peak resident memory of this process since the last reset (or since it started), MB."""
    try:
        status = Path("/proc/self/status").read_text()
        return round(int(status.split("VmHWM:")[1].split()[0]) / 1024, 1)
    except (OSError, IndexError, ValueError):
        return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _ratio(a: float, b: float, digits: int = 3) -> float | None:
    return round(a / b, digits) if b > 0 else None


def _replay_overrides(plan, overrides: dict) -> dict | None:
    """The user's overrides with match_brands.min_score lowered by one (None: no match_brands)."""
    config = plan.profile.configs.get("match_brands")
    if config is None or "match_brands" not in plan.profile.stages or not hasattr(config, "min_score"):
        return None
    score = config.min_score - 1 if config.min_score >= 1 else config.min_score + 1
    out = {stage: dict(values) for stage, values in (overrides or {}).items()}
    out.setdefault("match_brands", {})["min_score"] = score
    return out


def loop_clip(path: Path, minutes: float, folder: Path) -> Path:
    """SOURCE looped (stream copy) to exactly `minutes` long."""
    import imageio_ffmpeg

    folder.mkdir(parents=True, exist_ok=True)
    out = folder / f"{path.stem}_{minutes:g}min{path.suffix or '.mp4'}"
    done = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", "-stream_loop", "-1",
                           "-i", str(path), "-t", str(minutes * 60), "-c", "copy", str(out)],
                          check=False, capture_output=True, text=True)
    if done.returncode != 0 or not out.exists():
        raise MprError(f"mpr bench: ffmpeg could not loop {path}: {done.stderr.strip()[-300:]}")
    return out


def start_prefect() -> float:
    """Start Prefect's ephemeral API (when no PREFECT_API_URL) outside the timed runs; offline, even
    when called before anything applied the project's defaults (the server inherits the environment)."""
    from mpr.settings import apply_offline_defaults

    apply_offline_defaults()
    start = time.perf_counter()
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        client.hello()
    return time.perf_counter() - start


def run_direct(source: str, brands, profile: str, overrides: dict) -> float:
    """Wall seconds of every stage function called in a plain loop, as flows.detect submits them
    and tasks.wrapper.run_stage runs them, without Prefect (outputs kept in a dict)."""
    from mpr.plan import prepare_run
    from tasks.wrapper import run_stage

    start = time.perf_counter()
    plan = prepare_run(source, brands, profile, overrides)
    outputs: dict[tuple[str, int | None], Any] = {}
    for stage in plan.profile.stages:
        for chunk in plan.task_ids(stage):
            inputs = [(outputs[(src, c)], when) for src, c, when in plan.inputs_of(stage, chunk)]
            ctx = plan.context(stage, chunk)
            outputs[(stage, chunk)] = run_stage(stage, chunk, ctx.key, inputs, plan.profile.configs[stage], ctx)
    return time.perf_counter() - start


def decode_speed(path: str) -> tuple[int, float, int, float]:
    """(frames, seconds) of decoding the whole video and converting every frame to BGR, then
    of decoding only: PyAV with threaded decoding, as extract_frames reads."""
    import av

    def one_pass(convert: bool) -> tuple[int, float]:
        frames, start = 0, time.perf_counter()
        with av.open(path) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for frame in container.decode(stream):
                if convert:
                    frame.to_ndarray(format="bgr24")
                frames += 1
        return frames, time.perf_counter() - start

    return (*one_pass(True), *one_pass(False))


def sample_reads(plan) -> dict[str, Any]:
    """Seconds to read the profile's samples of the whole source, sequentially and keyframe-snapped."""
    from statistics import median

    from mpr.keyframes import KeyframeReader
    from mpr.source import ChunkSpec, ReadResult, read_samples, sample_count

    info, fps = plan.source, plan.profile.configs[plan.profile.stages[0]].fps
    whole = ChunkSpec(0, 0.0, info.duration_s, 0, sample_count(info, fps))
    seconds, results = {}, {}
    for keyframes in (False, True):
        results[keyframes] = ReadResult()
        start = time.perf_counter()
        for _ in read_samples(info, whole, fps, results[keyframes], keyframes=keyframes):
            pass
        seconds[keyframes] = time.perf_counter() - start
    reader = KeyframeReader(info.local_path, fps, info.native_fps, info.frame_count)
    try:
        times = reader.keyframe_times(0.0, info.duration_s)
    finally:
        reader.close()
    gaps = [b - a for a, b in zip(times, times[1:])]
    return {
        "samples_read": whole.sample_stop,
        "sample_read_seconds": round(seconds[False], 3),
        "keyframe_read_seconds": round(seconds[True], 3),
        "keyframe_read_speedup": _ratio(seconds[False], seconds[True], 2),
        "keyframe_snapped_share": _ratio(results[True].snapped, whole.sample_stop),
        "keyframe_interval_s": round(median(gaps), 3) if gaps else None,
    }


def print_tables(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.width = max(console.width, 100)
    table = Table(title=f"Stages ({result['profile']}, compute seconds summed over chunks)", title_justify="left")
    for column in ("stage", "seconds", "share", "chunks"):
        table.add_column(column, justify="left" if column == "stage" else "right")
    for name, stage in result["stages"].items():
        table.add_row(name, f"{stage['seconds']:.2f}", f"{100 * (stage['share'] or 0):.1f}%", str(stage["chunks"]))
    console.print(table)

    def fmt(value, unit=""):
        return "-" if value is None else f"{value:g}{unit}"

    summary = Table(title=f"Bench of {result['source']}", title_justify="left")
    summary.add_column("figure")
    summary.add_column("value", justify="right")
    summary.add_column("what", style="dim")
    for figure, value, what in (
        ("video", fmt(result["video_seconds"], " s"), f"{result['frames_analyzed']} frames sampled"),
        ("flow run", fmt(result["flow_seconds"], " s"), "detect_brands, nothing cached, models loaded cold"),
        ("real-time factor", fmt(result["real_time_factor"]), "video s / flow s"),
        ("direct loop", fmt(result["direct_seconds"], " s"), "same stage functions, no Prefect, sequential"),
        ("flow run, warm", fmt(result["flow_warm_seconds"], " s"), "again, nothing cached, models loaded"),
        ("Prefect overhead ratio", fmt(result["prefect_overhead_ratio"]), "warm flow s / direct s"),
        ("  cold", fmt(result["prefect_overhead_ratio_cold"]), "first flow s / direct s"),
        ("replay", fmt(result["replay_seconds"], " s"), f"rerun with {result['replay_change']}"),
        ("replay ratio", fmt(result["replay_ratio"]), "replay s / flow s"),
        ("decode fps", fmt(result["decode_fps"]), f"PyAV decode + BGR, {result['decode_frames']} frames"),
        ("decode grab fps", fmt(result["decode_grab_fps"]), "PyAV decode only"),
        ("sample read", fmt(result.get("sample_read_seconds"), " s"),
         f"{result.get('samples_read')} samples: every frame decoded, the samples converted"),
        ("  keyframe-snapped", fmt(result.get("keyframe_read_seconds"), " s"),
         f"PyAV, {fmt(result.get('keyframe_snapped_share'))} of samples snapped, "
         f"keyframes every {fmt(result.get('keyframe_interval_s'), ' s')}"),
        ("peak RSS", fmt(result["peak_rss_mb"], " MB"), "first flow run; " + result["peak_rss_covers"]),
        ("  whole bench", fmt(result["peak_rss_mb_bench"], " MB"), "all four runs"),
        ("Prefect start-up", fmt(result["prefect_startup_seconds"], " s"), "not in the flow run's time"),
    ):
        summary.add_row(figure, value, what)
    console.print(summary)
