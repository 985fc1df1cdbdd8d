"""The jump watch (tracker/jumps.py): a box whose search features change at once is on something else, and what it
jumped onto is not taken for the target afterwards."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import DATA, iou
from tracker import SiamTracker
from tracker.config import TrackerConfig
from tracker.config import ModelConfig
from tracker.jumps import STRANGER_SCORE, JumpWatch, cell_cosine, jump_watch_for
from tracker.verifier import box_window

MODEL = ModelConfig()  # 255 px search crops at stride 16: a 16x16 feature map, whose centred 8x8 is the box


class State:
    window = remembered = stranger = None


def windows(seed: int, count: int, channels: int = 8) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(count, channels, 8, 8))


def test_cell_cosine_reads_the_central_cells_only():
    a, b = windows(0, 2)
    context_changed = a.copy()
    context_changed[:, :2], context_changed[:, 6:] = b[:, :2], b[:, 6:]
    assert cell_cosine(a, a) == pytest.approx(1.0)
    assert cell_cosine(a, context_changed) == pytest.approx(1.0)
    assert cell_cosine(a, -a) == pytest.approx(-1.0)
    assert abs(cell_cosine(a, b)) < 0.3


def test_a_steady_box_keeps_its_score_and_a_jump_caps_it_and_remembers_both_sides():
    target, stranger = windows(1, 2)
    watch, state = JumpWatch(0.65), State()
    rng = np.random.default_rng(2)
    for _ in range(5):  # the target changes a little from frame to frame
        assert watch.after_step(state, target + 0.2 * rng.normal(size=target.shape), 0.9, lost=False) == 0.9
    assert state.stranger is None
    assert watch.after_step(state, stranger, 0.9, lost=False) == STRANGER_SCORE
    assert cell_cosine(state.stranger, stranger) == pytest.approx(1.0)
    assert cell_cosine(state.remembered, target) > 0.9
    # on the stranger again: capped, a verifier's 0.95 notwithstanding; back on the target: its own score
    assert watch.after_step(state, stranger + 0.2 * rng.normal(size=target.shape), 0.95, lost=False) == STRANGER_SCORE
    assert watch.after_step(state, target, 0.8, lost=True) == 0.8
    assert watch.tile_score(state, stranger, 0.9) == STRANGER_SCORE
    assert watch.tile_score(state, target, 0.9) == 0.9


def test_what_comes_with_a_jump_from_the_stranger_is_not_the_stranger_and_taking_back_forgets():
    """The target back after a cut: its window is unlike the stranger's (a jump from it), so its own score counts,
    even where it is no more like the target before than like the stranger; a target taken back forgets."""
    target, stranger, other = windows(4, 3)
    watch, state = JumpWatch(0.65), State()
    watch.after_step(state, target, 0.9, lost=False)
    watch.after_step(state, stranger, 0.9, lost=False)
    assert state.stranger is not None
    assert watch.after_step(state, other, 0.8, lost=True) == 0.8
    watch.forget(state)
    assert state.window is state.remembered is state.stranger is None
    assert watch.after_step(state, stranger, 0.9, lost=False) == 0.9  # nothing to jump from, no stranger


def test_a_place_about_as_like_the_target_as_the_stranger_is_not_the_stranger():
    target, stranger = windows(6, 2)
    watch, state = JumpWatch(0.65), State()
    watch.after_step(state, target, 0.9, lost=False)
    watch.after_step(state, stranger, 0.9, lost=False)
    between = target + stranger  # a cosine of about 0.7 with each
    assert watch.after_step(state, between, 0.8, lost=True) == 0.8
    assert cell_cosine(state.stranger, stranger) == pytest.approx(1.0)  # the memory did not follow it


def test_a_lost_search_does_not_jump_and_a_first_frame_has_nothing_to_jump_from():
    a, b = windows(3, 2)
    watch, state = JumpWatch(0.65), State()
    assert watch.after_step(state, a, 0.7, lost=False) == 0.7  # nothing before it
    assert watch.after_step(state, b, 0.7, lost=True) == 0.7  # a lost target's search moves freely
    assert state.stranger is None


def test_the_window_under_a_box_at_the_crop_centre_is_the_centred_one():
    features = np.random.default_rng(5).normal(size=(4, 16, 16))
    assert np.allclose(box_window(features, (100, 50), (100, 50), 300.0, MODEL), features[:, 4:12, 4:12])
    moved = box_window(features, (100 + 300 * 16 / 255, 50), (100, 50), 300.0, MODEL)  # one cell to the right
    assert np.allclose(moved, features[:, 4:12, 5:13])


def test_the_watch_needs_the_verifier_and_a_line():
    assert jump_watch_for(None, TrackerConfig(jump_cosine=0.65)) is None
    assert jump_watch_for(object(), TrackerConfig()) is None
    assert jump_watch_for(object(), TrackerConfig(jump_cosine=0.65)).line == 0.65
    for bad in (-0.1, 1.0):
        with pytest.raises(ValueError, match="jump_cosine must be from 0"):
            TrackerConfig(jump_cosine=bad).validate()


def scene(seed: int, size=(240, 320)) -> np.ndarray:
    """A frame of smoothly blended colours (its own palette per seed), as a scene's colours."""
    import cv2

    rng = np.random.default_rng(seed)
    palette = rng.integers(0, 256, (6, 3))
    blocks = np.kron(palette[rng.integers(0, 6, (size[0] // 20, size[1] // 20))], np.ones((20, 20, 1)))
    return cv2.GaussianBlur(blocks.astype(np.uint8), (0, 0), 6)


def test_a_shot_cut_is_a_change_of_colours_not_of_places():
    from tracker.cuts import ShotCuts, colour_distance, colour_histogram

    first, other = scene(0), scene(1)
    moved = np.roll(first, (12, 30), axis=(0, 1))  # the camera pans: the same colours elsewhere
    assert colour_distance(colour_histogram(first), colour_histogram(first)) == pytest.approx(0.0, abs=1e-6)
    assert colour_distance(colour_histogram(first), colour_histogram(moved)) < 0.15  # 0.09
    assert colour_distance(colour_histogram(first), colour_histogram(other)) > 0.6  # 0.90
    cuts = ShotCuts(0.3)
    assert [cuts.is_cut(f) for f in (first, moved, moved, other, other, first)] == \
        [False, False, False, True, False, True]  # never the first frame seen


def test_with_jump_at_cuts_a_box_jumps_only_on_a_frame_that_starts_a_new_shot():
    target, stranger = windows(5, 2)
    watch, state = JumpWatch(0.65, cut_threshold=0.3), State()
    watch.see_frame(scene(0))
    assert watch.after_step(state, target, 0.9, lost=False) == 0.9
    watch.see_frame(scene(0))  # the same shot: the box moving onto the stranger is not a jump
    assert watch.after_step(state, stranger, 0.9, lost=False) == 0.9 and state.stranger is None
    watch.see_frame(scene(2))  # a cut, and the box's window changes with it
    assert watch.after_step(state, target, 0.9, lost=False) == STRANGER_SCORE
    assert state.remembered is stranger and state.stranger is target
    assert jump_watch_for(object(), TrackerConfig(jump_cosine=0.65, jump_at_cuts=0.3)).cuts.threshold == 0.3
    assert jump_watch_for(object(), TrackerConfig(jump_cosine=0.65)).cuts is None  # any frame
    for bad in (-0.1, 1.5):
        with pytest.raises(ValueError, match="jump_at_cuts must be from 0"):
            TrackerConfig(jump_at_cuts=bad).validate()


@pytest.fixture(scope="module")
def cut_to_a_face():
    """val-hard's BlurBody (a man's body) with 30 frames of Boy (a boy's face, where the tracker stays at a verifier
    score of 0.87) from frame 111, as `siamtrack absence` makes its cuts, then 20 frames of BlurBody again:
    (frames, present flags, ground-truth boxes)."""
    from tracker.evaluation.absence import event_frames
    from tracker.evaluation.datasets import load_dataset

    if not (DATA / "val-hard" / "BlurBody").is_dir():
        pytest.skip("needs ../shared/data/val-hard")
    _, clips, _ = load_dataset(DATA / "val-hard", ["BlurBody", "Boy"])
    body, face = sorted(clips, key=lambda c: c.name != "BlurBody")
    events = event_frames(body, face, "cut", 111, 30)
    return list(zip(*(next(events) for _ in range(111 + 30 + 20))))


def states_through(events, **overrides):
    frames, present, boxes = events
    tracker = SiamTracker.from_pretrained(threads=1, **overrides)
    tracker.init(frames[0], boxes[0])
    results = [tracker.update(frame) for frame in frames[1:]]
    states = np.array([r.state for r in results])
    ious = np.array([iou(r.box, box)[0] if here else 0.0 for r, here, box in zip(results, present[1:], boxes[1:])])
    return states, ious, ~np.array(present[1:])


def test_a_cut_to_a_look_alike_is_lost_at_once_and_the_target_is_taken_back_when_it_returns(cut_to_a_face):
    states, ious, absent = states_through(cut_to_a_face, jump_cosine=0.65)
    away = states[absent]
    assert (away[1:] == "lost").all(), away  # from the second frame of the cut to its end
    back = np.flatnonzero(absent)[-1] + 1
    assert ((states[back:back + 10] != "lost") & (ious[back:back + 10] >= 0.5)).any()
    without, _, _ = states_through(cut_to_a_face, jump_cosine=0.0)
    assert (without[absent] == "lost").sum() < 5  # without the watch the boy's face is taken for the man
    at_cuts, at_cuts_ious, _ = states_through(cut_to_a_face, jump_cosine=0.65, jump_at_cuts=0.3)
    assert (at_cuts[absent][1:] == "lost").all()  # the cut into Boy is a shot cut: the same as on any frame
    assert ((at_cuts[back:back + 10] != "lost") & (at_cuts_ious[back:back + 10] >= 0.5)).any()
