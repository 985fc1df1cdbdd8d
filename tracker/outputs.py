"""What a tracking run writes: the boxes CSV and the annotated video, written so that nothing is lost or corrupt.

* Each output is checked before the first frame (`check_output_path`): a folder, a device, the input itself or
  an unwritable place is refused with a message, instead of failing (or overwriting the input) mid-run.
* Each is written to a hidden partial file beside its target and renamed into place when finalised, so the
  target is either absent or complete. After a hard kill (SIGKILL, power loss) the partial file holds what was
  written: the CSV rows up to the last frame (each row reaches the disk as it is written).
* A write error (disk full, permissions changed) stops the run with a `UserError` naming the path; the CSV
  keeps every whole row written before it, never a half row.
* A video writer cannot report a full disk (OpenCV drops the frames silently and the container, written last,
  is then missing: "moov atom not found"), so `AnnotatedVideoWriter` stops while there is still room to finish
  the file, and checks after finishing that it plays with every frame written.
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from .errors import UserError
from .paths import check_usable_path
from .result import TrackResult
from .drawing import draw_box

CSV_HEADER = "frame,x,y,w,h,score,lost,state,target"
VIDEO_FOURCC = {".avi": "MJPG", ".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v"}


def video_fourcc(path: str | Path, flag: str = "--output") -> str:
    """The codec for a video file name, by its suffix, or a UserError naming the suffixes that work."""
    fourcc = VIDEO_FOURCC.get(Path(path).suffix.lower())
    if fourcc is None:
        raise UserError(f"{flag} {path}: use a .mp4, .avi or .mov file name")
    return fourcc


# Room kept free on the video's disk: enough to write the container's index and close the file.
VIDEO_RESERVE_BYTES = 2 << 20


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def _link_hops(path: Path, limit: int = 40) -> list[Path]:
    """The absolute paths a name goes through when its symbolic links are followed one at a time: /dev/stdout ->
    /proc/self/fd/1 -> the file the shell redirected to (realpath alone would show only the last)."""
    hops = [Path(os.path.abspath(path))]
    while hops[-1].is_symlink() and len(hops) < limit:
        hops.append(Path(os.path.abspath(hops[-1].parent / os.readlink(hops[-1]))))
    return hops + [Path(os.path.realpath(path))]


def check_output_path(path: str | Path, flag: str, inputs=()) -> Path:
    """Refuse, before any work, an output that cannot or must not be written; return it as a Path.

    inputs: paths the run reads (the video, the weights): an output naming one of them would overwrite it.
    """
    target = Path(path)
    if str(path).strip() == "":
        raise UserError(f"{flag}: give a file name")
    check_usable_path(target, flag)
    real = Path(os.path.realpath(target))  # a symbolic link is written through: its target gets the file
    if target.is_dir():
        raise UserError(f"{flag} {path} is a folder: give a file name inside it, e.g. {target / ('out' + (target.suffix or '.csv'))}")
    if target.exists() and not target.is_file():
        raise UserError(f"{flag} {path} is not a regular file (a device, pipe or socket): give a file name")
    special = next((hop for hop in _link_hops(target) if hop.parts[:2] in (("/", "dev"), ("/", "proc"))), None)
    if special is not None:
        raise UserError(f"cannot write {flag} {path}: not a regular file of its own (it goes through {special}); "
                        "give a file name (outputs are written beside their target and renamed onto it, which a device or "
                        "/dev/stdout must not be)")
    for source in inputs:
        if source is not None and (_same_file(target, Path(source)) or real == Path(os.path.realpath(source))):
            raise UserError(f"{flag} {path} is the input {source}: writing it would destroy what is being read; "
                            "choose another file name")
    folder = real.parent
    if not folder.is_dir():
        raise UserError(f"cannot write {path}: folder {target.parent} does not exist")
    probe = folder / f".{target.name}.{os.getpid()}.probe"
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise UserError(f"cannot write {flag} {path}: {exc.strerror or exc} (folder {folder})") from None
    return target


def check_output_dir(path: str | Path, flag: str) -> Path:
    """A folder results can be written to (made if missing), checked before a long run rather than after it."""
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise UserError(f"{flag} {path} is a file, not a folder: give a folder for the results")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".{os.getpid()}.probe"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise UserError(f"cannot write {flag} {path}: {exc.strerror or exc}") from None
    return folder


class _PartialFile:
    """A target path and the hidden partial file beside it that is renamed onto the target when finished."""

    def __init__(self, path: str | Path, flag: str) -> None:
        self.path = Path(path)
        self.flag = flag
        # Through a symbolic link to its target: renaming onto the link itself would replace the link with a file.
        self.target = Path(os.path.realpath(self.path))
        # The suffix stays last: OpenCV picks the video container from it.
        self.partial = self.target.with_name(f".{self.target.stem}.{os.getpid()}.partial{self.target.suffix}")

    def _publish(self) -> None:
        try:
            os.replace(self.partial, self.target)
        except OSError as exc:
            raise UserError(f"cannot move the finished {self.flag} into place at {self.path}: {exc.strerror}; "
                            f"it is kept as {self.partial}") from None

    def _discard(self) -> None:
        try:
            self.partial.unlink()
        except FileNotFoundError:
            pass


# -- box file formats: a new one is a row function and one register_box_format line ------------------------------


@dataclass(frozen=True)
class BoxFormat:
    """How one box file format writes a tracked frame."""

    name: str  # the --format value
    row: Callable[[int, TrackResult, int], str | None]  # (frame index, result, target number) -> a line, or None
    # for a frame the format leaves out
    header: str | None = None  # the file's first line
    one_target: str | None = None  # why the format holds one target only (None: any number of targets)
    frame_numbers: bool = True  # rows say which frame they are (else a frame a live source drops is unaccounted)
    suffixes: tuple[str, ...] = ()  # the file name suffixes it is usually read under (the first is suggested)

    @property
    def one_target_message(self) -> str:
        others = [name for name, fmt in BOX_FORMATS.items() if fmt.one_target is None]
        choices = others[-1] if len(others) < 2 else f"{', '.join(others[:-1])} or {others[-1]}"
        return f"--format {self.name} holds one target's boxes ({self.one_target}): use --format {choices}"


BOX_FORMATS: dict[str, BoxFormat] = {}


def register_box_format(fmt: BoxFormat) -> None:
    BOX_FORMATS[fmt.name] = fmt


def box_format(name: str) -> BoxFormat:
    if name not in BOX_FORMATS:
        raise UserError(f"unknown box format {name!r}: use one of {', '.join(BOX_FORMATS)}")
    return BOX_FORMATS[name]


def _csv_row(frame_index: int, r: TrackResult, target: int) -> str:
    x, y, w, h = r.box
    state = r.state or ("lost" if r.lost else "tracking")
    return f"{frame_index},{x:.2f},{y:.2f},{w:.2f},{h:.2f},{r.score:.4f},{int(r.lost)},{state},{target}\n"


def _mot_row(frame_index: int, r: TrackResult, target: int) -> str | None:
    """MOTChallenge: 1-based frame, pixel coordinates and ids; a lost target is not a detection."""
    if r.lost:
        return None
    x, y, w, h = r.box
    return f"{frame_index + 1},{target + 1},{x + 1:.2f},{y + 1:.2f},{w:.2f},{h:.2f},{r.score:.4f},-1,-1,-1\n"


def _otb_row(frame_index: int, r: TrackResult, target: int) -> str:
    """OTB toolkit results: one box per frame, 1-based (Matlab) pixel coordinates."""
    x, y, w, h = r.box
    return f"{x + 1:.2f},{y + 1:.2f},{w:.2f},{h:.2f}\n"


register_box_format(BoxFormat("csv", _csv_row, header=CSV_HEADER, suffixes=(".csv",)))
register_box_format(BoxFormat("mot", _mot_row, suffixes=(".txt", ".mot")))
register_box_format(BoxFormat("otb", _otb_row, one_target="a row per frame, no target column", frame_numbers=False,
                              suffixes=(".txt",)))
OTB_ONE_TARGET = BOX_FORMATS["otb"].one_target_message


class BoxCsvWriter(_PartialFile):
    """Per-frame boxes, each row on disk when written (one unbuffered write per row), in one of three formats:

    * ``csv`` (default): a header ``frame,x,y,w,h,score,lost,state,target``, then one row per frame and target
      (targets in order within a frame); 0-based pixels, frames and target numbers; state is tracking,
      uncertain or lost.
    * ``mot``: MOTChallenge ``frame,id,x,y,w,h,conf,-1,-1,-1`` with 1-based frames, pixels and ids (id = target
      + 1), no header; frames where a target is lost leave its row out, as a detector would.
    * ``otb``: ``x,y,w,h`` per frame in OTB's 1-based pixels, no header (the OTB/GOT-10k toolkits' results); one
      target only.
    """

    def __init__(self, path: str | Path, flag: str = "--boxes", fmt: str = "csv") -> None:
        super().__init__(path, flag)
        self.format = box_format(fmt)  # an unknown format fails before the file exists
        self.fmt = fmt
        try:
            self._fd = os.open(self.partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
        except OSError as exc:
            raise UserError(f"cannot write {flag} {self.path}: {exc.strerror}") from None
        self.rows = 0  # rows written (a MOT file leaves lost frames out)
        self.frames = 0  # frames given to write()
        self._good_bytes = 0  # file length after the last complete row
        self._failed = False
        if self.format.header is not None:
            try:
                self._write_line(self.format.header + "\n", "the header")
            except UserError:
                self.discard()
                raise

    def _write_line(self, line: str, what: str) -> None:
        view = memoryview(line.encode())
        try:
            while view:
                view = view[os.write(self._fd, view):]
        except OSError as exc:
            self._failed = True
            # A failed write may have landed part of the row: cut back to the last whole row.
            try:
                os.ftruncate(self._fd, self._good_bytes)
            except OSError:
                pass
            raise UserError(f"cannot write {self.flag} {self.path}: {exc.strerror}; stopped at {what}, "
                            f"the file keeps the {self.rows} rows written before") from None
        self._good_bytes += len(line.encode())

    def write(self, frame_index: int, box, score: float, lost: bool, state: str | None = None) -> None:
        """One target's row (target 0)."""
        self.write_frame(frame_index, {0: TrackResult(tuple(box), score, lost, state)})

    def write_frame(self, frame_index: int, shown) -> None:
        """Every target's row of one frame (`shown`: target number -> TrackResult), in one write: a write error
        cuts the file back to the last whole frame, never between two targets of one frame."""
        if self._failed:
            return
        if self.format.one_target is not None and any(target != 0 for target in shown):
            raise UserError(self.format.one_target_message)
        lines = [self.format.row(frame_index, r, target) for target, r in shown.items()]
        lines = [line for line in lines if line is not None]
        self.frames += 1
        if not lines:
            return
        self._write_line("".join(lines), f"frame {frame_index}")
        self.rows += len(lines)

    def discard(self) -> None:
        """Stop without leaving a file (nothing was tracked)."""
        os.close(self._fd)
        self._discard()

    def close(self) -> None:
        """Finish the file and move it into place (an empty run leaves no file)."""
        try:
            os.fsync(self._fd)  # on NFS or under a quota, a full disk may only show here
        except OSError as exc:
            os.close(self._fd)
            raise UserError(f"cannot write {self.flag} {self.path}: {exc.strerror}; the {self.rows} rows written are "
                            f"kept as {self.partial}") from None
        os.close(self._fd)
        if self.frames == 0:
            self._discard()
        else:
            self._publish()


class AnnotatedVideoWriter(_PartialFile):
    """Writes frames with the box drawn (green while tracking, red when lost) to a playable video."""

    def __init__(self, path: str | Path, fps: float, size: tuple[int, int], flag: str = "--output") -> None:
        super().__init__(path, flag)
        fourcc = video_fourcc(path, flag)
        self.size = tuple(size)
        self._writer = cv2.VideoWriter(str(self.partial), cv2.VideoWriter_fourcc(*fourcc), fps, self.size)
        if not self._writer.isOpened():
            self._writer.release()
            self._discard()
            raise UserError(f"cannot write video {path}: check the folder is writable")
        self.frames = 0
        self._largest_frame_bytes = size[0] * size[1] * 3 // 10  # a guess until frames have been measured
        self._written_bytes = 0
        self._room_checked_at = -1  # the frame count at the last disk-space check
        self._last: np.ndarray | None = None  # the last annotated frame

    def ensure_room(self) -> None:
        """A UserError while the disk still has room to finish the video with the frames written so far. Checked
        once per frame: a caller that checks before writing other outputs saves write() the second look."""
        if self._room_checked_at == self.frames:
            return
        free = shutil.disk_usage(self.partial.parent).free
        needed = VIDEO_RESERVE_BYTES + 4 * self._largest_frame_bytes + 64 * self.frames
        if free < needed:
            raise UserError(f"disk almost full: {free / 1e6:.1f} MB left for {self.flag} {self.path}; stopped at "
                            f"frame {self.frames} so that the video stays playable; free some space or write "
                            "elsewhere")
        self._room_checked_at = self.frames

    def write(self, frame: np.ndarray, box, score: float, lost: bool, state: str | None = None) -> None:
        """The frame with the box drawn on it (green, yellow when uncertain, red when lost) and its score."""
        self.write_annotated(draw_box(frame, box, score, lost, state=state))

    def write_annotated(self, image: np.ndarray) -> None:
        """A frame already drawn on (several targets, an overlay)."""
        if (image.shape[1], image.shape[0]) != self.size:
            raise UserError(f"frame {self.frames} is {image.shape[1]}x{image.shape[0]}, the video {self.path} is "
                            f"{self.size[0]}x{self.size[1]}: a video holds one frame size")
        self.ensure_room()
        self._last = image
        self._append(image)

    def repeat_last(self, count: int) -> None:
        """The last frame again `count` times: a live source's dropped frames, so the video plays in real time."""
        for _ in range(count if self._last is not None else 0):
            self.ensure_room()
            self._append(self._last)

    def _append(self, image: np.ndarray) -> None:
        self._writer.write(image)
        self.frames += 1
        try:
            size = self.partial.stat().st_size
        except OSError:
            return
        self._largest_frame_bytes = max(self._largest_frame_bytes, size - self._written_bytes)
        self._written_bytes = size

    def discard(self) -> None:
        """Stop without leaving a file (nothing was tracked)."""
        self._writer.release()
        self._discard()

    def close(self) -> None:
        """Finish the container, check it plays with every frame written, and move it into place."""
        self._writer.release()
        if self.frames == 0:
            self._discard()
            return
        capture = cv2.VideoCapture(str(self.partial))
        indexed = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) if capture.isOpened() else 0
        capture.release()
        if indexed < self.frames:  # checked before the rename: a bad file must not replace a good one
            raise UserError(f"the video {self.path} could not be finished: its index lists {indexed} of the "
                            f"{self.frames} frames written (was the disk full?); what was written is kept as "
                            f"{self.partial}")
        self._publish()
