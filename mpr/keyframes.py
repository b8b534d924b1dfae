"""Keyframe-snapped sample reading (PyAV): decode only the frames the samples need.

OpenCV's grab() skips the colour conversion of the frames between two samples but still
decodes every one of them. A keyframe decodes on its own, so when a keyframe lies in a
sample's window (within half a sample interval of the sample's time) the sample takes it
and the decoder runs with `skip_frame=NONKEY` through that group of pictures: its other
frames are never decoded. A sample whose window holds no keyframe is read exactly: the
group of pictures it lies in is decoded in full from its keyframe. Broadcast encoders put
a keyframe every 0.5-2 s, so at 1 sample per second most samples snap; with sparse
keyframes this reads the same frames as the sequential reader.

Two passes per chunk: packet flags give the keyframe times (demuxing only, no decoding),
then the decoding pass switches `skip_frame` at each keyframe packet.
"""

from __future__ import annotations

import bisect
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass

import av
import numpy as np

from mpr.errors import MprError


@dataclass(frozen=True)
class Target:
    """A sample and the frame it reads."""

    index: int  # sample index
    t: float  # the sample's own time (index / fps)
    at: float  # time of the frame it takes: a keyframe's, or the exact frame's
    snapped: bool


def plan_targets(indices: range, fps: float, native_fps: float, frame_count: int,
                 keyframes: list[float]) -> list[Target]:
    """Each sample takes the keyframe nearest its time within half a sample interval, else
    its exact frame (the frame the sequential reader would return)."""
    half = 0.5 / fps
    targets = []
    for index in indices:
        t = index / fps
        lo, hi = bisect.bisect_left(keyframes, t - half), bisect.bisect_left(keyframes, t + half)
        if lo < hi:
            nearest = min(keyframes[lo:hi], key=lambda k: abs(k - t))
            targets.append(Target(index, t, nearest, True))
        else:
            exact = min(round(t * native_fps), frame_count - 1) / native_fps
            targets.append(Target(index, t, exact, False))
    return targets


class KeyframeReader:
    """One open video; `read(indices)` yields (target, BGR image) in sample order."""

    def __init__(self, path: str, fps: float, native_fps: float, frame_count: int):
        try:
            self.container = av.open(path)
            self.stream = self.container.streams.video[0]
        except (av.FFmpegError, IndexError) as exc:
            raise MprError(f"{path}: PyAV cannot open its video stream ({exc})") from None
        self.stream.thread_type = "AUTO"
        self.fps, self.native_fps, self.frame_count = fps, native_fps, frame_count
        self.origin = self.stream.start_time or 0
        self.eps = 0.25 / native_fps  # frame times are compared to within a quarter frame

    def close(self) -> None:
        self.container.close()

    def seconds(self, pts: int) -> float:
        return float((pts - self.origin) * self.stream.time_base)

    def seek(self, t: float) -> None:
        """To the keyframe at or before `t` seconds."""
        offset = int(max(0.0, t) / self.stream.time_base) + self.origin
        self.container.seek(offset, stream=self.stream, backward=True, any_frame=False)

    def keyframe_times(self, start: float, end: float) -> list[float]:
        """Keyframe times from `start`'s keyframe to just past `end`, from packet flags only."""
        self.seek(start)
        times = []
        for packet in self.container.demux(self.stream):
            if packet.pts is None:
                continue
            t = self.seconds(packet.pts)
            if packet.is_keyframe:
                times.append(t)
                if t > end:
                    break
        return sorted(set(times))

    def read(self, indices: range) -> Iterator[tuple[Target, np.ndarray]]:
        if not indices:
            return
        half = 0.5 / self.fps
        keyframes = self.keyframe_times(indices[0] / self.fps - half, indices[-1] / self.fps + half)
        targets = plan_targets(indices, self.fps, self.native_fps, self.frame_count, keyframes)
        # groups of pictures decoded in full: those holding an exact target
        full = {keyframes[max(0, bisect.bisect_right(keyframes, x.at + self.eps) - 1)]
                for x in targets if not x.snapped} if keyframes else set()
        pending = deque(targets)
        context = self.stream.codec_context
        self.seek(min(x.at for x in targets))
        for packet in self.container.demux(self.stream):
            if packet.is_keyframe and packet.pts is not None:
                t = self.seconds(packet.pts)
                context.skip_frame = "DEFAULT" if any(abs(t - k) < self.eps for k in full) else "NONKEY"
            for frame in packet.decode():  # the last (empty) packet flushes the decoder
                if frame.pts is None:
                    continue
                t = self.seconds(frame.pts)
                image = None
                while pending and t >= pending[0].at - self.eps:
                    image = frame.to_ndarray(format="bgr24") if image is None else image
                    yield pending.popleft(), image
                if not pending:
                    return
