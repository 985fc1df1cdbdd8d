"""Identities after a crossing: motion says which target is which once their objects are apart again.

MultiTracker only, with reunite_by_motion=1. When two targets' boxes converge and one is demoted
(tracker/exclusive.py), the demotion may pick the wrong one: a box pulled slowly onto a look-alike has taken on
its neighbour's path by then, and appearance cannot tell twins apart. So the encounter is remembered, with each
target's motion from before it: a straight line fitted to its box centres of FIT_FRAMES frames, ending GAP frames
before the convergence (the frames of a slow slide are left out). The question is settled later, when the
objects are apart, as trackers of many objects settle it: by where each target's own motion leads.

* Both targets hold an object again (the demoted one was found again): if their boxes fit the other target's
  motion much better than their own (the swapped assignment costs under SWAP_RATIO of the kept one), the two
  targets trade places: box, presence and path.
* Only the kept target holds an object: if its box fits the demoted target's motion much better than its own,
  it holds the demoted target's object. The demoted target takes that object over (tracking), and the kept one
  is lost where its own motion leads, to search for its own object there.

Nothing is decided before the two motions lead APART box sizes from each other (targets moving alike say
nothing) and, for a swap, the two boxes are that far apart too; nor after WAIT frames. Distances are in box
sizes (the square root of the kept box's area) at the convergence. The scores follow the places they were
measured at.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .presence import Presence, shadow_of

FIT_FRAMES = 12
GAP = 4
HISTORY = FIT_FRAMES + GAP  # box centres a target keeps (tracking.Target.path), the frames before this one
APART = 1.0
WAIT = 60
SWAP_RATIO = 0.5


def motion_line(path) -> tuple[np.ndarray, np.ndarray] | None:
    """The straight line through a target's recent box centres (path: one per frame up to the frame before this
    one, oldest first), fitted to FIT_FRAMES of them ending GAP frames back: (centre this frame, step per
    frame), or None when the path is too short to say."""
    if path is None or len(path) < HISTORY:
        return None
    centres = np.asarray(path, float)[-HISTORY:][:FIT_FRAMES]
    frames = np.arange(-HISTORY, -GAP, dtype=float)  # frame offsets from this one
    velocity, anchor = np.polyfit(frames, centres, 1)
    return anchor, velocity


@dataclass
class Encounter:
    """Two targets that converged on frame `frame`: `demoted` and `kept` (MultiTracker's targets), each one's
    motion line from before (motion_line), `size` the distance unit."""

    demoted: object
    kept: object
    frame: int
    size: float
    lines: tuple

    def expected(self, frame: int) -> tuple[np.ndarray, np.ndarray]:
        """Where the demoted and the kept target's own motion leads on `frame`."""
        return tuple(anchor + velocity * (frame - self.frame) for anchor, velocity in self.lines)


def meet(demoted, kept, frame: int, size: float) -> Encounter | None:
    """The encounter of two targets converged on `frame`, or None when either has too short a path."""
    lines = (motion_line(demoted.path), motion_line(kept.path))
    if None in lines:
        return None
    return Encounter(demoted, kept, frame, max(float(size), 1e-6), lines)


def verdict(encounter: Encounter, frame: int, demoted_centre, kept_centre) -> str | None:
    """What to do on `frame`, from the two targets' box centres (demoted_centre None while it holds nothing):
    "swap" (both hold an object and each fits the other's motion), "hand over" (the kept target holds the demoted
    one's object), "keep" (the motions agree with the boxes: settled) or None (not yet: too close to say)."""
    to_demoted, to_kept = encounter.expected(frame)
    unit = encounter.size
    if np.linalg.norm(to_demoted - to_kept) < APART * unit:
        return None
    kept_centre = np.asarray(kept_centre, float)
    if demoted_centre is None:
        own, other = np.linalg.norm(kept_centre - to_kept), np.linalg.norm(kept_centre - to_demoted)
        return "hand over" if other < SWAP_RATIO * own else None
    demoted_centre = np.asarray(demoted_centre, float)
    if np.linalg.norm(demoted_centre - kept_centre) < APART * unit:
        return None
    kept_cost = np.linalg.norm(demoted_centre - to_demoted) + np.linalg.norm(kept_centre - to_kept)
    swapped_cost = np.linalg.norm(demoted_centre - to_kept) + np.linalg.norm(kept_centre - to_demoted)
    return "swap" if swapped_cost < SWAP_RATIO * kept_cost else "keep"


def trade_places(a, b) -> None:
    """Targets a and b (both holding an object) swap what belongs to the place: box, presence and path. What
    belongs to the target (its templates, its online model) stays."""
    for name in ("center", "size", "search_side"):
        value = getattr(a.state, name)
        setattr(a.state, name, getattr(b.state, name))
        setattr(b.state, name, value)
    a.presence, b.presence = b.presence, a.presence
    a.path, b.path = b.path, a.path


def hand_over(encounter: Encounter, frame: int) -> None:
    """The demoted target takes over the object the kept one holds (box, presence, path); the kept target is lost
    where its own motion leads on `frame` (clipped to the frame), its shadow searching from there."""
    demoted, kept = encounter.demoted, encounter.kept
    demoted.state.center, demoted.state.size = kept.state.center.copy(), kept.state.size.copy()
    demoted.state.search_side = kept.state.search_side
    demoted.presence = kept.presence
    demoted.path, kept.path = kept.path, demoted.path
    kept.path.clear()  # a lost target's path starts again when it is found
    height, width = kept.state.frame_shape
    kept.state.center = np.clip(encounter.expected(frame)[1], 0, [width - 1, height - 1])
    kept.presence = Presence(state="lost", last_good=(kept.state.center.copy(), kept.state.size.copy(),
                                                      kept.state.search_side), shadow=shadow_of(kept.state))
