"""Shot cuts found while decoding, at (a fraction of) the native frame rate.

At 1 sample per second a cut between two look-alike wide shots of one stadium leaves
the per-sample colour histograms almost unchanged, and a whip pan can change them more
than a cut does. Between consecutive decoded frames a cut is a spike against its
neighbours, which PySceneDetect's AdaptiveDetector (HSV content score over a rolling
window) finds reliably. We feed it small thumbnails of the frames the decoder is
reading anyway; the extra cost is the colour conversion of each examined frame.
"""

from __future__ import annotations

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

    def feed(self, position: int, image: np.ndarray) -> None:
        height = max(1, round(image.shape[0] * THUMB_WIDTH / image.shape[1]))
        thumb = cv2.resize(image, (THUMB_WIDTH, height), interpolation=cv2.INTER_AREA)
        for cut in self.detector.process_frame(FrameTimecode(position, self.native_fps), thumb):
            self.positions.append(cut.frame_num)
