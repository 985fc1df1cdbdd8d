"""`siamtrack quantize` on the shipped pair (weights/: uint8 NHWC input, NanoTrack-v3-style box-adaptive head),
calibrated on the training crop cache: the int8 pair loads, predicts boxes and tracks a real clip, and the shipped
float files are left as they were."""
from __future__ import annotations

import hashlib
import json

import cv2
import numpy as np
import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from conftest import DATA, VIDEOS, iou  # noqa: E402

from tracker import SiamTracker  # noqa: E402
from tracker.cli import main  # noqa: E402
from tracker.paths import weights_dir  # noqa: E402

TRAIN_CACHE = DATA / "train"


def digest(folder) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("*.onnx"))}


@pytest.mark.skipif(not TRAIN_CACHE.is_dir() or not (VIDEOS / "bag.avi").is_file(),
                    reason="needs ../shared/data/train (crop cache) and ../shared/data/videos/bag.avi")
def test_quantize_the_shipped_pair_and_track_bag(tmp_path, capsys, report):
    shipped = weights_dir()
    before = digest(shipped)
    out = tmp_path / "int8"
    assert main(["quantize", "--weights", str(shipped), "--out", str(out), "--calibration", str(TRAIN_CACHE),
                 "--count", "8"]) == 0
    figures = json.loads(capsys.readouterr().out.split("\nwrote ")[0])
    assert "boxes_median_rel_diff" in figures  # the box-adaptive head's side distances are compared too
    assert digest(shipped) == before

    tracker = SiamTracker.from_pretrained(str(out), engine="onnx")
    assert "quantized" in tracker.engine.metadata and tracker.engine.config.predicts_boxes
    truth = np.loadtxt(VIDEOS / "bag_groundtruth.txt", delimiter=",")
    capture, frames = cv2.VideoCapture(str(VIDEOS / "bag.avi")), []
    while len(frames) < 60:
        ok, frame = capture.read()
        assert ok
        frames.append(frame)
    tracker.init(frames[0], tuple(truth[0]))
    boxes = np.array([tracker.update(frame).box for frame in frames[1:]])
    overlap = iou(boxes, truth[1:60])
    report(f"int8 shipped pair (8 calibration batches) on bag.avi frames 1-59: mean IoU {overlap.mean():.3f}, "
           f"responses median rel diff {figures['median_rel_diff']:.3f}, same peak {figures['same_peak']}/8")
    assert overlap.mean() > 0.6 and overlap.min() > 0.3
