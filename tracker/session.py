"""One tracking session for `track`, `webcam` and `batch`: a frame source, a tracker, and the sinks (the box
file, the annotated video, the window).

The first frame's row is the given box (score 1.0, see running.given); each frame's row and video frame are
written together or not at all (SignalGuard.deferred); whatever was written is kept when the run stops early
(`finish`), and nothing is left behind when it stops before the first frame was tracked (`start`).
"""
from __future__ import annotations

import signal
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from .drawing import draw_targets
from .errors import UserError
from .multi import MultiTracker
from .outputs import AnnotatedVideoWriter, BoxCsvWriter, box_format
from .result import TrackResult, check_box
from .running import TrackRun
from .signals import Signalled
from .sources import Frame, FrameSource
from .viewer import WindowControl


@dataclass(frozen=True)
class Outputs:
    """What a session writes (checked beforehand: outputs.check_output_path)."""

    boxes: Path | None = None
    format: str = "csv"
    boxes_flag: str = "--boxes"
    video: Path | None = None


class Sinks:
    """The box file and the annotated video of a session, opened once the first frame's size is known."""

    def __init__(self, outputs: Outputs) -> None:
        self.outputs = outputs
        self.boxes: BoxCsvWriter | None = None
        self.video: AnnotatedVideoWriter | None = None
        self.closed = False  # finished: discard() has nothing left to remove (and saved() still counts)

    def open(self, fps: float, size: tuple[int, int]) -> None:
        o = self.outputs
        self.boxes = BoxCsvWriter(o.boxes, flag=o.boxes_flag, fmt=o.format) if o.boxes else None
        self.video = AnnotatedVideoWriter(o.video, fps, size) if o.video else None

    def write(self, frame: Frame, shown: dict, skipped: int) -> None:
        """One frame's rows and video frame; `skipped` frames before it (a live source's drops) are the last video
        frame again, so that the recording keeps real time."""
        if self.video:
            self.video.ensure_room()  # before the row, so the box file and the video stop on the same frame
            if skipped > 0:
                self.video.repeat_last(skipped)
        if self.boxes:
            self.boxes.write_frame(frame.index, shown)
        if self.video:
            self.video.write_annotated(draw_targets(frame.image, shown))

    def discard(self) -> None:
        """Nothing was tracked (or a batch job failed): leave no file behind."""
        if self.closed:
            return
        for out in (self.boxes, self.video):
            if out is not None:
                out.discard()
        self.boxes = self.video = None

    def close(self) -> UserError | None:
        """Finish both (the video first), whatever happens to the other; the first error, if any."""
        self.closed, error = True, None
        for out in (self.video, self.boxes):
            if out is None:
                continue
            try:
                out.close()
            except UserError as exc:
                error = error or exc
        return error

    def saved(self) -> list[str]:
        counted = ((self.outputs.boxes, self.boxes and self.boxes.rows, "rows"),
                   (self.outputs.video, self.video and self.video.frames, "frames"))
        return [f"{path} ({n} {unit})" for path, n, unit in counted if path is not None and n]


def close_quietly(*things) -> None:
    """Close each (progress bar, window, source) even if an earlier one fails: the window must not outlive the run."""
    for thing in things:
        if thing is None:
            continue
        try:
            thing.close()
        except Exception as exc:  # noqa: BLE001 (a failing close must not hide the run's own outcome)
            print(f"warning: closing {type(thing).__name__} failed: {exc}", file=sys.stderr)


def _select_first(viewer, first: Frame) -> list:
    boxes = viewer.select(first.image, "draw the target, then ENTER (n: another target; c cancels)")
    if boxes is None:
        raise UserError("no box was drawn (selection cancelled, or the window closed); draw a box or pass "
                        "--box x,y,w,h")
    return boxes


def check_boxes(image: np.ndarray, boxes, drawn: bool, fmt: str, first_number: int = 0) -> None:
    """Refuse what the outputs cannot hold, and name a refused box as the box file and the window number it:
    target N (the drawn box, or the --box given)."""
    if len(boxes) > 1 and box_format(fmt).one_target is not None:
        raise UserError(box_format(fmt).one_target_message)
    for number, box in enumerate(boxes, start=first_number):
        try:
            check_box(box, image.shape)
        except UserError as exc:
            if len(boxes) == 1:
                raise
            raise UserError(f"target {number} ({'drawn box' if drawn else '--box'} "
                            f"{','.join(f'{v:g}' for v in box)}): {exc}") from None


class Session:
    """source -> tracker -> sinks. start() reads the first frame and starts the targets on it; run() writes it
    and tracks every frame after it; finish() closes everything, keeping what was written."""

    def __init__(self, source: FrameSource, outputs: Outputs, progress, guard=None, max_frames: int | None = None):
        self.source, self.progress, self.guard, self.max_frames = source, progress, guard, max_frames
        self.sinks = Sinks(outputs)
        self.format = outputs.format
        self.window = None  # a viewer.WindowControl while the run is shown
        self.tracked = 0  # frames written
        self.track_seconds = 0.0  # in the tracker's update(), over the frames after the first
        self.ages: list[float] = []  # a live frame's age when it was tracked
        self.ended_live = False  # a live source stopped delivering (not the user's doing)
        self.shown: dict[int, TrackResult] = {}  # the frame's results by target number (the box file's column)
        self.numbers: list[int] = []  # the target numbers of the tracker's targets, in order
        self.drawn = False  # the first boxes were drawn in the window (not given)
        self._multi = False  # a MultiTracker (init takes every box; results come by target id)
        self._ids: list[int] = []  # the MultiTracker's ids of self.numbers' targets
        self._run: TrackRun | None = None
        self._frames = None
        self._last_index: int | None = None  # the last frame written in the normal flow (not after a pause)
        self._first_size: tuple[int, int] = (0, 0)  # (height, width) of the first frame

    def start(self, load_tracker: Callable, boxes, no_frames: str, viewer: Callable | None = None,
              show: bool = False, pacer=None) -> Frame:
        """Load the tracker, read the first frame and start the targets on it. boxes: the first boxes, or None to
        draw them on the first frame in the window viewer() opens; show: that window then shows the run (paced by
        `pacer`). A failure (or Ctrl-C) leaves no file behind."""
        window = None
        try:
            tracker = load_tracker()
            self._frames = self.source.frames()
            first = next(self._frames, None)
            if first is None:
                raise UserError(no_frames)
            window = viewer() if viewer is not None else None
            self.drawn = boxes is None
            if boxes is None:
                boxes = _select_first(window, first)
                self.source.skip_pending()  # the templates are this frame's; frames that came while drawing are stale
            if window is not None and not show:  # --select alone: the window was only for drawing the box
                window.close()
                window = None
            self.window = WindowControl(window, self.source, self, pacer) if window is not None else None
            self._multi = isinstance(tracker, MultiTracker)
            self._run = TrackRun(tracker)
            self._begin(first.image, boxes, 0)
            self._first_size = first.image.shape[:2]
            self.sinks.open(self.source.recording_fps() if self.sinks.outputs.video else self.source.fps,
                            (first.image.shape[1], first.image.shape[0]))
        except BaseException:
            self.sinks.discard()
            close_quietly(self.progress, window, self.source)
            raise
        return first

    def _begin(self, image: np.ndarray, boxes, first_number: int) -> None:
        """The targets start on this frame (the run's first, or a re-selection), numbered from first_number."""
        check_boxes(image, boxes, self.drawn or first_number > 0, self.format, first_number)
        step = self._run.restart(image, list(boxes) if self._multi else boxes[0])
        self.numbers = list(range(first_number, first_number + len(boxes)))
        self._ids = list(step.result) if self._multi else []
        self.shown = self._by_number(step.result)

    def _by_number(self, result) -> dict[int, TrackResult]:
        if self._multi:  # the MultiTracker's results by its ids, which follow the boxes' order
            return {number: result[i] for number, i in zip(self.numbers, self._ids)}
        return {self.numbers[0]: result}

    # -- the window's re-selection (viewer.WindowControl calls these) -------------------------------------------

    def next_number(self) -> int:
        return self.numbers[-1] + 1

    def restart(self, image: np.ndarray, boxes) -> dict | None:
        try:
            self._begin(image, boxes, self.next_number())
        except UserError as exc:  # the old targets stay: MultiTracker.init changes nothing
            print(f"warning: {exc}; tracking goes on with the targets before", file=sys.stderr)
            return None
        return self.shown

    # -- the loop --------------------------------------------------------------------------------------------

    def run(self, first: Frame) -> str:
        """Write the first frame and track the rest: "tracked" at the end (or --max-frames), "quit after" when the
        window was quit. Raises what stopped it (KeyboardInterrupt, Signalled, UserError)."""
        frame = first
        while True:
            self._write(frame)
            if self.window is not None and self._window_quits(frame):
                return "quit after"
            if self.max_frames is not None and self.tracked >= self.max_frames:
                return "tracked"
            frame = next(self._frames, None)
            if frame is None:
                self.ended_live = self.source.is_live
                return "tracked"
            self._update(frame)

    def _write(self, frame: Frame) -> None:
        skipped = 0 if self._last_index is None else frame.index - self._last_index - 1
        with self.guard.deferred() if self.guard is not None else nullcontext():  # the row and video frame together
            self.sinks.write(frame, self.shown, skipped)
            self.tracked += 1
        # The frames that go by while a box is drawn or while paused are not filled into the recording: a pause
        # is one frame there, as on the screen.
        self._last_index = None if self.drawn and self.tracked == 1 else frame.index
        self.progress.update(1)

    def _window_quits(self, frame: Frame) -> bool:
        quits = self.window.after_frame(frame, self.shown)
        if self.window.resumed:
            self.window.resumed = False
            self._last_index = None
        return quits

    def _update(self, frame: Frame) -> None:
        if self.source.is_live:
            self.ages.append(time.monotonic() - frame.captured_at)
            self._check_live_size(frame)
        step = self._run.step(frame.image)
        self.track_seconds += step.seconds
        if self.window is not None:
            self.window.rates.add(step.seconds)
        self.shown = self._by_number(step.result)
        self.progress.set_postfix(**_postfix(self.shown), track_fps=f"{self.tracked / max(self.track_seconds, 1e-9):.1f}")

    def _check_live_size(self, frame: Frame) -> None:
        """A camera or stream that switches resolution mid-run: the boxes are in the old size's pixels."""
        (h0, w0), (h1, w1) = self._first_size, frame.image.shape[:2]
        if (h0, w0) != (h1, w1):
            raise UserError(f"{self.source.name} changed its frame size from {w0}x{h0} to {w1}x{h1} at frame "
                            f"{frame.index}: the boxes are in the old size's pixels, so the run stops here (the rows "
                            "so far are kept); start again with a box drawn on (or given for) the new size")

    def finish(self, status: int = 0, error: UserError | None = None) -> tuple[int, UserError | None]:
        """Close the sinks (keeping what was written), the progress bar, the window and the source, holding off
        signals meanwhile; the run's exit status and error after that."""
        with self.guard.deferred(then_raise=False) if self.guard is not None else nullcontext():
            closing = self.sinks.close()  # the outputs first: nothing after may keep them from being finished
            if closing is not None:
                error, status = error or closing, status or 2
            close_quietly(self.progress, self.window, self.source)
        pending = self.guard.pending if self.guard is not None else None
        if status == 0 and pending is not None:  # a signal while the files were being finished: they are
            status = 130 if pending == signal.SIGINT else 128 + pending
        return status, error


def _postfix(shown: dict) -> dict:
    """The progress bar's per-frame figures: the score and state of one target, or how many of several are lost."""
    if len(shown) == 1:
        (only,) = shown.values()
        return {"score": f"{only.score:.2f}", "state": only.state}
    return {"lost": f"{sum(r.lost for r in shown.values())}/{len(shown)}"}


def run_to_end(session: Session, first: Frame) -> tuple[str, int, UserError | None, float]:
    """session.run, ending as the command line does: Ctrl-C exits 130, a signal 128+N, a UserError 2, all with the
    outputs finished. (how it ended, exit status, error, seconds tracking outside pauses)."""
    started = time.perf_counter()
    how, status, error = "tracked", 0, None
    try:
        how = session.run(first)
    except KeyboardInterrupt:
        how, status = "interrupted after", 130
    except Signalled as stop:
        how, status = f"stopped by {signal.Signals(stop.signum).name} after", 128 + stop.signum
    except UserError as exc:
        how, status, error = "stopped after", 2, exc
    finally:
        status, error = session.finish(status, error)
    paused = session.window.paused_seconds if session.window is not None else 0.0
    return how, status, error, time.perf_counter() - started - paused


def percentiles(values: list[float], qs=(50, 95)) -> tuple[float, ...]:
    return tuple(float(np.percentile(values, q)) for q in qs) if values else tuple(float("nan") for _ in qs)


def _rate(frames: int, seconds: float) -> str:
    return f"{frames / seconds:.1f} fps" if frames and seconds > 0 else "n/a"


def summary(session: Session, how: str, loop_seconds: float) -> str:
    """The line a session ends with: frames, timing (and a live source's drops and frame ages), what was saved."""
    tracked, track_seconds, source = session.tracked, session.track_seconds, session.source
    updates = max(tracked - 1, 0)
    timing = (f"tracker {1000 * track_seconds / updates:.1f} ms/frame ({_rate(updates, track_seconds)}), "
              f"end to end {_rate(tracked, loop_seconds)}" if updates else "no update to time")
    if source.is_live:
        p50, p95 = percentiles(session.ages)
        timing += (f"; live: {source.dropped} frames dropped, frame age at tracking p50 {1000 * p50:.0f} ms, "
                   f"p95 {1000 * p95:.0f} ms")
        if source.corrupt:
            timing += f", {source.corrupt} damaged frame{'' if source.corrupt == 1 else 's'} skipped"
    return (f"{how} {tracked} frame{'' if tracked == 1 else 's'}; {timing}; "
            f"saved {', '.join(session.sinks.saved()) or 'nothing (use --boxes/--output)'}")
