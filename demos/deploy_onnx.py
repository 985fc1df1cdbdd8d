#!/usr/bin/env python3
"""Deployment without PyTorch: the exported ONNX pair (template.onnx + search.onnx) on onnxruntime, nothing else.

    pip install siamtrack                                 # the default install: onnxruntime, OpenCV, no torch
    python demos/deploy_onnx.py                           # the shipped pair on ../shared/data/videos/vtest.avi
    python demos/deploy_onnx.py clip.mp4 --box 10,20,30,40 --weights exported/ --threads 2

`siamtrack export --out DIR` writes such a pair from any checkpoint; the tracking hyperparameters travel in the
ONNX metadata, so the folder is all a deployment needs. The demo ends by checking that torch was never imported.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from tracker import SiamTracker, UserError
from tracker.result import parse_box
from tracker.sources import FrameSource

REPO = Path(__file__).resolve().parents[1]
DEFAULT_VIDEO = REPO.parent / "shared" / "data" / "videos" / "vtest.avi"
DEFAULT_BOX = "399,150,30,52"  # a pedestrian in the first frame of vtest.avi


def run(args: argparse.Namespace) -> None:
    box = parse_box(args.box)
    # engine="onnx" never imports torch; weights=None is the shipped pair, else a folder from `siamtrack export`.
    tracker = SiamTracker.from_pretrained(args.weights, engine="onnx", threads=args.threads)
    source = FrameSource(args.video)
    frames = (frame.image for frame in source.frames())  # BGR arrays, from the first frame on
    frame = next(frames, None)
    if frame is None:
        raise UserError(f"{args.video} has no frames")
    tracker.init(frame, box)
    seconds, count = 0.0, 0
    try:
        for frame in frames:
            start = time.perf_counter()
            result = tracker.update(frame)
            seconds += time.perf_counter() - start
            count += 1
            print(f"{count:5d} box=({', '.join(f'{v:.1f}' for v in result.box)}) score={result.score:.2f}"
                  + (" LOST" if result.lost else ""))
            if args.max_frames is not None and count >= args.max_frames:
                break
    finally:
        source.close()
    torch_loaded = sys.modules.get("torch") is not None
    print(f"{count} updates, {1000 * seconds / max(count, 1):.1f} ms each on onnxruntime; "
          f"torch imported: {'yes' if torch_loaded else 'no'}", file=sys.stderr)
    if torch_loaded:
        raise UserError("torch was imported: the ONNX deployment path must not need it")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("video", nargs="?", default=str(DEFAULT_VIDEO), help="video file (default: vtest.avi)")
    parser.add_argument("--box", default=DEFAULT_BOX, help="first box x,y,w,h in 0-based pixels")
    parser.add_argument("--weights", help="folder with template.onnx + search.onnx (default: the shipped pair)")
    parser.add_argument("--threads", type=int, help="onnxruntime threads (default: the physical cores)")
    parser.add_argument("--max-frames", type=int, help="stop after this many updates")
    args = parser.parse_args(argv)
    for flag, value in (("--max-frames", args.max_frames), ("--threads", args.threads)):
        if value is not None and value < 1:
            parser.error(f"{flag} must be >= 1, got {value}")
    try:
        run(args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
