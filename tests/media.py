"""Tiny media files for tests, written with the ffmpeg that imageio-ffmpeg ships."""

from __future__ import annotations

from pathlib import Path

import imageio_ffmpeg
import numpy as np


def level_video(path: Path, seconds: float, fps: int = 25, size=(160, 96), faststart=True) -> Path:
    """Each second has its own grey level (10 + 20*k), so a decoded frame tells its time."""
    w, h = size
    params = ["-movflags", "+faststart"] if faststart else []
    writer = imageio_ffmpeg.write_frames(str(path), (w, h), fps=fps, codec="libx264", quality=None,
                                         output_params=["-crf", "10", "-g", str(fps * 2), *params],
                                         macro_block_size=1, ffmpeg_log_level="error")
    writer.send(None)
    for i in range(round(seconds * fps)):
        writer.send(np.full((h, w, 3), 10 + 20 * (i // fps), np.uint8).tobytes())
    writer.close()
    return path


def counter_video(path: Path, seconds: float, gop: int, fps: int = 25, size=(64, 48)) -> Path:
    """Frame i shows i in base 16 as two grey halves (so a decoded frame tells its index),
    with a keyframe every `gop` frames and nowhere else, and B-frames between."""
    w, h = size
    frames = round(seconds * fps)
    assert frames <= 256, "two base-16 digits"
    writer = imageio_ffmpeg.write_frames(str(path), (w, h), fps=fps, codec="libx264", quality=None, pix_fmt_out="yuv444p",
                                         output_params=["-qp", "0", "-g", str(gop), "-keyint_min", str(gop),
                                                        "-sc_threshold", "0", "-bf", "3", "-movflags", "+faststart"],
                                         macro_block_size=1, ffmpeg_log_level="error")
    writer.send(None)
    for i in range(frames):
        image = np.empty((h, w, 3), np.uint8)
        image[:, : w // 2], image[:, w // 2:] = 16 * (i // 16) + 8, 16 * (i % 16) + 8
        writer.send(image.tobytes())
    writer.close()
    return path


def frame_of(image: np.ndarray) -> int:
    """The index counter_video drew into a frame."""
    w = image.shape[1]
    high, low = (round((float(half.mean()) - 8) / 16) for half in (image[:, : w // 2], image[:, w // 2:]))
    return 16 * high + low


def level_of(image: np.ndarray) -> int:
    return round((float(image.mean()) - 10) / 20)


def small_clip(folder: Path) -> Path:
    """A 6 s 640x360 synthetic broadcast (`match.mp4`) and its `brands.yaml` in `folder`."""
    from mpr.synth import ClipSpec, render_clip, write_brands_file

    spec = ClipSpec(seconds=6.0, seed=5, width=640, height=360)
    render_clip(folder / "match.mp4", spec)
    write_brands_file(folder / "brands.yaml", spec.brands)
    return folder
