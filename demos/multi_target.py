#!/usr/bin/env python3
"""Two (or more) targets at once: one SiamTracker per target, all sharing one network, so the model is loaded
once however many objects are followed; each target keeps its own state and its own colour.

    python demos/multi_target.py                       # two pedestrians in ../shared/data/videos/vtest.avi
    python demos/multi_target.py clip.mp4 --box 10,20,30,40 --box 200,50,40,80 --output both.mp4
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tracker import SiamTracker, UserError
from tracker.outputs import AnnotatedVideoWriter, check_output_path, video_fourcc
from tracker.result import parse_box
from tracker.video import FrameSource, draw_box

REPO = Path(__file__).resolve().parents[1]
DEFAULT_VIDEO = REPO.parent / "shared" / "data" / "videos" / "vtest.avi"
DEFAULT_BOXES = ["158,136,20,57", "402,150,27,51"]  # two pedestrians in the first frame of vtest.avi
COLOURS = [(0, 255, 0), (255, 128, 0), (0, 200, 255), (255, 0, 255)]  # BGR; a lost target is drawn red


def track(args: argparse.Namespace) -> None:
    boxes = [parse_box(text) for text in (args.box or DEFAULT_BOXES)]
    if args.output:
        video_fourcc(args.output)  # a suffix OpenCV can write, checked before any work
    video_path = check_output_path(args.output, "--output", [args.video]) if args.output else None
    source = FrameSource(args.video)
    frames = iter(source)
    frame = next(frames, None)
    if frame is None:
        raise UserError(f"{args.video} has no frames")

    first = SiamTracker.from_pretrained()
    trackers = [first] + [SiamTracker(first.engine, first.config) for _ in boxes[1:]]  # one network for all
    for number, (tracker, box) in enumerate(zip(trackers, boxes)):
        try:
            tracker.init(frame, box)
        except UserError as exc:
            raise UserError(f"target #{number} ({args.box[number] if args.box else DEFAULT_BOXES[number]}): {exc}") from None
    writer = AnnotatedVideoWriter(video_path, source.fps, (frame.shape[1], frame.shape[0])) if video_path else None

    def draw(frame, boxes_scores_lost):
        for k, (box, score, lost) in enumerate(boxes_scores_lost):
            frame = draw_box(frame, box, score, lost, COLOURS[k % len(COLOURS)], f"#{k}")
        return frame

    try:
        if writer is not None:
            writer.write_annotated(draw(frame, [(box, 1.0, False) for box in boxes]))
        for index in range(1, args.max_frames):
            frame = next(frames, None)
            if frame is None:
                break
            results = [tracker.update(frame) for tracker in trackers]
            print(f"{index:5d}  " + "  ".join(
                f"#{k}: ({r.box[0]:6.1f},{r.box[1]:6.1f},{r.box[2]:5.1f},{r.box[3]:5.1f}) {r.score:.2f}"
                f"{' LOST' if r.lost else ''}" for k, r in enumerate(results)))
            if writer is not None:
                writer.write_annotated(draw(frame, [(r.box, r.score, r.lost) for r in results]))
    finally:
        source.close()
        if writer is not None:
            writer.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("video", nargs="?", default=str(DEFAULT_VIDEO), help="video file (default: vtest.avi)")
    parser.add_argument("--box", action="append", help="x,y,w,h of one target in the first frame (repeatable)")
    parser.add_argument("--output", help="write the annotated video here (.mp4, .avi or .mov)")
    parser.add_argument("--max-frames", type=int, default=150, help="stop after this many frames (default 150)")
    args = parser.parse_args(argv)
    if args.max_frames < 1:
        parser.error(f"--max-frames must be >= 1, got {args.max_frames}")
    try:
        track(args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; the video so far is saved", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
