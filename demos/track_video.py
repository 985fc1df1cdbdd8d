#!/usr/bin/env python3
"""Track one object through a video with the Python API: init on the first frame, update on every other one.

    python demos/track_video.py                                   # bag.avi from ../shared/data, first GT box
    python demos/track_video.py clip.mp4 --box 120,80,60,40 --output tracked.mp4 --max-frames 100

Prints one line per frame (box, score, lost) and, with --output, writes the annotated video.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2

from tracker import SiamTracker, UserError

REPO = Path(__file__).resolve().parents[1]
DEFAULT_VIDEO = REPO.parent / "shared" / "data" / "videos" / "bag.avi"
DEFAULT_BOX = "312.64,146.89,105.13,95.41"  # first line of bag_groundtruth.txt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("video", nargs="?", default=str(DEFAULT_VIDEO), help="video file (default: bag.avi)")
    parser.add_argument("--box", default=DEFAULT_BOX, help="first box x,y,w,h in 0-based pixels")
    parser.add_argument("--output", help="write the annotated video here (.mp4 or .avi)")
    parser.add_argument("--max-frames", type=int, help="stop after this many frames")
    args = parser.parse_args(argv)

    capture = cv2.VideoCapture(args.video)
    ok, frame = capture.read()
    if not ok:
        print(f"cannot read a frame from {args.video}", file=sys.stderr)
        return 2
    box = tuple(float(v) for v in args.box.split(","))

    # The shipped default model; keyword arguments would override tracking hyperparameters,
    # e.g. SiamTracker.from_pretrained(num_scales=5, lost_threshold=0.2).
    tracker = SiamTracker.from_pretrained()
    try:
        tracker.init(frame, box)  # frames are BGR uint8 as OpenCV reads them (grayscale and BGRA work too)
    except UserError as exc:  # an empty box, a box outside the frame...
        print(f"error: {exc}", file=sys.stderr)
        return 2

    writer = None
    if args.output:
        fourcc = cv2.VideoWriter_fourcc(*("MJPG" if args.output.endswith(".avi") else "mp4v"))
        fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
        writer = cv2.VideoWriter(args.output, fourcc, fps, (frame.shape[1], frame.shape[0]))

    index, seconds = 0, 0.0
    result_box, score, lost = box, 1.0, False
    while True:
        print(f"{index:5d}  box=({', '.join(f'{v:7.1f}' for v in result_box)})  score={score:.2f}"
              + ("  LOST" if lost else ""))
        if writer is not None:
            x, y, w, h = (int(round(v)) for v in result_box)
            cv2.rectangle(frame, (x, y), (x + w, y + h), (0, 0, 255) if lost else (0, 255, 0), 2)
            writer.write(frame)
        index += 1
        if args.max_frames is not None and index >= args.max_frames:
            break
        ok, frame = capture.read()
        if not ok:
            break
        start = time.perf_counter()
        result = tracker.update(frame)  # -> TrackResult(box, score, lost)
        seconds += time.perf_counter() - start
        result_box, score, lost = result.box, result.score, result.lost

    capture.release()
    if writer is not None:
        writer.release()
    updates = max(index - 1, 1)
    print(f"{index} frames, {1000 * seconds / updates:.1f} ms per update", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
