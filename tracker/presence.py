"""Lost and found: is the target there, and where to look for it when it is not.

A siamese score alone flickers: one low frame is often a blur, and one high frame while the target is gone is
often a look-alike. So the state moves on runs of frames, not single frames:

* tracking: the score is at least lost_threshold + uncertain_margin;
* uncertain: a lower score, or a run of low frames (under lost_threshold) shorter than lost_after; the box still
  follows the peak;
* lost: lost_after low frames in a row, or fast_lost_after frames in a row under fast_lost_threshold (far below
  lost_threshold: a frame that surely is not the target, such as a cut to another scene). The box goes back to
  where the target was last seen with a good score and stays there; nothing about the target is updated.
  Behind it, a shadow of the tracking state keeps searching as usual from where the target was lost, and when it
  scores low a few tiles of the whole frame are searched too (one batch through the backbone), nearest first;
  a shadow that has scored under fast_lost_threshold for redetect_move frames in a row (it follows nothing)
  moves to the best tile peak at lost_threshold or more, to score that place at the centre of its search.
  The target is taken back only when one place scores at least lost_threshold + redetect_margin on
  redetect_confirm frames in a row: one strong frame on a distractor is not enough. (With redetect_look, a place
  that scores that much is also compared with the first box (tracker/appearance.py) before its score counts.)

Presence owns all of that: the state, the shadow, the tile plan and the re-detection decision. The tracking loop
(tracking.py) only runs the network for the shadow and the tiles.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import numpy as np

from .exclusive import inside_any

STATES = ("tracking", "uncertain", "lost")


def redetect_threshold(config) -> float:
    """The score a re-detection must reach (a TrackerConfig's lost_threshold + redetect_margin, below 1)."""
    return min(config.lost_threshold + config.redetect_margin, 0.999)


@dataclass
class Presence:
    state: str = "tracking"
    low_run: int = 0  # low frames in a row
    very_low_run: int = 0  # frames in a row under fast_lost_threshold
    unsure_run: int = 0  # frames in a row under the tracking line (lost_threshold + uncertain_margin)
    last_good: tuple | None = None  # (center, size, search_side) at the last frame scored tracking
    candidate: np.ndarray | None = None  # where a re-detection was seen, while lost
    confirmed: int = 0  # frames in a row a re-detection was seen there
    followed: int = 0  # while lost, frames in a row the shadow's own search scored at the tracking line
    idle: int = 0  # while lost, frames in a row the shadow's own search scored under fast_lost_threshold
    next_tile: int = 0  # where the tile sweep goes on next frame
    tiles: list = field(default_factory=list)
    shadow: object = None  # while lost: a copy of the target's state (tracking.TargetState) that keeps searching

    def after_tracked(self, score: float, lost_threshold: float, uncertain_margin: float, lost_after: int,
                      center, size, side, uncertain_after: int = 1, fast_lost_threshold: float = 0.0,
                      fast_lost_after: int = 2) -> bool:
        """The state after a normal tracking step that scored `score`; True when the target has just been lost.
        Between lost_threshold and the tracking line, "uncertain" shows from the uncertain_after-th such frame in
        a row on; a low frame (under lost_threshold) shows it at once. Lost after lost_after low frames in a row,
        or sooner, after fast_lost_after frames in a row under fast_lost_threshold (0: never sooner)."""
        sure = score >= lost_threshold + uncertain_margin
        self.unsure_run = 0 if sure else self.unsure_run + 1
        if score >= lost_threshold:
            self.low_run = self.very_low_run = 0
            self.state = "tracking" if self.unsure_run < uncertain_after else "uncertain"
            if sure:
                self.last_good = (np.array(center, float), np.array(size, float), float(side))
            return False
        self.low_run += 1
        self.very_low_run = self.very_low_run + 1 if score < fast_lost_threshold else 0
        if self.low_run < lost_after and self.very_low_run < fast_lost_after:
            self.state = "uncertain"
            return False
        self.state = "lost"
        self.candidate, self.confirmed, self.followed, self.idle, self.next_tile = None, 0, 0, 0, 0
        self.tiles = []
        return True

    @property
    def learning_state(self) -> str:
        """The state as what learns from a frame (the online model, the second template) reads it: "tracking"
        only on a frame scored at the tracking line or above, not on one shown as tracking while uncertain_after
        waits."""
        return "uncertain" if self.state == "tracking" and self.unsure_run else self.state

    def complete_low_run(self, lost_after: int) -> None:
        """Make the next low frame the one that loses the target (MultiTracker: a target left without a place of
        its own when it converged onto another target's object; tracker/exclusive.py)."""
        self.low_run = max(self.low_run, lost_after - 1)

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
        self._found()
        return True

    def _found(self) -> None:
        self.state, self.low_run, self.very_low_run, self.unsure_run = "tracking", 0, 0, 0
        self.candidate, self.confirmed = None, 0

    def settle_tracked(self, score: float, state, config) -> bool:
        """After a tracked target's step: the new presence state. On the frame it is lost, the search goes on from
        there in a shadow of `state`, while the box goes back to where the target was last seen well and stays.
        True when the target has just been lost."""
        lost = self.after_tracked(score, config.lost_threshold, config.uncertain_margin, config.lost_after,
                                  state.center, state.size, state.search_side, config.uncertain_after,
                                  config.fast_lost_threshold, config.fast_lost_after)
        if lost:
            self.shadow = shadow_of(state)
            if self.last_good:
                center, size, side = self.last_good
                state.center, state.size, state.search_side = center.copy(), size.copy(), side
        return lost

    def next_tiles(self, frame_size: tuple[int, int], span: float, count: int) -> list[np.ndarray]:
        """The next `count` tiles of the sweep over the frame (`span` apart), which starts at the shadow's place."""
        if not self.tiles:
            self.tiles = tile_centres(frame_size, span, self.shadow.center)
        count = min(count, len(self.tiles))
        plan = [self.tiles[(self.next_tile + i) % len(self.tiles)] for i in range(count)]
        self.next_tile += count
        return plan

    def settle_search(self, score: float, tile_hit, state, config) -> float:
        """While lost, after the shadow's step (`score`) and maybe a tile search (`tile_hit`: (score, position)):
        the shadow moves to the best tile peak that clears the re-detection threshold, to look there again next
        frame. The target (`state`) is taken back only when the same place is confirmed. Returns the frame's score:
        the score of the place the shadow is at now (the box shown while lost), not of a tile peak it did not go
        to."""
        threshold, shadow = redetect_threshold(config), self.shadow
        followed = score >= config.lost_threshold + config.uncertain_margin
        best, position, from_tiles = score, shadow.center, False
        if tile_hit is not None and tile_hit[0] > score:
            best, position, from_tiles = tile_hit[0], tile_hit[1], True
        self.idle = self.idle + 1 if score < config.fast_lost_threshold else 0
        if from_tiles and (best >= threshold or moves_to_tile(self.idle, best, config)):
            # track on from there next frame, at the held size: to confirm, or to score it at the centre
            shadow.center = np.asarray(position, float).copy()
            shadow.size, shadow.search_side = state.size.copy(), state.search_side
            followed, self.idle = False, 0  # the shadow jumped: what it followed is not what it will follow
            score = best
        self.followed = self.followed + 1 if followed else 0
        taken = self.after_search(best, position, threshold, config.redetect_confirm, state.search_side / 4)
        if not taken and config.redetect_follow and self.followed >= config.redetect_follow:
            self._found()
            taken = True
        if taken:
            state.center, state.size, state.search_side = shadow.center.copy(), shadow.size.copy(), shadow.search_side
            self.shadow, self.followed = None, 0
        return score


def moves_to_tile(idle: int, peak: float, config) -> bool:
    """With redetect_move N: the search from the last place has scored under fast_lost_threshold on N frames in a
    row (`idle`: it follows nothing; a dark or blurred target scores that low now and then, not for long), and a
    tile peak scored `peak`, at least lost_threshold: the search goes there."""
    return 0 < config.redetect_move <= idle and peak >= config.lost_threshold


def shadow_of(state):
    """A lost target's shadow: a copy of its state (tracking.TargetState) with a place of its own, sharing the
    target's templates and online model."""
    return dataclasses.replace(state, center=state.center.copy(), size=state.size.copy())


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


def best_tile(scores: np.ndarray, centres: list, stride: int, side: float, search_size: int,
              frame_size: tuple[int, int], fallback, excluded=()) -> tuple[float, np.ndarray, int | None]:
    """The best peak over the tiles' score maps (T,R,R), as (score, frame position, index of the tile it is in),
    for search crops of `side` frame pixels (search_size crop pixels, `stride` of them per response cell); the
    index lets the verifier read that tile's maps again. `fallback` is the position (and None the index) when no
    tile gave a finite score. Cells inside an `excluded` box (x, y, w, h: another target's, in a MultiTracker) are
    left out: a lost target never takes back a place another target holds (tracker/exclusive.py)."""
    if len(excluded):
        scores = _without_excluded(scores, centres, stride * side / search_size, excluded)
    peaks = scores.reshape(len(centres), -1).max(axis=1)
    if not np.isfinite(peaks).any():
        return 0.0, fallback, None
    best = int(np.nanargmax(peaks))
    cells = scores.shape[1]
    row, col = np.unravel_index(int(np.argmax(scores[best])), scores.shape[1:])
    offset = (np.array([col, row]) - (cells - 1) / 2) * stride * side / search_size
    position = np.clip(np.asarray(centres[best], float) + offset, 0, list(frame_size))
    return float(peaks[best]), position, best


def _without_excluded(scores: np.ndarray, centres: list, cell_side: float, excluded) -> np.ndarray:
    """The tiles' score maps with the cells whose frame position lies inside an excluded box set to -inf."""
    cells = scores.shape[1]
    offsets = (np.arange(cells) - (cells - 1) / 2) * cell_side
    centres = np.asarray(centres, float)
    xs = centres[:, 0, None, None] + offsets[None, None, :]  # column offsets
    ys = centres[:, 1, None, None] + offsets[None, :, None]  # row offsets
    return np.where(inside_any(xs, ys, excluded), -np.inf, scores)
