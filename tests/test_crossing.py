"""Many targets are exclusive (tracker/exclusive.py) and the crossing benchmark that measures it
(tracker/evaluation/crossing.py, `siamtrack crossing`): converged targets, re-detection that avoids other targets'
boxes, the identity-switch and shared-frame counters on hand-made boxes, and the command."""
from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
import pytest

from conftest import DATA, VIDEOS, iou
from test_multi import three_target_clip
from tracker import MultiTracker, SiamTracker
from tracker.evaluation.crossing import DEMO_BOXES, count_crossing
from tracker.exclusive import DRIFT_FRAMES, MOTION_TIE, PATH_LENGTH, demotions, drift
from tracker.presence import best_tile
from tracker.reunite import HISTORY

needs_data = pytest.mark.skipif(not ((VIDEOS / "vtest.avi").is_file() and (DATA / "val").is_dir()
                                     and (DATA / "val-hard").is_dir()),
                                reason="needs ../shared/data (val, val-hard, videos/vtest.avi)")


@pytest.fixture(scope="module")
def shared_engine():
    return SiamTracker.from_pretrained(engine="onnx")


# -- exclusivity in MultiTracker ----------------------------------------------------------------------------------


def test_two_targets_on_one_object_are_not_both_tracking_it(shared_engine):
    """Two targets given the same object: within a few frames one of them lets go (lost), the other keeps
    tracking it; never both tracking on it after that."""
    frames, gts = three_target_clip(n_frames=12)
    multi = MultiTracker(shared_engine.engine, shared_engine.config)
    first, second = multi.init(frames[0], [tuple(gts[0][0]), tuple(gts[0][0])])
    results = [multi.update(frame) for frame in frames[1:]]
    both = [r[first].state != "lost" and r[second].state != "lost"
            and iou([r[first].box], [r[second].box])[0] >= 0.5 for r in results]
    assert not any(both[2:]), [(r[first].state, r[second].state) for r in results]
    kept = [k for k in (first, second) if all(r[k].state != "lost" for r in results)]
    assert len(kept) == 1, "exactly one lets go"
    assert iou([r[kept[0]].box for r in results], gts[0][1:]).min() > 0.5, "the one kept tracks the object"
    # (The other searches the frame, never inside the kept target's box; here it takes the third object, a random
    # texture this network scores as high as its own.)
    alone = SiamTracker(shared_engine.engine, shared_engine.config)
    alone.init(frames[0], tuple(gts[0][0]))
    assert [alone.update(f).state for f in frames[1:]] == ["tracking"] * 11, "one target alone is unchanged"


def test_the_lower_score_or_the_jumper_is_demoted():
    still, jumped = (100, 100, 20, 40), (40, 100, 20, 40)
    on_still = (101, 100, 20, 40)
    moved = [still, on_still]
    # a clear score difference decides
    assert demotions(moved, [still, jumped], [0.99, 0.80], [True, True]) == [(1, 0)]
    assert demotions(moved, [still, jumped], [0.70, 0.99], [True, True]) == [(0, 1)]
    # scores within SCORE_TIE: the one whose box moved most (the jump from x=40) is demoted
    assert demotions(moved, [still, jumped], [0.99, 1.0], [True, True]) == [(1, 0)]
    # apart, or one of them lost (claiming nothing): nobody is demoted
    assert demotions([still, (160, 100, 20, 40)], [still, jumped], [0.9, 0.2], [True, True]) == []
    assert demotions(moved, [still, jumped], [0.99, 0.5], [True, False]) == []


def _path(last, step, count=PATH_LENGTH):
    """Box centres of count frames moving by step each frame, oldest first, the last at `last`."""
    return [np.array(last, float) - (count - 1 - k) * np.array(step, float) for k in range(count)]


def _box_at(centre):
    return (centre[0] - 10, centre[1] - 20, 20, 40)  # a 20 x 40 box: its size is sqrt(800) px


def test_drift_is_the_distance_from_where_the_targets_own_motion_leads_in_box_sizes():
    walking = _path((100, 100), (10, 0))  # walking right: next at x = 110
    assert drift(walking, _box_at((110, 100))) == pytest.approx(0.0), "on its path"
    assert drift(walking, _box_at((110 + 2 * np.sqrt(800), 100))) == pytest.approx(2.0), "two box sizes ahead"
    # the velocity is taken from the frames before the last DRIFT_FRAMES: a slide during those shows as drift
    sliding = [c + max(0, k - (PATH_LENGTH - 1 - DRIFT_FRAMES)) * np.array([0.0, 10.0])
               for k, c in enumerate(walking)]
    assert drift(sliding, _box_at(sliding[-1] + (10, 10))) > 0.3 + drift(walking, _box_at((110, 100)))
    assert drift(walking[1:], _box_at((110, 100))) is None and drift(None, _box_at((110, 100))) is None


def test_with_paths_the_target_that_left_its_own_path_is_demoted_whatever_the_scores():
    """Two walkers meet at x = 100: #0 walks right and keeps on; #1 walks left, 20 px short of x = 100, and was
    pulled onto #0's walker (its look-alike), so its box is off its path. Motion demotes #1 although it scores
    higher; without paths, with a drift gap within MOTION_TIE, or with a path too short, the scores decide."""
    right, left = _path((90, 100), (10, 0)), _path((130, 100), (-10, 0))  # next: 100 and 120
    moved = [_box_at((100, 100)), _box_at((101, 100))]
    before = [_box_at((90, 100)), _box_at((130, 100))]
    scores = [0.6, 0.9]
    assert demotions(moved, before, scores, [True, True], [right, left]) == [(1, 0)]
    assert demotions(moved, before, scores, [True, True]) == [(0, 1)], "no paths: the lower score"
    assert demotions(moved, before, scores, [True, True], [right, left[1:]]) == [(0, 1)], "a short path"
    near = _path((91 - np.sqrt(800) * MOTION_TIE / 2, 100), (10, 0))  # drifts MOTION_TIE / 2 more than #0
    assert demotions(moved, before, scores, [True, True], [right, near]) == [(0, 1)]


def test_multitracker_keeps_paths_only_with_a_motion_key(shared_engine):
    """With demote_by_motion=1 each target keeps the centres of its last PATH_LENGTH frames that began with it
    holding an object (not lost), with reunite_by_motion=1 the last reunite.HISTORY; a frame that began lost starts
    its path again. With both off, no path is kept."""
    frames, gts = three_target_clip(n_frames=24)
    boxes = [tuple(gts[0][0]), tuple(gts[0][1])]
    for demote, reunite_ in ((0, 0), (1, 0), (0, 1)):
        keep = max(PATH_LENGTH, HISTORY) if reunite_ else PATH_LENGTH
        config = shared_engine.config.replace(demote_by_motion=demote, reunite_by_motion=reunite_)
        multi = MultiTracker(shared_engine.engine, config)
        ids = multi.init(frames[0], boxes)
        held = dict.fromkeys(ids, 0)  # frames in a row that began with the target not lost
        was_lost = dict.fromkeys(ids, False)
        longest, restarted = 0, False
        for frame in frames[1:]:
            results = multi.update(frame)
            for i, result in results.items():
                held[i] = 0 if was_lost[i] else held[i] + 1
                was_lost[i] = result.state == "lost"
                path = multi._targets[i].path
                if not (demote or reunite_):
                    assert path is None
                    continue
                assert len(path) == min(held[i], keep)
                longest, restarted = max(longest, held[i]), restarted or 0 < held[i] < held[1 - i]
                if held[i] and result.state != "lost":  # a lost box may be the held one, not where it stepped
                    assert np.allclose(path[-1], np.add(result.box[:2], np.divide(result.box[2:], 2)))
        if demote or reunite_:
            assert longest > keep and restarted, \
                "the clip should have one target held all along and one lost and found: the check would be empty"


def test_tile_peaks_inside_another_targets_box_are_left_out():
    scores = np.zeros((2, 5, 5))
    scores[0, 2, 2] = 0.99  # tile 0's centre: inside the excluded box
    scores[1, 0, 4] = 0.80  # tile 1's top-right cell
    centres = [np.array([100.0, 100.0]), np.array([300.0, 100.0])]
    args = (centres, 8, 80.0, 80, (640, 480), np.array([5.0, 5.0]))  # a cell is 8 frame pixels
    assert best_tile(scores, *args)[0] == pytest.approx(0.99)
    score, position, _ = best_tile(scores, *args, excluded=[(90, 90, 20, 20)])
    assert score == pytest.approx(0.80) and position.tolist() == [316.0, 84.0]
    score, position, _ = best_tile(scores, *args, excluded=[(0, 0, 640, 480)])
    assert score == 0.0 and position.tolist() == [5.0, 5.0], "all excluded: nothing found, the fallback"


# -- the counters on hand-made boxes ------------------------------------------------------------------------------


def _walk(count: int, swap_at=None, back_at=None):
    """Two objects far apart, still; target boxes on their own objects, swapped from swap_at (and back at
    back_at)."""
    gt = np.tile(np.array([[[10, 10, 20, 20], [200, 10, 20, 20]]], float), (count, 1, 1))
    boxes = gt.copy()
    for t in range(count):
        if swap_at is not None and t >= swap_at and (back_at is None or t < back_at):
            boxes[t] = gt[t, ::-1]
    return boxes, gt


def test_identity_switches_counted_as_mot_does():
    tracking = [["tracking", "tracking"]] * 10
    boxes, gt = _walk(10)
    assert count_crossing(boxes, tracking, gt)["identity_switches"] == [0, 0]
    boxes, gt = _walk(10, swap_at=4)
    report = count_crossing(boxes, tracking, gt)
    assert report["identity_switches"] == [1, 1] and report["total_switches"] == 2
    boxes, gt = _walk(10, swap_at=4, back_at=7)  # swapped and back again: two changes each
    assert count_crossing(boxes, tracking, gt)["identity_switches"] == [2, 2]
    # target 1 lands on target 0's object while target 0 stays on it: matched one to one, target 0 keeps its
    # object and target 1 matches none (no switch), but the two share one object on those frames
    boxes, gt = _walk(10)
    boxes[5:, 1] = gt[5:, 0]
    report = count_crossing(boxes, tracking, gt)
    assert report["identity_switches"] == [0, 0] and report["shared_frames"] == 5
    assert report["shared_frames_both_tracking"] == 5 and report["shared_at_end"]
    assert report["auc"][1] == pytest.approx(report["auc"][0] / 2), "on its object half the frames"
    # ... and when target 0 then drifts off, target 1 has taken its object: one switch
    boxes[7:, 0] = (400, 300, 20, 20)
    assert count_crossing(boxes, tracking, gt)["identity_switches"] == [0, 1]


def test_identity_f1_counts_the_frames_each_target_is_on_its_own_object():
    tracking = [["tracking", "tracking"]] * 10
    boxes, gt = _walk(10)
    assert count_crossing(boxes, tracking, gt)["idf1"] == 1.0
    boxes, gt = _walk(10, swap_at=4)  # right on 4 frames each, wrong on 6: IDTP 8, IDFP 12, IDFN 12
    report = count_crossing(boxes, tracking, gt)
    assert (report["idtp"], report["idfp"], report["idfn"]) == (8, 12, 12)
    assert report["idf1"] == pytest.approx(16 / 40)
    boxes, gt = _walk(10, swap_at=4, back_at=7)  # put back: two more switches, but right on 3 more frames each
    back = count_crossing(boxes, tracking, gt)
    assert back["total_switches"] > report["total_switches"] and back["idf1"] == pytest.approx(28 / 40)
    states = [["tracking", "tracking"]] * 4 + [["lost", "lost"]] * 6  # lost claims nothing: misses, no false ones
    lost = count_crossing(boxes, states, gt)
    assert (lost["idtp"], lost["idfp"], lost["idfn"]) == (8, 0, 12)


def test_a_lost_target_claims_nothing():
    boxes, gt = _walk(10)
    boxes[5:, 1] = gt[5:, 0]
    states = [["tracking", "tracking"]] * 5 + [["tracking", "lost"]] * 5
    report = count_crossing(boxes, states, gt)
    assert report["identity_switches"] == [0, 0] and report["shared_frames"] == 0
    states = [["tracking", "tracking"]] * 5 + [["tracking", "uncertain"]] * 5  # uncertain still claims
    report = count_crossing(boxes, states, gt)
    assert report["shared_frames"] == 5 and report["shared_frames_both_tracking"] == 0


def test_overlapping_objects_tracked_right_are_not_shared():
    """One object hiding another: right boxes overlap as much as the objects do, and that is not sharing."""
    gt = np.array([[[100, 100, 20, 60], [96, 100, 28, 60]]] * 6, float)  # IoU 0.71
    report = count_crossing(gt.copy(), [["tracking", "tracking"]] * 6, gt)
    assert report["shared_frames"] == 0 and report["total_switches"] == 0
    without_gt = count_crossing(gt.copy(), [["tracking", "tracking"]] * 6)  # the demo case: boxes alone
    assert without_gt["shared_frames"] == 6 and "auc" not in without_gt


def test_demo_boxes_are_the_demos():
    tree = ast.parse((Path(__file__).resolve().parents[1] / "demos" / "multi_target.py").read_text())
    found = [ast.literal_eval(node.value) for node in ast.walk(tree) if isinstance(node, ast.Assign)
             and any(getattr(t, "id", "") == "DEFAULT_BOXES" for t in node.targets)]
    assert [tuple(float(v) for v in text.split(",")) for text in found[0]] == [tuple(map(float, b)) for b in DEMO_BOXES]


# -- the command ----------------------------------------------------------------------------------------------


def test_command_errors_are_one_line(capfd, tmp_path):
    from test_cli import assert_one_line_error

    from tracker.cli import main

    assert main(["crossing", "--cases", "pedestrians,nope", "--no-progress"]) == 2
    assert_one_line_error(capfd.readouterr().err, "--cases: unknown clip 'nope'", "pedestrians")
    assert main(["crossing", "--data", str(tmp_path / "none"), "--cases", "demo", "--no-progress"]) == 2
    assert_one_line_error(capfd.readouterr().err, "vtest.avi", "pass --data DIR")
    assert main(["crossing", "--json", str(tmp_path), "--no-progress"]) == 2
    assert_one_line_error(capfd.readouterr().err, "--json")


@needs_data
def test_command_counts_a_pasted_clip_and_the_demo(capfd, tmp_path):
    """The pedestrians paste and the multi-target demo's case: the printed table and the JSON agree, and on the
    demo's two pedestrians the targets never share one and end apart (today's main shared on 122 of 149 frames)."""
    from tracker.cli import main

    out = tmp_path / "crossing.json"
    assert main(["crossing", "--cases", "pedestrians,demo", "--json", str(out), "--no-progress"]) == 0
    report = json.loads(out.read_text())
    assert list(report) == ["pedestrians", "demo", "total"]
    assert report["pedestrians"]["frames"] == 79 and len(report["pedestrians"]["auc"]) == 2
    assert min(report["pedestrians"]["auc"]) > 0.5 and report["pedestrians"]["total_switches"] == 0
    assert report["demo"]["frames"] == 149 and report["demo"]["shared_frames"] == 0
    assert not report["demo"]["shared_at_end"]
    text = capfd.readouterr().out
    assert "pedestrians" in text and "demo" in text and "(no GT)" in text
    assert text.strip().splitlines()[-1].startswith(f"total: {report['total']['identity_switches']} identity switches")
