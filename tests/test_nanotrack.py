"""The NanoTrack-v3-style model family: MobileNetV3 trunk + box-adaptive head, its initialisation from NanoTrack v3's
checkpoint, SiamBAN labels, and the loop's NanoTrack box rule (box_position="box")."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from tracker.errors import UserError

torch = pytest.importorskip("torch", reason="needs PyTorch (pip install '.[dev]')")

from tracker.config import ModelConfig, TrackerConfig  # noqa: E402
from tracker.model import SiamNet  # noqa: E402

V3 = Path(__file__).resolve().parents[2] / "shared" / "models" / "nanotrack-v3"
needs_v3 = pytest.mark.skipif(not (V3 / "nanotrackv3.pth").is_file(), reason="needs ../shared/models/nanotrack-v3")
NANO_CONFIG = {"backbone": "mobilenetv3_nanotrack", "head": "box_adaptive"}


@pytest.fixture(scope="module")
def random_model():
    torch.manual_seed(0)
    model = SiamNet(ModelConfig(**NANO_CONFIG), pretrained_backbone=False).eval()
    # Random BN statistics, so a mix-up of channels or templates cannot hide behind identity BNs.
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    return model


def test_derived_sizes_and_outputs(random_model):
    assert (random_model.template_size, random_model.search_feature_size, random_model.response_size) == (8, 16, 15)
    assert random_model.has_box_head
    with torch.no_grad():
        z = random_model.template(torch.rand(1, 3, 127, 127) * 255)
        logits, distances = random_model.track(torch.rand(3, 3, 255, 255) * 255, z)
    assert logits.shape == (3, 1, 15, 15) and distances.shape == (3, 4, 15, 15)
    assert bool((distances > 0).all())


def test_owned_templates_match_one_pair_at_a_time(random_model):
    """Several targets in one batch: each crop scored against its owner's template gives what scoring that crop
    alone against that template gives."""
    torch.manual_seed(1)
    with torch.no_grad():
        templates = random_model.template(torch.rand(2, 3, 127, 127) * 255)
        features = random_model.embed(torch.rand(3, 3, 255, 255) * 255)
        owner = torch.tensor([1, 0, 1])
        logits, distances = random_model.correlate(templates, features, owner)
        for k, t in enumerate(owner.tolist()):
            alone_logits, alone_distances = random_model.correlate(templates[t:t + 1], features[k:k + 1])
            torch.testing.assert_close(logits[k:k + 1], alone_logits, rtol=1e-4, atol=1e-4)
            torch.testing.assert_close(distances[k:k + 1], alone_distances, rtol=1e-4, atol=1e-4)
        paired_logits, _ = random_model.correlate(templates[owner], features)
        torch.testing.assert_close(logits, paired_logits, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("values, message", [
    ({**NANO_CONFIG, "box_head_channels": 8}, "box_adaptive head predicts boxes itself"),
    ({**NANO_CONFIG, "stride": 8}, "stride for mobilenetv3_nanotrack must be one of"),
    ({"head": "rpn"}, "head must be one of"),
])
def test_model_config_refuses(values, message):
    with pytest.raises(ValueError, match=message):
        ModelConfig(**values)


@needs_v3
def test_v3_weights_reproduce_nanotrack_v3_onnx_pair():
    """Our definition with the checkpoint's weights computes what NanoTrack v3's own ONNX pair computes."""
    onnx = pytest.importorskip("onnx")
    import onnxruntime as ort

    from tracker.training.nanotrack_init import load_nanotrack_weights

    model = SiamNet(ModelConfig(**NANO_CONFIG), pretrained_backbone=False)
    load_nanotrack_weights(model, V3 / "nanotrackv3.pth")
    model.eval()
    backbone = onnx.load(str(V3 / "backbone.onnx"))
    for value in list(backbone.graph.input) + list(backbone.graph.output):  # its input is fixed at 255 px
        dims = value.type.tensor_type.shape.dim
        dims[2].dim_param, dims[3].dim_param = "h", "w"
    options = ort.SessionOptions()
    options.log_severity_level = 3
    trunk = ort.InferenceSession(backbone.SerializeToString(), options, providers=["CPUExecutionProvider"])
    head = ort.InferenceSession(str(V3 / "head.onnx"), options, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    z = rng.uniform(0, 255, (1, 3, 127, 127)).astype(np.float32)
    x = rng.uniform(0, 255, (1, 3, 255, 255)).astype(np.float32)
    zf, xf = trunk.run(None, {"input": z})[0], trunk.run(None, {"input": x})[0]
    cls, loc = head.run(None, {"input1": zf, "input2": xf})
    with torch.no_grad():
        template, features = model.template(torch.from_numpy(z)), model.embed(torch.from_numpy(x))
        logits, distances = model.correlate(template, features)
    np.testing.assert_allclose(template.numpy(), zf, atol=1e-4)
    np.testing.assert_allclose(logits.numpy()[:, 0], cls[:, 1] - cls[:, 0], atol=1e-3)
    np.testing.assert_allclose(distances.numpy(), loc, rtol=1e-4, atol=1e-3)


def test_init_weights_refuses_the_wrong_model_and_foreign_files(tmp_path):
    from tracker.training.nanotrack_init import load_nanotrack_weights

    foreign = tmp_path / "foreign.pth"
    foreign.write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="needs model.backbone 'mobilenetv3_nanotrack'"):
        load_nanotrack_weights(SiamNet(ModelConfig(backbone="alexnet", stride=8), pretrained_backbone=False), foreign)
    model = SiamNet(ModelConfig(**NANO_CONFIG), pretrained_backbone=False)
    with pytest.raises(UserError, match="cannot read"):
        load_nanotrack_weights(model, foreign)
    with pytest.raises(UserError, match="not found"):
        load_nanotrack_weights(model, tmp_path / "missing.pth")
    partial = tmp_path / "partial.pth"
    state = {f"backbone.{k}": v for k, v in model.backbone.state_dict().items()}
    torch.save({"state_dict": state}, partial)
    with pytest.raises(UserError, match="does not fit this model: missing"):
        load_nanotrack_weights(model, partial)


def test_recipe_needs_init_weights_for_the_mobilenet_trunk():
    from tracker.training.recipe import TrainConfig

    with pytest.raises(ValueError, match="no ImageNet weights"):
        TrainConfig(model=NANO_CONFIG, tracker={"num_scales": 1})
    with pytest.raises(ValueError, match="needs model.backbone 'mobilenetv3_nanotrack'"):
        TrainConfig(init_weights="x.pth")
    with pytest.raises(ValueError, match="labels must be"):
        TrainConfig(labels="box")


def test_ellipse_labels_and_ignored_cells():
    from tracker.training.loss import balanced_logistic_loss, ellipse_labels

    # A 64x32 target centred in the 255 px search crop; cells are 16 px apart around 127.5.
    boxes = torch.tensor([[95.5, 111.5, 159.5, 143.5], [95.5, 111.5, 159.5, 143.5]])
    labels = ellipse_labels(boxes, torch.tensor([1.0, 0.0]), 15, 16, 255)
    assert labels.shape == (2, 1, 15, 15)
    row = labels[0, 0, 7]
    # Half-axes of the positive ellipse: 16 x 8 px. Along the row: centre and +-16 px positive, +-32 px ignored
    # (inside the 32 x 16 ellipse), beyond that negative.
    assert row[6:9].tolist() == [1, 1, 1] and row[5].item() == -1 and row[9].item() == -1
    assert row[4].item() == 0 and labels[0, 0, 6, 7].item() == -1  # 16 px up: outside the 8 px half-height
    assert bool((labels[1] == 0).all())  # a negative pair has no positive or ignored cell
    logits = torch.zeros(2, 1, 15, 15, requires_grad=True)
    loss = balanced_logistic_loss(logits, labels)
    loss.backward()
    assert bool((logits.grad[labels < 0] == 0).all()) and bool((logits.grad[labels >= 0] != 0).all())


class BestBoxEngine:
    """A network stand-in: a 15x15 map with one confident cell whose box is off its cell position."""

    name = "fake"

    def __init__(self) -> None:
        self.config = ModelConfig(**NANO_CONFIG)
        self.response_size = 15
        self.last_split: dict = {}
        self.sides = (40.0, 20.0, 60.0, 40.0)  # left, top, right, bottom distances in search-crop pixels

    def template(self, exemplar):
        return None

    def search(self, crops, template):
        logits = np.full((1, 15, 15), -4.0, np.float32)
        logits[0, 7, 7] = 3.0
        distances = np.empty((1, 4, 15, 15), np.float32)
        for i, d in enumerate(self.sides):
            distances[0, i] = d
        return logits, distances


def test_box_rule_takes_the_best_cells_box_centre_and_damped_size():
    from tracker.crop import context_side
    from tracker.tracking import SiamTracker

    engine = BestBoxEngine()
    config = TrackerConfig(num_scales=1, box_position="box", window_influence=0.0, size_penalty=0.2,
                           scale_damping=0.5)
    tracker = SiamTracker(engine, config)
    frame = np.zeros((480, 640, 3), np.uint8)
    tracker.init(frame, (300.0, 200.0, 40.0, 60.0))
    to_frame = context_side(40, 60, 0.5) * 255 / 127 / 255  # frame pixels per search-crop pixel
    result = tracker.update(frame)
    x, y, w, h = result.box
    # The centre cell's box: 100 x 60 crop px, its centre (60 - 40) / 2 = 10 px right and 10 px down of the cell.
    assert x + w / 2 == pytest.approx(320.0 + 10 * to_frame, abs=1e-3)
    assert y + h / 2 == pytest.approx(230.0 + 10 * to_frame, abs=1e-3)
    width, height = 100 * to_frame, 60 * to_frame

    def padded(a, b):
        return math.sqrt((a + (a + b) / 2) * (b + (a + b) / 2))

    size = padded(width, height) / padded(40, 60)
    ratio = (width / height) / (40 / 60)
    change = max(size, 1 / size) * max(ratio, 1 / ratio)
    probability = 1 / (1 + math.exp(-3.0))
    rate = 0.5 * math.exp(-(change - 1) * 0.2) * probability
    assert w == pytest.approx(40 + rate * (width - 40), rel=1e-4)
    assert h == pytest.approx(60 + rate * (height - 60), rel=1e-4)
    assert result.score == pytest.approx(probability, rel=1e-5)


def test_box_position_is_validated():
    with pytest.raises(ValueError, match="box_position must be one of"):
        TrackerConfig(box_position="centre")
