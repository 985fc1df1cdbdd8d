"""The SiamFC AlexNet trunk (Bertinetto et al. 2016), registered as "alexnet" (tracker/backbone_specs.py)."""
from __future__ import annotations

import copy

import torch
from torch import nn

from .backbone_specs import SPECS, TrunkHooks


class AlexNet(nn.Module):
    """The SiamFC AlexNet: 5 conv layers with BN, no padding, total stride 8 (127 -> 6x6, 255 -> 22x22)."""

    out_channels = SPECS["alexnet"].cuts[0].channels

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


class FoldedAlexNet(nn.Module):
    """AlexNet with (x - 127) / 128 folded into conv1 (unpadded, so the offset folds into its bias exactly)."""

    def __init__(self, net: AlexNet) -> None:
        super().__init__()
        self.features = copy.deepcopy(net.features)
        conv = self.features[0]
        with torch.no_grad():
            conv.weight.div_(128.0)
            conv.bias.sub_(127.0 * conv.weight.sum(dim=(1, 2, 3)))
        self.out_channels = net.out_channels

    def forward(self, bgr: torch.Tensor) -> torch.Tensor:
        return self.features(bgr)


# No ImageNet weights here: nothing is frozen, and every BatchNorm learns its statistics.
TRUNK = TrunkHooks(
    build=lambda config, pretrained: AlexNet(),
    frozen_prefix=lambda trunk, trainable_from, tracking_pretrained: [],
    fold_input_normalisation=FoldedAlexNet,
)
