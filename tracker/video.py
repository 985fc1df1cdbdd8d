"""Frame sources (video file, image folder, camera) and the box overlay, all through OpenCV."""
from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from .errors import UserError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}


def has_display() -> bool:
    """cv2.imshow aborts the whole process without a display, so every GUI path asks this first."""
    if sys.platform.startswith("linux"):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


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

    def __init__(self, source: str, allow_truncated: bool = False, start: int = 0) -> None:
        """start: the first frame to yield (0-based); the frames before it are decoded and dropped (a seek is not
        frame-exact in every codec)."""
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
        path = Path(source)
        if self.name.isdigit() and not path.exists():
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
        if self._is_camera:
            return
        if self.frame_count is not None and self.frames_read < self.frame_count:
            message = (f"{self.name}: stopped at frame {self.frames_read} of {self.frame_count}: the file looks "
                       "truncated (or a frame cannot be decoded)")
            if not self.allow_truncated:
                raise UserError(message + "; pass --allow-truncated to accept the frames read")
            self.truncated = message

    def close(self) -> None:
        if self._capture is not None:
            self._capture.release()


def draw_box(frame: np.ndarray, box, score: float, lost: bool) -> np.ndarray:
    out = frame.copy()
    x, y, w, h = (int(round(v)) for v in box)
    color = (0, 0, 255) if lost else (0, 255, 0)
    cv2.rectangle(out, (x, y), (x + w, y + h), color, 2)
    label = f"{score:.2f}" + (" lost" if lost else "")
    cv2.putText(out, label, (x, max(y - 6, 12)), cv2.FONT_HERSHEY_SIMPLEX, 0.5, color, 1, cv2.LINE_AA)
    return out
