"""The backbone registry's torch-free half: what each trunk is, readable without PyTorch.

Every trunk is registered here once, by one `BackboneSpec` line: its name (the `backbone` value stored in
checkpoints and ONNX metadata), the cuts it may end after (stage -> total stride and output channels), where its
starting weights come from, and the module that holds its torch half. That module (e.g. `backbone_alexnet.py`)
defines the network and one `TRUNK = TrunkHooks(...)`: how to build it, which leading part stays frozen in
training, whether its BatchNorms keep their pretrained statistics, and how export folds its input normalisation.
`tracker.backbones` imports the module on first use.

The split keeps `tracker.config` (which validates `backbone`, `stride` and `last_stage` against these specs)
importable where PyTorch is not installed: the ONNX engine reads a model config from graph metadata.

Adding a backbone: one new module `tracker/backbone_<name>.py` with the network and its `TRUNK`, plus one
`BackboneSpec(...)` line in SPECS below.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

WEIGHT_SOURCES = ("imagenet", "random", "checkpoint")


@dataclass(frozen=True)
class Cut:
    """Where a trunk may end: the total stride there and the channels of its output."""

    stride: int
    channels: int


@dataclass(frozen=True)
class BackboneSpec:
    name: str
    title: str  # for messages
    module: str  # the module (in this package) holding the network and its TrunkHooks
    # The stage a cut ends after -> its Cut. A trunk used whole has the one key 0.
    cuts: Mapping[int, Cut]
    # Where a fresh model's trunk weights come from: ImageNet (pretrained=True loads them), nowhere (random until
    # trained) or a tracking checkpoint given to training (init_weights).
    initial_weights: str

    @property
    def strides(self) -> tuple[int, ...]:
        return tuple(sorted({cut.stride for cut in self.cuts.values()}))

    def stages(self, stride: int) -> tuple[int, ...]:
        """The last_stage values allowed at `stride`: 0 (the deepest cut of the stride) and each stage ending there."""
        return (0,) + tuple(stage for stage, cut in self.cuts.items() if stage and cut.stride == stride)

    def stage(self, stride: int, last_stage: int) -> int:
        """The stage the trunk ends after: last_stage, or the deepest one of the stride."""
        return last_stage or max(stage for stage, cut in self.cuts.items() if cut.stride == stride)

    def channels(self, stride: int, last_stage: int) -> int:
        return self.cuts[self.stage(stride, last_stage)].channels


@dataclass(frozen=True)
class TrunkHooks:
    """The torch half of a trunk, defined in its module as TRUNK (see the module docstring)."""

    # (ModelConfig, load ImageNet weights?) -> the trunk: an nn.Module that takes BGR floats in [0, 255] and has an
    # `out_channels` attribute. (Callables typed Any: this module must not import torch or the config.)
    build: Callable[[Any, bool], Any]
    # (trunk, recipe.trainable_from_block, started from a tracking checkpoint?) -> the modules training freezes.
    frozen_prefix: Callable[[Any, int, bool], list]
    # (trunk) -> a module computing the same features with the input normalisation folded into the first conv
    # (export); a trunk without normalisation returns itself.
    fold_input_normalisation: Callable[[Any], Any]
    # True: in training the trunk's BatchNorms keep their ImageNet statistics (batches of one object's crops are
    # too narrow a sample to re-estimate them).
    keeps_batchnorm_statistics: bool = False


def _registry(*specs: BackboneSpec) -> dict[str, BackboneSpec]:
    for spec in specs:
        if spec.initial_weights not in WEIGHT_SOURCES:
            raise ValueError(f"backbone {spec.name}: initial_weights must be one of {WEIGHT_SOURCES}")
    return {spec.name: spec for spec in specs}


# The order is the order error messages list the names in.
SPECS = _registry(
    BackboneSpec("alexnet", "AlexNet", "backbone_alexnet", {0: Cut(8, 256)}, "random"),
    BackboneSpec("efficientnet_lite0", "EfficientNet-Lite0", "backbone_efficientnet_lite0",
                 {3: Cut(8, 40), 4: Cut(16, 80), 5: Cut(16, 112)}, "imagenet"),
    BackboneSpec("mobilenetv3_nanotrack", "NanoTrack v3's MobileNetV3", "backbone_mobilenetv3",
                 {0: Cut(16, 96)}, "checkpoint"),
)
