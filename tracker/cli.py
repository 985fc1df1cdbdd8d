"""`siamtrack` command line: track (here), eval and bench (tracker.evaluation), and the training/export tools."""
from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

from . import __version__
from .errors import UserError
from .result import parse_box


def select_box(frame) -> tuple[float, float, float, float]:
    import cv2

    from .video import has_display

    if not has_display():
        raise UserError("--select needs a display; on a headless machine pass --box x,y,w,h instead")
    x, y, w, h = cv2.selectROI("siamtrack: draw the target, then ENTER", frame, showCrosshair=True)
    cv2.destroyAllWindows()
    if w == 0 or h == 0:
        raise UserError("no box was drawn (selection cancelled); draw a box or pass --box x,y,w,h")
    return float(x), float(y), float(w), float(h)


def cmd_track(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .tracking import SiamTracker
    from .video import AnnotatedWriter, FrameSource, has_display

    if args.max_frames is not None and args.max_frames < 1:
        raise UserError(f"--max-frames must be >= 1, got {args.max_frames}")
    if args.box is None and not args.select:
        raise UserError("give the first box with --box x,y,w,h (or --select to draw it)")
    box = parse_box(args.box) if args.box is not None else None
    if args.show and not has_display():
        raise UserError("--show needs a display; drop --show (use --output out.mp4 to see the result later)")
    for out_path in (args.boxes, args.output):
        if out_path and not Path(out_path).resolve().parent.is_dir():
            raise UserError(f"cannot write {out_path}: folder {Path(out_path).parent} does not exist")

    source = FrameSource(args.source)
    tracker = SiamTracker.from_pretrained(args.weights, device=args.device, engine=args.engine)
    frames = iter(source)
    first = next(frames, None)
    if first is None:
        raise UserError(f"{args.source} has no frames")
    if box is None:
        box = select_box(first)
    tracker.init(first, box)  # validates the box against the frame

    writer = AnnotatedWriter(args.output, source.fps, (first.shape[1], first.shape[0])) if args.output else None
    csv_file = open(args.boxes, "w", newline="") if args.boxes else None
    rows = csv.writer(csv_file) if csv_file else None
    total = source.frame_count if args.max_frames is None else min(source.frame_count or args.max_frames, args.max_frames)
    progress = tqdm(total=total, unit="frame", desc="tracking", dynamic_ncols=True, disable=args.quiet)
    frame_index, interrupted = 0, False
    track_seconds = 0.0
    loop_started = time.perf_counter()
    try:
        result_box, score, lost = box, 1.0, False
        frame = first
        while True:
            if rows:
                rows.writerow([frame_index, *(f"{v:.2f}" for v in result_box), f"{score:.4f}", int(lost)])
                csv_file.flush()  # a crash or Ctrl-C later keeps every box written so far
            if writer:
                writer.write(frame, result_box, score, lost)
            if args.show:
                import cv2

                from .video import draw_box

                cv2.imshow("siamtrack (q to quit)", draw_box(frame, result_box, score, lost))
                if cv2.waitKey(1) & 0xFF == ord("q"):
                    break
            progress.update(1)
            frame_index += 1
            if args.max_frames is not None and frame_index >= args.max_frames:
                break
            frame = next(frames, None)
            if frame is None:
                break
            start = time.perf_counter()
            result = tracker.update(frame)
            track_seconds += time.perf_counter() - start
            result_box, score, lost = result.box, result.score, result.lost
            progress.set_postfix(score=f"{score:.2f}", track_fps=f"{(frame_index) / max(track_seconds, 1e-9):.1f}")
    except KeyboardInterrupt:
        interrupted = True
    finally:
        progress.close()
        source.close()
        if writer:
            writer.close()
        if csv_file:
            csv_file.close()
    saved = ", ".join(p for p in (args.boxes, args.output) if p) or "nothing (use --boxes/--output)"
    updates = max(frame_index - 1, 1)
    loop_seconds = time.perf_counter() - loop_started
    print(
        f"{'interrupted after' if interrupted else 'tracked'} {frame_index} frames; "
        f"tracker {1000 * track_seconds / updates:.1f} ms/frame ({updates / max(track_seconds, 1e-9):.1f} fps), "
        f"end to end {frame_index / max(loop_seconds, 1e-9):.1f} fps; saved {saved}",
        file=sys.stderr,
    )
    return 130 if interrupted else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="siamtrack", description="Real-time siamese single-object tracker.")
    parser.add_argument("--version", action="version", version=f"siamtrack {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    track = sub.add_parser("track", help="track one object through a video, image folder or camera",
                           description="Track one object. Boxes are x,y,w,h in 0-based pixels of the first frame.")
    track.add_argument("source", metavar="SOURCE", help="video file, folder of images, or camera index (e.g. 0)")
    track.add_argument("--box", help="first box x,y,w,h (0-based pixels)")
    track.add_argument("--select", action="store_true", help="draw the first box with the mouse (needs a display)")
    track.add_argument("--output", metavar="VIDEO", help="write the annotated video (.mp4, .avi)")
    track.add_argument("--boxes", metavar="CSV", help="write frame,x,y,w,h,score,lost per frame")
    track.add_argument("--show", action="store_true", help="show the tracking live (needs a display)")
    track.add_argument("--weights", help="checkpoint to use instead of the shipped default model")
    track.add_argument("--engine", choices=("auto", "onnx", "torch"), default="auto",
                       help="network runner: onnx (onnxruntime, no PyTorch; --weights is then a folder with "
                       "template.onnx + search.onnx), torch (--weights a .pt file), or auto (onnx when onnxruntime "
                       "is installed and --weights is not a .pt file)")
    track.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda")
    track.add_argument("--max-frames", type=int, help="stop after this many frames")
    track.add_argument("--quiet", action="store_true", help="no progress bar")
    track.set_defaults(func=cmd_track)

    for module in ("tracker.evaluation.cli", "tracker.training.cli", "tracker.export.cli"):
        try:
            __import__(module, fromlist=["add_subcommands"]).add_subcommands(sub)
        except ModuleNotFoundError as exc:
            # Only a missing optional part of siamtrack is skipped; a missing dependency inside it is a real error.
            if not (exc.name and module.startswith(exc.name)):
                raise
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"siamtrack: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
