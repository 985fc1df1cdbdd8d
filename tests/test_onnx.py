"""ONNX export (siamtrack export) and the onnxruntime engine: checker, metadata, parity with PyTorch, tracking
parity with the torch engine, and that the shipped ONNX pair is the export of the shipped checkpoint."""
from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxscript")
pytest.importorskip("onnxruntime")

from tracker import SiamTracker, __version__  # noqa: E402
from tracker.checkpoint import load_model  # noqa: E402
from tracker.cli import main  # noqa: E402
from tracker.config import ModelConfig, TrackerConfig  # noqa: E402
from tracker.errors import UserError  # noqa: E402
from tracker.export.onnx_export import export_onnx, file_sha256, weights_fingerprint  # noqa: E402
from tracker.export.parity import PARITY_RTOL, check_parity, parity_inputs  # noqa: E402
from tracker.model import SiamNet  # noqa: E402
from tracker.onnx_engine import OnnxEngine  # noqa: E402
from tracker.paths import SEARCH_ONNX, TEMPLATE_ONNX, default_weights_path, weights_dir  # noqa: E402
from tracker.torch_engine import TorchEngine  # noqa: E402

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="module")
def default_model():
    return load_model()


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """The shipped default checkpoint exported through the CLI (which runs the parity check itself)."""
    out = tmp_path_factory.mktemp("onnx")
    assert main(["export", "--out", str(out)]) == 0
    return out


def _metadata(path: Path) -> dict:
    return {p.key: p.value for p in onnx.load(str(path)).metadata_props}


def _dims(value_info) -> list:
    return [d.dim_param or d.dim_value for d in value_info.type.tensor_type.shape.dim]


def test_export_passes_checker_and_is_self_describing(exported, default_model):
    model, tracker_config, _ = default_model
    for name in (TEMPLATE_ONNX, SEARCH_ONNX):
        proto = onnx.load(str(exported / name))
        onnx.checker.check_model(proto, full_check=True)
        assert proto.opset_import[0].version >= 17
        ops = {node.op_type for node in proto.graph.node}
        assert "BatchNormalization" not in ops, "BN must be folded into the convs"
        meta = _metadata(exported / name)
        assert json.loads(meta["model_config"]) == model.config.to_dict()
        assert json.loads(meta["tracker_config"]) == tracker_config.to_dict()
        assert meta["siamtrack_version"] == __version__
        assert meta["graph"] == name.split(".")[0]
        assert meta["weights_sha256"] == weights_fingerprint(model)
        if name == SEARCH_ONNX and model.config.head == "box_adaptive":
            continue  # its head pads, slices the template's centre and reshapes by N and T: the head's own work
        # The backbone's shapes are all static; the only Shape allowed reads the templates' count (T is dynamic).
        shaped = [node.input[0] for node in proto.graph.node if node.op_type == "Shape"]
        assert set(shaped) <= {"template"}, f"{name}: Shape of {shaped}: the backbone should be shape-static"
        assert "Pad" not in ops, f"static padding expected, got {sorted(ops)}"
        # The input flip is folded into the first conv; the only Slices allowed are the template's central crop.
        slices = sum(node.op_type == "Slice" for node in proto.graph.node)
        allowed = 2 if name == TEMPLATE_ONNX and model.config.template_crop else 0  # rows and columns
        assert slices <= allowed, f"{name}: {slices} Slice nodes, expected at most {allowed}"

    template = onnx.load(str(exported / TEMPLATE_ONNX)).graph
    search = onnx.load(str(exported / SEARCH_ONNX)).graph
    z = model.template_size
    assert [i.name for i in template.input] == ["exemplar"]
    assert _dims(template.input[0]) == [1, 127, 127, 3]
    assert template.input[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8
    assert _dims(template.output[0]) == [1, model.backbone.out_channels, z, z]
    assert [i.name for i in search.input] == ["search", "template", "owner"]
    n, *rest = _dims(search.input[0])
    assert isinstance(n, str) and rest == [255, 255, 3], "N must be dynamic"
    t, *rest = _dims(search.input[1])
    assert isinstance(t, str) and t != n and rest == [model.backbone.out_channels, z, z], "T must be dynamic"
    assert _dims(search.input[2]) == [n], "one owner per crop"
    assert search.input[2].type.tensor_type.elem_type == onnx.TensorProto.INT64
    r = model.response_size
    assert _dims(search.output[0])[1:] == [r, r]


def test_search_features_output_and_pairs_without_it(exported, default_model, tmp_path):
    """The search graph's last output is the crops' backbone features (what the online target model learns on),
    equal to PyTorch's. A pair exported before that output still loads and tracks with verify=0; the verifier and
    the online model ask for a re-export."""
    import torch

    model, tracker_config, _ = default_model
    search = onnx.load(str(exported / SEARCH_ONNX))
    assert search.graph.output[-1].name == "features"
    engine = OnnxEngine.from_dir(exported, device="cpu")
    exemplar, crops = parity_inputs(model, 2, seed=3)
    logits, distances, features = engine.search_with_features(crops, engine.template(exemplar))
    with torch.inference_mode():
        reference = model.embed(torch.from_numpy(crops).permute(0, 3, 1, 2).float()).numpy()
    assert features.shape == reference.shape
    assert np.abs(features - reference).max() <= PARITY_RTOL * np.abs(reference).max()
    assert np.array_equal(logits, engine.search(crops, engine.template(exemplar))[0])

    old = tmp_path / "old"
    old.mkdir()
    (old / TEMPLATE_ONNX).write_bytes((exported / TEMPLATE_ONNX).read_bytes())
    del search.graph.output[-1]
    onnx.save(search, str(old / SEARCH_ONNX))
    frames, box = _synthetic_clip(8)
    with pytest.raises(UserError, match="re-export them with `siamtrack export`, or set verify=0"):
        SiamTracker.from_pretrained(str(old), engine="onnx", device="cpu")  # the stored verify=1 reads the features
    tracker = SiamTracker.from_pretrained(str(old), engine="onnx", device="cpu", verify=0)
    assert not tracker.engine.has_features
    tracker.init(frames[0], box)
    assert all(np.isfinite(tracker.update(f).box).all() for f in frames[1:])
    with pytest.raises(UserError, match="re-export"):
        SiamTracker.from_pretrained(str(old), engine="onnx", device="cpu", online_weight=0.5)


@pytest.mark.parametrize("batches", [(2,), (5,)])
def test_parity_with_torch_dynamic_batch(exported, default_model, batches):
    model, _, _ = default_model
    result = check_parity(model, exported / TEMPLATE_ONNX, exported / SEARCH_ONNX, batches=batches, seed=11)
    assert result["response_max_rel"] <= PARITY_RTOL, result
    assert result["template_max_rel"] <= PARITY_RTOL, result
    assert result["argmax_equal"] == result["argmax_total"] == sum(batches), result


def test_alexnet_float_layout_export(tmp_path):
    """The other backbone (its normalisation folded into conv1's bias) and the float NCHW input layout."""
    import torch

    torch.manual_seed(0)
    model = SiamNet(ModelConfig(backbone="alexnet", stride=8, head_scale=2.0, head_bias=0.0), pretrained_backbone=False).eval()
    report = export_onnx(model, TrackerConfig(num_scales=5), tmp_path, layout="float_nchw")
    assert report.parity["ok"], report.describe()
    engine = OnnxEngine.from_dir(tmp_path, device="cpu")
    assert engine.layout == "float_nchw" and engine.tracker_config.num_scales == 5
    assert engine.config.backbone == "alexnet" and engine.response_size == model.response_size
    search = onnx.load(str(tmp_path / SEARCH_ONNX)).graph
    assert search.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert _dims(search.input[0])[1:] == [3, 255, 255]


def _iou(a, b) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    w = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    h = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    return w * h / (aw * ah + bw * bh - w * h)


def _synthetic_clip(n: int = 30):
    rng = np.random.default_rng(3)
    background = cv2.resize(rng.integers(30, 220, (30, 40, 3), dtype=np.uint8), (320, 240), interpolation=cv2.INTER_CUBIC)
    patch = cv2.resize(rng.integers(0, 2, (5, 5, 3), dtype=np.uint8) * 255, (40, 32), interpolation=cv2.INTER_NEAREST)
    frames = []
    for i in range(n):
        frame = background.copy()
        x, y = int(140 + 60 * math.sin(i / 6)), int(100 + 30 * math.sin(i / 4))
        frame[y:y + 32, x:x + 40] = patch
        frames.append(frame)
    return frames, (140.0, 100.0, 40.0, 32.0)


def _bag_clip(n: int = 40):
    video, gt = DATA / "videos" / "bag.avi", DATA / "videos" / "bag_groundtruth.txt"
    if not video.is_file() or not gt.is_file():
        pytest.skip(f"{video} not present")
    capture = cv2.VideoCapture(str(video))
    frames = []
    while len(frames) < n:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    if not frames:
        pytest.skip(f"{video} cannot be decoded here")
    box = tuple(float(v) for v in gt.read_text().splitlines()[0].replace(" ", "").split(","))
    return frames, box


@pytest.mark.parametrize("clip", ["synthetic", "bag"])
def test_onnx_engine_tracks_like_torch_engine(exported, default_model, clip):
    model, tracker_config, _ = default_model
    frames, box = _synthetic_clip() if clip == "synthetic" else _bag_clip()
    trackers = {"torch": SiamTracker(TorchEngine(model, "cpu"), tracker_config),
                "onnx": SiamTracker(OnnxEngine.from_dir(exported, device="cpu"), tracker_config)}
    for tracker in trackers.values():
        tracker.init(frames[0], box)
    worst = 1.0
    for i, frame in enumerate(frames[1:], 1):
        a, b = trackers["torch"].update(frame), trackers["onnx"].update(frame)
        overlap = _iou(a.box, b.box)
        worst = min(worst, overlap)
        assert overlap >= 0.99, f"frame {i}: torch {a.box} vs onnx {b.box} (IoU {overlap:.4f})"
        # The box rule's score to 1e-3; the verifier's reads the features at the moved box, whose sub-pixel
        # differences between the engines its nonlinear calibration turns into a little more.
        assert abs(a.response - b.response) <= 1e-3 * max(a.response, 1e-6) and a.lost == b.lost
        assert abs(a.score - b.score) <= 0.01, (i, a.score, b.score)
    print(f"{clip}: {len(frames)} frames, min IoU torch vs onnx {worst:.6f}")


def test_box_head_export_parity_and_tracking(tmp_path):
    """A model with a box head: search.onnx gets a second output, `boxes`, checked against PyTorch at export, and
    the onnx engine's one-crop tracking matches the torch engine's."""
    import torch

    torch.manual_seed(0)
    config = ModelConfig(backbone="alexnet", stride=8, head_scale=2.0, head_bias=0.0, box_head_channels=8)
    model = SiamNet(config, pretrained_backbone=False).eval()
    tracker_config = TrackerConfig(num_scales=1)
    report = export_onnx(model, tracker_config, tmp_path)
    assert report.parity["ok"] and report.parity["boxes_max_rel"] <= PARITY_RTOL, report.describe()
    search = onnx.load(str(tmp_path / SEARCH_ONNX)).graph
    assert [o.name for o in search.output] == ["response", "boxes", "features"]
    assert _dims(search.output[1])[1:] == [4, model.response_size, model.response_size]
    engine = OnnxEngine.from_dir(tmp_path, device="cpu")
    crops = np.zeros((2, 255, 255, 3), np.uint8)
    logits, distances = engine.search(crops, engine.template(np.zeros((1, 127, 127, 3), np.uint8)))
    assert logits.shape == (2, model.response_size, model.response_size)
    assert distances.shape == (2, 4, model.response_size, model.response_size) and (distances > 0).all()

    frames, box = _synthetic_clip(12)
    a, b = SiamTracker(TorchEngine(model, "cpu"), tracker_config), SiamTracker(engine, tracker_config)
    a.init(frames[0], box)
    b.init(frames[0], box)
    for frame in frames[1:]:
        ra, rb = a.update(frame), b.update(frame)
        assert _iou(ra.box, rb.box) >= 0.99 and abs(ra.score - rb.score) <= 1e-3


def test_engine_refuses_mixed_or_foreign_files(exported, tmp_path):
    proto = onnx.load(str(exported / SEARCH_ONNX))
    for p in proto.metadata_props:
        if p.key == "weights_sha256":
            p.value = "0" * 64
    onnx.save(proto, str(tmp_path / SEARCH_ONNX))
    (tmp_path / TEMPLATE_ONNX).write_bytes((exported / TEMPLATE_ONNX).read_bytes())
    with pytest.raises(UserError, match="different exports"):
        OnnxEngine.from_dir(tmp_path, device="cpu")

    del proto.metadata_props[:]
    onnx.save(proto, str(tmp_path / SEARCH_ONNX))
    with pytest.raises(UserError, match="not a siamtrack ONNX graph"):
        OnnxEngine.from_dir(tmp_path, device="cpu")
    with pytest.raises(UserError, match="lacks search.onnx"):
        OnnxEngine.from_dir(_only_template(exported, tmp_path), device="cpu")


def _only_template(exported: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "only_template"
    folder.mkdir()
    (folder / TEMPLATE_ONNX).write_bytes((exported / TEMPLATE_ONNX).read_bytes())
    return folder


def test_from_pretrained_engines(exported):
    tracker = SiamTracker.from_pretrained(str(exported), engine="onnx", device="cpu", window_influence=0.3)
    assert isinstance(tracker.engine, OnnxEngine)
    assert tracker.config.window_influence == 0.3  # override on top of the config from the ONNX metadata
    stored = tracker.engine.tracker_config
    assert stored.window_influence != 0.3
    assert tracker.config.replace(window_influence=stored.window_influence) == stored
    assert isinstance(SiamTracker.from_pretrained(str(exported), device="cpu").engine, OnnxEngine)  # auto
    assert isinstance(SiamTracker.from_pretrained(str(default_weights_path()), device="cpu").engine, TorchEngine)
    assert isinstance(SiamTracker.from_pretrained(engine="torch", device="cpu").engine, TorchEngine)
    with pytest.raises(UserError, match="PyTorch checkpoint"):
        SiamTracker.from_pretrained(str(default_weights_path()), engine="onnx")
    with pytest.raises(UserError, match="unknown engine"):
        SiamTracker.from_pretrained(engine="tensorrt")
    with pytest.raises(UserError, match="unknown key"):
        SiamTracker.from_pretrained(str(exported), engine="onnx", device="cpu", no_such_setting=1)


def test_shipped_onnx_is_the_deployment_export_of_the_shipped_checkpoint(default_model):
    """The shipped pair is `siamtrack export --out weights/` of the shipped checkpoint (weights/MODEL_CARD.md): float, at
    the checkpoint's own search size, with its tracker config (lost_threshold included, set by `siamtrack
    configure`). Guards against retraining or reconfiguring the default model without re-exporting."""
    folder = weights_dir()
    if not (folder / SEARCH_ONNX).is_file():
        pytest.fail(f"{folder} has no {SEARCH_ONNX}: see weights/MODEL_CARD.md (How it was made) for the commands that make it")
    model, tracker_config, _ = default_model
    for name in (TEMPLATE_ONNX, SEARCH_ONNX):
        meta = _metadata(folder / name)
        source = json.loads(meta["source"])
        stale = f"weights/{name} is stale: re-make the pair (weights/MODEL_CARD.md, How it was made)"
        assert source["checkpoint_sha256"] == file_sha256(default_weights_path()), stale
        assert meta["weights_sha256"] == weights_fingerprint(model), stale
        assert json.loads(meta["model_config"]) == model.config.to_dict(), stale
        # Fields added to TrackerConfig since the export take their defaults on both sides.
        assert type(tracker_config).from_dict(json.loads(meta["tracker_config"])) == tracker_config, stale
    assert "quantized" not in _metadata(folder / SEARCH_ONNX), "the README documents a float pair"


def test_export_search_size_and_tracker_settings(exported, default_model, tmp_path):
    """--search-size builds the graphs for another crop (same weights), --set stores tracking settings; both land
    in the metadata the engine reads, and the parity check still runs."""
    out = tmp_path / "small"
    assert main(["export", "--out", str(out), "--search-size", "191", "--set", "lost_threshold=0.5",
                 "--set", "window_influence=0.25"]) == 0
    engine = OnnxEngine.from_dir(out, device="cpu")
    model = default_model[0]
    smaller = SiamNet(model.config.replace(search_size=191), pretrained_backbone=False)
    assert engine.config.search_size == 191 and engine.response_size == smaller.response_size < model.response_size
    assert engine.tracker_config.lost_threshold == 0.5 and engine.tracker_config.window_influence == 0.25
    assert _metadata(out / SEARCH_ONNX)["weights_sha256"] == _metadata(exported / SEARCH_ONNX)["weights_sha256"]
    tracker = SiamTracker(engine, engine.tracker_config)
    frames, box = _synthetic_clip(6)
    tracker.init(frames[0], box)
    assert all(math.isfinite(v) for f in frames[1:] for v in tracker.update(f).box)


@pytest.mark.parametrize("args,message", [
    (["--search-size", "100"], "search size 100"),
    (["--set", "no_such_key=1"], "unknown key"),
    (["--set", "num_scales=3"], "num_scales must be 1"),
    (["--set", "lost_threshold"], "KEY=VALUE"),
])
def test_export_bad_options(tmp_path, capsys, args, message):
    assert main(["export", "--out", str(tmp_path / "x"), *args]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x" / SEARCH_ONNX).exists()
