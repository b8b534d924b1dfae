"""MPR: measure sponsor-brand exposure in sports broadcast video."""

import os

# FFmpeg (inside OpenCV) prints decoder complaints straight to stderr; MPR reports
# unreadable or truncated media itself, in one line.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")

__version__ = "0.1.0"
