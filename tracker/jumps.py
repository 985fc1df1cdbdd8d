"""A box that jumps: from one frame to the next, the tracked box shows something else.

A target that moves, turns or blurs changes its look a little from frame to frame; the search features under the
box (the 8x8 window the verifier reads) stay alike, cell by cell. When the tracker lands on another object, or
the scene cuts to another shot, or a cover slides over the target, they change at once. Measured on the 27
sequences of val and val-hard, no tracked frame's window matched the previous frame's under a cosine of 0.7,
while the first frame of every made cut and of most made covers (`siamtrack absence`) did under 0.65
(`python benchmarks/jump_cosines.py`, docs/lost-and-found.md). Such a frame is a jump.

After a jump the siamese score often stays high: the tracker sits on another face, another body, which the
template matches nearly as well. So the jump leaves a memory: the window from before it (the target) and the one
after it (the stranger). Until the target is taken back (or the next jump), a place whose window is steady with
the stranger's (no jump from it) and clearly more like it than like the target's is the stranger, whatever the
verifier says, and scores at most `STRANGER_SCORE`: two such frames in a row lose the target (fast_lost_threshold), and a
lost target is not taken back there. The stranger's memory follows its look from frame to frame; what comes into
view with a jump from it (the target, back after a cut) is not the stranger.

With jump_at_cuts (the shipped setting), a box can jump only on a frame that starts a new shot of edited video
(tracker/cuts.py): where one pedestrian passes another the window changes as much, and re-detection after such a
loss takes another look-alike as readily as the one the box slid onto (docs/lost-and-found.md).

Zero network cost: the window is the one the verifier scored (verifier.box_window); two cosines per place.
"""
from __future__ import annotations

import numpy as np

from .cuts import ShotCuts

CENTRE = slice(2, 6)  # the central 4x4 of the 8x8 window: the box, without most of its context
STRANGER_SCORE = 0.05  # P(box on target) of a jump frame and of a place that looks like the stranger
# How much more like the stranger than like the target before a place must look to be the stranger. Windows of
# unrelated things match at 0.5 to 0.65 by chance, and the target after 30 frames away matches its own window
# from before at about that too: with a tie taken for the stranger, the stranger's memory, following it, slid
# onto the target as it came back (measured: docs/lost-and-found.md).
STRANGER_MARGIN = 0.2


def cell_cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Two (C, 8, 8) windows' cosine over channels, cell by cell, averaged over the central 4x4 cells."""
    a, b = a[:, CENTRE, CENTRE].reshape(a.shape[0], -1), b[:, CENTRE, CENTRE].reshape(b.shape[0], -1)
    norms = np.maximum(np.linalg.norm(a, axis=0) * np.linalg.norm(b, axis=0), 1e-12)
    return float(((a * b).sum(axis=0) / norms).mean())


class JumpWatch:
    """The jump test and the stranger's memory, kept on each target's state (tracking.TargetState: `window`, the
    box's window last frame; `remembered` and `stranger`, the two sides of the last jump)."""

    def __init__(self, line: float, cut_threshold: float = 0.0) -> None:
        self.line = line  # jump_cosine (tracker/config.py)
        self.cuts = ShotCuts(cut_threshold) if cut_threshold else None  # jump_at_cuts: jumps only at shot cuts
        self.may_jump = True  # whether this frame can hold a jump (with jump_at_cuts: it starts a new shot)

    def see_frame(self, frame: np.ndarray) -> None:
        """Every frame, before any target steps in it: with jump_at_cuts, whether a box can jump in this frame. (A
        target's first step has no window before it to jump from, so the frame it was started on need not be
        seen.)"""
        if self.cuts is not None:
            self.may_jump = self.cuts.is_cut(frame)

    def after_step(self, state, window: np.ndarray, score: float, lost: bool) -> float:
        """The frame's score for the place the state's search moved to, whose search features are `window`
        (C, 8, 8: verifier.box_window): STRANGER_SCORE on a jump (a tracked target only: a lost target's search has
        nothing steady to jump from; with jump_at_cuts, on a frame that starts a new shot only) or on the stranger,
        else `score`."""
        before, state.window = state.window, window
        if self.may_jump and not lost and before is not None and cell_cosine(before, window) < self.line:
            state.remembered, state.stranger = before, window
            return min(score, STRANGER_SCORE)
        if self.is_stranger(state, window):
            state.stranger = window  # follow the stranger's look, so that it is still told apart later
            return min(score, STRANGER_SCORE)
        return score

    def is_stranger(self, state, window: np.ndarray) -> bool:
        """Since the last jump: `window` is steady with what the box jumped onto (no jump from it) and more like it
        than like the target before, by STRANGER_MARGIN."""
        if state.stranger is None:
            return False
        alike = cell_cosine(window, state.stranger)
        return alike >= self.line and alike >= cell_cosine(window, state.remembered) + STRANGER_MARGIN

    @staticmethod
    def forget(state) -> None:
        """A target taken back: its last tracked frame is too old to compare with, and the stranger's episode is
        over."""
        state.window = state.remembered = state.stranger = None

    def tile_score(self, state, window: np.ndarray, score: float) -> float:
        """A lost target's tile peak, whose search features are `window`: STRANGER_SCORE on the stranger, else
        `score`."""
        return min(score, STRANGER_SCORE) if self.is_stranger(state, window) else score


def jump_watch_for(verifier, config) -> JumpWatch | None:
    """The jump watch with jump_cosine > 0 and the verifier on (it reads the search features the verifier
    reads); else None."""
    if verifier is None or not config.jump_cosine:
        return None
    return JumpWatch(config.jump_cosine, config.jump_at_cuts)
