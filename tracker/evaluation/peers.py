"""OpenCV's trackers wrapped with the project's ``init`` / ``update -> TrackResult`` API: the classic ones, and
``cv2.TrackerNano`` with the NanoTrack v2 ONNX pair (what an OpenCV user gets for free; the pair is read from
``$SIAMTRACK_NANOTRACK_DIR``, else ``../shared/models/nanotrack-v2`` beside the working folder or this checkout,
and never copied into the project)."""
from __future__ import annotations

import math
import os
from pathlib import Path

import cv2
import numpy as np

from tracker.errors import UserError
from tracker.result import TrackResult

# siamtrack installs opencv-python; these peers are in OpenCV's contrib build only. The two builds provide the same
# cv2 module and overwrite each other's files, so the way to them is a swap, never a second install.
CONTRIB_SWAP = "pip uninstall -y opencv-python && pip install opencv-contrib-python"
_CONTRIB = f"needs opencv-contrib-python: {CONTRIB_SWAP}"
# name -> (OpenCV class name, why it may be missing)
PEERS = {
    "csrt": ("TrackerCSRT", _CONTRIB),
    "kcf": ("TrackerKCF", _CONTRIB),
    "mil": ("TrackerMIL", "is missing from this OpenCV build"),
    "boosting": ("TrackerBoosting", _CONTRIB),
    "medianflow": ("TrackerMedianFlow", _CONTRIB),
    "mosse": ("TrackerMOSSE", _CONTRIB),
    "tld": ("TrackerTLD", _CONTRIB),
    "nano": ("TrackerNano", "needs OpenCV >= 4.7 and the NanoTrack v2 pair"),
    "nano-ours": ("TrackerNano", "needs OpenCV >= 4.7 and our TrackerNano pair"),
}
NANOTRACK_ENV = "SIAMTRACK_NANOTRACK_DIR"
NANOTRACK_FILES = ("backbone.onnx", "head.onnx")
# nano-ours: cv2.TrackerNano with the files `siamtrack export --format opencv --out DIR` writes (same names).
NANO_OURS_ENV = "SIAMTRACK_NANO_OURS_DIR"


def nano_ours_dir() -> Path | None:
    folder = Path(os.environ.get(NANO_OURS_ENV) or ".")
    return folder if os.environ.get(NANO_OURS_ENV) and all((folder / n).is_file() for n in NANOTRACK_FILES) else None


def nanotrack_dir() -> Path | None:
    """The folder holding NanoTrack v2's backbone.onnx + head.onnx, or None."""
    if os.environ.get(NANOTRACK_ENV):
        candidates = [Path(os.environ[NANOTRACK_ENV])]
    else:
        relative = Path("shared") / "models" / "nanotrack-v2"
        candidates = [Path.cwd().parent / relative, Path(__file__).resolve().parents[3] / relative]
    for folder in candidates:
        if all((folder / name).is_file() for name in NANOTRACK_FILES):
            return folder
    return None


def _nano_factory(folder: Path | None):
    if not hasattr(cv2, "TrackerNano"):
        return None
    if folder is None:
        return None

    def create():
        params = cv2.TrackerNano_Params()
        params.backbone, params.neckhead = (str(folder / name) for name in NANOTRACK_FILES)
        return cv2.TrackerNano_create(params)

    return create


def _factory(name: str):
    if name in ("nano", "nano-ours"):
        return _nano_factory(nanotrack_dir() if name == "nano" else nano_ours_dir())
    cls = PEERS[name][0]
    fn = getattr(cv2, cls + "_create", None)
    if fn is None and hasattr(cv2, "legacy"):
        fn = getattr(cv2.legacy, cls + "_create", None)
    return fn


def availability() -> dict[str, str | None]:
    """Map each known peer to None (available) or the reason it is not, in one line that says what to do, e.g.
    "csrt needs opencv-contrib-python: pip uninstall -y opencv-python && pip install opencv-contrib-python"."""
    installed = f" (installed: OpenCV {cv2.__version__})"
    reasons = {n: f"{n} {why}{'' if why == _CONTRIB else installed}" for n, (_, why) in PEERS.items()}
    if hasattr(cv2, "TrackerNano") and nanotrack_dir() is None:
        where = os.environ.get(NANOTRACK_ENV) or "../shared/models/nanotrack-v2"
        reasons["nano"] = (f"nano needs the NanoTrack v2 pair ({' + '.join(NANOTRACK_FILES)}) in {where}: set "
                           f"{NANOTRACK_ENV} to the folder that holds them")
    if hasattr(cv2, "TrackerNano") and nano_ours_dir() is None:
        reasons["nano-ours"] = (f"nano-ours needs {NANO_OURS_ENV} set to a folder from `siamtrack export --format "
                                f"opencv --out DIR` ({' + '.join(NANOTRACK_FILES)})")
    return {n: (None if _factory(n) else reasons[n]) for n in PEERS}


def parse_peer_names(text: str | None) -> list[str]:
    """Split ``csrt,kcf``; an unknown name is a UserError."""
    if not text:
        return []
    names = [n.strip().lower() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in PEERS]
    if unknown:
        raise UserError(f"unknown peer tracker(s) {', '.join(unknown)}: choose from {', '.join(PEERS)}")
    return list(dict.fromkeys(names))


def int_box(box, frame_shape) -> tuple[int, int, int, int]:
    """Round a float box to whole pixels by its corners, clipped to the frame, at least 1x1."""
    hgt, wid = frame_shape[:2]
    x, y, w, h = (float(v) for v in box)
    x0 = min(max(int(round(x)), 0), wid - 1)
    y0 = min(max(int(round(y)), 0), hgt - 1)
    x1 = min(max(int(round(x + w)), x0 + 1), wid)
    y1 = min(max(int(round(y + h)), y0 + 1), hgt)
    return x0, y0, x1 - x0, y1 - y0


class OpenCVPeer:
    """One OpenCV tracker instance. score: TrackerNano's tracking score, NaN for the others (they give none);
    lost = OpenCV said not ok, in which case the last good box is repeated. OpenCV's trackers have no "uncertain":
    the state is "lost" or "tracking", as the lost flag says, so eval judges them by the lost flag alone."""

    reports_state = False  # eval's result files keep no state column for them (runner.run_sequence)

    def __init__(self, name: str):
        fn = _factory(name)
        if fn is None:
            raise UserError(availability()[name])
        self.name = name
        self._create = fn
        self._cv = None
        self._box = None

    def init(self, frame: np.ndarray, box) -> None:
        self._cv = self._create()  # a fresh instance: OpenCV trackers cannot be re-initialised reliably
        ib = int_box(box, frame.shape)
        ok = self._cv.init(frame, ib)
        if ok is False:  # legacy API returns a bool, the new one None
            raise RuntimeError(f"OpenCV {self.name} refused the initial box {ib}")
        self._box = tuple(float(v) for v in box)

    def update(self, frame: np.ndarray) -> TrackResult:
        if self._cv is None:
            raise RuntimeError("call init() before update()")
        try:
            ok, box = self._cv.update(frame)
        except cv2.error:
            ok, box = False, None
        ok = bool(ok) and box is not None and all(math.isfinite(v) for v in box) and box[2] > 0 and box[3] > 0
        if ok:
            self._box = tuple(float(v) for v in box)
        score = float(self._cv.getTrackingScore()) if hasattr(self._cv, "getTrackingScore") else float("nan")
        return TrackResult(box=self._box, score=score, lost=not ok, state="tracking" if ok else "lost")


def make_peer(name: str) -> OpenCVPeer:
    return OpenCVPeer(name)
