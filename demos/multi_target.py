#!/usr/bin/env python3
"""Several targets in one process: one SiamTracker per target. They can share one network (engine) while each
keeps its own state, so the model is loaded once however many objects are followed.

    python demos/multi_target.py                       # two pedestrians in ../shared/data/videos/vtest.avi
    python demos/multi_target.py clip.mp4 --box 10,20,30,40 --box 200,50,40,80 --output both.mp4
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2

from tracker import SiamTracker

REPO = Path(__file__).resolve().parents[1]
DEFAULT_VIDEO = REPO.parent / "shared" / "data" / "videos" / "vtest.avi"
DEFAULT_BOXES = ["158,136,20,57", "402,150,27,51"]  # two pedestrians in the first frame of vtest.avi
COLORS = [(0, 255, 0), (255, 128, 0), (0, 200, 255), (255, 0, 255)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("video", nargs="?", default=str(DEFAULT_VIDEO), help="video file (default: vtest.avi)")
    parser.add_argument("--box", action="append", help="x,y,w,h of one target in the first frame (repeatable)")
    parser.add_argument("--output", help="write the annotated video here (.mp4 or .avi)")
    parser.add_argument("--max-frames", type=int, default=150, help="stop after this many frames (default 150)")
    args = parser.parse_args(argv)
    boxes = [tuple(float(v) for v in b.split(",")) for b in (args.box or DEFAULT_BOXES)]

    capture = cv2.VideoCapture(args.video)
    ok, frame = capture.read()
    if not ok:
        print(f"cannot read a frame from {args.video}", file=sys.stderr)
        return 2

    first = SiamTracker.from_pretrained()
    trackers = [first] + [SiamTracker(first.engine, first.config) for _ in boxes[1:]]  # shared network
    for tracker, box in zip(trackers, boxes):
        tracker.init(frame, box)

    writer = None
    if args.output:
        fourcc = cv2.VideoWriter_fourcc(*("MJPG" if args.output.endswith(".avi") else "mp4v"))
        writer = cv2.VideoWriter(args.output, fourcc, capture.get(cv2.CAP_PROP_FPS) or 25.0,
                                 (frame.shape[1], frame.shape[0]))

    index = 1
    while index < args.max_frames:
        ok, frame = capture.read()
        if not ok:
            break
        results = [tracker.update(frame) for tracker in trackers]
        print(f"{index:5d}  " + "  ".join(
            f"#{k}: ({r.box[0]:6.1f},{r.box[1]:6.1f},{r.box[2]:5.1f},{r.box[3]:5.1f}) {r.score:.2f}{' LOST' if r.lost else ''}"
            for k, r in enumerate(results)))
        if writer is not None:
            for k, r in enumerate(results):
                x, y, w, h = (int(round(v)) for v in r.box)
                cv2.rectangle(frame, (x, y), (x + w, y + h), (0, 0, 255) if r.lost else COLORS[k % len(COLORS)], 2)
            writer.write(frame)
        index += 1
    capture.release()
    if writer is not None:
        writer.release()
    return 0


if __name__ == "__main__":
    sys.exit(main())
