"""Metrics against the independent got10k toolkit and hand-computed cases."""
import importlib.util
import sys
import types

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")
# got10k imports `six` and `wget` at module level but the code paths used here need neither;
# stub them when absent rather than adding dependencies to the project.
for _mod, _attrs in (("six", {"string_types": (str,)}), ("wget", {})):
    if importlib.util.find_spec(_mod) is None:
        sys.modules[_mod] = types.SimpleNamespace(**_attrs)

from tracker.evaluation import metrics as M

got_metrics = pytest.importorskip("got10k.utils.metrics", reason="got10k package (reference toolkit) not installed")
from got10k.experiments.got10k import ExperimentGOT10k  # noqa: E402
from got10k.experiments.otb import ExperimentOTB  # noqa: E402


def _random_boxes(rng, n, size=(320, 240)):
    W, H = size
    xy = rng.uniform(-40, [W, H], size=(n, 2))
    wh = rng.uniform(2, 120, size=(n, 2))
    return np.hstack([xy, wh])


def _jitter(rng, boxes, scale=15):
    out = boxes + rng.normal(0, scale, boxes.shape)
    out[:, 2:] = np.abs(out[:, 2:]) + 1
    return out


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def _otb():
    e = ExperimentOTB.__new__(ExperimentOTB)  # skip __init__: it downloads OTB
    e.nbins_iou, e.nbins_ce = 21, 51
    return e


def test_iou_and_centre_error_match_got10k(rng):
    gt = _random_boxes(rng, 500)
    pred = np.vstack([_jitter(rng, gt[:400]), _random_boxes(rng, 100)])  # overlapping and far away
    np.testing.assert_allclose(M.rect_iou(pred, gt), got_metrics.rect_iou(pred.copy(), gt.copy()), atol=1e-12)
    np.testing.assert_allclose(M.center_error(pred, gt), got_metrics.center_error(pred, gt), atol=1e-9)
    bound = (320, 240)
    np.testing.assert_allclose(M.rect_iou(pred, gt, bound=bound),
                               got_metrics.rect_iou(pred.copy(), gt.copy(), bound=bound), atol=1e-12)


def test_curves_match_got10k_otb(rng):
    gt = _random_boxes(rng, 300)
    pred = _jitter(rng, gt, 10)
    m = M.sequence_metrics(pred, gt, np.ones(len(gt), bool), (320, 240))
    ref_s, ref_p = _otb()._calc_curves(got_metrics.rect_iou(pred.copy(), gt.copy()),
                                       got_metrics.center_error(pred, gt))
    np.testing.assert_allclose(m["success_curve"], ref_s)
    np.testing.assert_allclose(m["precision_curve"], ref_p)
    assert m["auc"] == pytest.approx(np.mean(ref_s), abs=1e-12)
    assert m["precision"] == pytest.approx(ref_p[20], abs=1e-12)


def test_overall_matches_got10k_aggregation(rng):
    seqs, ref_s, ref_p, ref_ious = [], [], [], []
    for n in (50, 120, 333):
        gt = _random_boxes(rng, n)
        pred = _jitter(rng, gt, 12)
        seqs.append(M.sequence_metrics(pred, gt, np.ones(n, bool), (320, 240)))
        s, p = _otb()._calc_curves(got_metrics.rect_iou(pred.copy(), gt.copy()), got_metrics.center_error(pred, gt))
        ref_s.append(s)
        ref_p.append(p)
        ref_ious.append(got_metrics.rect_iou(pred[1:].copy(), gt[1:].copy(), bound=(320, 240)))
    o = M.overall_metrics(seqs)
    # ExperimentOTB.report: curves averaged over sequences, AUC = mean of that curve, precision at 20 px
    assert o["auc"] == pytest.approx(np.mean(np.mean(ref_s, 0)), abs=1e-12)
    assert o["precision"] == pytest.approx(np.mean(ref_p, 0)[20], abs=1e-12)
    # ExperimentGOT10k.report (val): first frame dropped, boxes bounded to the image, IoUs pooled
    e = ExperimentGOT10k.__new__(ExperimentGOT10k)
    ao, sr, _, _ = e._evaluate(np.concatenate(ref_ious), np.array([]))
    assert o["ao"] == pytest.approx(ao, abs=1e-12)
    assert o["sr50"] == pytest.approx(sr, abs=1e-12)


def test_hand_computed_iou():
    a = np.array([[0, 0, 10, 10]] * 4, float)
    b = np.array([[0, 0, 10, 10], [5, 0, 10, 10], [10, 0, 10, 10], [2, 2, 5, 5]], float)
    np.testing.assert_allclose(M.rect_iou(a, b), [1.0, 50 / 150, 0.0, 25 / 100])
    np.testing.assert_allclose(M.center_error(a, b), [0.0, 5.0, 10.0, 0.5 * np.sqrt(2)])


def test_hand_computed_scores():
    gt = np.array([[0, 0, 10, 20]] * 3, float)
    pred = np.array([[0, 0, 10, 20], [5, 0, 10, 20], [2, 0, 10, 20]], float)
    m = M.sequence_metrics(pred, gt, np.ones(3, bool), (100, 100))
    # IoUs 1, 1/3, 0.8/1.2=2/3: thresholds 0..0.95 (20) + 0..0.3 (7) + 0..0.65 (14) passed, of 21 each
    assert m["auc"] == pytest.approx((20 + 7 + 14) / 63)
    assert m["success_curve"][-1] == 0.0          # IoU must be > 1.0: never
    assert m["precision"] == 1.0                   # centre errors 0, 5, 2 px all <= 20
    assert m["precision_curve"][4] == pytest.approx(2 / 3)  # <= 4 px: frames 1 and 3
    # normalised centre errors 0, 0.5, 0.2 (divided by GT width 10); 0.2 counts at the 0.2 threshold
    assert m["norm_precision"] == pytest.approx(2 / 3)
    # GOT-10k: first frame dropped
    assert m["ao"] == pytest.approx((1 / 3 + 2 / 3) / 2)
    assert m["sr50"] == 0.5 and m["sr75"] == 0.0


def test_nan_rows_are_excluded(rng):
    gt = _random_boxes(rng, 60)
    pred = _jitter(rng, gt)
    gt_nan = gt.copy()
    gt_nan[[5, 17, 40]] = np.nan
    valid = np.isfinite(gt_nan).all(1)
    full = M.sequence_metrics(pred, gt_nan, valid, (320, 240))
    sub = M.sequence_metrics(pred[valid], gt[valid], np.ones(valid.sum(), bool), (320, 240))
    for k in ("auc", "precision", "norm_precision", "ao", "sr50", "sr75"):
        assert full[k] == pytest.approx(sub[k]), k
    assert full["scored_frames"] == 57 and full["frames"] == 60


def test_missing_prediction_is_a_miss():
    gt = np.array([[0, 0, 10, 10]] * 2, float)
    pred = np.array([[0, 0, 10, 10], [np.nan] * 4])
    m = M.sequence_metrics(pred, gt, np.ones(2, bool), (50, 50))
    assert m["ao"] == 0.0 and m["precision"] == 0.5


def test_lost_flag_stats_hand_computed():
    from tracker.evaluation.metrics import lost_flag_stats

    # frame 0 is the init frame and is ignored; frames 1-2 tracked (IoU >= 0.5), frames 3-4 missed (IoU 0).
    scores = np.array([[1.0, 0], [0.9, 0], [0.4, 1], [0.2, 1], [0.6, 0]])
    ious = np.array([1.0, 0.8, 0.6, 0.0, 0.0])
    stats = lost_flag_stats([(scores, ious, np.ones(5, bool))])
    assert stats["missed_frames"] == 2 and stats["tracked_frames"] == 2
    assert stats["lost_on_missed"] == 0.5 and stats["lost_on_tracked"] == 0.5
    # t in (0.2, 0.4]: flags the 0.2 miss only, J = 0.5 - 0; (0.4, 0.6]: J = 0.5 - 0.5; (0.6, 0.9]: J = 1 - 0.5.
    # The first threshold with the best J is 0.21.
    assert stats["best_threshold"] == 0.21
    assert stats["best_threshold_recall"] == 0.5 and stats["best_threshold_false_alarm"] == 0.0


def test_lost_threshold_suggestion_respects_false_alarm_budget():
    from tracker.evaluation.lost import separating_threshold

    tracked = np.array([0.95] * 90 + [0.6] * 5 + [0.3] * 5)  # 5% at 0.3, another 5% at 0.6
    absent = np.array([0.2] * 50 + [0.5] * 50)
    r = separating_threshold(tracked, absent, max_false_alarm=0.05)
    # Up to 0.30 nothing tracked is flagged; 0.31..0.60 flags 5% (allowed); 0.61 would flag 10%.
    assert r["threshold"] == 0.6 and r["false_alarm"] == 0.05 and r["recall"] == 1.0
    assert r["youden_threshold"] == 0.51 and r["youden_recall"] == 1.0
