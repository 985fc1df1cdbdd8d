"""Shot cuts: the frame where edited video switches to another shot.

A cut changes the whole picture's colours at once, while motion, blur and a turning target change where colours
are more than how much of each there is. So a frame starts a new shot when the colour histogram of a thumbnail
(8 hue x 4 saturation x 4 value bins) moved far from the previous frame's: by the Bhattacharyya distance
(OpenCV's compareHist), 0 for the same colours, 1 for none in common. It costs about 0.13 ms per 768x576 frame.

`python benchmarks/shot_cuts.py` prints where the distance falls. Between consecutive frames of val's 6
sequences it never reaches 0.13, and `siamtrack absence`'s 6 cuts into other footage start at 0.599 or more:
jump_at_cuts' line, 0.3, was chosen between the two. val-hard confirms that all 19 of its cuts reach 0.3 (the
least: Toy cut to Vase, both indoor, 0.393). Its natural video has real cuts too: 50 of 9,899 frame pairs reach
0.3, 47 of them in Singer2 (a concert filmed by several cameras), two in Vase, one in Woman (a change of
white balance).
"""
from __future__ import annotations

import cv2
import numpy as np

THUMBNAIL = (128, 96)  # width, height: a sample of 12,288 pixels (nearest: averaging costs 10x more)
BINS = [8, 4, 4]  # hue, saturation, value
RANGES = [0, 180, 0, 256, 0, 256]  # OpenCV's 8-bit HSV


def colour_histogram(frame: np.ndarray) -> np.ndarray:
    """A BGR frame's normalised HSV histogram, on a thumbnail."""
    small = cv2.resize(frame, THUMBNAIL, interpolation=cv2.INTER_NEAREST)
    histogram = cv2.calcHist([cv2.cvtColor(small, cv2.COLOR_BGR2HSV)], [0, 1, 2], None, BINS, RANGES)
    return cv2.normalize(histogram, histogram).flatten()


def colour_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Bhattacharyya distance of two colour_histogram()s: 0 alike, 1 nothing in common."""
    return float(cv2.compareHist(a, b, cv2.HISTCMP_BHATTACHARYYA))


class ShotCuts:
    """Tells, frame by frame, whether a frame starts a new shot: its colours moved `threshold` or more from the
    previous frame's."""

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold
        self._last: np.ndarray | None = None

    def is_cut(self, frame: np.ndarray) -> bool:
        """Whether `frame` starts a new shot (never the first frame seen); it becomes the frame compared with next."""
        histogram, last = colour_histogram(frame), self._last
        self._last = histogram
        return last is not None and colour_distance(last, histogram) >= self.threshold
