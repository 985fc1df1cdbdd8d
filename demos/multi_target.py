#!/usr/bin/env python3
"""Two (or more) targets at once with MultiTracker: every frame, all targets' search crops go through the network
in one batch, each scored against its own template; each target keeps its own state and its own colour.

    python demos/multi_target.py                       # two pedestrians in ../shared/data/videos/vtest.avi
    python demos/multi_target.py clip.mp4 --box 10,20,30,40 --box 200,50,40,80 --output both.mp4
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tracker import MultiTracker, TrackResult, UserError
from tracker.drawing import draw_targets
from tracker.outputs import AnnotatedVideoWriter, check_output_path, video_fourcc
from tracker.result import check_box, parse_box
from tracker.sources import FrameSource

REPO = Path(__file__).resolve().parents[1]
DEFAULT_VIDEO = REPO.parent / "shared" / "data" / "videos" / "vtest.avi"
DEFAULT_BOXES = ["158,136,20,57", "402,150,27,51"]  # two pedestrians in the first frame of vtest.avi


def track(args: argparse.Namespace) -> None:
    boxes = [parse_box(text) for text in (args.box or DEFAULT_BOXES)]
    if args.output:
        video_fourcc(args.output)  # a suffix OpenCV can write, checked before any work
    video_path = check_output_path(args.output, "--output", [args.video]) if args.output else None
    source = FrameSource(args.video)
    frames = (frame.image for frame in source.frames())  # BGR arrays, from the first frame on
    frame = next(frames, None)
    if frame is None:
        raise UserError(f"{args.video} has no frames")

    for number, box in enumerate(boxes):  # name the bad box before the model loads
        try:
            check_box(box, frame.shape)
        except UserError as exc:
            raise UserError(f"target #{number} ({args.box[number] if args.box else DEFAULT_BOXES[number]}): {exc}") from None
    tracker = MultiTracker.from_pretrained()
    ids = tracker.init(frame, boxes)  # target number k is tracker id ids[k]
    writer = AnnotatedVideoWriter(video_path, source.fps, (frame.shape[1], frame.shape[0])) if video_path else None

    try:
        if writer is not None:
            writer.write_annotated(draw_targets(frame, {k: TrackResult(b, 1.0, False) for k, b in enumerate(boxes)}))
        for index in range(1, args.max_frames):
            frame = next(frames, None)
            if frame is None:
                break
            results = tracker.update(frame)  # one network run for all targets
            shown = {k: results[i] for k, i in enumerate(ids)}
            print(f"{index:5d}  " + "  ".join(
                f"#{k}: ({r.box[0]:6.1f},{r.box[1]:6.1f},{r.box[2]:5.1f},{r.box[3]:5.1f}) {r.score:.2f}"
                f"{' LOST' if r.lost else ''}" for k, r in shown.items()))
            if writer is not None:
                writer.write_annotated(draw_targets(frame, shown))
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
