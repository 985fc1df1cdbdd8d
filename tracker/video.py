"""Frame sources (video file, image folder, camera) and the box overlay, all through OpenCV."""
from __future__ import annotations

import re
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from .errors import UserError
from .live import Frame, LatestFrameGrabber

# Network sources OpenCV's FFmpeg backend opens (IP cameras, phone camera apps, media servers).
STREAM_URL = re.compile(r"^(https?|rtsps?|rtmp|rtp|udp|tcp|srt)://", re.IGNORECASE)
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}


@contextmanager
def quiet_opencv():
    """OpenCV logs a dozen lines while it tries each camera backend; the caller gives one clear message instead."""
    level = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    try:
        yield
    finally:
        cv2.utils.logging.setLogLevel(level)


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


class FrameSource:
    """Iterates BGR frames from a video file, an image folder (or its img/ subfolder, the OTB layout), a camera
    index or a camera device such as /dev/video0.

    `frame_count` is None when unknown (cameras); `fps` falls back to 30. A video that ends before the frame
    count its header gives raises a UserError saying so, unless allow_truncated (then `truncated` says where it
    stopped): a short file must not pass for a complete run.
    """

    def __init__(self, source: str, allow_truncated: bool = False, start: int = 0, stall_timeout: float = 5.0) -> None:
        """start: the first frame to yield (0-based); the frames before it are decoded and dropped (a seek is not
        frame-exact in every codec). stall_timeout: seconds a live source may go without delivering a frame before
        frames() raises a UserError saying it stopped."""
        self.stall_timeout = stall_timeout
        self.name = str(source)
        self.allow_truncated = allow_truncated
        if start < 0:
            raise UserError(f"the start frame must be >= 0, got {start}")
        self.start = start
        self.truncated: str | None = None  # the message, when a video stopped early and that was allowed
        self.frames_read = 0
        self._images: list[Path] | None = None
        self._capture: cv2.VideoCapture | None = None
        self._is_camera = False
        self._grabber = None
        path = Path(source)
        if STREAM_URL.match(self.name):
            self._is_camera = True  # a live stream: no frame count, frames arrive in real time
            # FFmpeg's own read timeout, a little past ours, so that our message comes first and a hung read still
            # returns (its default is 30 s) and lets the capture be released.
            timeout_ms = int(1000 * (stall_timeout + 2.0))
            with quiet_opencv():
                self._capture = cv2.VideoCapture(self.name, cv2.CAP_FFMPEG, [
                    cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, max(timeout_ms, 10000), cv2.CAP_PROP_READ_TIMEOUT_MSEC, timeout_ms])
            if not self._capture.isOpened():
                raise UserError(f"cannot open stream {source}: check the address and that the camera or server is "
                                "reachable from here")
        elif self.name.isdigit() and not path.exists():
            self._is_camera = True
            with quiet_opencv():
                self._capture = cv2.VideoCapture(int(source))
            if not self._capture.isOpened():
                raise UserError(f"cannot open camera {source}: check it is connected, or pass a video file or image folder")
        elif path.is_char_device():
            self._is_camera = True
            with quiet_opencv():
                self._capture = cv2.VideoCapture(str(path))
            if not self._capture.isOpened():
                raise UserError(f"cannot open camera device {source}: it exists but OpenCV cannot capture from it "
                                "(busy, no permission, or not a video device)")
        elif path.is_dir():
            self._images = _image_files(path)
            if not self._images and (path / "img").is_dir():
                self._images = _image_files(path / "img")
            if not self._images:
                raise UserError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in folder {source}")
        elif path.is_file():
            self._capture = cv2.VideoCapture(str(path))
            if not self._capture.isOpened():
                raise UserError(f"cannot read video {source}: not a video format OpenCV can decode")
        elif path.exists():
            raise UserError(f"{source} is neither a video file, an image folder nor a camera device")
        else:
            raise UserError(f"no such file, folder or camera index: {source}")
        self.fps = self._capture.get(cv2.CAP_PROP_FPS) if self._capture is not None else 0.0
        if not self.fps or not np.isfinite(self.fps) or self.fps > 240:
            self.fps = 30.0
        if self._images is not None:
            self.frame_count: int | None = len(self._images)
        elif self._is_camera:
            self.frame_count = None
        else:
            count = int(self._capture.get(cv2.CAP_PROP_FRAME_COUNT))
            self.frame_count = count if count > 0 else None

    @property
    def is_live(self) -> bool:
        """A camera or stream: frames arrive in real time, whether or not they are read."""
        return self._is_camera

    @property
    def dropped(self) -> int:
        """Frames a live source delivered that were never tracked (see frames(latest_only=True))."""
        return self._grabber.dropped if self._grabber is not None else 0

    def start_grabbing(self) -> None:
        """Start reading a live source on a thread now, keeping only the newest frame, so that frames which
        arrive while the model loads (or a box is drawn) do not pile up in the capture's buffer. frames() then
        yields from it. Nothing to do for files and folders."""
        if self.is_live:
            self._grab_newest()

    def _grab_newest(self) -> None:
        if self._grabber is None:
            self._skip_to_start()
            self._grabber = LatestFrameGrabber(self._capture.read, self.name, self.stall_timeout)

    def frames(self, latest_only: bool | None = None) -> Iterator[Frame]:
        """Frame objects (image, 0-based index in the source, arrival time). latest_only (default: for live
        sources) reads on a thread and yields only the newest frame each time, dropping the ones in between."""
        if latest_only is None:
            latest_only = self.is_live
        if not latest_only:
            for number, image in enumerate(self, start=self.start):
                yield Frame(image, number, time.monotonic())
            return
        if self._capture is None:
            raise UserError(f"{self.name} is an image folder: there are no frames to drop")
        self._grab_newest()
        while True:
            frame = self._grabber.next()
            if frame is None:
                break
            self.frames_read = self.start + frame.index + 1
            yield Frame(frame.image, self.start + frame.index, frame.captured_at)
        self._check_complete()

    def skip_pending(self) -> None:
        """A live source's waiting frame is stale (a box was being drawn): the next one is taken instead."""
        if self._grabber is not None:
            self._grabber.skip_pending()

    @property
    def frames_left(self) -> int | None:
        """Frames from the start frame to the end (None when unknown)."""
        return None if self.frame_count is None else max(self.frame_count - self.start, 0)

    def _skip_to_start(self) -> None:
        for skipped in range(self.start):
            if not self._capture.grab():
                raise UserError(f"{self.name} has only {skipped} frames: cannot start at frame {self.start}")
        self.frames_read = self.start

    def __iter__(self) -> Iterator[np.ndarray]:
        if self._images is not None:
            if self.start >= len(self._images):
                raise UserError(f"{self.name} has only {len(self._images)} images: cannot start at frame {self.start}")
            self.frames_read = self.start
            for image_path in self._images[self.start:]:
                frame = cv2.imread(str(image_path), cv2.IMREAD_COLOR)
                if frame is None:
                    raise UserError(f"cannot read image {image_path}")
                self.frames_read += 1
                yield frame
            return
        self._skip_to_start()
        while True:
            ok, frame = self._capture.read()
            if not ok:
                break
            self.frames_read += 1
            yield frame
        self._check_complete()

    def _check_complete(self) -> None:
        if self._is_camera:
            return
        if self.frame_count is not None and self.frames_read < self.frame_count:
            message = (f"{self.name}: stopped at frame {self.frames_read} of {self.frame_count}: the file looks "
                       "truncated (or a frame cannot be decoded)")
            if not self.allow_truncated:
                raise UserError(message + "; pass --allow-truncated to accept the frames read")
            self.truncated = message

    def close(self) -> None:
        if self._grabber is not None and not self._grabber.stop():
            return  # the reader is stuck in the driver: releasing the capture under it could crash the process
        if self._capture is not None:
            self._capture.release()


FONT = cv2.FONT_HERSHEY_SIMPLEX


def put_label(image: np.ndarray, text: str, anchor: tuple[int, int], color, scale: float = 0.5,
              background=(0, 0, 0)) -> None:
    """Text on a filled band with its bottom-left corner at `anchor`, moved inside the image wherever the anchor is
    (a label for a box at the right or top edge would otherwise be cut off)."""
    height, width = image.shape[:2]
    (tw, th), base = cv2.getTextSize(text, FONT, scale, 1)
    x = int(min(max(anchor[0], 0), max(width - tw - 4, 0)))
    y = int(min(max(anchor[1], th + 4), height - base - 2))
    cv2.rectangle(image, (x, y - th - 4), (x + tw + 4, y + base + 2), background, cv2.FILLED)
    cv2.putText(image, text, (x + 2, y), FONT, scale, color, 1, cv2.LINE_AA)


STATE_COLOURS = {"tracking": (0, 255, 0), "uncertain": (0, 220, 255), "lost": (0, 0, 255)}  # BGR
# One colour per target while it is tracked, in target order (BGR): green, azure, magenta, cyan, violet, olive.
# None is close to the uncertain yellow or the lost red, so a target's state reads the same whatever its number.
TARGET_COLOURS = [(0, 255, 0), (255, 128, 0), (255, 0, 255), (255, 255, 0), (255, 100, 140), (0, 160, 110)]


def target_colour(target: int):
    return TARGET_COLOURS[target % len(TARGET_COLOURS)]


def draw_targets(frame: np.ndarray, shown) -> np.ndarray:
    """The frame (copied once) with every target's box: `shown` maps target numbers to TrackResults. One target is
    drawn as draw_box draws it (green), whatever its number; several each get their own colour (target_colour)
    and a "#n" label."""
    out = frame.copy()
    for target, result in shown.items():
        name, colour = (f"#{target}", target_colour(target)) if len(shown) > 1 else ("", None)
        _draw_box_on(out, result.box, result.score, result.lost, colour, name, result.state)
    return out


def draw_box(frame: np.ndarray, box, score: float, lost: bool, color=None, name: str = "",
             state: str | None = None) -> np.ndarray:
    """The frame (copied) with the box and a label (score, and UNCERTAIN or LOST) that stays readable. The colour
    is `color` (default green) while tracking, yellow when uncertain, red when lost."""
    out = frame.copy()
    _draw_box_on(out, box, score, lost, color, name, state)
    return out


def _draw_box_on(out: np.ndarray, box, score: float, lost: bool, color, name: str, state: str | None) -> None:
    """draw_box's drawing, in place."""
    x, y, w, h = (int(round(v)) for v in box)
    state = "lost" if lost else (state or "tracking")
    colour = STATE_COLOURS[state] if state != "tracking" else (color or STATE_COLOURS["tracking"])
    cv2.rectangle(out, (x, y), (x + w, y + h), colour, 2)
    label = f"{name}{' ' if name else ''}{score:.2f}" + ("" if state == "tracking" else f" {state.upper()}")
    (_, text_height), baseline = cv2.getTextSize(label, FONT, 0.5, 1)
    above = y - baseline - 5  # the band's bottom edge then clears the box's top line
    put_label(out, label, (x, above if above > text_height + 4 else y + h + text_height + 6), colour)
