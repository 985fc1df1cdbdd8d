"""Frame sources (video file, image folder, camera) and the annotated-video writer, all through OpenCV."""
from __future__ import annotations

import os
import sys
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


class FrameSource:
    """Iterates BGR frames. `frame_count` is None when unknown (cameras); `fps` falls back to 30."""

    def __init__(self, source: str) -> None:
        self.name = source
        self._images: list[Path] | None = None
        self._capture: cv2.VideoCapture | None = None
        path = Path(source)
        if source.isdigit() and not path.exists():
            self._capture = cv2.VideoCapture(int(source))
            if not self._capture.isOpened():
                raise UserError(f"cannot open camera {source}: check it is connected, or pass a video file or image folder")
        elif path.is_dir():
            self._images = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if not self._images:
                raise UserError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in folder {source}")
        elif path.is_file():
            self._capture = cv2.VideoCapture(str(path))
            if not self._capture.isOpened():
                raise UserError(f"cannot read video {source}: not a video format OpenCV can decode")
        else:
            raise UserError(f"no such file, folder or camera index: {source}")
        self.fps = self._capture.get(cv2.CAP_PROP_FPS) if self._capture is not None else 0.0
        if not self.fps or not np.isfinite(self.fps) or self.fps > 240:
            self.fps = 30.0
        if self._images is not None:
            self.frame_count: int | None = len(self._images)
        else:
            count = int(self._capture.get(cv2.CAP_PROP_FRAME_COUNT))
            self.frame_count = count if count > 0 else None

    def __iter__(self) -> Iterator[np.ndarray]:
        if self._images is not None:
            for image_path in self._images:
                frame = cv2.imread(str(image_path), cv2.IMREAD_COLOR)
                if frame is None:
                    raise UserError(f"cannot read image {image_path}")
                yield frame
            return
        while True:
            ok, frame = self._capture.read()
            if not ok:
                return
            yield frame

    def close(self) -> None:
        if self._capture is not None:
            self._capture.release()


class AnnotatedWriter:
    """Writes frames with the box drawn: green while tracking, red when lost."""

    def __init__(self, path: str, fps: float, size: tuple[int, int]) -> None:
        suffix = Path(path).suffix.lower()
        fourcc = {".avi": "MJPG", ".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v"}.get(suffix)
        if fourcc is None:
            raise UserError(f"--output {path}: use a .mp4, .avi or .mov file name")
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*fourcc), fps, size)
        if not self._writer.isOpened():
            raise UserError(f"cannot write video {path}: check the folder is writable")

    def write(self, frame: np.ndarray, box, score: float, lost: bool) -> None:
        self._writer.write(draw_box(frame, box, score, lost))

    def close(self) -> None:
        self._writer.release()


def draw_box(frame: np.ndarray, box, score: float, lost: bool) -> np.ndarray:
    out = frame.copy()
    x, y, w, h = (int(round(v)) for v in box)
    color = (0, 0, 255) if lost else (0, 255, 0)
    cv2.rectangle(out, (x, y), (x + w, y + h), color, 2)
    label = f"{score:.2f}" + (" lost" if lost else "")
    cv2.putText(out, label, (x, max(y - 6, 12)), cv2.FONT_HERSHEY_SIMPLEX, 0.5, color, 1, cv2.LINE_AA)
    return out
