"""Live sources: track the newest frame, never a queue of old ones; and play files at their own frame rate.

A camera or stream delivers frames whether or not the tracker keeps up. Read on the tracking thread, every frame
the tracker was too slow for waits in OpenCV's or the network's buffer, so the tracker falls further behind the
scene with every frame (and after the seconds spent drawing the first box, it starts seconds behind). Here a
thread reads the source as fast as it delivers and keeps only the newest frame; the tracker takes that one and the
frames it never saw are counted as dropped.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from .errors import UserError


@dataclass(frozen=True)
class Frame:
    image: np.ndarray  # BGR uint8
    index: int  # 0-based frame number in the source (counting the frames dropped before it)
    captured_at: float  # time.monotonic() when the source delivered it


class LatestFrameGrabber:
    """Reads `read()` (cv2.VideoCapture.read or alike) on a thread and hands out only the newest frame.

    `next()` blocks until a frame newer than the last one handed out arrives and returns it; None at the end of the
    stream (read() gave no frame). When the source delivers nothing for `stall_timeout` seconds, next() raises a
    UserError (a camera unplugged, a stream that hung) instead of waiting for ever.
    """

    def __init__(self, read: Callable[[], tuple[bool, np.ndarray | None]], name: str,
                 stall_timeout: float = 5.0) -> None:
        self.name = name
        self.stall_timeout = stall_timeout
        self.frames_read = 0
        self.dropped = 0  # frames read but replaced by a newer one before anyone took them
        self._read = read
        self._latest: Frame | None = None
        self._ended = False
        self._error: BaseException | None = None
        self._stop = threading.Event()
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._run, name=f"grab {name}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                ok, image = self._read()
                now = time.monotonic()
                if not ok or image is None:
                    return
                with self._changed:
                    if self._latest is not None:
                        self.dropped += 1
                    self._latest = Frame(image, self.frames_read, now)
                    self.frames_read += 1
                    self._changed.notify_all()
        except Exception as exc:  # an OpenCV error in the reader reaches the caller as one line, not a dead thread
            error = UserError(f"{self.name}: reading a frame failed: {exc}")
            error.__cause__ = exc
            with self._changed:
                self._error = error
        finally:
            with self._changed:
                self._ended = True  # stopped, failed or at the end: next() must not wait for a frame
                self._changed.notify_all()

    def next(self) -> Frame | None:
        deadline = time.monotonic() + self.stall_timeout
        with self._changed:
            while self._latest is None:
                if self._error is not None:
                    raise self._error
                if self._ended:
                    return None
                left = deadline - time.monotonic()
                if left <= 0:
                    raise UserError(f"{self.name} delivered no frame for {self.stall_timeout:g} s: it stopped "
                                    "(unplugged, or the stream hung)")
                self._changed.wait(left)
            frame, self._latest = self._latest, None
            return frame

    def skip_pending(self) -> None:
        """Count the frame waiting now as dropped (the caller was busy elsewhere, e.g. a box was being drawn)."""
        with self._changed:
            if self._latest is not None:
                self._latest = None
                self.dropped += 1

    def stop(self, timeout: float = 1.0) -> bool:
        """Ask the reader to stop; True when it has (a read blocked in the driver may not return: then the
        capture must not be released under it)."""
        self._stop.set()
        self._thread.join(timeout)
        return not self._thread.is_alive()


class Pacer:
    """Sleeps so that frames are shown at `fps` (a file played at its own speed); pause() and resume() keep the
    schedule from rushing to catch up after a pause."""

    def __init__(self, fps: float) -> None:
        self.interval = 1.0 / fps
        self._next = None

    def wait(self) -> None:
        now = time.monotonic()
        if self._next is None or now - self._next > 0.5:  # first frame, or far behind (slow tracker): restart
            self._next = now
        elif self._next > now:
            time.sleep(self._next - now)
        self._next += self.interval

    def reset(self) -> None:
        self._next = None


def percentiles(values: list[float], qs=(50, 95)) -> tuple[float, ...]:
    return tuple(float(np.percentile(values, q)) for q in qs) if values else tuple(float("nan") for _ in qs)
