"""Lost and found: is the target there, and where to look for it when it is not.

A siamese score alone flickers: one low frame is often a blur, and one high frame while the target is gone is
often a look-alike. So the state moves on runs of frames, not single frames:

* tracking: the score is at least lost_threshold + uncertain_margin;
* uncertain: a lower score, or a run of low frames (under lost_threshold) shorter than lost_after; the box still
  follows the peak;
* lost: lost_after low frames in a row. The box goes back to where the target was last seen with a good score
  and stays there; nothing about the target is updated. Behind it, a shadow of the tracking state keeps
  searching as usual from where the target was lost, and when it scores low a few tiles of the whole frame are
  searched too (one batch through the backbone), nearest first. The target is taken back only when one place
  scores at least lost_threshold + redetect_margin on redetect_confirm frames in a row: one strong frame on a
  distractor is not enough.

The tracker (tracking.py) runs the network; this module keeps the state and picks the tiles.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

STATES = ("tracking", "uncertain", "lost")


@dataclass
class Presence:
    state: str = "tracking"
    low_run: int = 0  # low frames in a row
    last_good: tuple | None = None  # (center, size, search_side) at the last frame scored tracking
    candidate: np.ndarray | None = None  # where a re-detection was seen, while lost
    confirmed: int = 0  # frames in a row a re-detection was seen there
    next_tile: int = 0  # where the tile sweep goes on next frame
    tiles: list = field(default_factory=list)
    shadow: object = None  # while lost: the tracking state that keeps searching (the box itself stays put)

    def after_tracked(self, score: float, lost_threshold: float, uncertain_margin: float, lost_after: int,
                      center, size, side) -> bool:
        """The state after a normal tracking step that scored `score`; True when the target has just been lost
        (the caller then puts the box back at last_good)."""
        if score >= lost_threshold:
            self.low_run = 0
            self.state = "tracking" if score >= lost_threshold + uncertain_margin else "uncertain"
            if self.state == "tracking":
                self.last_good = (np.array(center, float), np.array(size, float), float(side))
            return False
        self.low_run += 1
        if self.low_run < lost_after:
            self.state = "uncertain"
            return False
        self.state = "lost"
        self.candidate, self.confirmed, self.next_tile = None, 0, 0
        self.tiles = []
        return True

    def after_search(self, score: float, position, redetect_threshold: float, confirm: int, near: float) -> bool:
        """While lost: the best peak of this frame's search. True when the target is taken back at `position`."""
        if score < redetect_threshold:
            self.candidate, self.confirmed = None, 0
            return False
        position = np.asarray(position, float)
        if self.candidate is not None and np.linalg.norm(position - self.candidate) <= near:
            self.confirmed += 1
        else:
            self.confirmed = 1
        self.candidate = position
        if self.confirmed < confirm:
            return False
        self.state, self.low_run, self.candidate, self.confirmed = "tracking", 0, None, 0
        return True


def tile_centres(frame_size: tuple[int, int], spacing: float, start) -> list[np.ndarray]:
    """Centres of search regions that together cover the frame (`spacing` apart, the span a search region's
    response covers), nearest to `start` first, so that the search widens from where the target was."""
    width, height = frame_size
    spacing = max(float(spacing), 8.0)
    nx, ny = max(1, math.ceil(width / spacing)), max(1, math.ceil(height / spacing))
    xs = (np.arange(nx) + 0.5) * width / nx
    ys = (np.arange(ny) + 0.5) * height / ny
    centres = [np.array([x, y]) for y in ys for x in xs]
    centres.sort(key=lambda c: float(np.linalg.norm(c - np.asarray(start, float))))
    return centres
