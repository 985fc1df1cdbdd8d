"""Identities after a crossing (tracker/reunite.py, reunite_by_motion): the motion line, the verdict on made-up
positions, what trading places moves, and a pasted pair of twins put back on their own objects."""
from __future__ import annotations

from collections import deque

import numpy as np
import pytest

from conftest import DATA
from tracker import MultiTracker
from tracker.evaluation.crossing import PasteCase, Walker, count_crossing, paste_clip, track_clip
from tracker.presence import Presence
from tracker.result import box_iou
from tracker.reunite import APART, GAP, HISTORY, SWAP_RATIO, Encounter, hand_over, motion_line, trade_places, verdict
from tracker.tracking import Target, TargetState

STEP = np.array([3.0, -1.0])


def _line_path(end, step=STEP, length=HISTORY):
    """Centres of `length` frames moving by `step`, the last one at `end` (the frame before this one)."""
    return [np.asarray(end, float) - (length - 1 - k) * step for k in range(length)]


def test_motion_line_leaves_out_the_last_gap_frames():
    path = _line_path((100, 50))
    anchor, velocity = motion_line(path)
    np.testing.assert_allclose(velocity, STEP, atol=1e-9)
    np.testing.assert_allclose(anchor, np.array([100, 50]) + STEP, atol=1e-9, err_msg="where it leads this frame")
    slid = [c + max(0, k - (HISTORY - 1 - GAP)) * np.array([0.0, 20.0]) for k, c in enumerate(path)]
    assert not np.allclose(slid[-1], path[-1])
    np.testing.assert_allclose(motion_line(slid)[0], anchor, atol=1e-9, err_msg="the last GAP frames' slide counts")
    assert motion_line(path[1:]) is None and motion_line(None) is None


def _encounter(frame=0):
    """Two walkers meeting at (200, 100) on `frame`: the demoted one walks right, the kept one left, 10 px a frame;
    box size 20 px."""
    lines = ((np.array([200.0, 100.0]), np.array([10.0, 0.0])), (np.array([200.0, 100.0]), np.array([-10.0, 0.0])))
    return Encounter(demoted=None, kept=None, frame=frame, size=20.0, lines=lines)


def test_verdict_follows_each_targets_own_motion():
    meeting = _encounter()
    assert APART * 20 < 80  # frame 4: the two motions lead 80 px = 4 box sizes apart
    assert verdict(meeting, 0, (100, 100), (300, 100)) is None, "the two motions lead less than APART apart"
    assert verdict(meeting, 4, (240, 100), (160, 100)) == "keep"
    assert verdict(meeting, 4, (160, 100), (240, 100)) == "swap"
    assert verdict(meeting, 4, (205, 100), (200, 100)) is None, "boxes still together"
    # the demoted target lost: the kept one on the demoted one's path is handed over, on its own path it is not
    assert verdict(meeting, 4, None, (240, 100)) == "hand over"
    assert verdict(meeting, 4, None, (160, 100)) is None
    halfway = 200 + 40 * (1 - SWAP_RATIO) / (1 + SWAP_RATIO)  # as far from one path as SWAP_RATIO of the other
    assert verdict(meeting, 4, None, (halfway - 1, 100)) is None
    assert verdict(meeting, 4, None, (halfway + 1, 100)) == "hand over"


def _target(centre, template):
    state = TargetState(center=np.array(centre, float), size=np.array([20.0, 40.0]), search_side=100.0,
                        min_side=20.0, max_side=500.0, fill=(0.0, 0.0, 0.0), template=template,
                        frame_shape=(240, 320))
    path = deque(_line_path(centre), maxlen=HISTORY)
    return Target(state, Presence(last_good=(state.center.copy(), state.size.copy(), 100.0)), path=path)


def test_trading_places_moves_the_place_not_the_target():
    a, b = _target((100, 100), "template a"), _target((200, 120), "template b")
    presences, paths = (a.presence, b.presence), (a.path, b.path)
    trade_places(a, b)
    assert a.state.center.tolist() == [200, 120] and b.state.center.tolist() == [100, 100]
    assert (a.state.template, b.state.template) == ("template a", "template b")
    assert a.presence is presences[1] and b.presence is presences[0]
    assert a.path is paths[1] and b.path is paths[0]


def test_handing_over_loses_the_kept_target_where_its_motion_leads():
    demoted, kept = _target((100, 100), "template d"), _target((200, 120), "template k")
    demoted.presence.state = "lost"
    kept_presence = kept.presence
    meeting = Encounter(demoted, kept, 0, 20.0,
                        ((np.array([150.0, 110.0]), np.array([10.0, 0.0])),
                         (np.array([150.0, 110.0]), np.array([-10.0, 0.0]))))
    hand_over(meeting, 5)
    assert demoted.state.center.tolist() == [200, 120] and demoted.presence is kept_presence
    assert demoted.state.template == "template d"
    assert kept.presence.state == "lost" and kept.state.center.tolist() == [100, 110]
    assert kept.presence.shadow.center.tolist() == [100, 110] and kept.presence.shadow.template == "template k"
    assert len(kept.path) == 0
    hand_over(Encounter(demoted, kept, 0, 20.0, ((np.zeros(2),) * 2, (np.zeros(2), np.array([-90.0, 0])))), 5)
    assert demoted.state.center.tolist() == [100, 110] and kept.state.center.tolist() == [0, 0], "clipped to the frame"


# -- on a pasted clip ---------------------------------------------------------------------------------------------

TWINS = PasteCase("david-twins", (Walker("val", "David", 90, (0.15, 0.45), (0.85, 0.5)),
                                  Walker("val", "David", 90, (0.85, 0.5), (0.15, 0.45), first=200)), 450,
                  "one face twice")


@pytest.mark.skipif(not ((DATA / "val" / "David").is_dir() and (DATA / "videos" / "vtest.avi").is_file()),
                    reason="needs ../shared/data (val/David, videos/vtest.avi)")
def test_twins_that_swapped_in_the_crossing_are_put_back():
    """One face pasted twice, crossing: without reunite_by_motion the two targets end on each other's faces;
    with it, each ends on its own (and is right on more frames)."""
    clip = paste_clip(DATA, TWINS)
    base = MultiTracker.from_pretrained(engine="onnx")
    reports, trackers = {}, {}
    for reunite in (0, 1):
        trackers[reunite] = MultiTracker(base.engine, base.config.replace(demote_by_motion=0,
                                                                          reunite_by_motion=reunite))
        boxes, states, _ = track_clip(clip, trackers[reunite])
        reports[reunite] = count_crossing(boxes, states, clip.gt[1:])
        last = boxes[-10:]
        own = [np.mean([box_iou(last[t, k], clip.gt[-10 + t, k]) for t in range(10)]) for k in range(2)]
        other = [np.mean([box_iou(last[t, k], clip.gt[-10 + t, 1 - k]) for t in range(10)]) for k in range(2)]
        if reunite:
            assert min(own) > 0.5, f"each target back on its own face: {own}"
        else:
            assert min(other) > 0.5, f"the clip should end swapped without it (else the test checks nothing): {other}"
    assert reports[1]["idf1"] > reports[0]["idf1"] + 0.2
    assert trackers[0]._encounters == [] and trackers[1]._encounters == [], "settled, not left open"


def test_removing_a_target_or_starting_over_forgets_its_encounters(shared_multi_engine):
    multi = MultiTracker(shared_multi_engine.engine, shared_multi_engine.config)
    frame = np.zeros((240, 320, 3), np.uint8)
    frame[::8] = 255
    ids = multi.init(frame, [(10, 10, 40, 40), (100, 100, 40, 40), (200, 50, 40, 40)])
    targets = [multi._targets[i] for i in ids]
    multi._encounters = [_encounter_of(targets[0], targets[1]), _encounter_of(targets[1], targets[2])]
    multi.remove(ids[0])
    assert len(multi._encounters) == 1
    assert multi._encounters[0].demoted is targets[1] and multi._encounters[0].kept is targets[2]
    multi.init(frame, [(10, 10, 40, 40)])
    assert multi._encounters == []


def _encounter_of(demoted, kept):
    meeting = _encounter()
    meeting.demoted, meeting.kept = demoted, kept
    return meeting


@pytest.fixture(scope="module")
def shared_multi_engine():
    return MultiTracker.from_pretrained(engine="onnx")
