"""Many targets are exclusive: two targets of one MultiTracker cannot hold one object.

Two rules, both only between targets of one tracker (a SiamTracker has no other target, so nothing here applies):

* Convergence. When the boxes of two targets that are not lost overlap with IoU >= CONVERGED_IOU after a frame's
  step, one of them has followed the other onto its object. The one with the lower score is demoted; when the
  scores are within SCORE_TIE of each other (a saturated score says little), the one whose box moved more, for its
  size, is: a target that jumps onto a neighbour moves further than one that follows its own object. With
  demote_by_motion=1 (the default; MultiTracker passes its targets' paths), motion decides first: the one demoted
  is the one whose box is further from where its own recent motion would have put it (its drift), as an object
  keeps its velocity through a crossing while a box pulled onto a neighbour leaves its path, and appearance cannot
  tell a look-alike from the target; the scores decide when the drifts are within MOTION_TIE of each other or a
  target has no path yet. A box pulled over slowly, before the boxes converge, has already taken on its
  neighbour's path, and then the wrong target is demoted: reunite.py puts such pairs back once their objects are
  apart (docs/evaluation.md). Demotion reuses presence's machinery instead of a second state machine: the demoted
  target's box goes back to where it was before the frame's step and its score is put just under lost_threshold,
  so presence counts a low frame. One such frame makes it "uncertain"; lost_after of them in a row make it
  "lost", with its box held where it was last tracked well and its re-detection running as for any lost target.
  When even the held box overlaps the kept target's that much, the demoted target has no place of its own left:
  it is lost on this frame (its run of low frames is completed), instead of sitting on the other target's object
  for lost_after frames. The demoted step teaches the online model nothing.
* Re-detection. A lost target never takes back a place inside the box of another target that is not lost: its
  shadow's peak there scores 0, and tile peaks there are left out (presence.best_tile's `excluded`).
"""
from __future__ import annotations

import numpy as np

from .result import box_iou

CONVERGED_IOU = 0.5
SCORE_TIE = 0.05
# The drift is measured over DRIFT_FRAMES frames: a box pulled onto a neighbour slides over a few frames, and one
# frame's step hides that slide in the boxes' jitter (1 frame picked the wrong twin in `siamtrack crossing`; 4
# frames had the fewest identity switches on benchmarks/crossing_motion.py's choosing clips). The velocity is the
# mean step of the VELOCITY_STEPS frames before those. MOTION_TIE is in box sizes.
DRIFT_FRAMES = 4
VELOCITY_STEPS = 4
PATH_LENGTH = DRIFT_FRAMES + VELOCITY_STEPS  # centres a target keeps: the frames before this one
MOTION_TIE = 0.05


def box_of(state) -> np.ndarray:
    """A TargetState's box as x, y, w, h."""
    return np.concatenate([state.center - state.size / 2, state.size])


def inside_any(xs: np.ndarray, ys: np.ndarray, boxes) -> np.ndarray:
    """Which points (xs, ys: broadcastable arrays) lie inside any of the x, y, w, h boxes."""
    inside = np.zeros(np.broadcast(xs, ys).shape, bool)
    for x, y, w, h in boxes:
        inside |= (xs >= x) & (xs <= x + w) & (ys >= y) & (ys <= y + h)
    return inside


def demotions(moved: list, before: list, scores: list[float], claiming: list[bool],
              paths: list | None = None) -> list[tuple[int, int]]:
    """The targets to demote on this frame, as (demoted, kept) pairs: moved and before are their boxes (x, y, w, h)
    after and before the step, claiming whether each holds an object (not lost), paths each one's box centres of
    the frames before this one, oldest first (None or short: no motion to go by). Converged pairs are settled from
    the most overlapping down; a demoted target holds nothing more this frame."""
    pairs = []
    for a in range(len(moved)):
        for b in range(a + 1, len(moved)):
            if claiming[a] and claiming[b]:
                overlap = box_iou(moved[a], moved[b])
                if overlap >= CONVERGED_IOU:
                    pairs.append((overlap, a, b))
    settled: list[tuple[int, int]] = []
    for _, a, b in sorted(pairs, reverse=True):
        if any(a == d or b == d for d, _ in settled):
            continue
        drifts = [drift(paths[k], moved[k]) if paths else None for k in (a, b)]
        loser = _loser(a, b, moved, before, scores, drifts)
        settled.append((loser, b if loser == a else a))
    return settled


def drift(path, moved) -> float | None:
    """How far the moved box's centre is from where the target's own motion would have put it: its centre
    DRIFT_FRAMES frames ago carried on at the mean step of the VELOCITY_STEPS frames before that, in units of the
    box's size (the square root of its area). None when the path is shorter than PATH_LENGTH centres."""
    if path is None or len(path) < PATH_LENGTH:
        return None
    centres = np.asarray(path, float)[-PATH_LENGTH:]
    start = centres[VELOCITY_STEPS]  # DRIFT_FRAMES frames before this one
    velocity = (start - centres[0]) / VELOCITY_STEPS
    expected = start + DRIFT_FRAMES * velocity
    centre = np.array([moved[0] + moved[2] / 2, moved[1] + moved[3] / 2])
    return float(np.hypot(*(centre - expected)) / max(np.sqrt(moved[2] * moved[3]), 1e-6))


def _loser(a: int, b: int, moved: list, before: list, scores: list[float], drifts) -> int:
    if None not in drifts and abs(drifts[0] - drifts[1]) > MOTION_TIE:
        return a if drifts[0] > drifts[1] else b
    if abs(scores[a] - scores[b]) > SCORE_TIE:
        return a if scores[a] < scores[b] else b
    return a if _jump(moved[a], before[a]) >= _jump(moved[b], before[b]) else b


def _jump(moved, before) -> float:
    """How far the box's centre moved, in units of its size before (the square root of its area)."""
    shift = np.hypot(moved[0] + moved[2] / 2 - before[0] - before[2] / 2,
                     moved[1] + moved[3] / 2 - before[1] - before[3] / 2)
    return float(shift / max(np.sqrt(before[2] * before[3]), 1e-6))
