"""Targets that disappear and come back: how well does the tracker say "lost", and does it find the target again?

The validation sets annotate a box on every frame, so absences are made from real footage, with the ground truth
saying exactly when the target is gone:

* ``cut``: a cut to another scene. For `length` frames, the frames of another sequence are shown (resized), then
  the sequence goes on where it would have been: the target comes back wherever it went meanwhile.
  The filler is never the same footage (val-hard's Skating2-1 and Skating2-2 are two targets on one video): a
  cut to the same scene a few seconds earlier would show the target, while the ground truth says it is away.
* ``occlusion``: a full occlusion. For `length` frames, the target's box (grown 1.5x) is covered by a patch of
  another sequence's frame, then uncovered.

Per frame it records the score, the state, the box and whether the target is there. From that:

* the per-frame flag (score < t) for each threshold t: the share of absent frames flagged and of visible frames
  flagged by mistake (visible: the target is there and the box is on it, IoU >= 0.5);
* the state machine as configured: absent frames in state lost, visible frames in state lost, frames from the
  start of the absence to "lost", frames from the target's return until the tracker is on it again (state not
  lost, IoU >= 0.5), and false re-acquisitions (leaving "lost" while the target is absent, or onto a box with
  IoU < 0.5 after it came back), split by what was taken: nothing (the target away), another place (IoU < 0.1,
  the verifier measures' off-target line) or the target under a loose box (IoU 0.1 to 0.5), each one listed
  with its clip, frame (counted from the clip's first frame, the init) and IoU; and each run's own share of
  absent frames lost, frames to "lost" and frames to re-acquisition (`per_run`);
* the long-term tracking measures of VOT-LT (Lukezic et al. 2020): precision, recall and F-score over the
  score threshold, from the per-frame score and box.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from tracker.errors import UserError
from tracker.progress import progress as make_progress
from tracker.running import TrackRun

from . import metrics
from .datasets import Sequence, other_footage
from .verification import GOOD_IOU, OFF_IOU

KINDS = ("cut", "occlusion")


def event_frames(clip: Sequence, other: Sequence, kind: str, start: int, length: int):
    """(frame, present, gt box or None) for `clip` with an absence of `length` frames from `start`."""
    if kind not in KINDS:
        raise UserError(f"unknown absence kind {kind!r}: use {', '.join(KINDS)}")
    others = (image for _, image in other.images())
    filler = None
    for i, frame in clip.images():
        absent = start <= i < start + length
        if not absent:
            yield frame, True, clip.gt[i]
            continue
        filler = next(others, filler)  # the other sequence is shorter: hold its last frame
        if kind == "cut":
            yield cv2.resize(filler, (frame.shape[1], frame.shape[0]), interpolation=cv2.INTER_AREA), False, None
        else:
            x, y, w, h = clip.gt[i]
            grow = 0.25
            x0, y0 = int(max(x - grow * w, 0)), int(max(y - grow * h, 0))
            x1, y1 = int(min(x + w * (1 + grow), frame.shape[1])), int(min(y + h * (1 + grow), frame.shape[0]))
            covered = frame.copy()
            if x1 > x0 and y1 > y0:
                covered[y0:y1, x0:x1] = cv2.resize(filler, (x1 - x0, y1 - y0), interpolation=cv2.INTER_AREA)
            yield covered, False, None


@dataclass
class Run:
    name: str
    kind: str
    start: int
    length: int
    scores: np.ndarray
    states: list[str]
    ious: np.ndarray  # IoU with the GT where present, 0 where absent
    present: np.ndarray
    filler: str = ""  # the sequence whose footage filled the absence


def run_events(clips: list[Sequence], make_tracker, kinds=KINDS, length: int = 30, after: int = 60,
               progress: bool = True) -> list[Run]:
    """Each clip long enough for `length` absent frames and `after` frames back, once per kind; the absence starts
    at a third of the clip (at least frame 20), and the filler is the next clip of other footage
    (datasets.other_footage)."""
    usable = [c for c in clips if len(c) >= 20 + length + after]
    if len(usable) < 2:
        raise UserError(f"need at least 2 sequences of {20 + length + after}+ frames, found {len(usable)}")
    fillers = other_footage(usable)
    runs = []
    bar = make_progress(len(kinds) * sum(len(c) for c in usable), "absence events", "frame", quiet=not progress)
    for kind in kinds:
        for clip, other in zip(usable, fillers):
            start = min(max(20, len(clip) // 3), len(clip) - length - after)
            tracker = make_tracker()
            try:
                runs.append(_run_event(clip, other, kind, start, length, tracker, bar))
            except ValueError as exc:  # an image or video that cannot be read: one line naming it, no traceback
                raise UserError(f"{clip.name} (filler from {other.name}): {exc}") from None
            bar.update(1)
    bar.close()
    return runs


def _run_event(clip: Sequence, other: Sequence, kind: str, start: int, length: int, tracker, bar) -> Run:
    """`clip` tracked with an absence of `length` frames from `start` (see event_frames)."""
    scores, states, ious, present = [], [], [], []
    events = event_frames(clip, other, kind, start, length)
    first, _, box = next(events)
    run = TrackRun(tracker, tuple(box))
    run.step(first)
    for frame, here, box in events:
        result = run.step(frame).result
        scores.append(result.score)
        states.append(result.state)
        present.append(here)
        ious.append(float(metrics.rect_iou(np.array([result.box]), np.array([box]))[0]) if here else 0.0)
        bar.update(1)
    return Run(clip.name, kind, start - 1, length, np.array(scores), states, np.array(ious),
               np.array(present), other.name)  # start - 1: indices count updates, frame 0 is the init


def flag_rates(runs: list[Run], thresholds) -> list[dict]:
    """Per threshold: share of absent frames with score < t, and of visible frames (IoU >= 0.5) with score < t."""
    scores = np.concatenate([r.scores for r in runs])
    absent = ~np.concatenate([r.present for r in runs])
    visible = np.concatenate([r.present & (r.ious >= 0.5) for r in runs])
    return [{"threshold": float(t), "absent_flagged": float((scores[absent] < t).mean()),
             "visible_flagged": float((scores[visible] < t).mean())} for t in thresholds]


def state_summary(runs: list[Run]) -> dict:
    """The state machine's figures over all runs (see the module docstring)."""
    lost_absent, lost_visible, delays, reacquire, never = [], [], [], [], 0
    per_run = []  # each run's own figures, to see which sequences a setting changes
    takes = {"while_away": 0, "another_place": 0, "loose_box": 0}
    events = []  # each false re-acquisition: where, on which frame of the clip, what it took

    def take(r: Run, i: int, kind: str) -> None:
        takes[kind] += 1
        events.append({"sequence": r.name, "frame": i + 1, "taken": kind, "iou": round(float(r.ious[i]), 3)})
    for r in runs:
        lost = np.array([s == "lost" for s in r.states])
        absent = ~r.present
        visible = r.present & (r.ious >= GOOD_IOU)
        lost_absent.append(lost[absent])
        lost_visible.append(lost[visible])
        window = lost[r.start:r.start + r.length]
        hits = np.flatnonzero(window)
        delays.append(int(hits[0]) + 1 if len(hits) else None)
        # leaving "lost" while the target is still away: a distractor taken for it
        for i in range(r.start + 1, r.start + r.length):
            if lost[i - 1] and not lost[i]:
                take(r, i, "while_away")
        back = r.start + r.length
        found = next((i - back + 1 for i in range(back, len(lost)) if not lost[i] and r.ious[i] >= GOOD_IOU), None)
        reacquire.append(found)
        if found is None:
            never += 1
        per_run.append({"sequence": r.name, "filler": r.filler,
                        "absent_frames_lost": round(float(lost[absent].mean()), 3),
                        "frames_to_lost": delays[-1], "frames_to_reacquire": found})
        for i in range(back, len(lost)):
            if lost[i - 1] and not lost[i] and r.ious[i] < GOOD_IOU:
                take(r, i, "another_place" if r.ious[i] < OFF_IOU else "loose_box")
    detected = [d for d in delays if d is not None]
    found = [f for f in reacquire if f is not None]
    return {
        "runs": len(runs),
        "absent_frames_lost": float(np.concatenate(lost_absent).mean()),
        "visible_frames_lost": float(np.concatenate(lost_visible).mean()),
        "absences_detected": f"{len(detected)}/{len(runs)}",
        "frames_to_lost_median": float(np.median(detected)) if detected else None,
        "reacquired": f"{len(found)}/{len(runs)}",
        "frames_to_reacquire_median": float(np.median(found)) if found else None,
        "false_reacquisitions": sum(takes.values()),
        "false_reacquisitions_by_kind": takes,
        "false_reacquisition_events": events,
        "per_run": per_run,
    }


def long_term_scores(runs: list[Run]) -> dict:
    """VOT-LT tracking precision, recall and F-score (maximised over the score threshold)."""
    scores = np.concatenate([r.scores for r in runs])
    ious = np.concatenate([r.ious for r in runs])
    present = np.concatenate([r.present for r in runs])
    return metrics.long_term_f_score(scores, ious, present)
