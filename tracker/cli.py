"""`siamtrack` command line: track (here), eval and bench (tracker.evaluation), and the training/export tools."""
from __future__ import annotations

import argparse
import re
import signal
import sys
import time
from pathlib import Path

from . import __version__
from .errors import UserError
from .result import parse_box
from .signals import SignalGuard, Signalled


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


def _check_outputs(args) -> tuple[Path | None, Path | None]:
    """--boxes and --output checked before any frame is read: writable, not a folder, not a device, not an input."""
    from .outputs import check_output_path, video_fourcc

    inputs = [args.source, args.weights]
    boxes = check_output_path(args.boxes, "--boxes", inputs) if args.boxes is not None else None
    video = None
    if args.output is not None:
        video_fourcc(args.output)
        video = check_output_path(args.output, "--output", inputs + [args.boxes])
    return boxes, video


def _rate(frames: int, seconds: float) -> str:
    return f"{frames / seconds:.1f} fps" if frames and seconds > 0 else "n/a"


def cmd_track(args: argparse.Namespace) -> int:
    with SignalGuard() as guard:  # from the start: a SIGTERM while the model loads ends as cleanly as one mid-run
        return _track(args, guard)


def _track(args: argparse.Namespace, guard: SignalGuard) -> int:
    from tqdm import tqdm

    from .outputs import AnnotatedVideoWriter, BoxCsvWriter
    from .tracking import SiamTracker
    from .video import FrameSource, has_display

    if args.max_frames is not None and args.max_frames < 1:
        raise UserError(f"--max-frames must be >= 1, got {args.max_frames}")
    if args.box is None and not args.select:
        raise UserError("give the first box with --box x,y,w,h (or --select to draw it)")
    box = parse_box(args.box) if args.box is not None else None
    if args.show and not has_display():
        raise UserError("--show needs a display; drop --show (use --output out.mp4 to see the result later)")
    boxes_path, video_path = _check_outputs(args)

    csv_out = video_out = None
    source = FrameSource(args.source, allow_truncated=args.allow_truncated, start=args.start_frame)
    total = source.frames_left if args.max_frames is None else min(source.frames_left or args.max_frames, args.max_frames)
    progress = tqdm(total=total, unit="frame", desc="tracking", dynamic_ncols=True, disable=args.quiet)
    try:
        tracker = SiamTracker.from_pretrained(args.weights, device=args.device, engine=args.engine)
        frames = iter(source)
        first = next(frames, None)
        if first is None:
            raise UserError(f"{args.source} has no frames")
        if box is None:
            box = select_box(first)
        tracker.init(first, box)  # validates the box against the frame
        csv_out = BoxCsvWriter(boxes_path) if boxes_path else None
        video_out = AnnotatedVideoWriter(video_path, source.fps, (first.shape[1], first.shape[0])) if video_path else None
    except BaseException:  # nothing is tracked yet (bad input, Ctrl-C while the model loads): leave no file behind
        progress.close()
        source.close()
        for out in (csv_out, video_out):
            if out is not None:
                out.discard()
        raise

    frame_index, how, status, error = 0, "tracked", 0, None
    track_seconds = 0.0
    loop_started = time.perf_counter()
    try:
        result_box, score, lost = box, 1.0, False
        frame = first
        while True:
            with guard.deferred():  # the frame's row and video frame together, or neither
                if video_out:
                    video_out.ensure_room()  # before the row, so the CSV and the video stop on the same frame
                if csv_out:
                    csv_out.write(args.start_frame + frame_index, result_box, score, lost)
                if video_out:
                    video_out.write(frame, result_box, score, lost)
                frame_index += 1
            if args.show:
                import cv2

                from .video import draw_box

                cv2.imshow("siamtrack (q to quit)", draw_box(frame, result_box, score, lost))
                if cv2.waitKey(1) & 0xFF == ord("q"):
                    break
            progress.update(1)
            if args.max_frames is not None and frame_index >= args.max_frames:
                break
            frame = next(frames, None)
            if frame is None:
                break
            start = time.perf_counter()
            result = tracker.update(frame)
            track_seconds += time.perf_counter() - start
            result_box, score, lost = result.box, result.score, result.lost
            progress.set_postfix(score=f"{score:.2f}", track_fps=f"{frame_index / max(track_seconds, 1e-9):.1f}")
    except KeyboardInterrupt:
        how, status = "interrupted after", 130
    except Signalled as stop:
        how, status = f"stopped by {signal.Signals(stop.signum).name} after", 128 + stop.signum
    except UserError as exc:
        how, status, error = "stopped after", 2, exc
    finally:
        with guard.deferred(then_raise=False):
            progress.close()
            source.close()
            for out in (video_out, csv_out):
                if out is None:
                    continue
                try:
                    out.close()
                except UserError as exc:
                    error = error or exc
                    status = status or 2
    if status == 0 and guard.pending is not None:  # a signal while the files were being finished: they are
        status = 130 if guard.pending == signal.SIGINT else 128 + guard.pending
    loop_seconds = time.perf_counter() - loop_started
    saved = [f"{p} ({n} {unit})" for p, n, unit in ((boxes_path, csv_out and csv_out.rows, "rows"),
                                                      (video_path, video_out and video_out.frames, "frames"))
             if p is not None and n]
    updates = max(frame_index - 1, 0)
    timing = (f"tracker {1000 * track_seconds / updates:.1f} ms/frame ({_rate(updates, track_seconds)}), "
              f"end to end {_rate(frame_index, loop_seconds)}" if updates else "no update to time")
    print(f"{how} {frame_index} frame{'' if frame_index == 1 else 's'}; {timing}; "
          f"saved {', '.join(saved) or 'nothing (use --boxes/--output)'}", file=sys.stderr)
    if source.truncated and error is None:
        print(f"warning: {source.truncated} (accepted: --allow-truncated)", file=sys.stderr)
    if error is not None:
        raise error
    return status


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
    track.add_argument("--start-frame", type=int, default=0, metavar="N",
                       help="start at frame N (0-based; --box is then a box in frame N, and the CSV counts frames "
                            "from N)")
    track.add_argument("--allow-truncated", action="store_true",
                       help="accept a video that ends before the frame count in its header (otherwise: exit 2)")
    track.add_argument("--quiet", action="store_true", help="no progress bar")
    track.set_defaults(func=cmd_track)

    for module in ("tracker.batch", "tracker.evaluation.cli", "tracker.training.cli", "tracker.export.cli"):
        try:
            __import__(module, fromlist=["add_subcommands"]).add_subcommands(sub)
        except ModuleNotFoundError as exc:
            # Only a missing optional part of siamtrack is skipped; a missing dependency inside it is a real error.
            if not (exc.name and module.startswith(exc.name)):
                raise
    return parser


# Options whose value may start with '-' (a box left of or above the frame): argparse would take "-10,-10,50,50"
# for an unknown option, so such a value is joined to its option as --box=-10,-10,50,50.
_NEGATIVE_VALUE_OPTIONS = ("--box",)
_LOOKS_NEGATIVE = re.compile(r"^-(\d|\.\d)")


def _join_negative_values(argv: list[str]) -> list[str]:
    joined, i = [], 0
    while i < len(argv):
        if argv[i] in _NEGATIVE_VALUE_OPTIONS and i + 1 < len(argv) and _LOOKS_NEGATIVE.match(argv[i + 1]):
            joined.append(f"{argv[i]}={argv[i + 1]}")
            i += 2
        else:
            joined.append(argv[i])
            i += 1
    return joined


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(_join_negative_values(sys.argv[1:] if argv is None else list(argv)))
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"siamtrack: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # before any work was done, or in a command without outputs to finish
        print("siamtrack: interrupted", file=sys.stderr)
        return 130
    except Signalled as stop:
        print(f"siamtrack: stopped by {signal.Signals(stop.signum).name}", file=sys.stderr)
        return 128 + stop.signum


if __name__ == "__main__":
    sys.exit(main())
