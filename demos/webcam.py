#!/usr/bin/env python3
"""Track what you point a webcam at: draw a box with the mouse, then space pauses, r re-selects, s saves a
snapshot, q or Esc quits (closing the window quits too).

    python demos/webcam.py                         # camera 0
    python demos/webcam.py --camera /dev/video2    # or a stream: --camera http://192.168.1.20:8080/video
    python demos/webcam.py --camera ../shared/data/videos/bag.avi --box 312,146,105,95 --no-window --max-frames 50

For a camera or stream, FrameSource.frames() reads on a thread that keeps only the newest frame, so the tracker
never works on a frame that waited in a queue, however slow it is; the frames it skips are counted as dropped.
The tracker is used through its OpenCV-style adapter: `ok, (x, y, w, h) = tracker.update(frame)`, with ints.
"""
from __future__ import annotations

import argparse
import sys
import time

import cv2

from tracker import SiamTracker, UserError
from tracker.result import parse_box
from tracker.sources import FrameSource

KEYS = "space pause   r re-select   s snapshot   q/Esc quit"
WINDOW = "siamtrack webcam demo"


def window_closed() -> bool:
    try:
        return cv2.getWindowProperty(WINDOW, cv2.WND_PROP_VISIBLE) < 1
    except cv2.error:  # OpenCV's Qt window raises once the user has closed it
        return True


def select(frame):
    x, y, w, h = cv2.selectROI(WINDOW, frame, showCrosshair=True)
    return None if w == 0 or h == 0 else (x, y, w, h)


def first_box(frame, source):
    box = select(frame)
    if box is None:
        raise UserError("no box was drawn")
    source.skip_pending()  # frames that came while drawing are stale
    return box


def overlay(frame, ok: bool, box, status: str):
    """The frame with the box (green, red when lost), a status line and the keys."""
    x, y, w, h = box
    shown = frame.copy()
    cv2.rectangle(shown, (x, y), (x + w, y + h), (0, 255, 0) if ok else (0, 0, 255), 2)
    cv2.putText(shown, status, (8, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
    cv2.putText(shown, KEYS, (8, shown.shape[0] - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1,
                cv2.LINE_AA)
    return shown


def run(args: argparse.Namespace) -> None:
    window = not args.no_window
    if window:
        from tracker.viewer import check_display

        check_display("the window")  # cv2.imshow would abort the process without a display
    box = parse_box(args.box) if args.box else None
    if box is None and not window:
        raise UserError("--no-window needs --box x,y,w,h (there is no window to draw the box in)")

    source = FrameSource(args.camera)  # an index, a device, a URL or a file; a clear error when it cannot open
    # live: the newest frame each time (UserError if the camera stops delivering)
    images = (frame.image for frame in source.frames())
    tracker = SiamTracker.from_pretrained().as_opencv()  # drop-in for cv2.TrackerNano.create()
    frame = next(images, None)
    if frame is None:
        raise UserError(f"{args.camera} gave no frame")
    if window:
        cv2.namedWindow(WINDOW, cv2.WINDOW_AUTOSIZE | cv2.WINDOW_GUI_NORMAL)
    tracker.init(frame, box if box is not None else first_box(frame, source))

    count, started, paused = 0, time.perf_counter(), False
    try:
        while args.max_frames is None or count < args.max_frames:
            if not paused:
                frame = next(images, None)
                if frame is None:
                    break
                ok, (x, y, w, h) = tracker.update(frame)
                count += 1
                if not window:
                    print(f"{count:5d} ok={ok} box=({x}, {y}, {w}, {h}) score={tracker.score:.2f}")
                    continue
                shown = overlay(frame, ok, (x, y, w, h), f"{count / (time.perf_counter() - started):.0f} fps  "
                                f"dropped {source.dropped}  score {tracker.score:.2f}")
                cv2.imshow(WINDOW, shown)
            key = cv2.waitKey(30 if paused else 1) & 0xFF
            if window_closed() or key in (ord("q"), 27):
                break
            if key == ord(" "):
                paused = not paused
            elif key == ord("s"):
                name = f"snapshot-{int(time.time())}.png"
                print(f"saved {name}" if cv2.imwrite(name, shown) else f"could not write {name}", file=sys.stderr)
            elif key == ord("r"):
                new_box = select(frame)
                if new_box is not None:
                    tracker.init(frame, new_box)
            if paused or key == ord("r"):
                source.skip_pending()
    finally:
        source.close()
        if window:
            cv2.destroyAllWindows()
    print(f"{count} frames tracked", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--camera", default="0", help="camera index, device, stream URL or video file (default 0)")
    parser.add_argument("--box", help="first box x,y,w,h instead of drawing it")
    parser.add_argument("--no-window", action="store_true", help="print the boxes instead of showing a window")
    parser.add_argument("--max-frames", type=int, help="stop after this many frames")
    args = parser.parse_args(argv)
    if args.max_frames is not None and args.max_frames < 1:
        parser.error(f"--max-frames must be >= 1, got {args.max_frames}")
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
