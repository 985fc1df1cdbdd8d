"""Several targets in one video, one network run per frame.

Every frame, all targets' search crops go through the backbone as one batch, each crop scored against its own
target's template (the search graph's `owner` input, or the torch model's `owner` argument). Each target then
moves, gets lost and is found again as a SiamTracker of its own would, with one difference: targets are exclusive
(tracker/exclusive.py). When two targets' boxes converge onto one object, the one that left its own path (with
demote_by_motion=1, the default; else, or when both kept to theirs, the one with the lower score, or at equal
scores the one that jumped) is demoted: uncertain, its box held, and lost if it keeps converging; and a lost
target's re-detection never takes a place inside another target's box. With reunite_by_motion=1 (the default)
the pair is remembered, and once their objects are apart again, targets on each other's objects trade places
(tracker/reunite.py). Targets that never converge get exactly a separate tracker's results, within float
tolerance. Targets can be added and removed between any two frames.
"""
from __future__ import annotations

from collections import deque

import numpy as np

from . import reunite
from .errors import UserError
from .exclusive import CONVERGED_IOU, PATH_LENGTH, box_of, demotions, inside_any
from .result import TrackResult, box_iou
from .tracking import TrackingLoop, as_bgr, check_frame_size


class MultiTracker(TrackingLoop):
    """tracker = MultiTracker.from_pretrained(); a, b = tracker.init(frame, [box_a, box_b]) (or tracker.add(frame,
    box) for each), then every frame results = tracker.update(frame) -> {a: TrackResult, b: TrackResult}.
    Targets can be added and removed between any two frames."""

    def __init__(self, engine, config=None, verifier=None) -> None:
        super().__init__(engine, config, verifier)
        self._targets: dict[int, object] = {}
        self._next_id = 0
        self._frame_number = 0  # frames tracked: the clock of the encounters (reunite.py)
        self._encounters: list[reunite.Encounter] = []

    def __repr__(self) -> str:
        # Like SiamTracker's, with each target's id and state: MultiTracker(..., targets 0: tracking, 2: lost)
        states = ", ".join(f"{target_id}: {target.presence.state}" for target_id, target in self._targets.items())
        where = f"targets {states}" if states else "no target"
        return f"MultiTracker(engine={self.engine.name}, rule={self.rule.name}, {where})"

    @property
    def targets(self) -> list[int]:
        """The ids of the targets being tracked, in the order they were added."""
        return list(self._targets)

    def __len__(self) -> int:
        return len(self._targets)

    def add(self, frame: np.ndarray, box, box_format: str = "xywh") -> int:
        """Start tracking the object in `box` (x, y, w, h; or as box_format says, as SiamTracker.init) of `frame`;
        its first update is on the next frame. Returns its id: ids count up from 0 and are never reused, so a
        removed target's id stays unambiguous."""
        frame = as_bgr(frame)
        with self._targets_lock:
            for target in self._targets.values():
                check_frame_size(frame, target)
            target = self._new_target(frame, box, box_format)
            target_id, self._next_id = self._next_id, self._next_id + 1
            self._targets[target_id] = target
            return target_id

    def init(self, frame: np.ndarray, boxes, box_format: str = "xywh") -> list[int]:
        """Start over on `frame` with one target per box.

        frame: BGR, gray or BGRA uint8, as SiamTracker.init takes. boxes: one (x, y, w, h) per target, 0-based
        pixels; box_format="xyxy" takes corners x1, y1, x2, y2 instead, "cxcywh" centres and sizes. The targets
        tracked before are dropped. Every box is checked before anything changes, so a refused box (UserError
        naming the target's number) keeps the targets there were. Returns the new ids, in the boxes' order; their
        first update is on the next frame."""
        frame = as_bgr(frame)
        boxes = list(boxes)
        if not boxes:
            raise UserError("init needs at least one box (x, y, w, h)")
        targets = []
        for number, box in enumerate(boxes):
            try:
                targets.append(self._new_target(frame, box, box_format))
            except UserError as exc:
                raise UserError(f"target {number} ({box}): {exc}") from None
        with self._targets_lock:
            self._targets.clear()
            self._encounters.clear()
            ids = list(range(self._next_id, self._next_id + len(targets)))
            self._next_id += len(targets)
            self._targets.update(zip(ids, targets))
            return ids

    def remove(self, target_id: int) -> None:
        """Stop tracking a target; the others carry on unchanged."""
        with self._targets_lock:  # waits for a frame being tracked: its results are labelled with these ids
            if target_id not in self._targets:
                raise UserError(f"no target {target_id!r} to remove: the targets are {self.targets}")
            gone = self._targets.pop(target_id)
            self._encounters = [e for e in self._encounters if gone is not e.demoted and gone is not e.kept]

    def update(self, frame: np.ndarray) -> dict[int, TrackResult]:
        """The next frame (same size as the init frame): every target's TrackResult, by id, in the order the
        targets were added.

        Before any init or add this raises RuntimeError, as SiamTracker.update does. Once tracking has started, a
        tracker whose targets were all removed returns {} every frame (until add gives it a new one), so a loop
        over a stream need not stop when the last target goes."""
        if self._next_id == 0:  # no id handed out yet: never started (all removed has handed some out)
            raise RuntimeError("call init(frame, boxes) or add(frame, box) before update(frame)")
        frame = as_bgr(frame)
        with self._one_frame():
            ids, targets = list(self._targets), list(self._targets.values())
            if not targets:
                return {}
            check_frame_size(frame, targets[0])
            self._frame_number += 1
            return dict(zip(ids, self._step(frame, targets)))

    # -- exclusivity (tracker/exclusive.py) ------------------------------------------------------------------

    def _settle_claims(self, targets, was_lost, before, scores, samples) -> None:
        """Demote the target of each converged pair that exclusive.demotions picks: its box goes back to where it
        was before this step, its score just under lost_threshold (a low frame for presence), no online sample;
        lost at once when even that box overlaps the kept target's."""
        claiming = [not lost for lost in was_lost]
        if sum(claiming) >= 2:
            moved = [box_of(t.state) for t in targets]
            held = [np.concatenate([center - size / 2, size]) for center, size, _ in before]
            under = float(np.nextafter(self.config.lost_threshold, 0.0))
            paths = [t.path for t in targets] if self.config.demote_by_motion else None
            for k, kept in demotions(moved, held, scores, claiming, paths):
                if self.config.reunite_by_motion:
                    self._meet(targets[k], targets[kept], moved[kept])
                state = targets[k].state
                state.center, state.size, state.search_side = before[k]
                scores[k] = min(scores[k], under)
                samples[k] = None
                if box_iou(held[k], moved[kept]) >= CONVERGED_IOU:  # no place of its own left: lost on this frame
                    targets[k].presence.complete_low_run(self.config.lost_after)
        if self.config.demote_by_motion or self.config.reunite_by_motion:
            length = max(PATH_LENGTH, reunite.HISTORY) if self.config.reunite_by_motion else PATH_LENGTH
            _extend_paths(targets, claiming, length)

    def _meet(self, demoted, kept, kept_box) -> None:
        """Remember the encounter of a demoted target and the one kept (reunite.py), unless either is in one
        already: the first convergence's motion is the one from before the crossing."""
        if any(t is e.demoted or t is e.kept for e in self._encounters for t in (demoted, kept)):
            return
        encounter = reunite.meet(demoted, kept, self._frame_number, np.sqrt(kept_box[2] * kept_box[3]))
        if encounter is not None:
            self._encounters.append(encounter)

    def _settle_identities(self, targets, scores) -> None:
        """After presence has settled: each open encounter whose objects are apart again is settled by motion
        (reunite.py); the scores follow the places they were measured at."""
        if not self._encounters:
            return
        index = {id(t): k for k, t in enumerate(targets)}
        still_open = []
        for encounter in self._encounters:
            d, k = index[id(encounter.demoted)], index[id(encounter.kept)]
            if self._frame_number - encounter.frame > reunite.WAIT:
                continue
            holding = [t.presence.state != "lost" for t in (encounter.demoted, encounter.kept)]
            verdict = None
            if holding[1]:
                verdict = reunite.verdict(encounter, self._frame_number,
                                          encounter.demoted.state.center if holding[0] else None,
                                          encounter.kept.state.center)
            if verdict == "swap":
                reunite.trade_places(encounter.demoted, encounter.kept)
                scores[d], scores[k] = scores[k], scores[d]
            elif verdict == "hand over":
                reunite.hand_over(encounter, self._frame_number)
                scores[d], scores[k] = scores[k], 0.0
            if verdict is None:
                still_open.append(encounter)
        self._encounters = still_open

    def _claimed_by_others(self, targets, was_lost, scores) -> dict:
        """For each lost target: the boxes of the other targets that are not lost. Its shadow's peak inside one
        of them is no sighting (its score goes to 0, so the tiles are searched), and tile peaks there are left
        out."""
        holding = [t for t, lost in zip(targets, was_lost) if not lost and t.presence.state != "lost"]
        if not holding or len(holding) == len(targets):
            return {}
        boxes = [box_of(t.state) for t in holding]
        excluded = {}
        for k, (target, lost) in enumerate(zip(targets, was_lost)):
            if not lost:
                continue
            excluded[id(target)] = boxes
            centre = target.presence.shadow.center
            if inside_any(np.array(centre[0]), np.array(centre[1]), boxes):
                scores[k] = 0.0
        return excluded


def _extend_paths(targets, claiming: list[bool], length: int) -> None:
    """Each target holding an object adds its box centre to its path (the last `length` are kept); a lost target's
    held box says nothing of how its object moves, so its path starts again when it is found."""
    for target, holds in zip(targets, claiming):
        if target.path is None:
            target.path = deque(maxlen=length)
        if holds:
            target.path.append(target.state.center.copy())
        else:
            target.path.clear()
