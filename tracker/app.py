"""`siamtrack track` and `siamtrack webcam`: one target or several through a file, a folder, a camera or a stream,
with optional live window (keys in viewer.KEYS_HELP), recording and per-frame boxes. Several targets go through
the network together (MultiTracker); they are numbered 0, 1, ... in the order their boxes were given or drawn, and
targets drawn after `r` take the next numbers, so a number names one object in the whole file."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .errors import UserError
from .multi import MultiTracker
from .options import add_model_options, check_model_options, load_tracker
from .outputs import BOX_FORMATS, box_format, check_output_path, video_fourcc
from .progress import progress as make_progress
from .result import BOX_INPUT_FORMATS, parse_box
from .session import Outputs, Session, run_to_end, summary
from .signals import SignalGuard
from .sources import FrameSource, Pacer
from .viewer import KEYS_DESCRIPTION, Viewer, check_display


def add_tracking_options(parser: argparse.ArgumentParser) -> None:
    """The options track and webcam share."""
    parser.add_argument("--box", action="append",
                        help="first box x,y,w,h (0-based pixels; see --box-format); repeat it to track several "
                             "targets at once (numbered 0, 1, ... in the CSV's target column)")
    parser.add_argument("--box-format", choices=list(BOX_INPUT_FORMATS), default="xywh",
                        help="what --box's four numbers are: xywh (x,y,w,h: top-left corner and size; default), "
                             "xyxy (x1,y1,x2,y2: two corners, as detectors give them) or cxcywh (centre and "
                             "size); the box files are x,y,w,h whatever this is")
    parser.add_argument("--output", "--record", dest="output", metavar="VIDEO",
                        help="record the annotated video (.mp4, .avi, .mov); playable after q, Ctrl-C, the end of "
                             "the stream or a camera that stops")
    parser.add_argument("--boxes", metavar="FILE", help="write the box of every tracked frame (see --format)")
    parser.add_argument("--format", choices=list(BOX_FORMATS), default="csv",
                        help="--boxes format: csv (header frame,x,y,w,h,score,lost,state,target; a row per frame "
                             "and target; 0-based), mot (MOTChallenge, 1-based, id = target + 1, lost frames left "
                             "out) or otb (x,y,w,h per frame, 1-based; one target)")
    parser.add_argument("--snapshots", metavar="DIR", default=".", help="folder for the PNGs the s key saves (created "
                        "at the first snapshot if missing; default: the current folder)")
    add_model_options(parser)
    parser.add_argument("--max-frames", type=int, help="stop after this many tracked frames")
    parser.add_argument("--stall-timeout", type=float, default=5.0, metavar="SECONDS",
                        help="live sources: stop (keeping what was written) when no frame arrives for this long "
                             "(inf: never)")
    parser.add_argument("--quiet", action="store_true", help="no progress output")


def add_subcommands(sub) -> None:
    track = sub.add_parser(
        "track", help="track one object (or several) through a video, image folder, camera or stream",
        description="Track one object, or several (--box repeated, or n between boxes with --select): all targets "
                    "go through the network in one batch per frame. Boxes are x,y,w,h in 0-based pixels of the "
                    "first frame. Live sources "
                    "(cameras, streams) are tracked on the newest frame: frames the tracker is too slow for are "
                    "dropped (and counted), never queued.", epilog=KEYS_DESCRIPTION)
    track.add_argument("source", metavar="SOURCE",
                       help="video file, folder of images, camera index (0) or device (/dev/video0), or a stream "
                            "URL (http://, rtsp://)")
    track.add_argument("--select", action="store_true",
                       help="draw the first box with the mouse (needs a display); n keeps a box and starts another "
                            "target, ENTER starts tracking")
    track.add_argument("--show", action="store_true",
                       help="show the tracking in a window (needs a display); files play at their own frame rate")
    track.add_argument("--fast", action="store_true", help="with --show, play files as fast as they track")
    track.add_argument("--start-frame", type=int, default=0, metavar="N",
                       help="start at frame N (0-based; --box is then a box in frame N, and the CSV counts frames "
                            "from N)")
    track.add_argument("--allow-truncated", action="store_true",
                       help="accept a video that ends before the frame count in its header (otherwise: exit 2)")
    add_tracking_options(track)
    track.set_defaults(func=cmd_track)

    webcam = sub.add_parser(
        "webcam", help="track an object in a camera's live picture (draw the box with the mouse)",
        description="Open a camera, draw the target with the mouse (ENTER to confirm), and track it live. "
                    "Equivalent to: siamtrack track CAMERA --show --select.", epilog=KEYS_DESCRIPTION)
    webcam.add_argument("--camera", default="0",
                        help="camera index (default 0), device (/dev/video1) or stream URL")
    add_tracking_options(webcam)
    webcam.set_defaults(func=cmd_webcam)


def cmd_webcam(args: argparse.Namespace) -> int:
    args.source, args.show, args.fast, args.start_frame, args.allow_truncated = args.camera, True, False, 0, False
    args.select = args.box is None
    return cmd_track(args)


def cmd_track(args: argparse.Namespace) -> int:
    with SignalGuard() as guard:  # from the start: a SIGTERM while the model loads ends as cleanly as one mid-run
        return _track(args, guard)


def _check_options(args) -> list | None:
    """The first boxes (None: to be drawn), once the options are known to make sense together."""
    check_model_options(args)
    if args.max_frames is not None and args.max_frames < 1:
        raise UserError(f"--max-frames must be >= 1, got {args.max_frames}")
    if not args.stall_timeout > 0:
        raise UserError(f"--stall-timeout must be > 0 seconds, got {args.stall_timeout:g}")
    if not args.box and not args.select:
        raise UserError("give the first box with --box x,y,w,h (or --select to draw it)")
    boxes = [parse_box(text, box_format=args.box_format) for text in args.box] if args.box else None
    fmt = box_format(args.format)
    if boxes and len(boxes) > 1 and fmt.one_target is not None:
        raise UserError(fmt.one_target_message)
    return boxes


def suffix_warning(path: str, fmt: str) -> str | None:
    """A one-line warning when --boxes names a file whose suffix says another format than --format writes (x.json
    with csv, x.csv with mot), saying what is written and how to get what the name promises; None when they agree."""
    expected = box_format(fmt).suffixes
    suffix = Path(path).suffix.lower()
    if not expected or suffix in expected:
        return None
    fitting = [name for name, known in BOX_FORMATS.items() if suffix in known.suffixes]
    if fitting:
        fix = f"use --format {' or '.join(fitting)} for a {suffix} file, or name it *{expected[0]}"
    else:
        fix = f"no --format writes {suffix or 'a file without a suffix'}: name it *{expected[0]}"
    return f"warning: --boxes {path}: writing {fmt} ({fix})"


def _check_outputs(args) -> Outputs:
    """--boxes and --output checked before any frame is read: writable, not a folder, not a device, not an input."""
    inputs = [args.source, args.weights]
    boxes = check_output_path(args.boxes, "--boxes", inputs) if args.boxes is not None else None
    if boxes is not None and (warning := suffix_warning(args.boxes, args.format)):
        print(warning, file=sys.stderr)
    video = None
    if args.output is not None:
        video_fourcc(args.output)
        video = check_output_path(args.output, "--output", inputs + [args.boxes])
    if args.show and Path(args.snapshots).exists() and not Path(args.snapshots).is_dir():
        # A missing folder is made by the first snapshot (none is made when s is never pressed).
        raise UserError(f"--snapshots {args.snapshots} is a file, not a folder: give a folder (it is created if "
                        "missing)")
    return Outputs(boxes=boxes, format=args.format, video=video)


def _open_source(args) -> FrameSource:
    source = FrameSource(args.source, allow_truncated=args.allow_truncated, start=args.start_frame,
                         stall_timeout=args.stall_timeout)
    if source.is_live and not box_format(args.format).frame_numbers:
        source.close()
        raise UserError(f"--format {args.format} has one row per frame and no frame numbers, and a live source drops "
                        "the frames the tracker has no time for: use --format csv or mot")
    # Read a live source from now on, keeping only the newest frame: the first frame tracked is then one that
    # arrived after the model loaded, not one that waited in the capture's buffer meanwhile.
    source.start_grabbing()
    return source


def _track(args: argparse.Namespace, guard: SignalGuard) -> int:
    boxes = _check_options(args)
    outputs = _check_outputs(args)
    windowed = args.show or args.select
    if windowed:
        check_display("--show" if args.show else "--select")
    source = _open_source(args)
    total = source.frames_left if args.max_frames is None else min(source.frames_left or args.max_frames, args.max_frames)
    session = Session(source, outputs, make_progress(total, "tracking", quiet=args.quiet), guard, args.max_frames)
    first = session.start(
        lambda: load_tracker(MultiTracker, args), boxes, f"{args.source} has no frames",
        viewer=(lambda: Viewer(f"siamtrack - {Path(str(args.source)).name}", args.snapshots)) if windowed else None,
        show=args.show, pacer=Pacer(source.fps) if args.show and not args.fast and not source.is_live else None)
    how, status, error, seconds = run_to_end(session, first)
    print(summary(session, how, seconds), file=sys.stderr)
    if session.ended_live and error is None:
        print(f"{args.source} delivered no more frames (the stream ended or the camera stopped)", file=sys.stderr)
    if source.truncated and error is None:
        print(f"warning: {source.truncated} (accepted: --allow-truncated)", file=sys.stderr)
    if error is not None:
        raise error
    return status
