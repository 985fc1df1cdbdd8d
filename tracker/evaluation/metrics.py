"""Tracking metrics, matching the OTB, LaSOT and GOT-10k toolkits.

Conventions (documented because toolkits differ in wording, not in numbers):

* Boxes are ``x,y,w,h`` in continuous coordinates; a box spans ``[x, x+w) x [y, y+h)``.
  IoU uses ``w*h`` areas with no ``+1`` (as ``got10k.utils.metrics.rect_iou``). The OTB
  Matlab toolkit's ``+1``/``-1`` on inclusive pixel indices cancel out and give the same value.
* Centre = ``x + w/2`` (got10k/OTB write ``x + (w-1)/2``; the shift is the same for both
  boxes, so centre errors are identical).
* Success: fraction of frames with IoU **>** threshold, thresholds ``0, 0.05, ..., 1`` (21);
  AUC = mean of the curve. Precision: fraction with centre error **<=** t for t = 0..50 px;
  the score is the value at 20 px. Normalised precision (LaSOT): centre error divided by the
  GT width/height, thresholds ``0, 0.01, ..., 0.5``; score at 0.2 (pytracking/pysot), and the
  curve's mean (LaSOT Matlab ranking) as ``norm_precision_auc``.
* OTB-style curves use every scored frame including the first, are computed per sequence and
  averaged over sequences (OTB toolkit / ``got10k.experiments.ExperimentOTB``).
* GOT-10k AO / SR@0.5 / SR@0.75 follow ``got10k.experiments.ExperimentGOT10k`` (val): first
  frame dropped, boxes clipped to the image exactly as got10k does, IoUs pooled over all frames
  of all sequences.
* Frames whose GT is NaN / empty / marked absent are excluded from numerator and denominator.
"""
from __future__ import annotations

import numpy as np

IOU_THRESHOLDS = np.linspace(0, 1, 21)
CE_THRESHOLDS = np.arange(0, 51, dtype=float)
NCE_THRESHOLDS = np.arange(0, 51) / 100.0


def _clip_like_got10k(r: np.ndarray, bound) -> np.ndarray:
    r = np.array(r, dtype=float, copy=True)
    r[:, 0] = np.clip(r[:, 0], 0, bound[0])
    r[:, 1] = np.clip(r[:, 1], 0, bound[1])
    r[:, 2] = np.clip(r[:, 2], 0, bound[0] - r[:, 0])
    r[:, 3] = np.clip(r[:, 3], 0, bound[1] - r[:, 1])
    return r


def rect_iou(a, b, bound=None) -> np.ndarray:
    """IoU of matching rows of two (N,4) x,y,w,h arrays; ``bound=(W,H)`` clips as got10k does."""
    a = np.asarray(a, dtype=float).reshape(-1, 4)
    b = np.asarray(b, dtype=float).reshape(-1, 4)
    if bound is not None:
        a, b = _clip_like_got10k(a, bound), _clip_like_got10k(b, bound)
    iw = np.maximum(np.minimum(a[:, 0] + a[:, 2], b[:, 0] + b[:, 2]) - np.maximum(a[:, 0], b[:, 0]), 0)
    ih = np.maximum(np.minimum(a[:, 1] + a[:, 3], b[:, 1] + b[:, 3]) - np.maximum(a[:, 1], b[:, 1]), 0)
    inter = iw * ih
    union = a[:, 2] * a[:, 3] + b[:, 2] * b[:, 3] - inter
    return np.clip(inter / (union + np.finfo(float).eps), 0.0, 1.0)


def _centres(r: np.ndarray) -> np.ndarray:
    return r[:, :2] + r[:, 2:] / 2.0


def center_error(a, b) -> np.ndarray:
    a = np.asarray(a, dtype=float).reshape(-1, 4)
    b = np.asarray(b, dtype=float).reshape(-1, 4)
    return np.linalg.norm(_centres(a) - _centres(b), axis=1)


def norm_center_error(pred, gt) -> np.ndarray:
    """Centre error with each axis divided by the GT width / height (LaSOT)."""
    pred = np.asarray(pred, dtype=float).reshape(-1, 4)
    gt = np.asarray(gt, dtype=float).reshape(-1, 4)
    return np.linalg.norm((_centres(pred) - _centres(gt)) / gt[:, 2:], axis=1)


def success_curve(ious) -> np.ndarray:
    ious = np.asarray(ious, dtype=float)
    return (ious[:, None] > IOU_THRESHOLDS[None, :]).mean(0) if len(ious) else np.zeros(len(IOU_THRESHOLDS))


def precision_curve(errors, thresholds=CE_THRESHOLDS) -> np.ndarray:
    e = np.asarray(errors, dtype=float)
    return (e[:, None] <= thresholds[None, :]).mean(0) if len(e) else np.zeros(len(thresholds))


def sequence_metrics(boxes, gt, valid, image_size) -> dict:
    """Per-sequence curves and scores; ``valid`` marks frames that have a usable GT box."""
    boxes = np.asarray(boxes, dtype=float).reshape(-1, 4)
    gt = np.asarray(gt, dtype=float).reshape(-1, 4)
    valid = np.asarray(valid, dtype=bool)
    if not (len(boxes) == len(gt) == len(valid)):
        raise ValueError(f"{len(boxes)} result boxes for {len(gt)} GT boxes")
    pred = np.nan_to_num(boxes[valid], nan=-1e6)  # a missing prediction scores as a miss
    g = gt[valid]
    ious = rect_iou(pred, g)
    succ = success_curve(ious)
    prec = precision_curve(center_error(pred, g))
    nprec = precision_curve(norm_center_error(pred, g), NCE_THRESHOLDS)
    v1 = valid.copy()
    v1[0] = False
    got_ious = rect_iou(np.nan_to_num(boxes[v1], nan=-1e6), gt[v1], bound=image_size)
    return {
        "frames": int(len(gt)), "scored_frames": int(valid.sum()),
        "success_curve": succ, "precision_curve": prec, "norm_precision_curve": nprec,
        "got_ious": got_ious,
        **_scores(succ, prec, nprec, got_ious),
    }


def _scores(succ, prec, nprec, got_ious) -> dict:
    n = len(got_ious)
    return {
        "auc": float(np.mean(succ)),
        "precision": float(prec[20]),
        "norm_precision": float(nprec[20]),
        "norm_precision_auc": float(np.mean(nprec)),
        "ao": float(np.mean(got_ious)) if n else float("nan"),
        "sr50": float(np.mean(got_ious > 0.5)) if n else float("nan"),
        "sr75": float(np.mean(got_ious > 0.75)) if n else float("nan"),
    }


def overall_metrics(per_seq: list[dict]) -> dict:
    """Average OTB curves over sequences; pool GOT-10k IoUs over frames."""
    if not per_seq:
        return {}
    succ = np.mean([m["success_curve"] for m in per_seq], axis=0)
    prec = np.mean([m["precision_curve"] for m in per_seq], axis=0)
    nprec = np.mean([m["norm_precision_curve"] for m in per_seq], axis=0)
    ious = np.concatenate([m["got_ious"] for m in per_seq])
    return {"sequences": len(per_seq), "frames": int(sum(m["frames"] for m in per_seq)),
            "success_curve": succ, "precision_curve": prec, "norm_precision_curve": nprec,
            **_scores(succ, prec, nprec, ious)}


def lost_flag_stats(runs) -> dict:
    """How honest a tracker's lost flag is, pooled over frames after the first with a usable GT box.

    runs: (scores (N,2) = score, lost flag; ious (N,); valid (N,)) per sequence. A frame is *missed* when the box
    does not touch the target (IoU = 0) and *tracked* when IoU >= 0.5. Reports how often the flag is raised on
    each, and the score threshold that best separates them (largest recall - false alarm, Youden's J): the
    measurement behind TrackerConfig.lost_threshold.
    """
    score, lost, iou = [], [], []
    for sc, ious, valid in runs:
        keep = np.asarray(valid, bool).copy()
        keep[0] = False
        score.append(sc[keep, 0])
        lost.append(sc[keep, 1] > 0)
        iou.append(np.asarray(ious)[keep])
    score, lost, iou = np.concatenate(score), np.concatenate(lost), np.concatenate(iou)
    missed, tracked = iou <= 0, iou >= 0.5
    out = {"missed_frames": int(missed.sum()), "tracked_frames": int(tracked.sum()),
           "lost_on_missed": float(lost[missed].mean()) if missed.any() else float("nan"),
           "lost_on_tracked": float(lost[tracked].mean()) if tracked.any() else float("nan")}
    if missed.any() and tracked.any():
        thresholds = np.round(np.arange(0.01, 1.0, 0.01), 2)
        j = [(score[missed] < t).mean() - (score[tracked] < t).mean() for t in thresholds]
        best = int(np.argmax(j))
        out.update({"best_threshold": float(thresholds[best]), "best_threshold_recall": float((score[missed] < thresholds[best]).mean()),
                    "best_threshold_false_alarm": float((score[tracked] < thresholds[best]).mean())})
    return out


def long_term_f_score(scores, ious, present, thresholds=None) -> dict:
    """VOT-LT's tracking precision, recall and F-score (Lukezic et al., "Performance evaluation methodology for
    long-term single-object tracking", 2020), from each frame's score, IoU with the ground truth (0 where the target
    is absent) and whether the target is there. A frame counts as "reported present" when its score >= tau:
    precision(tau) is the mean IoU over the frames reported present, recall(tau) the IoU summed over the frames
    reported present, over the frames where the target is there. F is maximised over tau."""
    scores, ious, present = (np.asarray(a, dtype=float) for a in (scores, ious, present))
    present = present.astype(bool)
    if thresholds is None:
        thresholds = np.round(np.arange(0.0, 1.0, 0.01), 2)
    best = {"f_score": 0.0, "precision": 0.0, "recall": 0.0, "threshold": None}
    for tau in thresholds:
        reported = scores >= tau
        if not reported.any() or not present.any():
            continue
        precision = float(ious[reported].mean())
        recall = float(ious[reported & present].sum() / present.sum())
        f = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
        if f > best["f_score"]:
            best = {"f_score": f, "precision": precision, "recall": recall, "threshold": float(tau)}
    return best
