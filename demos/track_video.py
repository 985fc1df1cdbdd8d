#!/usr/bin/env python3
"""Track one object through a video file into an annotated video and a CSV of boxes, with the Python API.

    python demos/track_video.py                                   # bag.avi from ../shared/data, its first GT box
    python demos/track_video.py clip.mp4 --box 120,80,60,40 --output tracked.mp4 --boxes tracked.csv

Prints one line per frame (box, score, lost). The outputs are written as `siamtrack track` writes them: the CSV
with a header row, each row on disk as it is written, and both files moved into place only when finished.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from tracker import SiamTracker, UserError
from tracker.outputs import AnnotatedVideoWriter, BoxCsvWriter, check_output_path, video_fourcc
from tracker.result import parse_box
from tracker.sources import FrameSource

REPO = Path(__file__).resolve().parents[1]
DEFAULT_VIDEO = REPO.parent / "shared" / "data" / "videos" / "bag.avi"
DEFAULT_BOX = "312.64,146.89,105.13,95.41"  # first line of bag_groundtruth.txt


def track(args: argparse.Namespace) -> None:
    box = parse_box(args.box)  # UserError with an example for "1,2,3" or "a,b,c,d"
    boxes_path = check_output_path(args.boxes, "--boxes", [args.video]) if args.boxes else None
    if args.output:
        video_fourcc(args.output)  # a suffix OpenCV can write, checked before any work
    video_path = check_output_path(args.output, "--output", [args.video, args.boxes]) if args.output else None
    source = FrameSource(args.video)  # a file, an image folder or a camera; a clear error for anything else
    frames = (frame.image for frame in source.frames())  # BGR arrays, from the first frame on
    frame = next(frames, None)
    if frame is None:
        raise UserError(f"{args.video} has no frames")

    # The shipped default model; keyword arguments would override tracking hyperparameters,
    # e.g. SiamTracker.from_pretrained(num_scales=5, lost_threshold=0.2).
    tracker = SiamTracker.from_pretrained()
    tracker.init(frame, box)  # frames are BGR uint8 as OpenCV reads them; a box outside the frame is a UserError
    csv_out = BoxCsvWriter(boxes_path) if boxes_path else None
    try:
        video_out = AnnotatedVideoWriter(video_path, source.fps, (frame.shape[1], frame.shape[0])) if video_path else None
    except UserError:
        if csv_out:
            csv_out.discard()  # nothing tracked yet: leave no file behind
        raise

    index, seconds = 0, 0.0
    result_box, score, lost = box, 1.0, False
    try:
        while True:
            print(f"{index:5d}  box=({', '.join(f'{v:7.1f}' for v in result_box)})  score={score:.2f}"
                  + ("  LOST" if lost else ""))
            if csv_out:
                csv_out.write(index, result_box, score, lost)
            if video_out:
                video_out.write(frame, result_box, score, lost)
            index += 1
            if args.max_frames is not None and index >= args.max_frames:
                break
            frame = next(frames, None)
            if frame is None:
                break
            start = time.perf_counter()
            result = tracker.update(frame)  # -> TrackResult(box, score, lost)
            seconds += time.perf_counter() - start
            result_box, score, lost = result.box, result.score, result.lost
    finally:  # also on Ctrl-C or an error mid-run: what was written is kept, and the video stays playable
        source.close()
        try:
            if video_out is not None:
                video_out.close()
        finally:  # the CSV is finished even when the video could not be
            if csv_out is not None:
                csv_out.close()
    print(f"{index} frames, {1000 * seconds / max(index - 1, 1):.1f} ms per update", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("video", nargs="?", default=str(DEFAULT_VIDEO), help="video file (default: bag.avi)")
    parser.add_argument("--box", default=DEFAULT_BOX, help="first box x,y,w,h in 0-based pixels")
    parser.add_argument("--output", help="write the annotated video here (.mp4, .avi or .mov)")
    parser.add_argument("--boxes", help="write frame,x,y,w,h,score,lost,state rows here")
    parser.add_argument("--max-frames", type=int, help="stop after this many frames")
    args = parser.parse_args(argv)
    if args.max_frames is not None and args.max_frames < 1:
        parser.error(f"--max-frames must be >= 1, got {args.max_frames}")
    try:
        track(args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; the frames tracked so far are saved", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
