"""`siamtrack quantize`: an int8 search graph that the onnx engine loads and tracks with."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from conftest import iou  # noqa: E402
from test_prepare_data import make_got10k  # noqa: E402

from tracker import SiamTracker  # noqa: E402
from tracker.cli import main  # noqa: E402
from tracker.training.prepare import prepare_data  # noqa: E402


def test_quantize_shipped_pair(tmp_path, synthetic, capsys):
    cache = tmp_path / "cache"
    prepare_data(make_got10k(tmp_path / "src"), cache, progress=False)
    out = tmp_path / "int8"
    assert main(["quantize", "--out", str(out), "--calibration", str(cache), "--count", "4"]) == 0
    assert (out / "template.onnx").is_file() and (out / "search.onnx").is_file()
    assert '"excluded"' in capsys.readouterr().out

    frames, gt = synthetic
    tracker = SiamTracker.from_pretrained(str(out), engine="onnx")
    tracker.init(frames[0], tuple(gt[0]))
    boxes = [tracker.update(f).box for f in frames[1:15]]
    assert iou(np.array(boxes), gt[1:15]).min() > 0.5


def test_quantize_bad_input(tmp_path):
    assert main(["quantize", "--out", str(tmp_path / "q"), "--count", "0"]) == 2
    assert main(["quantize", "--out", str(tmp_path / "q"), "--weights", str(tmp_path / "nope")]) == 2
