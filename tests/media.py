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


def level_of(image: np.ndarray) -> int:
    return round((float(image.mean()) - 10) / 20)


def small_clip(folder: Path) -> Path:
    """A 6 s 640x360 synthetic broadcast (`match.mp4`) and its `brands.yaml` in `folder`."""
    from mpr.synth import ClipSpec, render_clip, write_brands_file

    spec = ClipSpec(seconds=6.0, seed=5, width=640, height=360)
    render_clip(folder / "match.mp4", spec)
    write_brands_file(folder / "brands.yaml", spec.brands)
    return folder
