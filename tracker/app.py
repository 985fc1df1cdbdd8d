"""`siamtrack track` and `siamtrack webcam`: one target or several through a file, a folder, a camera or a stream,
with optional live window (keys in viewer.KEYS_HELP), recording and per-frame boxes. Several targets go through
the network together (MultiTracker); they are numbered 0, 1, ... in the order their boxes were given or drawn, and
targets drawn after `r` take the next numbers, so a number names one object in the whole file."""
from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path

from .errors import UserError
from .options import add_model_options, check_model_options, load_tracker
from .sources import Pacer
from .outputs import BOX_FORMATS, OTB_ONE_TARGET
from .result import TrackResult, check_box, parse_box
from .signals import SignalGuard, Signalled
from .viewer import KEYS_DESCRIPTION



def add_tracking_options(parser: argparse.ArgumentParser) -> None:
    """The options track and webcam share."""
    parser.add_argument("--box", action="append",
                        help="first box x,y,w,h (0-based pixels); repeat it to track several targets at once "
                             "(numbered 0, 1, ... in the CSV's target column)")
    parser.add_argument("--output", "--record", dest="output", metavar="VIDEO",
                        help="record the annotated video (.mp4, .avi, .mov); playable after q, Ctrl-C, the end of "
                             "the stream or a camera that stops")
    parser.add_argument("--boxes", metavar="FILE", help="write the box of every tracked frame (see --format)")
    parser.add_argument("--format", choices=BOX_FORMATS, default="csv",
                        help="--boxes format: csv (header frame,x,y,w,h,score,lost,state,target; a row per frame "
                             "and target; 0-based), mot (MOTChallenge, 1-based, id = target + 1, lost frames left "
                             "out) or otb (x,y,w,h per frame, 1-based; one target)")
    parser.add_argument("--snapshots", metavar="DIR", default=".", help="folder for the PNGs the s key saves")
    add_model_options(parser)
    parser.add_argument("--max-frames", type=int, help="stop after this many tracked frames")
    parser.add_argument("--stall-timeout", type=float, default=5.0, metavar="SECONDS",
                        help="live sources: stop (keeping what was written) when no frame arrives for this long")
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


def _check_outputs(args) -> tuple[Path | None, Path | None]:
    """--boxes and --output checked before any frame is read: writable, not a folder, not a device, not an input."""
    from .outputs import check_output_path, video_fourcc

    inputs = [args.source, args.weights]
    boxes = check_output_path(args.boxes, "--boxes", inputs) if args.boxes is not None else None
    video = None
    if args.output is not None:
        video_fourcc(args.output)
        video = check_output_path(args.output, "--output", inputs + [args.boxes])
    if args.show:
        snapshots = Path(args.snapshots)
        if not snapshots.is_dir():
            raise UserError(f"--snapshots {args.snapshots} is not a folder: create it or give another")
    return boxes, video


def _rate(frames: int, seconds: float) -> str:
    return f"{frames / seconds:.1f} fps" if frames and seconds > 0 else "n/a"


class _Rates:
    """Tracker and end-to-end frame rates over the last second or so, for the live status line."""

    def __init__(self) -> None:
        self.track_fps = self.shown_fps = 0.0
        self._last = None

    def add(self, track_seconds: float) -> None:
        now = time.monotonic()
        if track_seconds > 0:
            self.track_fps = _smooth(self.track_fps, 1.0 / track_seconds)
        if self._last is not None and now > self._last:
            self.shown_fps = _smooth(self.shown_fps, 1.0 / (now - self._last))
        self._last = now

    def restart(self) -> None:  # after a pause: the wait is not a frame interval
        self._last = None


def _smooth(old: float, new: float, weight: float = 0.1) -> float:
    return new if old == 0 else (1 - weight) * old + weight * new


def _track(args: argparse.Namespace, guard: SignalGuard) -> int:
    from .outputs import AnnotatedVideoWriter, BoxCsvWriter
    from .progress import progress as make_progress
    from .multi import MultiTracker
    from .drawing import draw_targets
    from .sources import FrameSource

    if args.max_frames is not None and args.max_frames < 1:
        raise UserError(f"--max-frames must be >= 1, got {args.max_frames}")
    if not args.stall_timeout > 0:
        raise UserError(f"--stall-timeout must be > 0 seconds, got {args.stall_timeout:g}")
    check_model_options(args)
    if not args.box and not args.select:
        raise UserError("give the first box with --box x,y,w,h (or --select to draw it)")
    boxes = [parse_box(text) for text in args.box] if args.box else None
    if args.format == "otb" and boxes and len(boxes) > 1:
        raise UserError(OTB_ONE_TARGET)
    boxes_path, video_path = _check_outputs(args)
    viewer = None
    if args.show or args.select:
        from .viewer import check_display

        check_display("--show" if args.show else "--select")

    csv_out = video_out = None
    source = FrameSource(args.source, allow_truncated=args.allow_truncated, start=args.start_frame,
                         stall_timeout=args.stall_timeout)
    if source.is_live and args.format == "otb":
        source.close()
        raise UserError("--format otb has one row per frame and no frame numbers, and a live source drops the frames "
                        "the tracker has no time for: use --format csv or mot")
    # Read a live source from now on, keeping only the newest frame: the first frame tracked is then one that
    # arrived after the model loaded, not one that waited in the capture's buffer meanwhile.
    source.start_grabbing()
    total = source.frames_left if args.max_frames is None else min(source.frames_left or args.max_frames, args.max_frames)
    progress = make_progress(total, "tracking", quiet=args.quiet)
    tracked, how, status, error, ended_live = 0, "tracked", 0, None, False
    track_seconds, ages, paused_seconds = 0.0, [], 0.0
    rates = _Rates()
    pacer = Pacer(source.fps) if args.show and not args.fast and not source.is_live else None
    drew_box = boxes is None
    try:
        tracker = load_tracker(MultiTracker, args)
        frames = source.frames()
        first = next(frames, None)
        if first is None:
            raise UserError(f"{args.source} has no frames")
        if args.show or args.select:
            from .viewer import Viewer

            viewer = Viewer(f"siamtrack - {Path(str(args.source)).name}", args.snapshots)
        if boxes is None:
            boxes = viewer.select(first.image, "draw the target, then ENTER (n: another target; c cancels)")
            if boxes is None:
                raise UserError("no box was drawn (selection cancelled, or the window closed); draw a box or pass "
                                "--box x,y,w,h")
            source.skip_pending()  # the templates are this frame's; frames that came while drawing are stale
        if viewer is not None and not args.show:  # --select alone: the window was only for drawing the box
            viewer.close()
            viewer = None
        ids = _start(tracker, first.image, boxes, drew_box, args.format)  # validates the boxes against the frame
        csv_out = BoxCsvWriter(boxes_path, fmt=args.format) if boxes_path else None
        size = (first.image.shape[1], first.image.shape[0])
        video_out = AnnotatedVideoWriter(video_path, source.fps, size) if video_path else None
    except BaseException:  # nothing is tracked yet (bad input, Ctrl-C while the model loads): leave no file behind
        for out in (csv_out, video_out):
            if out is not None:
                out.discard()
        _close_quietly(progress, viewer, source)
        raise

    loop_started = time.perf_counter()
    try:
        # What this frame's rows, video frame and window show: target number -> result.
        numbers = list(range(len(boxes)))  # the CSV's target numbers of the tracker's ids, in order
        shown = {k: TrackResult(tuple(b), 1.0, False) for k, b in zip(numbers, boxes)}
        # last_index: the previous frame written in the normal flow. The frames that go by while a box is drawn
        # or while paused are not filled into the recording: a pause is one frame there, as on the screen.
        frame, last_index = first, None
        while True:
            with guard.deferred():  # the frame's row and video frame together, or neither
                if video_out:
                    video_out.ensure_room()  # before the row, so the CSV and the video stop on the same frame
                    if last_index is not None and frame.index > last_index + 1:
                        video_out.repeat_last(frame.index - last_index - 1)  # dropped frames: keep real time
                if csv_out:
                    csv_out.write_frame(frame.index, shown)
                if video_out:
                    video_out.write_annotated(draw_targets(frame.image, shown))
                tracked += 1
            last_index = None if drew_box and tracked == 1 else frame.index
            progress.update(1)
            if viewer is not None:
                if pacer:
                    pacer.wait()
                action = _show(viewer, frame, shown, rates, source.dropped)
                while action not in (None, "quit"):
                    if action == "snapshot":
                        _snapshot(viewer)
                        action = viewer.poll()
                        continue
                    if action == "reselect":
                        new_boxes = viewer.select(frame.image, "draw the new target(s), then ENTER (c keeps the old)",
                                                  numbers[-1] + 1)
                        if new_boxes is not None:
                            try:
                                ids = _start(tracker, frame.image, new_boxes, True, args.format, numbers[-1] + 1)
                                numbers = list(range(numbers[-1] + 1, numbers[-1] + 1 + len(new_boxes)))
                                shown = {k: TrackResult(b, 1.0, False) for k, b in zip(numbers, new_boxes)}
                            except UserError as exc:  # the old targets stay: MultiTracker.init changes nothing
                                print(f"warning: {exc}; tracking goes on with the targets before", file=sys.stderr)
                        action = None
                    elif action == "pause":
                        pause_started = time.perf_counter()
                        action = _paused(viewer, frame, shown, rates, source.dropped)
                        paused_seconds += time.perf_counter() - pause_started
                        if action == "pause":  # space again: resume
                            action = None
                    # After a pause or a new selection the frames that waited are stale, and the clocks restart.
                    source.skip_pending()
                    last_index = None
                    rates.restart()
                    if pacer:
                        pacer.reset()
                    if action is None:
                        action = _show(viewer, frame, shown, rates, source.dropped)
                if action == "quit":
                    how = "quit after"
                    break
            if args.max_frames is not None and tracked >= args.max_frames:
                break
            frame = next(frames, None)
            if frame is None:
                ended_live = source.is_live
                break
            start = time.perf_counter()
            if source.is_live:
                ages.append(time.monotonic() - frame.captured_at)
            results = tracker.update(frame.image)
            seconds = time.perf_counter() - start
            track_seconds += seconds
            rates.add(seconds)
            shown = {k: results[i] for k, i in zip(numbers, ids)}
            progress.set_postfix(**_postfix(shown), track_fps=f"{tracked / max(track_seconds, 1e-9):.1f}")
    except KeyboardInterrupt:
        how, status = "interrupted after", 130
    except Signalled as stop:
        how, status = f"stopped by {signal.Signals(stop.signum).name} after", 128 + stop.signum
    except UserError as exc:
        how, status, error = "stopped after", 2, exc
    finally:
        with guard.deferred(then_raise=False):
            for out in (video_out, csv_out):  # the outputs first: nothing after may keep them from being finished
                if out is None:
                    continue
                try:
                    out.close()
                except UserError as exc:
                    error = error or exc
                    status = status or 2
            _close_quietly(progress, viewer, source)
    if status == 0 and guard.pending is not None:  # a signal while the files were being finished: they are
        status = 130 if guard.pending == signal.SIGINT else 128 + guard.pending
    loop_seconds = time.perf_counter() - loop_started - paused_seconds
    saved = [f"{p} ({n} {unit})" for p, n, unit in ((boxes_path, csv_out and csv_out.rows, "rows"),
                                                      (video_path, video_out and video_out.frames, "frames"))
             if p is not None and n]
    updates = max(tracked - 1, 0)
    timing = (f"tracker {1000 * track_seconds / updates:.1f} ms/frame ({_rate(updates, track_seconds)}), "
              f"end to end {_rate(tracked, loop_seconds)}" if updates else "no update to time")
    if source.is_live:
        p50, p95 = percentiles(ages)
        timing += (f"; live: {source.dropped} frames dropped, frame age at tracking p50 {1000 * p50:.0f} ms, "
                   f"p95 {1000 * p95:.0f} ms")
    print(f"{how} {tracked} frame{'' if tracked == 1 else 's'}; {timing}; "
          f"saved {', '.join(saved) or 'nothing (use --boxes/--output)'}", file=sys.stderr)
    if ended_live and error is None:
        print(f"{args.source} delivered no more frames (the stream ended or the camera stopped)", file=sys.stderr)
    if source.truncated and error is None:
        print(f"warning: {source.truncated} (accepted: --allow-truncated)", file=sys.stderr)
    if error is not None:
        raise error
    return status


def _start(tracker, image, boxes, drawn: bool, fmt: str, first_number: int = 0) -> list[int]:
    """MultiTracker.init, refusing what the outputs cannot hold and naming a refused box as the CSV and the window
    number it: target N (the drawn box, or the --box given)."""
    if fmt == "otb" and len(boxes) > 1:
        raise UserError(OTB_ONE_TARGET)
    for number, box in enumerate(boxes, start=first_number):
        try:
            check_box(box, image.shape)
        except UserError as exc:
            if len(boxes) == 1:
                raise
            raise UserError(f"target {number} ({'drawn box' if drawn else '--box'} "
                            f"{','.join(f'{v:g}' for v in box)}): {exc}") from None
    return tracker.init(image, boxes)


def _postfix(shown: dict) -> dict:
    """The progress bar's per-frame figures: the score and state of one target, or how many of several are lost."""
    if len(shown) == 1:
        (only,) = shown.values()
        return {"score": f"{only.score:.2f}", "state": only.state}
    return {"lost": f"{sum(r.lost for r in shown.values())}/{len(shown)}"}


def _status_line(frame, rates: _Rates, dropped: int) -> str:
    line = f"frame {frame.index}   tracker {rates.track_fps:.0f} fps   shown {rates.shown_fps:.0f} fps"
    return line + (f"   dropped {dropped}" if dropped else "")


def _show(viewer, frame, shown, rates, dropped) -> str | None:
    from .viewer import HELP_SECONDS, draw_overlay

    show_help = time.monotonic() - viewer.opened_at < HELP_SECONDS
    viewer.show(draw_overlay(frame.image, shown, _status_line(frame, rates, dropped), show_help=show_help))
    return viewer.poll()


def _paused(viewer, frame, shown, rates, dropped) -> str:
    """Hold the frame until a key other than snapshot; returns that key's action ("pause" = resume)."""
    from .viewer import draw_overlay

    viewer.show(draw_overlay(frame.image, shown, _status_line(frame, rates, dropped), paused=True))
    while True:
        action = viewer.poll(30)
        if action == "snapshot":
            _snapshot(viewer)
        elif action is not None:
            return action


def _snapshot(viewer) -> None:
    """A snapshot that cannot be written is a warning: the tracking goes on."""
    try:
        print(f"snapshot saved: {viewer.snapshot()}", file=sys.stderr)
    except UserError as exc:
        print(f"warning: {exc}", file=sys.stderr)


def percentiles(values: list[float], qs=(50, 95)) -> tuple[float, ...]:
    import numpy as np

    return tuple(float(np.percentile(values, q)) for q in qs) if values else tuple(float("nan") for _ in qs)


def _close_quietly(*things) -> None:
    """Close each (progress bar, window, source) even if an earlier one fails: the window must not outlive the run."""
    for thing in things:
        if thing is None:
            continue
        try:
            thing.close()
        except Exception as exc:  # noqa: BLE001 (a failing close must not hide the run's own outcome)
            print(f"warning: closing {type(thing).__name__} failed: {exc}", file=sys.stderr)
