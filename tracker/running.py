"""The one frame loop (as pytracking's running.py or got10k's Tracker.track): init on the first frame with the
given box, update on each frame after it, one `Step` (the frame's result and the seconds it took) per frame.

`track`, `batch`, `eval`, `bench`, `calibrate-lost` and `absence` all go through it, so they agree on what the
first frame's answer is: the given box, score 1.0, not lost (the tracker was told, not asked).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Iterable, Iterator

import numpy as np

from .result import TrackResult


@dataclass(frozen=True)
class Step:
    number: int  # 0 for the init frame, then 1, 2, ... for the updates since
    result: Any  # a TrackResult; for a MultiTracker, a dict of them by target id
    seconds: float  # time in the tracker's init() or update()

    @property
    def is_init(self) -> bool:
        return self.number == 0


def given(box) -> TrackResult:
    """The first frame's answer for a target given by `box`."""
    return TrackResult(tuple(float(v) for v in box), 1.0, False)


class TrackRun:
    """One tracker through one sequence of frames, a step at a time (for callers that feed several trackers the
    same frame, or change the targets mid-run). `tracker` is a SiamTracker, an OpenCV peer (init(frame, box)), or
    a MultiTracker (init(frame, boxes) -> ids; then `start` is the list of boxes)."""

    def __init__(self, tracker, start=None) -> None:
        self.tracker = tracker
        self.start = start
        self.number = -1

    def restart(self, image: np.ndarray, start) -> Step:
        """Initialise again now, on `image` with `start` (the box, or a MultiTracker's boxes); the step after
        updates. When the tracker refuses, the run goes on as before."""
        before = self.start, self.number
        self.start, self.number = start, -1
        try:
            return self.step(image)
        except BaseException:
            self.start, self.number = before
            raise

    def step(self, image: np.ndarray) -> Step:
        self.number += 1
        started = time.perf_counter()
        if self.number == 0:
            ids = self.tracker.init(image, self.start)
            result = given(self.start) if ids is None else {i: given(b) for i, b in zip(ids, self.start)}
        else:
            result = self.tracker.update(image)
        return Step(self.number, result, time.perf_counter() - started)


def track(tracker, images: Iterable[np.ndarray], start) -> Iterator[Step]:
    """Init `tracker` on the first image with `start`, update it on each image after; a Step per image."""
    run = TrackRun(tracker, start)
    for image in images:
        yield run.step(image)
