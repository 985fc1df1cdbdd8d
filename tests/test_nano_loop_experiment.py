"""benchmarks/nanotrack_loop_experiment.py, the issue-27 experiment behind docs/results.md's "Why TrackerNano's
centres are more precise": its Python copy of OpenCV's TrackerNano loop must give cv2.TrackerNano's boxes, and its
switches must change exactly the rule they name."""
from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import DATA
from tracker.evaluation.datasets import load_dataset

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
pytest.importorskip("onnx", reason="needs onnx (the experiment frees the published graphs' input sizes)")
import nanotrack_loop_experiment as experiment  # noqa: E402

V2 = experiment.MODELS / "nanotrack-v2"
needs_v2 = pytest.mark.skipif(not (V2 / "backbone.onnx").is_file() or not hasattr(cv2, "TrackerNano"),
                              reason="needs ../shared/models/nanotrack-v2 and OpenCV >= 4.7")
CROSSING = DATA / "val" / "Crossing"


def test_a_loop_spec_replaces_only_the_named_rules():
    rules = experiment.parse_loop("ours+window=sqrt_hann+lr=0.37+search_clamp=0")
    ours = experiment.PRESETS["ours"]
    assert (rules.window, rules.lr, rules.search_clamp) == ("sqrt_hann", 0.37, False)
    assert (rules.penalty_k, rules.crop, rules.window_centre) == (ours.penalty_k, ours.crop, ours.window_centre)
    with pytest.raises(SystemExit, match="unknown switch 'windw'"):
        experiment.parse_loop("ours+windw=hann")
    with pytest.raises(SystemExit, match="start with one of"):
        experiment.parse_loop("pysot+lr=0.3")


def test_the_grids_and_windows_put_the_centre_where_each_loop_does():
    xs, _ = experiment.cell_offsets(16, "trained")
    assert xs[:16].tolist() == [16.0 * (i - 8) for i in range(16)]  # TrackerNano: cell 8 at the crop centre
    xs, _ = experiment.cell_offsets(16, "centred")
    assert xs[7] == -8.0 and xs[8] == 8.0  # siamtrack's formula on 16 cells: half a cell either side
    rules = experiment.PRESETS["ours"]
    own = experiment.hann_window(15, rules, experiment.cell_offsets(15, "trained"), own_cells=15)
    np.testing.assert_allclose(own, np.outer(np.hanning(15), np.hanning(15)).ravel(), atol=1e-12)
    # Our export's map is padded by one cell on top and left: the centred window ignores the pad cells.
    padded = experiment.hann_window(16, rules, experiment.cell_offsets(16, "trained"), own_cells=15).reshape(16, 16)
    assert not padded[0].any() and not padded[:, 0].any()
    np.testing.assert_allclose(padded[1:, 1:].ravel(), own, atol=1e-12)
    opencv = experiment.hann_window(16, experiment.PRESETS["opencv"], None, own_cells=16).reshape(16, 16)
    np.testing.assert_allclose(opencv, np.sqrt(np.outer(np.hanning(16), np.hanning(16))), atol=1e-6)
    assert opencv[7, 7] == opencv[8, 8]  # its peak sits between cells 7 and 8: half a cell up-left of the centre


@needs_v2
@pytest.mark.skipif(not (CROSSING / "groundtruth.txt").is_file(), reason="needs ../shared/data/val/Crossing")
def test_the_opencv_preset_gives_cv2_trackernanos_boxes():
    _, (seq,), _ = load_dataset(str(DATA / "val"), ["Crossing"])
    images = seq.images()
    frames = [next(images)[1] for _ in range(30)]
    gt = seq.gt
    params = cv2.TrackerNano_Params()
    params.backbone, params.neckhead = str(V2 / "backbone.onnx"), str(V2 / "head.onnx")
    reference = cv2.TrackerNano_create(params)
    copy = experiment.PyNanoTracker(experiment.NanoNetwork(V2, "bgr", 16), experiment.PRESETS["opencv"])
    reference.init(frames[0], experiment.int_box(gt[0], frames[0].shape))
    copy.init(frames[0], gt[0])
    moved = 0.0
    for frame in frames[1:]:
        ok, box = reference.update(frame)
        assert ok and copy.update(frame).box == tuple(float(v) for v in box)
        moved = max(moved, abs(box[0] - gt[0][0]))
    assert moved >= 2  # the target moved, so the boxes agreeing is not two trackers standing still
