"""OpenCV peer trackers behind the project's init/update API."""
import math

import cv2
import numpy as np
import pytest

from tracker.errors import UserError
from tracker.evaluation import peers
from tracker.result import TrackResult


def square_clip(n=15, size=(120, 96), box=(30.0, 30.0, 20.0, 16.0), step=2):
    """A textured rectangle moving right on a noisy background; returns frames and GT boxes."""
    rng = np.random.default_rng(1)
    W, H = size
    patch = rng.integers(0, 255, (int(box[3]), int(box[2]), 3), dtype=np.uint8)
    frames, gts = [], []
    for i in range(n):
        f = rng.integers(90, 110, (H, W, 3), dtype=np.uint8)
        x, y = int(box[0]) + step * i, int(box[1])
        f[y:y + patch.shape[0], x:x + patch.shape[1]] = patch
        frames.append(f)
        gts.append((float(x), float(y), box[2], box[3]))
    return frames, gts


def test_names_and_availability():
    assert peers.parse_peer_names("CSRT, kcf,kcf") == ["csrt", "kcf"]
    assert peers.parse_peer_names(None) == []
    with pytest.raises(UserError, match="unknown peer tracker.*nope"):
        peers.parse_peer_names("kcf,nope")
    av = peers.availability()
    assert set(av) == set(peers.PEERS)
    assert av["mil"] is None  # MIL is in every OpenCV 4 build
    for name, why in av.items():
        assert why is None or (why.startswith(f"{name} ") and "\n" not in why)


def test_contrib_peers_say_how_to_swap_the_opencv_build(monkeypatch):
    """siamtrack installs opencv-python; CSRT and KCF are in the contrib build only, and the two builds must never
    sit side by side: the reason says to swap them, in one line."""
    for module in (cv2, getattr(cv2, "legacy", None)):
        for cls in ("TrackerCSRT", "TrackerKCF"):
            if module is not None and hasattr(module, cls + "_create"):
                monkeypatch.delattr(module, cls + "_create")
    av = peers.availability()
    assert av["csrt"] == ("csrt needs opencv-contrib-python: pip uninstall -y opencv-python && pip install "
                          "opencv-contrib-python")
    assert av["kcf"].startswith("kcf needs opencv-contrib-python: pip uninstall -y opencv-python && ")
    with pytest.raises(UserError, match="csrt needs opencv-contrib-python"):
        peers.make_peer("csrt")


def test_int_box_rounding():
    assert peers.int_box((10.4, 20.6, 30.2, 40.5), (100, 100, 3)) == (10, 21, 31, 40)
    assert peers.int_box((-5.0, -5.0, 20.0, 20.0), (100, 100, 3)) == (0, 0, 15, 15)   # clipped to the frame
    assert peers.int_box((95.0, 10.0, 20.0, 0.2), (100, 100, 3)) == (95, 10, 5, 1)    # at least 1 px


@pytest.mark.parametrize("name", ["mil", "kcf", "csrt"])
def test_peer_tracks_synthetic_clip(name):
    if peers.availability()[name]:
        pytest.skip(peers.availability()[name])
    frames, gts = square_clip()
    trk = peers.make_peer(name)
    trk.init(frames[0], gts[0])
    results = [trk.update(f) for f in frames[1:]]
    assert all(isinstance(r, TrackResult) for r in results)
    assert all(math.isnan(r.score) and len(r.box) == 4 for r in results)
    last = results[-1]
    assert not last.lost
    assert abs(last.box[0] - gts[-1][0]) < 8 and abs(last.box[1] - gts[-1][1]) < 8


def test_failure_keeps_last_box():
    frames, gts = square_clip(n=3)
    trk = peers.make_peer("mil")
    trk.init(frames[0], gts[0])
    good = trk.update(frames[1])

    class Failing:
        def update(self, frame):
            return False, (0, 0, 0, 0)

    trk._cv = Failing()
    r = trk.update(frames[2])
    assert r.lost and r.box == good.box
    with pytest.raises(RuntimeError):
        peers.make_peer("mil").update(frames[0])


def test_nano_tracks_with_a_score():
    """cv2.TrackerNano with the NanoTrack v2 pair from ../shared/models (or $SIAMTRACK_NANOTRACK_DIR)."""
    if peers.availability()["nano"]:
        pytest.skip(peers.availability()["nano"])
    from conftest import synthetic_video

    frames, gt = synthetic_video(n_frames=20)
    trk = peers.make_peer("nano")
    trk.init(frames[0], tuple(gt[0]))
    results = [trk.update(f) for f in frames[1:]]
    assert all(0.0 <= r.score <= 1.0 for r in results)  # OpenCV's own tracking score, unlike the classic peers
    x, y, w, h = results[-1].box
    assert abs(x + w / 2 - gt[-1][0] - gt[-1][2] / 2) < 10 and abs(y + h / 2 - gt[-1][1] - gt[-1][3] / 2) < 10


def test_nano_without_its_models_says_where_to_put_them(tmp_path, monkeypatch):
    if not hasattr(cv2, "TrackerNano"):
        pytest.skip("this OpenCV build has no TrackerNano")
    monkeypatch.setenv(peers.NANOTRACK_ENV, str(tmp_path))
    why = peers.availability()["nano"]
    assert why and peers.NANOTRACK_ENV in why and str(tmp_path) in why and "backbone.onnx" in why
    with pytest.raises(UserError, match=peers.NANOTRACK_ENV):
        peers.make_peer("nano")
    for name in peers.NANOTRACK_FILES:  # any folder holding the pair will do
        (tmp_path / name).write_bytes(b"")
    assert peers.nanotrack_dir() == tmp_path


def test_one_opencv_build_only():
    """pyproject asks for opencv-python; a machine with the peers has opencv-contrib-python instead (.ci/run swaps
    them). Both at once overwrite each other's cv2 files."""
    import importlib.metadata as metadata
    from pathlib import Path

    installed = []
    for name in ("opencv-python", "opencv-contrib-python"):
        try:
            installed.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            pass
    assert len(installed) == 1, f"both OpenCV builds installed: {installed}"
    pyproject = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text()
    assert '"opencv-python>=' in pyproject and '"opencv-contrib-python' not in pyproject
