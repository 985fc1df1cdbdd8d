"""The score-quality maths of eval (tracker/evaluation/verification.py) on hand-made arrays with known answers."""
import numpy as np
import pytest

from tracker.evaluation.verification import auroc, expected_calibration_error, reliability, score_quality


def test_auroc_perfect_reversed_and_undefined():
    positive = np.array([1, 1, 1, 0, 0], bool)
    assert auroc([0.9, 0.8, 0.7, 0.2, 0.1], positive) == 1.0
    assert auroc([0.1, 0.2, 0.3, 0.8, 0.9], positive) == 0.0
    assert auroc([0.5] * 5, positive) == 0.5  # a constant score says nothing
    assert auroc([0.9, 0.8], [True, True]) is None  # one kind of frame only: no ranking to judge


def test_ece_of_a_calibrated_score_is_zero_and_of_a_saturated_one_is_its_overconfidence():
    # Score 0.25 on four frames, one of them a hit; 0.75 on four, three hits: calibrated exactly.
    score = np.array([0.25] * 4 + [0.75] * 4)
    hit = np.array([1, 0, 0, 0, 1, 1, 1, 0], bool)
    assert expected_calibration_error(reliability(score, hit)) == pytest.approx(0.0)
    # Scores 0.99 everywhere while the box is right half the time: off by 0.49 in the one bin there is.
    assert expected_calibration_error(reliability(np.full(10, 0.99), np.arange(10) % 2 == 0)) == pytest.approx(0.49)
    # Weighted by frames: bin 0.95 (6 frames, all hits: off by 0.05), bin 0.05 (2 frames, both hits: off by 0.95).
    bins = reliability(np.array([0.95] * 6 + [0.05] * 2), np.ones(8, bool))
    assert expected_calibration_error(bins) == pytest.approx(6 / 8 * 0.05 + 2 / 8 * 0.95)


def test_ece_of_a_random_calibrated_score_is_near_zero():
    rng = np.random.default_rng(3)
    p = rng.uniform(0, 1, 200_000)
    assert expected_calibration_error(reliability(p, rng.uniform(0, 1, p.size) < p)) < 0.01


def test_reliability_bins_follow_calibration_curve_and_keep_empty_bins():
    bins = reliability(np.array([0.0, 0.1, 0.1000001, 0.55, 1.0]), np.array([0, 1, 0, 1, 1], bool))
    assert len(bins) == 10 and [b["frames"] for b in bins] == [2, 1, 0, 0, 0, 1, 0, 0, 0, 1]
    assert bins[0]["mean_score"] == pytest.approx(0.05) and bins[0]["observed"] == pytest.approx(0.5)
    assert bins[2]["observed"] is None and bins[2]["mean_score"] is None  # an empty bin has no point to draw
    assert expected_calibration_error(reliability([], np.zeros(0, bool))) is None


def test_score_quality_on_hand_made_frames():
    iou = np.array([0.8, 0.9, 0.05, 0.0, 0.3, 0.7])
    score = np.array([0.9, 0.8, 0.2, 0.95, 0.5, np.nan])  # the last frame has no score: dropped
    flagged = np.array([False, False, True, False, True, True])
    q = score_quality(score, iou, flagged, has_state=True)
    assert (q["frames"], q["good_frames"], q["off_frames"]) == (5, 2, 2)
    assert q["auroc"] == pytest.approx(0.5)  # good 0.9, 0.8 against off 0.2, 0.95: two of four pairs right
    assert q["off_flagged"] == 0.5 and q["good_flagged"] == 0.0
    assert q["off_median_score"] == pytest.approx(0.575)
    assert q["flag"] == "uncertain or lost"
    assert score_quality(score, iou, flagged, has_state=False)["flag"].startswith("lost flag only")
    # ECE over all five scored frames, the in-between one (IoU 0.3) included, as P(IoU >= 0.5); each frame is
    # alone in its bin ((0.1, 0.2], (0.4, 0.5], (0.7, 0.8], (0.8, 0.9], (0.9, 1]).
    hand = (abs(0 - 0.2) + abs(0 - 0.5) + abs(1 - 0.8) + abs(1 - 0.9) + abs(0 - 0.95)) / 5
    assert q["ece"] == pytest.approx(hand)
