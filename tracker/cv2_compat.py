"""A drop-in for OpenCV's trackers (cv2.TrackerNano, cv2.TrackerCSRT, ...): same calls, same return types.

    tracker = SiamTracker.from_pretrained().as_opencv()   # instead of cv2.TrackerNano.create(params)
    tracker.init(frame, (x, y, w, h))
    ok, (x, y, w, h) = tracker.update(frame)               # ints, ready for cv2.rectangle

What OpenCV's trackers lack is kept: `score` and `lost` of the last update, and `result` (the TrackResult).
"""
from __future__ import annotations

import numpy as np

from .result import TrackResult


class OpenCVTracker:
    """A SiamTracker behind OpenCV's tracker interface (SiamTracker.as_opencv() makes one)."""

    def __init__(self, tracker) -> None:
        """tracker: a SiamTracker (its network may be shared with other trackers)."""
        self.tracker = tracker
        self.result: TrackResult | None = None

    def init(self, image: np.ndarray, bounding_box) -> None:
        """image: BGR uint8; bounding_box: (x, y, w, h), as cv2.selectROI returns it."""
        self.tracker.init(image, bounding_box)
        self.result = None

    def update(self, image: np.ndarray) -> tuple[bool, tuple[int, int, int, int]]:
        """(ok, (x, y, w, h)): ok is False when the target is lost; the box is rounded to whole pixels."""
        self.result = self.tracker.update(image)
        return bool(self.result), _int_box(self.result.box)

    @property
    def score(self) -> float | None:
        return None if self.result is None else self.result.score

    @property
    def lost(self) -> bool | None:
        return None if self.result is None else self.result.lost


def _int_box(box) -> tuple[int, int, int, int]:
    """Rounded corners, not rounded sizes: the drawn box then covers the float box to within half a pixel."""
    x, y, w, h = box
    left, top = int(round(x)), int(round(y))
    return left, top, int(round(x + w)) - left, int(round(y + h)) - top
