"""How much a tracker's score says about whether its box is on the target (issue 25's yardstick).

Pure functions on pooled per-frame arrays (score, IoU with the ground truth, flagged), so `eval --rescore`
reproduces every figure from the result files:

* AUROC of the score for *good* frames (IoU >= 0.5) against *off-target* frames (IoU < 0.1); frames in between are
  neither and do not count. 1: every good frame scores above every off-target frame; 0.5: the score says nothing.
* The share of off-target frames the tracker flags (state uncertain or lost) and the share of good frames it flags.
* The expected calibration error (ECE) of the score read as P(IoU >= 0.5), over all scored frames: 10 equal-width
  score bins, |observed frequency of IoU >= 0.5 - mean score| per bin, weighted by the bin's share of frames.
* The reliability curve behind the ECE (per bin: frames, mean score, observed frequency) for the diagram.
* Per sequence, where the flags fall (flag_counts): good frames in state uncertain and in state lost, off-target
  frames left in state tracking. The pooled shares hide that a few sequences hold most of the mistakes.
"""
from __future__ import annotations

import numpy as np

# scikit-learn (with scipy) is imported where it is used: this module is imported by every `siamtrack` command's
# parser (through eval's runner), and the import costs about half a second that `track` should not pay.

GOOD_IOU = 0.5  # a good frame: IoU >= this (also the event the score is read as the probability of)
OFF_IOU = 0.1  # an off-target frame: IoU < this
BINS = 10


def auroc(score, positive) -> float | None:
    """Area under the ROC curve of `score` for `positive` frames against the others; None without both kinds."""
    from sklearn.metrics import roc_auc_score

    positive = np.asarray(positive, bool)
    if positive.all() or not positive.any():
        return None
    return float(roc_auc_score(positive, np.asarray(score, float)))


def reliability(score, hit, bins: int = BINS) -> list[dict]:
    """Per equal-width score bin on [0, 1]: its edges, its frames, their mean score and the observed frequency of
    `hit` (None for an empty bin). The binning is scikit-learn's calibration_curve's (a bin holds (lower, upper],
    the first [0, upper])."""
    from sklearn.calibration import calibration_curve

    score = np.clip(np.asarray(score, float), 0.0, 1.0)
    hit = np.asarray(hit, bool)
    edges = np.linspace(0.0, 1.0, bins + 1)
    counts = np.bincount(np.searchsorted(edges[1:-1], score), minlength=bins)
    rows = [{"lower": float(edges[i]), "upper": float(edges[i + 1]), "frames": int(counts[i]),
             "mean_score": None, "observed": None} for i in range(bins)]
    if len(score):
        observed, mean_score = calibration_curve(hit, score, n_bins=bins, strategy="uniform", pos_label=True)
        for row, o, m in zip((r for r, c in zip(rows, counts) if c), observed, mean_score):
            row["observed"], row["mean_score"] = float(o), float(m)
    return rows


def expected_calibration_error(bins: list[dict]) -> float | None:
    """ECE from `reliability`'s bins: sum over bins of (share of frames) * |observed - mean score|."""
    total = sum(b["frames"] for b in bins)
    if not total:
        return None
    return float(sum(b["frames"] / total * abs(b["observed"] - b["mean_score"]) for b in bins if b["frames"]))


def score_quality(score, iou, flagged, has_state: bool) -> dict:
    """The verifier-quality figures of one tracker from its pooled scored frames (init frames and frames without
    ground truth already left out; frames with no score are dropped here). `flagged`: state uncertain or lost, or
    for a tracker without states (has_state False) its lost flag."""
    score, iou, flagged = np.asarray(score, float), np.asarray(iou, float), np.asarray(flagged, bool)
    keep = np.isfinite(score)
    score, iou, flagged = score[keep], np.nan_to_num(iou[keep]), flagged[keep]
    good, off = iou >= GOOD_IOU, iou < OFF_IOU
    both = good | off
    bins = reliability(score, good)
    return {
        "frames": int(len(score)), "good_frames": int(good.sum()), "off_frames": int(off.sum()),
        "auroc": auroc(score[both], good[both]),
        "off_flagged": float(flagged[off].mean()) if off.any() else None,
        "good_flagged": float(flagged[good].mean()) if good.any() else None,
        "flag": "uncertain or lost" if has_state else "lost flag only (no states)",
        "ece": expected_calibration_error(bins),
        "off_median_score": float(np.median(score[off])) if off.any() else None,
        "bins": bins,
    }


def flag_counts(iou, state) -> dict:
    """One sequence's good and off-target frames by state (STATE codes 0 tracking, 1 uncertain, 2 lost), from its
    scored frames' IoU and state."""
    iou, state = np.nan_to_num(np.asarray(iou, float)), np.asarray(state)
    good, off = iou >= GOOD_IOU, iou < OFF_IOU
    return {"good": int(good.sum()), "good_uncertain": int((good & (state == 1)).sum()),
            "good_lost": int((good & (state == 2)).sum()), "off": int(off.sum()),
            "off_tracking": int((off & (state == 0)).sum())}
