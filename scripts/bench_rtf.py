"""Real-time factor of profiles on a >= 5-minute 720p clip looped from the dev clips, in one run.

    python scripts/bench_rtf.py [--minutes 5] [--profiles soccer_broadcast fast full_frame_ocr] [--no-warmup] [--json]

The dev clips (../shared/data/real-dev) are scaled and padded to 1280x720, joined and
looped with ffmpeg (imageio-ffmpeg) into a cache folder outside the repository. Each
profile runs in this process against a fresh, empty checkpoint store (nothing cached),
one after the other on the same input; RTF = video seconds / wall seconds of the flow.
Prefect's temporary API server (no PREFECT_API_URL) is started first, outside the timed
runs, as `mpr bench` does, and each profile first runs untimed on the clip's first 12 seconds,
so that no timed run loads models (the OCR and object detector models load once per process:
without that warm-up, `--no-warmup`, the first profile listed pays for loading them: on the
2-minute loop soccer_broadcast took 58.5 s listed first and 52.1 s after a warm-up, 12% more).
Prints per-stage seconds and each profile's speed relative to the last one listed
(the full-frame-OCR baseline by default).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
REAL_DEV = ROOT.parent / "shared" / "data" / "real-dev"
CLIPS = ["02_bundesliga_dfl_08fd33_4_848x478.mp4", "03_japan_tajikistan_nhk_360p.mp4"]
WARMUP_S = 12  # seconds of the clip each profile runs on, untimed, before the timed runs
BRANDS = ["flatex", "apotal.de", "PUMA", "Santander", "sonepar", "ELTEN", "reuter.com", "Audi", "Holland Casino",
          "KIRIN", "adidas", "NHK"]


def looped_clip(minutes: float, cache: Path) -> Path:
    import imageio_ffmpeg

    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    cache.mkdir(parents=True, exist_ok=True)
    base, out = cache / "dev_720p.mp4", cache / f"dev_720p_{minutes:g}min.mp4"
    if not base.exists():
        fit = "scale=1280:720:force_original_aspect_ratio=decrease,pad=1280:720:(ow-iw)/2:(oh-ih)/2,setsar=1,fps=25"
        graph = f"[0:v]{fit}[a];[1:v]{fit}[b];[a][b]concat=n=2:v=1[v]"
        subprocess.run([ffmpeg, "-y", "-loglevel", "error", *sum([["-i", str(REAL_DEV / c)] for c in CLIPS], []),
                        "-filter_complex", graph, "-map", "[v]", "-c:v", "libx264", "-preset", "veryfast",
                        "-crf", "20", "-g", "50", str(base)], check=True)
    if not out.exists():
        subprocess.run([ffmpeg, "-y", "-loglevel", "error", "-stream_loop", "-1", "-i", str(base), "-t",
                        str(minutes * 60), "-c", "copy", str(out)], check=True)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--profiles", nargs="+", default=["soccer_broadcast", "fast", "full_frame_ocr"])
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "mpr-bench")
    parser.add_argument("--set", dest="sets", action="append", default=[], help="stage.key=value for every profile")
    parser.add_argument("--no-warmup", dest="warmup", action="store_false",
                        help="no untimed run of each profile first: the first profile loads the models in its run")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if not REAL_DEV.exists():
        print(f"skipped: {REAL_DEV} is absent")
        return 0
    clip = looped_clip(args.minutes, args.cache)
    os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "WARNING")
    from flows.detect import detect_brands
    from mpr.bench import start_prefect
    from mpr.profiles import parse_set

    startup = start_prefect()  # Prefect's temporary API server starts outside the timed runs, as in mpr bench

    def run(profile: str, source: Path):
        with tempfile.TemporaryDirectory() as data:
            os.environ["MPR_DATA_DIR"] = data  # an empty store: nothing cached
            start = time.perf_counter()
            report = detect_brands(str(source), [{"name": b} for b in BRANDS], profile, parse_set(args.sets))
            return report, time.perf_counter() - start

    if args.warmup:
        warmup = looped_clip(WARMUP_S / 60, args.cache)
        for profile in dict.fromkeys(args.profiles):
            run(profile, warmup)
    rows = []
    for profile in args.profiles:
        report, wall = run(profile, clip)
        rows.append({"profile": profile, "video_s": report.duration_s, "wall_s": round(wall, 1),
                     "real_time_factor": round(report.duration_s / wall, 2),
                     "frames": report.frames_analyzed, "brands": len(report.brands),
                     "brand_seconds": {b.brand: round(b.exposure_s) for b in report.brands},
                     "stages": {s.name: s.seconds for s in report.stages}})
    base = rows[-1]["real_time_factor"]
    for row in rows:
        row["speed_vs_" + rows[-1]["profile"]] = round(row["real_time_factor"] / base, 2)
    if args.json:
        print(json.dumps({"clip": str(clip), "cpus": os.cpu_count(), "prefect_startup_s": round(startup, 1),
                          "warmup_s": WARMUP_S if args.warmup else 0, "runs": rows}, indent=1))
        return 0
    print(f"clip: {clip.name} ({rows[0]['video_s']:.0f} s, 1280x720), {os.cpu_count()} CPUs, 1 fps; "
          f"Prefect's temporary server started in {startup:.1f} s (not timed); "
          + (f"models loaded by an untimed {WARMUP_S}-s run of each profile" if args.warmup
             else "no warm-up: the first profile loads the models in its run"))
    print(f"{'profile':<18} {'wall s':>7} {'RTF':>6} {'vs ' + rows[-1]['profile']:>20} {'brands':>6}")
    for row in rows:
        print(f"{row['profile']:<18} {row['wall_s']:>7.1f} {row['real_time_factor']:>6.2f} "
              f"{row['speed_vs_' + rows[-1]['profile']]:>19.2f}x {row['brands']:>6}")
    print("\nbrand seconds")
    for row in rows:
        print(f"{row['profile']:<18} " + ", ".join(f"{k} {v}" for k, v in row["brand_seconds"].items()))
    print("\nstage seconds (compute, summed over chunks; stages overlap across chunks)")
    for row in rows:
        print(f"{row['profile']:<18} " + ", ".join(f"{k} {v:.1f}" for k, v in row["stages"].items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
