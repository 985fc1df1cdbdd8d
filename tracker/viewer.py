"""The live window: the frame with its box and a status line, driven by keys; and the check that a display exists.

OpenCV's window (Qt on X11 in the PyPI wheels) aborts the whole process (SIGABRT) when it cannot reach a
display, so `check_display` opens a window in a child process first: a bad DISPLAY then costs one line, not the run.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import cv2
import numpy as np

from .errors import UserError
from .drawing import draw_targets, put_label, put_label_above, target_colour

KEYS_HELP = "space pause/resume  r re-select  s snapshot  h help  q/Esc quit"  # the window's one-line help
KEYS_DESCRIPTION = ("keys in the window: space pause/resume, r re-select the target(s) (draw a box, n to keep it and "
                    "draw another, u to take back the last one, ENTER to confirm, c to cancel), s save a PNG "
                    "snapshot, h show the key help again, q or Esc quit; closing the window quits too")
SELECT_HELP = "drag a box   n another target   u undo   ENTER start   c cancel"
KEY_ACTIONS = {ord(" "): "pause", ord("r"): "reselect", ord("R"): "reselect", ord("s"): "snapshot",
               ord("S"): "snapshot", ord("h"): "help", ord("H"): "help", ord("q"): "quit", ord("Q"): "quit",
               27: "quit"}
# The key help is shown this long once tracking starts (the window usually opens earlier, for the selection, which
# has its own help) and again after h; and all the while paused.
HELP_SECONDS = 6.0

_display_checked: bool = False


def check_display(flag: str) -> None:
    """A UserError (naming --output as the way to see results without a window) unless a window can be opened."""
    global _display_checked
    if _display_checked:
        return
    hint = "; without a display, write the result with --output out.mp4 (and --boxes out.csv) instead"
    if sys.platform.startswith("linux"):
        x11, wayland = os.environ.get("DISPLAY"), os.environ.get("WAYLAND_DISPLAY")
        if not x11 and not wayland:
            raise UserError(f"{flag} needs a display, and neither DISPLAY nor WAYLAND_DISPLAY is set{hint}")
        probe = "import cv2; cv2.namedWindow('siamtrack-probe'); cv2.waitKey(1); cv2.destroyAllWindows()"
        try:
            done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=20)
            said = "" if done.returncode == 0 else _first_line(done.stderr) or f"exit status {done.returncode}"
        except subprocess.TimeoutExpired:
            said = "no window within 20 s"
        if said:
            if x11:
                where = f"DISPLAY={x11} cannot be reached (no X server there, or no permission: check xauth)"
            else:
                where = (f"only WAYLAND_DISPLAY={wayland} is set and OpenCV's window needs X11: run under "
                         "XWayland with DISPLAY set")
            raise UserError(f"{flag} cannot open a window: {where}{hint} (OpenCV said: {said})")
    _display_checked = True


def _first_line(text: str, limit: int = 200) -> str:
    """The first non-empty line of a child's stderr (Qt's reason: "qt.qpa.xcb: could not connect to display :0"),
    shortened to keep a message one line."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0][:limit] if lines else ""


class Viewer:
    """One OpenCV window. show() draws; poll() waits for a key and says what it asks for (None, "pause",
    "reselect", "snapshot" or "quit"; closing the window is "quit")."""

    def __init__(self, title: str = "siamtrack", snapshot_dir: str | Path = ".") -> None:
        self.title = title
        self.snapshot_dir = Path(snapshot_dir)
        self.last_image: np.ndarray | None = None
        # GUI_NORMAL: no Qt toolbar or status bar, so the image fills the window from its top-left corner.
        cv2.namedWindow(title, cv2.WINDOW_AUTOSIZE | cv2.WINDOW_GUI_NORMAL)

    def is_open(self) -> bool:
        try:
            visible = cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE)
            if visible < 0:  # a GUI backend without this property (GTK builds): -1 for AUTOSIZE too means closed
                return cv2.getWindowProperty(self.title, cv2.WND_PROP_AUTOSIZE) >= 0
            return visible >= 1
        except cv2.error:  # Qt destroys the window when it is closed; asking about it then raises
            return False

    def show(self, image: np.ndarray) -> None:
        if not self.is_open():  # imshow would open it again: the user closed it, which means quit
            return
        self.last_image = image
        cv2.imshow(self.title, image)

    def poll(self, wait_ms: int = 1) -> str | None:
        key = cv2.waitKey(max(int(wait_ms), 1))
        if not self.is_open():
            return "quit"
        return KEY_ACTIONS.get(key & 0xFF) if key != -1 else None

    def select(self, frame: np.ndarray, prompt: str,
               first_number: int = 0) -> list[tuple[float, float, float, float]] | None:
        """Boxes dragged with the mouse on this frame, one per target: a new drag replaces the box being drawn, n
        keeps it and starts the next, u takes back the box being drawn (or else the last one kept); ENTER or space
        confirms them all, c or Esc cancels, and so does closing the window. Kept boxes are labelled with their
        target numbers, from first_number. None when cancelled or when no box was drawn. A waitKey loop
        rather than cv2.selectROI(s), whose one blocking call would hold Ctrl-C and SIGTERM until a key came."""
        if not self.is_open():
            return None
        print(f"siamtrack: {prompt}", file=sys.stderr, flush=True)
        height, width = frame.shape[:2]
        drag = {"start": None, "end": None, "held": False}
        kept: list[tuple[float, float, float, float]] = []

        def dragged():
            if drag["start"] is None:
                return None
            (x0, y0), (x1, y1) = drag["start"], drag["end"]
            x, y, w, h = min(x0, x1), min(y0, y1), abs(x1 - x0), abs(y1 - y0)
            return None if w < 1 or h < 1 else (float(x), float(y), float(w), float(h))

        def on_mouse(event, x, y, flags, param):
            point = (min(max(x, 0), width - 1), min(max(y, 0), height - 1))
            if event == cv2.EVENT_LBUTTONDOWN:
                drag.update(start=point, end=point, held=True)
            elif event in (cv2.EVENT_MOUSEMOVE, cv2.EVENT_LBUTTONUP) and drag["held"]:
                drag["end"] = point
                drag["held"] = event == cv2.EVENT_MOUSEMOVE

        cv2.setMouseCallback(self.title, on_mouse)
        try:
            while True:
                being_drawn = (drag["start"], drag["end"]) if drag["start"] is not None else None
                cv2.imshow(self.title, draw_selection(frame, kept, being_drawn, prompt, first_number))
                key = cv2.waitKey(30) & 0xFF
                if not self.is_open() or key in (ord("c"), ord("C"), 27):
                    return None
                if key in (ord("n"), ord("N")) and dragged() is not None:
                    kept.append(dragged())
                    drag.update(start=None, end=None, held=False)
                elif key in (ord("u"), ord("U"), 8):  # 8: backspace
                    if drag["start"] is not None:
                        drag.update(start=None, end=None, held=False)
                    elif kept:
                        kept.pop()
                elif key in (13, 10, ord(" ")):
                    boxes = kept + ([dragged()] if dragged() is not None else [])
                    return boxes or None
        finally:
            if self.is_open():
                cv2.setMouseCallback(self.title, lambda *args: None)

    def snapshot(self) -> Path:
        """The picture shown, as a PNG in snapshot_dir (created if missing); a UserError when it cannot be
        written."""
        if self.last_image is None:
            raise UserError("nothing shown yet to save")
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S-%f")[:-3]
        path = (self.snapshot_dir / f"siamtrack-{stamp}.png").resolve()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(f"cannot create the snapshot folder {path.parent}: {exc.strerror}") from None
        if not cv2.imwrite(str(path), self.last_image):
            raise UserError(f"cannot write the snapshot {path}: check the folder is writable")
        return path

    def close(self) -> None:
        try:
            cv2.destroyWindow(self.title)
            cv2.waitKey(1)
        except cv2.error:
            pass


def draw_selection(frame: np.ndarray, kept, being_drawn, prompt: str, first_number: int = 0) -> np.ndarray:
    """The selection view: the boxes kept so far (numbered from first_number, each in its colour), the box being
    drawn (corners, or None), and at the bottom the prompt with the selection keys above it."""
    shown = frame.copy()
    for number, (x, y, w, h) in enumerate(kept, start=first_number):
        colour = target_colour(number)
        cv2.rectangle(shown, (int(x), int(y)), (int(x + w), int(y + h)), colour, 2)
        put_label(shown, f"#{number}", (int(x), int(y) - 4), colour)
    if being_drawn is not None:
        cv2.rectangle(shown, being_drawn[0], being_drawn[1], (255, 255, 0), 2)
    top = put_label(shown, f"{prompt}{f' ({len(kept)} kept)' if kept else ''}", (0, shown.shape[0] - 4),
                    (255, 255, 255))
    put_label_above(shown, SELECT_HELP, top, (255, 255, 255), scale=0.45)
    return shown


def status_line(frame_index: int, track_fps: float, shown_fps: float, dropped: int) -> str:
    """The live window's top line; put_label scales it down to fit narrow frames."""
    line = f"frame {frame_index}  tracker {track_fps:.0f} fps  shown {shown_fps:.0f} fps"
    return line + (f"  dropped {dropped}" if dropped else "")


def draw_overlay(frame: np.ndarray, shown, status: str, paused: bool = False, show_help: bool = False) -> np.ndarray:
    """The live view: every target's box with its label (`shown`: target number -> TrackResult; a colour each
    when there are several), a status line on top (frame, fps, drops), the key help below."""
    out = draw_targets(frame, shown)
    put_label(out, status, (0, 16), (255, 255, 255))
    if paused:
        put_label(out, "PAUSED", (out.shape[1] // 2 - 30, 40), (0, 255, 255))
    if show_help or paused:
        put_label(out, KEYS_HELP, (0, out.shape[0] - 4), (255, 255, 255), scale=0.45)
    return out


def _smooth(old: float, new: float, weight: float = 0.1) -> float:
    return new if old == 0 else (1 - weight) * old + weight * new


class Rates:
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


class WindowControl:
    """The window during a run: shows each frame and acts on its keys (pause, re-select, snapshot, quit).

    `source` is the FrameSource (its dropped count, and skip_pending after a pause); `targets` is what a
    re-selection restarts: `next_number()` (the number the next drawn target gets) and `restart(image, boxes)`
    (the new targets' results by number, or None when refused: the old targets go on)."""

    def __init__(self, viewer: Viewer, source, targets, pacer=None) -> None:
        self.viewer, self.source, self.targets, self.pacer = viewer, source, targets, pacer
        self.rates = Rates()
        self.paused_seconds = 0.0  # not counted in the end-to-end frame rate
        self.resumed = False  # set after a pause or a re-selection: the frames that waited since are stale
        self.help_until: float | None = None  # the key help shows until then: set by the first frame shown and h

    def after_frame(self, frame, shown: dict) -> bool:
        """Show the frame with `shown` (target number -> TrackResult) and handle the keys; True to quit."""
        if self.pacer:
            self.pacer.wait()
        action = self._show(frame, shown)
        while action not in (None, "quit"):
            if action == "snapshot":
                self._snapshot()
                action = self.viewer.poll()
                continue
            if action == "help":
                self.help_until = time.monotonic() + HELP_SECONDS
                action = self._show(frame, shown)
                continue
            if action == "reselect":
                shown = self._reselect(frame, shown)
                action = None
            elif action == "pause":
                action = self._pause(frame, shown)
            self._resume()
            if action is None:
                action = self._show(frame, shown)
        return action == "quit"

    def _reselect(self, frame, shown: dict) -> dict:
        boxes = self.viewer.select(frame.image, "draw the new target(s), then ENTER (c keeps the old)",
                                   self.targets.next_number())
        restarted = self.targets.restart(frame.image, boxes) if boxes is not None else None
        return shown if restarted is None else restarted

    def _pause(self, frame, shown: dict) -> str | None:
        started = time.perf_counter()
        action = self._paused(frame, shown)
        self.paused_seconds += time.perf_counter() - started
        return None if action == "pause" else action  # space again: resume

    def _resume(self) -> None:
        """After a pause or a new selection the frames that waited are stale, and the clocks restart."""
        self.source.skip_pending()
        self.resumed = True
        self.rates.restart()
        if self.pacer:
            self.pacer.reset()

    def _status_line(self, frame) -> str:
        return status_line(frame.index, self.rates.track_fps, self.rates.shown_fps, self.source.dropped)

    def _show(self, frame, shown: dict) -> str | None:
        now = time.monotonic()
        if self.help_until is None:  # the first tracked frame shown: tracking starts now
            self.help_until = now + HELP_SECONDS
        show_help = now < self.help_until
        self.viewer.show(draw_overlay(frame.image, shown, self._status_line(frame), show_help=show_help))
        return self.viewer.poll()

    def _paused(self, frame, shown: dict) -> str:
        """Hold the frame until a key other than snapshot; returns that key's action ("pause" = resume)."""
        self.viewer.show(draw_overlay(frame.image, shown, self._status_line(frame), paused=True))
        while True:
            action = self.viewer.poll(30)
            if action == "snapshot":
                self._snapshot()
            elif action not in (None, "help"):  # the help is on the paused picture already
                return action

    def _snapshot(self) -> None:
        """A snapshot that cannot be written is a warning: the tracking goes on."""
        try:
            print(f"snapshot saved: {self.viewer.snapshot()}", file=sys.stderr)
        except UserError as exc:
            print(f"warning: {exc}", file=sys.stderr)

    def close(self) -> None:
        self.viewer.close()
