"""Shot cuts found while decoding, at (a fraction of) the native frame rate.

At 1 sample per second a cut between two look-alike wide shots of one stadium leaves
the per-sample colour histograms almost unchanged, and a whip pan can change them more
than a cut does. Between consecutive decoded frames a cut is a spike against its
neighbours, which PySceneDetect's AdaptiveDetector (HSV content score over a rolling
window) finds reliably. We feed it small thumbnails of the frames the decoder is
reading anyway, made from the decoded planes (`thumbnail`).
"""

from __future__ import annotations

import av
import cv2
import numpy as np
from scenedetect import FrameTimecode
from scenedetect.detectors import AdaptiveDetector

THUMB_WIDTH = 256  # pixels; the content score is a mean over the frame, so detail adds nothing


class DecodeCuts:
    """Feed decoded frames by position; collects the positions where a new shot starts."""

    def __init__(self, native_fps: float, cut_fps: float):
        self.native_fps = native_fps
        self.stride = max(1, round(native_fps / cut_fps))
        # min_scene_len in frames: half a second, so flashes and wipes count once
        self.detector = AdaptiveDetector(min_scene_len=max(1, round(native_fps / 2)))
        self.positions: list[int] = []  # first frame of each new shot

    @property
    def lag(self) -> int:
        """Frames past a cut the detector must see before it reports it."""
        return (self.detector.window_width + 1) * self.stride

    def wants(self, position: int) -> bool:
        return position % self.stride == 0

    def feed(self, position: int, thumb: np.ndarray) -> None:
        """One examined frame, as a BGR thumbnail (`thumbnail`)."""
        for cut in self.detector.process_frame(FrameTimecode(position, self.native_fps), thumb):
            self.positions.append(cut.frame_num)


def thumbnail(frame: av.VideoFrame, width: int = THUMB_WIDTH) -> np.ndarray:
    """A decoded frame as a small BGR image. For 4:2:0 pictures (nearly every broadcast) the
    luma and chroma planes are shrunk first and converted at the small size: a third of the
    cost of converting the whole frame and then shrinking it (the same image to within the
    rounding of the averages)."""
    height = max(2, round(frame.height * width / frame.width / 2) * 2)
    if frame.format.name not in ("yuv420p", "yuvj420p"):
        return frame.reformat(width=width, height=height, format="bgr24").to_ndarray()
    y, u, v = (_plane(frame, i) for i in range(3))
    small = [cv2.resize(y, (width, height), interpolation=cv2.INTER_AREA)]
    small += [cv2.resize(c, (width // 2, height // 2), interpolation=cv2.INTER_AREA) for c in (u, v)]
    i420 = np.concatenate([p.reshape(-1) for p in small]).reshape(height * 3 // 2, width)
    return cv2.cvtColor(i420, cv2.COLOR_YUV2BGR_I420)


def _plane(frame: av.VideoFrame, index: int) -> np.ndarray:
    plane = frame.planes[index]
    rows = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)
    return rows[:, :plane.width]
