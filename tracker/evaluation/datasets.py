"""Benchmark sequences on disk: OTB and GOT-10k layouts, and videos with ground truth.

Boxes are ``x,y,w,h`` in 0-based continuous pixels everywhere in this package
(OTB files are 1-based Matlab coordinates: x-1, y-1 on loading).

* OTB:     ``<root>/<Seq>/img/0001.jpg ...`` + ``<Seq>/groundtruth_rect.txt``
           (or ``groundtruth_rect.1.txt``, ``.2.txt`` for several targets, which
           become sequences ``<Seq>.1``, ``<Seq>.2``).
* GOT-10k: ``<root>/list.txt`` (optional), ``<root>/<seq>/00000001.jpg ...`` +
           ``<seq>/groundtruth.txt``; ``absence.label`` / ``cover.label`` are honoured.
* Video:   ``<root>/<name>/video.mp4`` (any video OpenCV decodes: ``video.*``) + ``<name>/groundtruth.txt``,
           0-based, one line per decoded frame (``../shared/data/val-hard``; users' own annotated clips).

A single sequence folder of either kind may also be given as the root. A sequence folder's optional
``meta.json`` may name the sequence's OTB attributes (``"attributes": "SV,OCC,FM"`` or a list of codes), as
val-hard's do; eval then adds a per-attribute table.
GT line i belongs to the i-th image in name order (OTB ``David`` starts at image 300,
as in the OTB toolkit); images past the last GT line are not tracked.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from tracker.errors import UserError
from tracker.result import check_box
from tracker.sources import parse_boxes

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp"}
VIDEO_EXTS = {".mp4", ".avi", ".mov", ".mkv", ".m4v", ".webm"}
OTB_START_FRAME = {"david": 300}  # 1-based first annotated image (OTB toolkit cfg)


@dataclass
class Sequence:
    """One target's frames (image files, or a video) and its ground truth, one box per frame."""
    name: str
    frames: list[Path]                  # image files; empty for a video
    gt: np.ndarray                      # (N, 4) float, NaN rows allowed
    valid: np.ndarray                   # (N,) bool: frame is scored
    note: str = ""
    video: Path | None = None
    attributes: tuple[str, ...] = ()    # OTB attribute codes from <folder>/meta.json (FM, DEF, OCC, SV, ...)
    _size: tuple[int, int] | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.gt)

    @property
    def folder(self) -> Path:
        """The sequence's own folder."""
        if self.video is not None:
            return self.video.parent
        folder = self.frames[0].parent
        return folder.parent if folder.name == "img" else folder  # OTB keeps frames in <Seq>/img/

    @property
    def image_size(self) -> tuple[int, int]:
        """(width, height) of the first frame, read from the file header (a video's is read when it loads)."""
        if self._size is None:
            from PIL import Image
            with Image.open(self.frames[0]) as im:
                self._size = im.size
        return self._size

    def images(self, lines=None):
        """Yield (frame index, BGR image) in order, for every frame or for the sorted indices in `lines`. An image
        that cannot be decoded, or a video that ends early, is a ValueError naming it."""
        wanted = range(len(self)) if lines is None else sorted(set(lines))
        if self.video is None:
            for i in wanted:
                image = cv2.imread(str(self.frames[i]), cv2.IMREAD_COLOR)  # gray -> 3 channels
                if image is None:
                    raise ValueError(f"cannot decode {self.frames[i].name}")
                yield i, image
            return
        capture = cv2.VideoCapture(str(self.video))
        try:
            position = 0
            for i in wanted:
                while position < i:  # frames not asked for are decoded but not converted
                    if not capture.grab():
                        break
                    position += 1
                ok, image = capture.read() if position == i else (False, None)
                if not ok:
                    raise ValueError(f"{self.video.name} ended at frame {position} of the {len(self)} its "
                                     "ground truth has")
                position += 1
                yield i, image
        finally:
            capture.release()


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTS and p.is_file())


def _label(path: Path, n: int) -> np.ndarray | None:
    if not path.is_file():
        return None
    vals = np.asarray([float(v) for v in path.read_text().split()])
    return vals[:n] if len(vals) >= n else None


def _make(name: str, images: list[Path], gt: np.ndarray, note: str = "",
          absent: np.ndarray | None = None, video: Path | None = None) -> Sequence:
    size = None
    if video is not None:
        capture = cv2.VideoCapture(str(video))
        opened, count = capture.isOpened(), int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        size = (int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)))
        capture.release()
        if not opened:
            raise ValueError(f"cannot open {video.name} (not a video OpenCV can decode)")
        if 0 < count < len(gt):  # the header's count; a video that ends sooner is caught while reading
            raise ValueError(f"{len(gt)} GT lines but {video.name} has {count} frames")
        if count > len(gt):
            note = (note + "; " if note else "") + f"{count} frames, {len(gt)} GT lines: tracking the first {len(gt)}"
    elif not images:
        raise ValueError("no images")
    elif len(gt) > len(images):
        raise ValueError(f"{len(gt)} GT lines but only {len(images)} images")
    elif len(images) > len(gt):
        note = (note + "; " if note else "") + f"{len(images)} images, {len(gt)} GT lines: tracking the first {len(gt)}"
        images = images[:len(gt)]
    valid = np.isfinite(gt).all(1) & (np.nan_to_num(gt[:, 2]) > 0) & (np.nan_to_num(gt[:, 3]) > 0)
    if absent is not None:
        valid &= ~absent
    if not valid[0]:
        raise ValueError("first GT box is missing or empty: cannot initialise")
    seq = Sequence(name, images, gt, valid, note, video=video, _size=size)
    width, height = seq.image_size
    try:
        check_box(gt[0], (height, width))  # the tracker's own check, so a bad first box is named here, not mid-run
    except UserError as exc:
        raise ValueError(f"first GT box cannot initialise a tracker: {exc}") from None
    return seq


def _otb_gt_files(seq_dir: Path) -> list[Path]:
    return sorted(p for p in seq_dir.glob("groundtruth_rect*.txt")
                  if re.fullmatch(r"groundtruth_rect(\.\d+)?\.txt", p.name))


def _load_otb(seq_dir: Path) -> list[Sequence]:
    files = _otb_gt_files(seq_dir)
    if not files:
        raise ValueError("no groundtruth_rect.txt")
    img_dir = seq_dir / "img"
    if not img_dir.is_dir():
        raise ValueError("no img/ folder")
    images = _images(img_dir)
    start = OTB_START_FRAME.get(seq_dir.name.lower(), 1)
    if start > 1 and len(images) >= start:
        images = images[start - 1:]
    seqs = []
    for f in files:
        gt = parse_boxes(f)
        gt[:, :2] -= 1.0  # Matlab 1-based -> 0-based
        suffix = f.name[len("groundtruth_rect"):-len(".txt")]  # "" or ".2"
        seqs.append(_make(seq_dir.name + suffix, images, gt))
    return seqs


def _load_got(seq_dir: Path) -> list[Sequence]:
    f = seq_dir / "groundtruth.txt"
    if not f.is_file():
        raise ValueError("no groundtruth.txt")
    gt = parse_boxes(f)
    n = len(gt)
    absent = _label(seq_dir / "absence.label", n)
    absent = absent > 0 if absent is not None else None
    cover = _label(seq_dir / "cover.label", n)
    if cover is not None:
        absent = (cover <= 0) if absent is None else (absent | (cover <= 0))
    if absent is not None:
        absent[0] = False  # the first frame is always the initialisation box
    return [_make(seq_dir.name, _images(seq_dir), gt, absent=absent)]


def _video_file(seq_dir: Path) -> Path | None:
    """The sequence's video (video.mp4, or video.<other extension>) when it has groundtruth.txt beside it."""
    if not (seq_dir / "groundtruth.txt").is_file():
        return None
    return next((p for p in sorted(seq_dir.glob("video.*")) if p.suffix.lower() in VIDEO_EXTS and p.is_file()), None)


def _load_video(seq_dir: Path) -> list[Sequence]:
    video = _video_file(seq_dir)
    if video is None:
        raise ValueError("no video.mp4 with groundtruth.txt beside it")
    return [_make(seq_dir.name, [], parse_boxes(seq_dir / "groundtruth.txt"), video=video)]


def read_attributes(seq_dir: Path) -> tuple[str, ...]:
    """The OTB attribute codes in ``<seq_dir>/meta.json`` (a comma-separated string or a list), upper case, in
    file order; () when there is no meta.json, it names none, or it cannot be read (it is optional metadata:
    a broken one costs the per-attribute table, not the evaluation)."""
    try:
        value = json.loads((Path(seq_dir) / "meta.json").read_text()).get("attributes")
    except (OSError, ValueError, AttributeError):
        return ()
    codes = value.split(",") if isinstance(value, str) else value if isinstance(value, list) else []
    return tuple(dict.fromkeys(str(c).strip().upper() for c in codes if str(c).strip()))


def detect_layout(root: Path) -> str:
    """'otb', 'got10k', 'video', or one of them with '-seq' (a single sequence folder)."""
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"dataset folder not found: {root}")
    if _video_file(root) is not None:
        return "video-seq"
    if (root / "groundtruth.txt").is_file():
        return "got10k-seq"
    if _otb_gt_files(root) and (root / "img").is_dir():
        return "otb-seq"
    subdirs = [d for d in root.iterdir() if d.is_dir()]
    if any(_video_file(d) is not None for d in subdirs):
        return "video"
    if (root / "list.txt").is_file():
        return "got10k"
    if any(_otb_gt_files(d) for d in subdirs):
        return "otb"
    if any((d / "groundtruth.txt").is_file() for d in subdirs):
        return "got10k"
    raise UserError(f"unknown dataset layout in {root}: expected OTB (<Seq>/img/ + groundtruth_rect.txt), "
                    "GOT-10k (list.txt, <seq>/groundtruth.txt + images) or videos (<name>/video.mp4 + "
                    "<name>/groundtruth.txt)")


def load_dataset(root, names: list[str] | None = None):
    """Return (layout, sequences, problems); problems maps a skipped sequence name to the reason.

    ``names`` picks a subset (for OTB multi-target folders ``Jogging`` selects ``Jogging.1`` and ``.2``).
    """
    root = Path(root)
    layout = detect_layout(root)
    if layout.endswith("-seq"):
        dirs = [root]
    elif layout in ("got10k", "video") and (root / "list.txt").is_file():
        dirs = [root / n.strip() for n in (root / "list.txt").read_text().split() if n.strip()]
    else:
        dirs = sorted(d for d in root.iterdir() if d.is_dir())
    loader = {"otb": _load_otb, "got10k": _load_got, "video": _load_video}[layout.removesuffix("-seq")]
    wanted = None if names is None else list(dict.fromkeys(names))
    sequences: list[Sequence] = []
    problems: dict[str, str] = {}
    found = set()
    for d in dirs:
        if wanted is not None and d.name not in wanted and not any(w.startswith(d.name + ".") for w in wanted):
            continue
        if not d.is_dir():
            problems[d.name] = "folder missing"
            found.add(d.name)
            continue
        try:
            seqs = loader(d)
        except (ValueError, OSError) as e:
            problems[d.name] = str(e)
            found.add(d.name)
            continue
        attributes = read_attributes(d)
        for s in seqs:
            if wanted is None or s.name in wanted or d.name in wanted:
                s.attributes = attributes
                sequences.append(s)
                found.update({s.name, d.name})
    for w in wanted or []:
        if w not in found:
            problems[w] = "no such sequence"
    return layout, sequences, problems


def other_footage(clips: list[Sequence]) -> list[Sequence]:
    """For each clip, the next clip (cyclically) that is other footage, to show while its target is away: a
    different first frame. Two targets annotated on one video (val-hard's Skating2-1 and -2) share their first
    frame, and a cut from one to the other would show the target."""
    firsts = [_first_frame(c) for c in clips]
    fillers = []
    for k, clip in enumerate(clips):
        others = [clips[(k + j) % len(clips)] for j in range(1, len(clips))
                  if not _same_image(firsts[k], firsts[(k + j) % len(clips)])]
        if not others:
            raise UserError(f"every other sequence is the same footage as {clip.name}: an absence needs footage "
                            "without the target; add a sequence from another video")
        fillers.append(others[0])
    return fillers


def _first_frame(clip: Sequence) -> np.ndarray:
    try:
        return next(clip.images(lines=[0]))[1]
    except ValueError as exc:
        raise UserError(f"{clip.name}: {exc}") from None


def _same_image(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and np.array_equal(a, b)
