"""Config validation, round trips, derived network sizes, and self-describing checkpoints."""
import dataclasses

import pytest

torch = pytest.importorskip("torch", reason="needs PyTorch (pip install '.[dev]')")

from tracker.checkpoint import FORMAT, default_weights_path, load_checkpoint, load_model, save_checkpoint  # noqa: E402
from tracker.config import ModelConfig, TrackerConfig  # noqa: E402
from tracker.errors import UserError  # noqa: E402
from tracker.model import SiamNet  # noqa: E402


# -- configs ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", [ModelConfig, TrackerConfig])
def test_unknown_keys_raise(cls):
    with pytest.raises(ValueError, match="unknown key.*bogus"):
        cls.from_dict({"bogus": 1})
    with pytest.raises(ValueError, match="unknown key"):
        cls().replace(bogus=2)


@pytest.mark.parametrize(
    "cls,values,match",
    [
        (ModelConfig, {"backbone": "resnet"}, "backbone"),
        (ModelConfig, {"backbone": "alexnet", "stride": 16}, "stride"),
        (ModelConfig, {"stride": 32}, "stride"),
        (ModelConfig, {"stride": 8, "last_stage": 4}, "last_stage"),
        (ModelConfig, {"stride": 16, "last_stage": 3}, "last_stage"),
        (ModelConfig, {"backbone": "alexnet", "stride": 8, "last_stage": 3}, "last_stage"),
        (ModelConfig, {"neck_channels": -1}, "neck_channels"),
        (ModelConfig, {"template_crop": -2}, "template_crop"),
        (ModelConfig, {"exemplar_size": 255, "search_size": 255}, "exemplar_size"),
        (ModelConfig, {"exemplar_size": 0}, "exemplar_size"),
        (ModelConfig, {"head_scale": 0.0}, "head_scale"),
        (TrackerConfig, {"context_amount": -0.1}, "context_amount"),
        (TrackerConfig, {"num_scales": 2}, "num_scales"),
        (TrackerConfig, {"num_scales": 0}, "num_scales"),
        (TrackerConfig, {"scale_step": 0.99}, "scale_step"),
        (TrackerConfig, {"scale_penalty": 0.0}, "scale_penalty"),
        (TrackerConfig, {"scale_penalty": 1.1}, "scale_penalty"),
        (TrackerConfig, {"scale_damping": 1.5}, "scale_damping"),
        (TrackerConfig, {"window_influence": -0.01}, "window_influence"),
        (TrackerConfig, {"response_upsample": 0}, "response_upsample"),
        (TrackerConfig, {"min_scale_factor": 0.0}, "min_scale_factor"),
        (TrackerConfig, {"max_scale_factor": 0.9}, "max_scale_factor"),
        (TrackerConfig, {"lost_threshold": 1.5}, "lost_threshold"),
        (TrackerConfig, {"min_box_side": 0.0}, "min_box_side"),
        (TrackerConfig, {"demote_by_motion": 2}, "demote_by_motion"),
        (TrackerConfig, {"reunite_by_motion": -1}, "reunite_by_motion"),
    ],
)
def test_bad_values_raise(cls, values, match):
    with pytest.raises(ValueError, match=match):
        cls.from_dict(values)
    with pytest.raises(ValueError, match=match):
        cls(**values)


@pytest.mark.parametrize(
    "config",
    [
        ModelConfig(),
        ModelConfig(backbone="alexnet", stride=8, neck_channels=64, head_scale=3.0, head_bias=-1.0),
        ModelConfig(stride=8, template_crop=8),
        TrackerConfig(),
        TrackerConfig(num_scales=5, scale_step=1.05, window_influence=0.3, lost_threshold=0.2),
    ],
)
def test_round_trip(config):
    values = config.to_dict()
    assert type(config).from_dict(values) == config
    assert set(values) == {f.name for f in dataclasses.fields(config)}
    assert type(config).from_dict(None) == type(config)()  # defaults


def test_configs_are_frozen_and_replace_validates():
    config = TrackerConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.num_scales = 5  # type: ignore[misc]
    assert config.replace(num_scales=5).num_scales == 5 and config.num_scales == 3
    with pytest.raises(ValueError, match="num_scales"):
        config.replace(num_scales=4)


# -- derived sizes ---------------------------------------------------------------------------------------------


def test_box_head_needs_a_3x3_template_grid():
    with pytest.raises(ValueError, match="at least 3x3.*template_crop"):
        SiamNet(ModelConfig(template_crop=2, box_head_channels=8), pretrained_backbone=False)


@pytest.mark.parametrize("name", ["alexnet", "efficientnet_lite0", "mobilenetv3_nanotrack"])
def test_registered_backbone_builds_every_cut_it_declares(name):
    """The registry (tracker/backbone_specs.py) is the one list of trunks: each spec's module builds every cut the
    spec declares, with the declared channels, and its export fold computes the same features."""
    from tracker.backbone_specs import SPECS
    from tracker.backbones import build_backbone, trunk_hooks

    spec = SPECS[name]
    assert tuple(SPECS) == ("alexnet", "efficientnet_lite0", "mobilenetv3_nanotrack")
    images = torch.rand(2, 3, 127, 127) * 255
    for stage, cut in spec.cuts.items():
        config = ModelConfig(backbone=name, stride=cut.stride, last_stage=stage)
        trunk = build_backbone(config, pretrained=False).eval()
        folded = trunk_hooks(name).fold_input_normalisation(trunk).eval()
        with torch.no_grad():
            features, from_folded = trunk(images), folded(images)
        assert trunk.out_channels == folded.out_channels == features.shape[1] == cut.channels
        torch.testing.assert_close(from_folded, features, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize(
    "values,template,search,response",
    [
        ({"backbone": "alexnet", "stride": 8}, 6, 22, 17),
        ({"backbone": "efficientnet_lite0", "stride": 8}, 16, 32, 17),
        ({"backbone": "efficientnet_lite0", "stride": 16}, 8, 16, 9),
        ({"backbone": "efficientnet_lite0", "stride": 16, "neck_channels": 32}, 8, 16, 9),
        ({"backbone": "efficientnet_lite0", "stride": 8, "template_crop": 8}, 8, 32, 25),
        ({"backbone": "efficientnet_lite0", "stride": 16, "template_crop": 6, "box_head_channels": 16}, 6, 16, 11),
        ({"backbone": "efficientnet_lite0", "stride": 16, "last_stage": 4, "template_crop": 6, "search_size": 191}, 6, 12, 7),
        ({"backbone": "efficientnet_lite0", "stride": 16, "last_stage": 5, "search_size": 223}, 8, 14, 7),
        ({"backbone": "alexnet", "stride": 8, "neck_channels": 32, "box_head_channels": 8}, 6, 22, 17),
    ],
)
def test_derived_sizes(values, template, search, response):
    config = ModelConfig(**values)
    net = SiamNet(config, pretrained_backbone=False).eval()
    assert (net.template_size, net.search_feature_size, net.response_size) == (template, search, response)
    assert net.stride == config.stride
    stage = config.last_stage or {8: 3, 16: 5}[config.stride]
    expected_channels = 256 if config.backbone == "alexnet" else {3: 40, 4: 80, 5: 112}[stage]
    assert net.backbone.out_channels == expected_channels
    # Consistent with a real forward pass, for a batch of exemplars and for a pyramid against one template.
    with torch.no_grad():
        z = torch.rand(2, 3, config.exemplar_size, config.exemplar_size) * 255
        x = torch.rand(2, 3, config.search_size, config.search_size) * 255
        logits, boxes = net(z, x)
        assert logits.shape == (2, 1, response, response)
        assert (boxes is None) == (not config.box_head_channels)
        if boxes is not None:  # four positive side distances for every cell
            assert boxes.shape == (2, 4, response, response) and bool((boxes > 0).all())
        logits, boxes = net.track(x, net.template(z[:1]))
        assert logits.shape == (2, 1, response, response)
        assert boxes is None or boxes.shape == (2, 4, response, response)
    assert net.response_size == net.search_feature_size - net.template_size + 1
    if not config.template_crop:
        # The response centre is the search centre: (R - 1) / 2 cells of `stride` pixels = half the size difference.
        assert (net.response_size - 1) / 2 * config.stride == (config.search_size - config.exemplar_size) / 2


# -- checkpoints -----------------------------------------------------------------------------------------------


def test_checkpoint_round_trip(tmp_path):
    model_config = ModelConfig(stride=8, neck_channels=16, head_scale=4.0, head_bias=-2.0)
    model = SiamNet(model_config, pretrained_backbone=False).eval()
    with torch.no_grad():
        model.head.scale.fill_(7.5)  # a value different from the config's initial one
    tracker_config = TrackerConfig(num_scales=5, lost_threshold=0.25)
    path = tmp_path / "model.pt"
    save_checkpoint(path, model, tracker_config, {"note": "test"})

    payload = load_checkpoint(path)
    assert payload["format"] == FORMAT and payload["model_config"] == model_config.to_dict()
    loaded, loaded_tracker_config, meta = load_model(path)
    assert loaded.config == model_config and loaded_tracker_config == tracker_config and meta == {"note": "test"}
    assert not loaded.training
    expected = model.state_dict()
    assert set(loaded.state_dict()) == set(expected)
    for key, value in loaded.state_dict().items():
        torch.testing.assert_close(value, expected[key], rtol=0, atol=0)
    assert loaded.head.scale.item() == 7.5


def test_shipped_default_weights_load():
    assert default_weights_path().is_file(), f"shipped weights missing: {default_weights_path()}"
    model, tracker_config, meta = load_model()
    assert model.config.backbone in ("efficientnet_lite0", "alexnet", "mobilenetv3_nanotrack")
    assert isinstance(tracker_config, TrackerConfig) and isinstance(meta, dict)


def test_missing_weights_file_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="not found"):
        load_model(tmp_path / "nope.pt")


@pytest.mark.parametrize("kind", ["garbage", "text", "truncated", "foreign_state_dict", "foreign_object", "other_format"])
def test_foreign_or_corrupt_file_is_a_user_error(tmp_path, kind):
    path = tmp_path / f"{kind}.pt"
    if kind == "garbage":
        path.write_bytes(bytes(range(256)) * 40)
    elif kind == "text":
        path.write_text("hello, I am not a checkpoint\n")
    elif kind == "truncated":
        data = default_weights_path().read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif kind == "foreign_state_dict":
        torch.save(SiamNet(ModelConfig(backbone="alexnet", stride=8), pretrained_backbone=False).state_dict(), path)
    elif kind == "foreign_object":
        torch.save([1, 2, 3], path)
    else:
        torch.save({"format": "someone-else/2", "state_dict": {}}, path)
    with pytest.raises(UserError):
        load_model(path)


def _tagged_payload_variants():
    """Files that carry the siamtrack format tag but whose contents do not fit this version of the code."""
    model = SiamNet(ModelConfig(stride=8), pretrained_backbone=False)
    base = {"format": FORMAT, "model_config": model.config.to_dict(), "tracker_config": TrackerConfig().to_dict(),
            "meta": {}, "state_dict": model.state_dict()}
    return {
        "future_config_key": {**base, "model_config": {**base["model_config"], "future_option": 1}},
        "invalid_tracker_value": {**base, "tracker_config": {**base["tracker_config"], "num_scales": 2}},
        "weights_for_another_config": {**base, "model_config": {**base["model_config"], "stride": 16}},
        "no_state_dict": {key: value for key, value in base.items() if key != "state_dict"},
    }


@pytest.mark.parametrize("variant", ["future_config_key", "invalid_tracker_value", "weights_for_another_config", "no_state_dict"])
def test_tagged_but_unusable_checkpoint_is_a_user_error(tmp_path, variant):
    path = tmp_path / f"{variant}.pt"
    torch.save(_tagged_payload_variants()[variant], path)
    with pytest.raises(UserError):
        load_model(path)
