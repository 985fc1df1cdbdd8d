"""`siamtrack export --format opencv`: the shipped box-adaptive model as the backbone.onnx + head.onnx pair that
OpenCV's cv2.TrackerNano loads, tracked by TrackerNano itself on a real clip beside NanoTrack v2's own pair."""
from __future__ import annotations

import time

import cv2
import numpy as np
import pytest

pytest.importorskip("onnx")

from conftest import VIDEOS, iou  # noqa: E402

from tracker.checkpoint import save_checkpoint  # noqa: E402
from tracker.cli import main  # noqa: E402
from tracker.config import ModelConfig, TrackerConfig  # noqa: E402
from tracker.evaluation import peers  # noqa: E402
from tracker.model import SiamNet  # noqa: E402

BAG, BAG_GT = VIDEOS / "bag.avi", VIDEOS / "bag_groundtruth.txt"
needs_nano = pytest.mark.skipif(not hasattr(cv2, "TrackerNano"), reason="this OpenCV has no TrackerNano (>= 4.7)")


@pytest.fixture(scope="module")
def ours(tmp_path_factory):
    out = tmp_path_factory.mktemp("nano_ours")
    assert main(["export", "--format", "opencv", "--out", str(out)]) == 0
    return out


def track_with_nano(folder, frames, first_box) -> tuple[np.ndarray, float]:
    """cv2.TrackerNano with folder's backbone.onnx + head.onnx -> boxes (x,y,w,h) per frame, ms per update."""
    params = cv2.TrackerNano_Params()
    params.backbone, params.neckhead = str(folder / "backbone.onnx"), str(folder / "head.onnx")
    tracker = cv2.TrackerNano_create(params)
    tracker.init(frames[0], tuple(int(round(v)) for v in first_box))
    boxes = [first_box]
    start = time.perf_counter()
    for frame in frames[1:]:
        _, box = tracker.update(frame)
        boxes.append(box)
    return np.asarray(boxes, float), (time.perf_counter() - start) * 1000 / (len(frames) - 1)


def read_clip(path):
    capture, frames = cv2.VideoCapture(str(path)), []
    while True:
        ok, frame = capture.read()
        if not ok:
            return frames
        frames.append(frame)


def test_export_writes_the_layout_trackernano_loads(ours):
    import onnx

    shapes = {}
    for name in ("backbone.onnx", "head.onnx"):
        graph = onnx.load(str(ours / name)).graph
        for value in list(graph.input) + list(graph.output):
            shapes[value.name] = [d.dim_value for d in value.type.tensor_type.shape.dim]
    # The names and shapes tracker_nano.cpp feeds and reads (NanoTrack v2's pair has the same, 48 channels).
    assert shapes["input"] == [1, 3, 255, 255]
    assert shapes["input1"][2:] == [8, 8] and shapes["input2"][2:] == [16, 16]
    assert shapes["output1"] == [1, 2, 16, 16] and shapes["output2"] == [1, 4, 16, 16]


@needs_nano
@pytest.mark.skipif(not BAG.is_file(), reason="needs ../shared/data/videos/bag.avi")
def test_trackernano_tracks_bag_with_our_files(ours, report):
    frames, truth = read_clip(BAG), np.loadtxt(BAG_GT, delimiter=",")
    frames = frames[:len(truth)]
    with_ours, ms_ours = track_with_nano(ours, frames, truth[0])
    overlap_ours = iou(with_ours, truth)[1:]
    line = f"cv2.TrackerNano on bag.avi ({len(frames)} frames): our files mean IoU {overlap_ours.mean():.3f} ({ms_ours:.1f} ms)"
    v2 = peers.nanotrack_dir()
    if v2 is not None:
        with_v2, ms_v2 = track_with_nano(v2, frames, truth[0])
        line += f", NanoTrack v2's files {iou(with_v2, truth)[1:].mean():.3f} ({ms_v2:.1f} ms)"
    report(line + " (bag is in siamtrack's training data: a check, not a benchmark)")
    # Chance for a box of this size placed anywhere in the 480x360 frame is under 0.1.
    assert overlap_ours.mean() > 0.6, line
    assert np.mean(overlap_ours > 0.3) > 0.9, line


def test_export_refuses_a_model_without_the_box_adaptive_head(tmp_path, capsys):
    checkpoint = tmp_path / "siamfc.pt"
    save_checkpoint(checkpoint, SiamNet(ModelConfig(backbone="alexnet", stride=8), pretrained_backbone=False),
                    TrackerConfig())
    out = tmp_path / "out"
    assert main(["export", "--format", "opencv", "--weights", str(checkpoint), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "box-adaptive" in err and "--format onnx" in err and "Traceback" not in err
    assert not out.exists() or list(out.iterdir()) == []


def test_opencv_format_refuses_onnxruntime_only_options(tmp_path, capsys):
    assert main(["export", "--format", "opencv", "--out", str(tmp_path), "--search-size", "223"]) == 2
    assert "--format opencv takes no --search-size" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


@needs_nano
def test_nano_ours_peer_reads_its_folder(ours, monkeypatch):
    monkeypatch.delenv(peers.NANO_OURS_ENV, raising=False)
    assert peers.NANO_OURS_ENV in peers.availability()["nano-ours"]
    monkeypatch.setenv(peers.NANO_OURS_ENV, str(ours))
    assert peers.availability()["nano-ours"] is None
    frames, truth = read_clip(BAG)[:5], np.loadtxt(BAG_GT, delimiter=",")
    peer = peers.make_peer("nano-ours")
    peer.init(frames[0], truth[0])
    results = [peer.update(frame) for frame in frames[1:]]
    assert all(not r.lost for r in results) and iou([r.box for r in results], truth[1:5]).min() > 0.5
