"""The online target model (tracker/online.py) on synthetic feature maps, and its place in the tracking loop."""
from __future__ import annotations

import numpy as np
import pytest

from tracker import UserError
from tracker.config import TrackerConfig
from tracker.online import OnlineTargetModel, gaussian_label

C, H, R = 24, 16, 15  # channels, feature side, response side (a 4x4 filter on a map padded by 1)
PARAMS = dict(channels=12, memory=6, learning_rate=0.2, sigma=1.0, regularization=0.05)


def _scene(rng, objects: dict[str, np.ndarray], at: dict[str, tuple[int, int]], noise: float = 0.3) -> np.ndarray:
    """A (C,H,H) feature map: background noise plus each object's 3x3 feature pattern centred at its cell."""
    features = noise * rng.standard_normal((C, H, H)).astype(np.float32)
    for name, (row, col) in at.items():
        features[:, row - 1 : row + 2, col - 1 : col + 2] += objects[name]
    return features


def _cell(feature_cell: int) -> float:
    """The response cell over feature cell k: window cells k-1..k+2 of the padded map centre on k + 0.5."""
    return feature_cell - 0.5


@pytest.fixture
def objects():
    """A target and a look-alike: the other's features correlate 0.8 with the target's."""
    rng = np.random.default_rng(1)
    target = rng.standard_normal((C, 3, 3)).astype(np.float32)
    return {"target": target, "other": (0.8 * target + 0.6 * rng.standard_normal((C, 3, 3))).astype(np.float32)}


def test_response_peaks_on_the_target_where_it_moves(objects):
    rng = np.random.default_rng(2)
    first = [_scene(rng, objects, {"target": (8, 8)}) for _ in range(4)]
    model = OnlineTargetModel(np.stack(first), [(_cell(8), _cell(8))] * 4, R, **PARAMS)
    response = model.response(_scene(rng, objects, {"target": (4, 11)}))
    assert response.shape == (R, R)
    row, col = np.unravel_index(int(np.argmax(response)), response.shape)
    assert abs(row - _cell(4)) <= 0.5 and abs(col - _cell(11)) <= 0.5
    assert response.max() > 0.5 and np.median(response) < 0.1


@pytest.mark.parametrize("shown", [True, False], ids=["look-alike-in-samples", "target-alone"])
def test_a_look_alike_in_the_samples_is_learnt_as_background(objects, shown):
    """A look-alike scores nearly as high as the target for a filter that never saw it (the control), and low
    once it stood in the background of the frames the model learnt from, wherever the two stand."""
    rng = np.random.default_rng(3)
    seen = {"target": (5, 5), "other": (11, 11)} if shown else {"target": (5, 5)}
    model = OnlineTargetModel(np.stack([_scene(rng, objects, seen) for _ in range(4)]), [(_cell(5), _cell(5))] * 4,
                              R, **PARAMS)
    for _ in range(3):
        model.learn(_scene(rng, objects, seen), (_cell(5), _cell(5)))
    swapped = model.response(_scene(rng, objects, {"target": (11, 4), "other": (4, 11)}))
    on_target, on_other = swapped[10:12, 3:5].max(), swapped[3:5, 10:12].max()  # the cells around each
    assert on_target > 0.45
    if shown:
        assert on_other < on_target - 0.25
    else:
        assert on_other > on_target - 0.15


def test_memory_holds_at_most_its_size_and_the_normal_equations_match_a_recount(objects):
    rng = np.random.default_rng(4)
    model = OnlineTargetModel(np.stack([_scene(rng, objects, {"target": (8, 8)})]), [(_cell(8), _cell(8))], R,
                              **PARAMS)
    for i in range(10):
        model.learn(_scene(rng, objects, {"target": (6 + i % 4, 8)}), (_cell(6 + i % 4), _cell(8)))
        assert model.sample_count == min(i + 1, PARAMS["memory"])
    assert np.isclose(model._weights.sum(), 1.0)
    # The running sums must equal the weighted sums over what the memory holds now (the dropped samples' terms
    # subtracted exactly).
    recount = sum(w * model._normal_terms(projected, centre)[0]
                  for w, (projected, centre) in zip(model._weights, model._samples))
    assert np.allclose(model._gram, recount, rtol=1e-4, atol=1e-4 * np.abs(recount).max())


def test_the_filter_fits_the_ridge_solution(objects):
    """A few warm-started CG steps per sample land near the exact ridge solution of the memory."""
    rng = np.random.default_rng(5)
    model = OnlineTargetModel(np.stack([_scene(rng, objects, {"target": (8, 8)})]), [(_cell(8), _cell(8))], R,
                              **PARAMS)
    for i in range(6):
        model.learn(_scene(rng, objects, {"target": (7, 7 + i % 3)}), (_cell(7), _cell(7 + i % 3)))
    gram, rhs = model._system()
    exact = np.linalg.solve(gram, rhs)
    assert np.linalg.norm(model.filter - exact) < 0.05 * np.linalg.norm(exact)


def test_gaussian_label_peaks_at_fractional_centres():
    label = gaussian_label(15, (3.5, 10.0), 1.0)
    assert label.shape == (15, 15) and np.isclose(label.max(), np.exp(-0.125))
    assert label[3, 10] == label[4, 10] == label.max()


def test_feature_map_that_cannot_give_the_response_is_refused(objects):
    rng = np.random.default_rng(6)
    with pytest.raises(ValueError, match="cannot give a 15x15 response"):
        OnlineTargetModel(rng.standard_normal((1, C, 13, 13)), [(6, 6)], R, **PARAMS)


@pytest.mark.parametrize("key, value", [("online_weight", 1.5), ("online_channels", 0), ("online_memory", 0),
                                        ("online_update_every", 0), ("online_learning_rate", 0.0),
                                        ("online_sigma", 0.0), ("online_regularization", 0.0),
                                        ("online_distractor", 0.0)])
def test_online_settings_are_checked(key, value):
    with pytest.raises(ValueError, match=key):
        TrackerConfig(**{key: value})


class _NoFeatures:
    """An engine whose weights lack the `features` output (a pair exported before the online model)."""
    has_features = False

    def __init__(self, config):
        self.config = config
        self.response_size = 15


def test_online_model_needs_the_box_rule_and_the_features(default_tracker_factory):
    from tracker.tracking import SiamTracker

    tracker = default_tracker_factory()
    with pytest.raises(UserError, match="box_position='box'"):
        SiamTracker(tracker.engine, tracker.config.replace(online_weight=0.5, box_position="peak"))
    with pytest.raises(UserError, match="re-export them with `siamtrack export`"):
        SiamTracker(_NoFeatures(tracker.engine.config), tracker.config.replace(online_weight=0.5))


def test_online_tracker_follows_the_synthetic_clip_and_learns(default_tracker_factory):
    from conftest import iou, synthetic_video

    frames, gt = synthetic_video(n_frames=30)
    tracker = default_tracker_factory(online_weight=0.5, online_update_every=3, lost_threshold=0.6)
    tracker.init(frames[0], tuple(gt[0]))
    boxes = np.array([tracker.update(f).box for f in frames[1:]])
    assert np.mean(iou(boxes, gt[1:])) > 0.6
    assert tracker._target.state.online.sample_count >= 5


def test_weights_are_a_running_mean_then_decay_and_the_newest_sample_stays(objects):
    rng = np.random.default_rng(7)
    first = np.stack([_scene(rng, objects, {"target": (8, 8)})])
    model = OnlineTargetModel(first, [(_cell(8), _cell(8))], R, **{**PARAMS, "learning_rate": 0.05, "memory": 50})
    for i in range(3):
        model.learn(_scene(rng, objects, {"target": (8, 8)}), (_cell(8), _cell(8)))
    assert np.allclose(model._weights, 1 / 3)  # not (0.95^2, 0.95 x 0.05, 0.05): the first would outweigh the rest
    for i in range(30):
        model.learn(_scene(rng, objects, {"target": (8, 8)}), (_cell(8), _cell(8)))
    assert np.isclose(model._weights[-1], 0.05) and model._weights[-1] > model._weights[0]
    one = OnlineTargetModel(first, [(_cell(8), _cell(8))], R, **{**PARAMS, "memory": 1})
    one.learn(_scene(rng, objects, {"target": (8, 8)}), (_cell(8), _cell(8)))
    one.learn(_scene(rng, objects, {"target": (4, 4)}), (_cell(4), _cell(4)))
    assert one.sample_count == 1 and one._samples[0][1] == (_cell(4), _cell(4))  # the newest is kept
