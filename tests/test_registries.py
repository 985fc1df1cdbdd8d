"""The declared seams of the tracking core: both engines implement the Engine protocol whole (tracker config
included), load_engine picks one by the weights, and a box rule added to the registry is usable at once."""
from __future__ import annotations

import numpy as np
import pytest

from tracker import Engine, SiamTracker, UserError, load_engine
from tracker.box_rules import BOX_RULES, BestBox, box_positions, make_box_rule
from tracker.config import ModelConfig, TrackerConfig
from tracker.engines import ENGINES, engine_names, pick_engine
from tracker.paths import default_weights_path


def test_engine_names_come_from_the_registry():
    assert engine_names() == ("auto", "onnx", "torch") and set(ENGINES) == {"onnx", "torch"}
    assert pick_engine("auto", None) == "onnx"  # onnxruntime first when it is installed
    assert pick_engine("auto", str(default_weights_path())) == "torch"  # a .pt checkpoint needs torch
    with pytest.raises(UserError, match="unknown engine 'tensorrt': use one of auto, onnx, torch"):
        pick_engine("tensorrt", None)


def test_the_onnx_engine_implements_the_protocol_whole():
    engine = load_engine(engine="onnx", device="cpu")
    assert isinstance(engine, Engine) and engine.name == "onnx"
    template = engine.template(np.zeros((1, 127, 127, 3), np.uint8))
    assert engine.template_to_numpy(engine.stack_templates([template, template])).shape[0] == 2


def test_the_torch_engine_runs_the_checkpoints_stored_config():
    pytest.importorskip("torch", reason="needs PyTorch (pip install '.[dev]')")
    from tracker.checkpoint import load_model

    engine = load_engine(engine="torch", device="cpu")
    assert isinstance(engine, Engine) and engine.name == "torch"
    stored = load_model()[1]
    assert engine.tracker_config == stored and stored.box_position == "box"
    # A tracker built on the engine alone runs what the weights store, as the ONNX pair does.
    assert SiamTracker(engine).config == stored == load_engine(engine="onnx", device="cpu").tracker_config
    template = engine.template(np.zeros((1, 127, 127, 3), np.uint8))
    assert isinstance(engine.template_to_numpy(template), np.ndarray)


def test_box_rules_are_chosen_by_the_network_and_box_position():
    box_model, siamfc_model = ModelConfig(head="box_adaptive", backbone="mobilenetv3_nanotrack"), ModelConfig()
    assert box_positions() == ("peak", "box")
    assert make_box_rule(siamfc_model, TrackerConfig(num_scales=3), 17).name == "pyramid"
    assert make_box_rule(box_model, TrackerConfig(num_scales=1), 15).name == "box"  # the default
    assert make_box_rule(box_model, TrackerConfig(num_scales=1, box_position="peak"), 15).name == "peak"
    with pytest.raises(UserError, match="num_scales must be 1"):
        make_box_rule(box_model, TrackerConfig(num_scales=3), 15)


class _StayPut(BestBox):
    """A rule that scores as the best-box rule but never moves the box: enough to show a new rule plugs in."""

    name = "stay_put"

    def move(self, state, logits, distances, features=None) -> float:
        center, size, side = state.center.copy(), state.size.copy(), state.search_side
        score = super().move(state, logits, distances, features)
        state.center, state.size, state.search_side = center, size, side
        return score


def test_a_registered_rule_is_a_valid_box_position(monkeypatch, synthetic):
    monkeypatch.setitem(BOX_RULES, _StayPut.name, _StayPut)
    frames, gt = synthetic
    tracker = SiamTracker.from_pretrained(engine="onnx", device="cpu", box_position="stay_put")
    assert tracker.rule.name == "stay_put"
    tracker.init(frames[0], gt[0])
    for frame in frames[1:4]:
        result = tracker.update(frame)
    assert result.box == pytest.approx(tuple(gt[0]))  # the rule decided: the box never moved
    monkeypatch.delitem(BOX_RULES, _StayPut.name)
    with pytest.raises(ValueError, match="box_position must be one of \\('peak', 'box'\\)"):
        TrackerConfig(box_position="stay_put")
