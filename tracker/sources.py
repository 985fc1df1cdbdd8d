"""Frame sources through OpenCV: video files, image folders, cameras and network streams, one `Frame` at a time.

A camera or stream delivers frames whether or not the tracker keeps up. Read on the tracking thread, every frame
the tracker was too slow for waits in OpenCV's or the network's buffer, so the tracker falls further behind the
scene with every frame (and after the seconds spent drawing the first box, it starts seconds behind). So a live
source is read on a thread that keeps only the newest frame (`LatestFrameGrabber`); the tracker takes that one
and the frames it never saw are counted as dropped. A file shown in a window is played at its own frame rate
(`Pacer`). The first box stored beside a clip is read here too (`default_box`), for `batch` and `bench` alike.
"""
from __future__ import annotations

import atexit
import re
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import cv2
import numpy as np

from .errors import UserError
from .paths import check_usable_path

# Network sources OpenCV's FFmpeg backend opens (IP cameras, phone camera apps, media servers).
STREAM_URL = re.compile(r"^(https?|rtsps?|rtmp|rtp|udp|tcp|srt)://", re.IGNORECASE)
MAX_TIMEOUT_MS = 2**31 - 1  # OpenCV's timeout properties are C ints
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
# How long a camera's read may block before OpenCV's V4L2 backend gives up on its own (its select() timeout).
CAMERA_READ_LIMIT_SECONDS = 10.0
# A stream's read gives up this long after our stall timeout (FFmpeg's read timeout, set in _open_stream), so that
# our message comes first and a hung read still returns.
STREAM_READ_MARGIN_SECONDS = 2.0
MAX_EXIT_WAIT_SECONDS = 30.0  # the longest the process waits on its way out for a reader stuck in a read


@dataclass(frozen=True)
class Frame:
    image: np.ndarray  # BGR uint8
    index: int  # 0-based frame number in the source (counting the frames dropped before it)
    captured_at: float  # time.monotonic() when the source delivered it


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


def _open_stream(url: str, stall_timeout: float) -> cv2.VideoCapture:
    # FFmpeg's own read timeout, a little past ours, so that our message comes first and a hung read still
    # returns (its default is 30 s) and lets the capture be released. OpenCV takes it as a 32-bit int of
    # milliseconds: a longer (or infinite) stall timeout is "never" to FFmpeg too.
    timeout_ms = int(min(1000 * (stall_timeout + STREAM_READ_MARGIN_SECONDS), MAX_TIMEOUT_MS))
    with quiet_opencv():
        capture = cv2.VideoCapture(url, cv2.CAP_FFMPEG, [
            cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, max(timeout_ms, 10000), cv2.CAP_PROP_READ_TIMEOUT_MSEC, timeout_ms])
    if not capture.isOpened():
        raise UserError(f"cannot open stream {url}: it is unreachable or sends nothing FFmpeg can decode as "
                        "video; check the address and that it is a camera's or server's video stream")
    return capture


def _open_camera(device, refusal: str) -> cv2.VideoCapture:
    with quiet_opencv():
        capture = cv2.VideoCapture(device)
    if not capture.isOpened():
        raise UserError(refusal)
    return capture


def _folder_images(path: Path, source: str) -> list[Path]:
    images = _image_files(path)
    if not images and (path / "img").is_dir():
        images = _image_files(path / "img")
    if not images:
        raise UserError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in folder {source}")
    for image in images:  # all of them now, not at the frame where one would crash OpenCV
        check_usable_path(image, "image")
    return images


# Codecs FFmpeg gives a text file it renders as frames (its tty demuxer): never a video someone meant to track.
TEXT_CODECS = {b"ansi", b"text", b"srt ", b"ass ", b"subr"}


def _looks_like_text(path: Path) -> bool:
    """A file whose first 4 KiB are UTF-8 text without a NUL byte: no video container or image starts so."""
    try:
        with open(path, "rb") as file:
            head = file.read(4096)
    except OSError:
        return False
    if not head or b"\0" in head:
        return False
    for cut in range(4):  # the 4 KiB may end inside a multi-byte character
        try:
            head[:len(head) - cut].decode("utf-8")
            return True
        except UnicodeDecodeError:
            continue
    return False


def _open_file(path: Path, source: str) -> cv2.VideoCapture:
    not_video = f"cannot read video {source}: it is a text file, not a video or image; give a video file, an " \
                "image folder, a camera or a stream"
    if _looks_like_text(path):
        raise UserError(not_video)
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise UserError(f"cannot read video {source}: not a video format OpenCV can decode")
    if (int(capture.get(cv2.CAP_PROP_FOURCC)) & 0xFFFFFFFF).to_bytes(4, "little") in TEXT_CODECS:
        capture.release()
        raise UserError(not_video)
    return capture


def _read_jpeg_packets(capture: cv2.VideoCapture) -> bool:
    """Switch an MJPEG stream's capture to hand out each JPEG as received (True when it did). OpenCV's decoder
    would otherwise scale a frame of another size to the first frame's, silently, and a part that is not a JPEG
    ends the read; decoded here, a size change shows as it is and a damaged part is one frame skipped."""
    if (int(capture.get(cv2.CAP_PROP_FOURCC)) & 0xFFFFFFFF).to_bytes(4, "little") != b"MJPG":
        return False
    return bool(capture.set(cv2.CAP_PROP_FORMAT, -1))


class LiveReader:
    """read() -> (ok, image) for a camera or stream that skips the frames that do not decode (counted in
    `corrupt`) instead of ending the session at the first one, and times the frames' arrival (`measured_fps`).

    A read that fails is retried: a damaged frame fails once and the next one reads, while the end of a stream
    (or an unplugged camera) fails every time, at once, and ends the reading after MAX_FAILED_READS in a row.
    """

    MAX_FAILED_READS = 10
    PROBED_FRAMES = 5  # FFmpeg reads the first frames while probing the stream: they arrive in a burst

    def __init__(self, capture: cv2.VideoCapture, jpeg_packets: bool = False) -> None:
        self.capture = capture
        self.jpeg_packets = jpeg_packets
        self.corrupt = 0
        self.frames = 0
        self._first_at = self._last_at = 0.0

    def read(self) -> tuple[bool, np.ndarray | None]:
        failed = 0
        while failed < self.MAX_FAILED_READS:
            ok, data = self.capture.read()
            image = self._image(ok, data)
            if image is not None:
                self.corrupt += failed  # failures followed by a frame were damaged frames, not the end
                self._arrived(time.monotonic())
                return True, image
            if ok:  # a packet that is no JPEG: damaged, and the stream goes on
                self.corrupt += 1
            else:
                failed += 1
        return False, None

    def _image(self, ok: bool, data: np.ndarray | None) -> np.ndarray | None:
        """The frame a read gave: as read, or decoded from the JPEG packet of an MJPEG stream (None: no frame)."""
        if not ok or data is None or not data.size:
            return None
        return cv2.imdecode(data, cv2.IMREAD_COLOR) if self.jpeg_packets else data

    def _arrived(self, now: float) -> None:
        if self.frames == self.PROBED_FRAMES:
            self._first_at = now
        self._last_at = now
        self.frames += 1

    def measured_fps(self) -> float | None:
        """Frames per second as they arrived after the probing burst (None before two such frames)."""
        timed = self.frames - self.PROBED_FRAMES
        if timed < 2 or self._last_at <= self._first_at:
            return None
        return (timed - 1) / (self._last_at - self._first_at)


class FrameSource:
    """The frames of a video file, an image folder (or its img/ subfolder, the OTB layout), a camera index, a
    camera device such as /dev/video0 or a stream URL, as `Frame`s from frames().

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
        self._grabber: LatestFrameGrabber | None = None
        self._live: LiveReader | None = None
        self._open(source)
        self.fps = self._capture.get(cv2.CAP_PROP_FPS) if self._capture is not None else 0.0
        if not self.fps or not np.isfinite(self.fps) or self.fps > 240:
            self.fps = 30.0
        self.frame_count = self._frame_count()

    def _open(self, source: str) -> None:
        path = Path(source)
        if not STREAM_URL.match(self.name):
            check_usable_path(source, "source")
        if STREAM_URL.match(self.name):
            self._is_camera = True  # a live stream: no frame count, frames arrive in real time
            self._capture = _open_stream(self.name, self.stall_timeout)
            self._live = LiveReader(self._capture, jpeg_packets=_read_jpeg_packets(self._capture))
        elif self.name.isdigit() and not path.exists():
            self._is_camera = True
            self._capture = _open_camera(int(source), f"cannot open camera {source}: check it is connected, or pass "
                                                      "a video file or image folder")
            self._live = LiveReader(self._capture)
        elif path.is_char_device():
            self._is_camera = True
            self._capture = _open_camera(str(path), f"cannot open camera device {source}: it exists but OpenCV "
                                                    "cannot capture from it (busy, no permission, or not a video "
                                                    "device)")
            self._live = LiveReader(self._capture)
        elif path.is_dir():
            self._images = _folder_images(path, source)
        elif path.is_file():
            self._capture = _open_file(path, source)
        elif path.exists():
            raise UserError(f"{source} is neither a video file, an image folder nor a camera device")
        else:
            raise UserError(f"no such file, folder or camera index: {source}")

    def _frame_count(self) -> int | None:
        if self._images is not None:
            return len(self._images)
        if self._is_camera:
            return None
        count = int(self._capture.get(cv2.CAP_PROP_FRAME_COUNT))
        return count if count > 0 else None

    @property
    def is_live(self) -> bool:
        """A camera or stream: frames arrive in real time, whether or not they are read."""
        return self._is_camera

    @property
    def dropped(self) -> int:
        """Frames a live source delivered that were never tracked (see frames(latest_only=True))."""
        return self._grabber.dropped if self._grabber is not None else 0

    @property
    def corrupt(self) -> int:
        """Frames of a live source that did not decode and were skipped."""
        return self._live.corrupt if self._live is not None else 0

    def _read_one(self) -> tuple[bool, np.ndarray | None]:
        return self._live.read() if self._live is not None else self._capture.read()

    def recording_fps(self, frames: int = 15, wait: float = 2.0) -> float:
        """The frame rate to record at. A live source's header rate is often a guess (MJPEG streams have none,
        and OpenCV says 25), so its frames are timed as they arrive: up to `wait` seconds for `frames` of them
        (they keep arriving while the model loads), else what has been measured by then."""
        if self._live is None or self._grabber is None:
            return self.fps
        deadline = time.monotonic() + wait
        while self._live.frames < frames and time.monotonic() < deadline and self._grabber.running:
            time.sleep(0.02)
        measured = self._live.measured_fps()
        return round(measured, 2) if measured is not None and 0.1 <= measured <= 240 else self.fps

    @property
    def frames_left(self) -> int | None:
        """Frames from the start frame to the end (None when unknown)."""
        return None if self.frame_count is None else max(self.frame_count - self.start, 0)

    def start_grabbing(self) -> None:
        """Start reading a live source on a thread now, keeping only the newest frame, so that frames which
        arrive while the model loads (or a box is drawn) do not pile up in the capture's buffer. frames() then
        yields from it. Nothing to do for files and folders."""
        if self.is_live:
            self._grab_newest()

    def _grab_newest(self) -> None:
        if self._grabber is None:
            self._skip_to_start()
            # How long a read may block before the backend gives up by itself; capped, so that leaving with a
            # stream read stuck (--stall-timeout inf) waits a bounded time before the direct exit.
            read_limit = CAMERA_READ_LIMIT_SECONDS if not STREAM_URL.match(self.name) else \
                min(self.stall_timeout + STREAM_READ_MARGIN_SECONDS, MAX_EXIT_WAIT_SECONDS)
            self._grabber = LatestFrameGrabber(self._read_one, self.name, self.stall_timeout,
                                               release=self._capture.release, read_limit=read_limit)

    def frames(self, latest_only: bool | None = None) -> Iterator[Frame]:
        """The frames from the start frame on. latest_only (default: for live sources) reads on a thread and
        yields only the newest frame each time, dropping the ones in between."""
        if latest_only is None:
            latest_only = self.is_live
        if not latest_only:
            reader = self._read_images() if self._images is not None else self._read_capture()
            for number, image in enumerate(reader, start=self.start):
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

    def _skip_to_start(self) -> None:
        for skipped in range(self.start):
            if not self._capture.grab():
                raise UserError(f"{self.name} has only {skipped} frames: cannot start at frame {self.start}")
        self.frames_read = self.start

    def _read_images(self) -> Iterator[np.ndarray]:
        if self.start >= len(self._images):
            raise UserError(f"{self.name} has only {len(self._images)} images: cannot start at frame {self.start}")
        self.frames_read = self.start
        for image_path in self._images[self.start:]:
            image = cv2.imread(str(image_path), cv2.IMREAD_COLOR)
            if image is None:
                raise UserError(f"cannot read image {image_path}")
            self.frames_read += 1
            yield image

    def _read_capture(self) -> Iterator[np.ndarray]:
        self._skip_to_start()
        while True:
            ok, image = self._read_one()
            if not ok:
                break
            self.frames_read += 1
            yield image
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
        if self._grabber is not None:
            # The grabber releases the capture: at once when its reader has stopped, else from the reader thread
            # when its read returns (releasing the capture under a read could crash the process).
            self._grabber.stop()
        elif self._capture is not None:
            self._capture.release()


class LatestFrameGrabber:
    """Reads `read()` (cv2.VideoCapture.read or alike) on a thread and hands out only the newest frame.

    `next()` blocks until a frame newer than the last one handed out arrives and returns it; None at the end of the
    stream (read() gave no frame). When the source delivers nothing for `stall_timeout` seconds, next() raises a
    UserError (a camera unplugged, a stream that hung) instead of waiting for ever.

    release: frees the capture read from, called once and never during a read: by stop() when the reader has
    ended, else by the reader thread itself when its read returns. read_limit: seconds within which a read
    returns even from a silent source (the backend's own timeout; None: unknown). A reader still inside a read
    when Python shuts down is ended by the interpreter from inside OpenCV's C++ code, which aborts the process
    ("terminate called without an active exception", SIGABRT) after every output was written; so the process
    waits for such readers on its way out (wait_for_readers), up to their read_limit.
    """

    def __init__(self, read: Callable[[], tuple[bool, np.ndarray | None]], name: str,
                 stall_timeout: float = 5.0, release: Callable[[], None] | None = None,
                 read_limit: float | None = None) -> None:
        self.name = name
        self.read_limit = read_limit
        self._release = release
        self._release_lock = threading.Lock()
        self._give_up_at: float | None = None  # when a stop was asked and the read is not over by then
        self._log_level: int | None = None  # OpenCV's log level to restore once a read left running returns
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
            if self._stop.is_set():  # close() found this thread in a read and left the release to it
                self._release_once()

    def _release_once(self) -> None:
        with self._release_lock:
            release, self._release = self._release, None
            if release is not None:
                release()
            if self._log_level is not None:
                cv2.utils.logging.setLogLevel(self._log_level)
                self._log_level = None

    def _quiet_until_released(self) -> None:
        """The read left running ends with the backend's own timeout warning ("Stream timeout triggered"), after
        our message said the source stopped: OpenCV is kept quiet until the reader releases the capture."""
        with self._release_lock:
            if self._release is not None and self._log_level is None:
                self._log_level = cv2.utils.logging.getLogLevel()
                cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)

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
                self._changed.wait(min(left, threading.TIMEOUT_MAX))  # --stall-timeout inf: never
            frame, self._latest = self._latest, None
            return frame

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def skip_pending(self) -> None:
        """Count the frame waiting now as dropped (the caller was busy elsewhere, e.g. a box was being drawn)."""
        with self._changed:
            if self._latest is not None:
                self._latest = None
                self.dropped += 1

    def stop(self, timeout: float = 1.0) -> bool:
        """Ask the reader to stop and release the capture; True when it has stopped. False when a read is still
        blocked in the driver: the reader thread then releases the capture itself when the read returns, and
        wait_for_readers waits for it before the process exits."""
        self._stop.set()
        self._thread.join(timeout)
        if self._thread.is_alive():
            self._quiet_until_released()
            if self.read_limit is not None and self._give_up_at is None:
                self._give_up_at = time.monotonic() + self.read_limit + 1.0
                _READERS_IN_A_READ.append(self)
            return False
        self._release_once()
        return True


_READERS_IN_A_READ: list[LatestFrameGrabber] = []  # stopped while blocked in a read with a known limit


def wait_for_readers() -> bool:
    """Wait for the readers stopped while blocked in a read, each until its read limit has passed; True when none
    is left inside a read (the process may then exit normally). Runs at exit; `siamtrack` calls it before."""
    for grabber in list(_READERS_IN_A_READ):
        grabber._thread.join(max(grabber._give_up_at - time.monotonic(), 0.0))
        if not grabber._thread.is_alive():
            _READERS_IN_A_READ.remove(grabber)
    return not _READERS_IN_A_READ


atexit.register(wait_for_readers)  # atexit runs while daemon threads may still finish their read safely


class Pacer:
    """Sleeps so that frames are shown at `fps` (a file played at its own speed); reset() after a pause keeps the
    schedule from rushing to catch up."""

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


def parse_boxes(path: Path) -> np.ndarray:
    """Read ``x,y,w,h`` lines separated by commas, tabs or spaces (NaN allowed)."""
    rows = []
    for i, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = [p for p in re.split(r"[,\s;]+", line.strip()) if p]
        try:
            vals = [float(p) for p in parts]
        except ValueError:
            raise ValueError(f"{path.name} line {i}: not numbers: {line.strip()!r}") from None
        if len(vals) != 4:
            raise ValueError(f"{path.name} line {i}: expected 4 values x,y,w,h, got {len(vals)}")
        rows.append(vals)
    if not rows:
        raise ValueError(f"{path.name} is empty")
    return np.asarray(rows, dtype=float)


def default_box(source: Path):
    """The first GT / init box stored next to a clip (``<stem>_groundtruth.txt``, ``<stem>_init.txt``,
    or ``groundtruth.txt`` / ``groundtruth_rect.txt`` in an image folder), else None."""
    source = Path(source)
    if source.is_dir():
        cands = [source / "groundtruth.txt", source / "groundtruth_rect.txt"]
    else:
        cands = [source.with_name(source.stem + "_groundtruth.txt"), source.with_name(source.stem + "_init.txt")]
    for c in cands:
        if c.is_file():
            box = parse_boxes(c)[0]
            if c.name == "groundtruth_rect.txt":
                box[:2] -= 1.0
            return tuple(float(v) for v in box)
    return None
