"""Are `siamtrack absence`'s false re-acquisitions the tracker's own looseness? Each one next to what the same
tracker's box does on that frame when nothing was taken away.

    siamtrack absence ../shared/data/val-hard --json absence.json
    siamtrack eval ../shared/data/val-hard --out results/vh --label shipped
    python benchmarks/loose_takebacks.py absence.json results/vh/shipped ../shared/data/val-hard

The absence replaces frames and keeps the clip's numbering, so after the target's return frame k of the absence
run is frame k of the uninterrupted run. Per false re-acquisition: its IoU on the frame it was taken, and the
uninterrupted run's IoU on that frame and its mean over the 10 frames from it. A take of the target under a loose
box (IoU 0.1 to 0.5) where the uninterrupted run is as loose is the tracker's box fit on that object, not a
look-alike taken.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from tracker.evaluation import metrics
from tracker.evaluation.datasets import load_dataset
from tracker.evaluation.runner import read_result

AFTER = 10


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("absence_json", help="siamtrack absence --json's file")
    parser.add_argument("results", help="one tracker's folder of siamtrack eval's results (OUT/LABEL)")
    parser.add_argument("dataset", help="the set both ran on")
    args = parser.parse_args()
    report = json.loads(Path(args.absence_json).read_text())
    _, clips, _ = load_dataset(Path(args.dataset))
    gt = {c.name: c.gt for c in clips}
    results = Path(args.results)
    print("kind       sequence     frame  taken           IoU taken  uninterrupted: IoU there  mean of next 10")
    as_loose = total = 0
    for kind in (k for k in report if k != "config"):
        for event in report[kind]["states"].get("false_reacquisition_events", []):
            name, frame = event["sequence"], event["frame"]
            boxes = read_result(results.parent, results.name, name)[0]
            ious = metrics.rect_iou(boxes, gt[name][:len(boxes)])
            there, later = ious[frame], float(np.mean(ious[frame:frame + AFTER]))
            total += 1
            as_loose += event["taken"] == "loose_box" and there < 0.5
            print(f"{kind:10s} {name:12s} {frame:5d}  {event['taken']:15s} {event['iou']:9.3f}  {there:24.3f}  "
                  f"{later:15.2f}")
    print(f"{as_loose} of {total} false re-acquisitions take the target under a loose box on a frame where the "
          "uninterrupted run's box is under IoU 0.5 too")


if __name__ == "__main__":
    main()
