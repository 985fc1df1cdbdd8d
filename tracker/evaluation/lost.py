"""Calibrating the lost flag: how high is the score when the tracker is on its target, and when the target is gone?

Val sequences rarely lose the target outright, so "gone" is made on purpose: the tracker is initialised on one
sequence and then fed another sequence's frames (never the same footage), where its target does not exist. The
threshold that best separates the two score distributions (largest recall - false alarm) is what
TrackerConfig.lost_threshold is set from.
"""
from __future__ import annotations

import cv2
import numpy as np

from tracker.errors import UserError
from tracker.progress import progress as make_progress
from tracker.running import TrackRun

from . import metrics
from .datasets import Sequence, other_footage


def collect_scores(sequences: list[Sequence], make_tracker, absent_frames: int = 30, progress: bool = True):
    """(scores on tracked frames (IoU >= 0.5), scores with the target absent) over all sequences."""
    tracked, absent = [], []
    bar = make_progress(sum(len(s) + absent_frames for s in sequences), "lost-flag scores", "frame",
                        quiet=not progress)
    for seq, other in zip(sequences, other_footage(sequences)):
        try:
            _collect_one(seq, other, make_tracker(), absent_frames, tracked, absent)
        except ValueError as exc:  # an image or video that cannot be read: one line naming it, no traceback
            raise UserError(f"{seq.name}: {exc}") from None
        bar.update(len(seq) + absent_frames)
    bar.close()
    return np.array(tracked), np.array(absent)


def _collect_one(seq: Sequence, other: Sequence, tracker, absent_frames: int, tracked: list, absent: list) -> None:
    """`seq` tracked as usual (scores where IoU >= 0.5 into `tracked`), then `other`'s frames after a fresh init
    (scores into `absent`): its target is not in them."""
    frames = seq.images()
    _, first = next(frames)
    run = TrackRun(tracker, tuple(seq.gt[0]))
    run.step(first)
    for i, frame in frames:
        result = run.step(frame).result
        if seq.valid[i] and metrics.rect_iou(np.array([result.box]), seq.gt[i:i + 1])[0] >= 0.5:
            tracked.append(result.score)
    run.restart(first, tuple(seq.gt[0]))
    step = max(len(other) // absent_frames, 1)
    height, width = first.shape[:2]
    for _, frame in other.images(range(0, min(len(other), absent_frames * step), step)):
        if frame.shape[:2] != (height, width):  # a tracker takes frames of one size: show the scene resized
            frame = cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA)
        absent.append(run.step(frame).result.score)


def separating_threshold(tracked: np.ndarray, absent: np.ndarray, max_false_alarm: float = 0.05) -> dict:
    """Two candidate thresholds with their rates: the one flagging the most target-absent frames while flagging at
    most `max_false_alarm` of the tracked frames (the suggestion: a lost flag that cries wolf is ignored), and the
    one with the largest (absent flagged) - (tracked flagged)."""
    thresholds = np.round(np.arange(0.01, 1.0, 0.01), 2)
    recall = np.array([(absent < t).mean() for t in thresholds])
    false_alarm = np.array([(tracked < t).mean() for t in thresholds])
    best_j = int(np.argmax(recall - false_alarm))
    allowed = np.flatnonzero(false_alarm <= max_false_alarm)
    best = int(allowed[-1]) if len(allowed) else 0
    return {"threshold": float(thresholds[best]), "recall": float(recall[best]),
            "false_alarm": float(false_alarm[best]), "max_false_alarm": max_false_alarm,
            "youden_threshold": float(thresholds[best_j]), "youden_recall": float(recall[best_j]),
            "youden_false_alarm": float(false_alarm[best_j]), "tracked_frames": int(len(tracked)),
            "absent_frames": int(len(absent)),
            "tracked_score_percentiles": {p: round(float(np.percentile(tracked, p)), 3) for p in (1, 5, 50)},
            "absent_score_percentiles": {p: round(float(np.percentile(absent, p)), 3) for p in (50, 95, 99)}}
