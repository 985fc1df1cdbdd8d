"""Smoke test on real video: ../shared/data/videos/bag.avi with its per-frame ground truth (196 frames, 480x360).

bag is also in the training data (vot2015__bag), so this guards against regressions; it is not a benchmark.
"""
import time

import cv2
import numpy as np
import pytest

from conftest import VIDEOS, iou
from tracker import SiamTracker

BAG = VIDEOS / "bag.avi"
BAG_GT = VIDEOS / "bag_groundtruth.txt"

# The first shipped model, the untrained trunk with the initial head, measured mean IoU 0.696 (IoU >= 0.5 on 76% of
# frames); the trained shipped pair (191 px, int8) measures 0.730. A shipped model must not fall below this floor.
MEAN_IOU_FLOOR = 0.55

pytestmark = pytest.mark.skipif(
    not (BAG.is_file() and BAG_GT.is_file()),
    reason=f"shared data not found: {BAG} (the data pack is expected at ../shared/data beside the repository)",
)


def test_bag_clip(report):
    gt = np.loadtxt(BAG_GT, delimiter=",", ndmin=2)
    capture = cv2.VideoCapture(str(BAG))
    ok, frame = capture.read()
    assert ok, f"cannot decode {BAG}"
    tracker = SiamTracker.from_pretrained()
    tracker.init(frame, tuple(gt[0]))
    boxes, lost, seconds = [tuple(gt[0])], [], []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        start = time.perf_counter()
        result = tracker.update(frame)
        seconds.append(time.perf_counter() - start)
        boxes.append(result.box)
        lost.append(result.lost)
    capture.release()
    assert len(boxes) == len(gt) == 196
    overlaps = iou(boxes, gt)
    line = (f"bag.avi ({len(boxes)} frames, {type(tracker.engine).__name__}): mean IoU {overlaps.mean():.3f} "
            f"(floor {MEAN_IOU_FLOOR}), IoU>=0.5 on {100 * np.mean(overlaps >= 0.5):.0f}% of frames, "
            f"lost on {100 * np.mean(lost):.0f}%, median {1000 * np.median(seconds):.1f} ms/frame")
    print(line)
    report(line)
    assert overlaps.mean() >= MEAN_IOU_FLOOR, line
