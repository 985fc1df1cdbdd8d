"""NanoTrack v3's MobileNetV3-Small-style trunk, registered as "mobilenetv3_nanotrack" (tracker/backbone_specs.py).
It has no ImageNet weights here: a model with it starts from NanoTrack v3's tracking checkpoint
(tracker/training/nanotrack_init.py)."""
from __future__ import annotations

import torch
from torch import nn

from .backbone_specs import SPECS, TrunkHooks


class _SqueezeExcite(nn.Module):
    """Channel gating from the pooled map: Linear -> ReLU -> Linear -> hard sigmoid (MobileNetV3)."""

    def __init__(self, channels: int, squeezed: int) -> None:
        super().__init__()
        self.fc = nn.Sequential(nn.Linear(channels, squeezed), nn.ReLU(inplace=True), nn.Linear(squeezed, channels),
                                nn.Hardsigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.fc(x.mean(dim=(2, 3))).unsqueeze(-1).unsqueeze(-1)


def _activation(hard_swish: bool) -> nn.Module:
    return nn.Hardswish() if hard_swish else nn.ReLU(inplace=True)


class _InvertedResidual(nn.Module):
    """MobileNetV3 block: [1x1 expand ->] kxk depthwise -> [squeeze-excite] -> 1x1 project, residual when the
    shape allows. The layer order inside `conv` is MobileNetV3's, so tracking-pretrained weights load by index."""

    def __init__(self, cin: int, hidden: int, cout: int, kernel: int, stride: int, se: bool, hard_swish: bool) -> None:
        super().__init__()
        self.residual = stride == 1 and cin == cout
        depthwise = [nn.Conv2d(hidden, hidden, kernel, stride, kernel // 2, groups=hidden, bias=False),
                     nn.BatchNorm2d(hidden)]
        gate = _SqueezeExcite(hidden, _divisible(hidden / 4)) if se else nn.Identity()
        project = [nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout)]
        if cin == hidden:  # no expansion: the gate follows the depthwise activation
            layers = [*depthwise, _activation(hard_swish), gate, *project]
        else:
            expand = [nn.Conv2d(cin, hidden, 1, bias=False), nn.BatchNorm2d(hidden), _activation(hard_swish)]
            layers = [*expand, *depthwise, gate, _activation(hard_swish), *project]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.residual else self.conv(x)


def _divisible(value: float, divisor: int = 8) -> int:
    """MobileNet's channel rounding: the nearest multiple of divisor, never more than 10% below value."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


# NanoTrack v3's trunk: MobileNetV3-Small's first eight blocks, then one 96-channel block whose stride was cut
# from 2 to 1, so the total stride stays 16 (127 px -> 8x8, 255 px -> 16x16).
# kernel, expansion, out channels, squeeze-excite, hard-swish, stride
_NANOTRACK_V3_BLOCKS = [
    (3, 1, 16, True, False, 2), (3, 4.5, 24, False, False, 2), (3, 3.67, 24, False, False, 1),
    (5, 4, 40, True, True, 2), (5, 6, 40, True, True, 1), (5, 6, 40, True, True, 1),
    (5, 3, 48, True, True, 1), (5, 3, 48, True, True, 1), (5, 6, 96, True, True, 1),
]


class MobileNetV3Trunk(nn.Module):
    """The trunk of NanoTrack v3 (MobileNetV3-Small-style, stride 16, 96 channels). It takes raw BGR in [0, 255]
    with no normalisation, as NanoTrack was trained; weights come from a checkpoint (init_weights), never from
    ImageNet."""

    out_channels = SPECS["mobilenetv3_nanotrack"].cuts[0].channels

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1, bias=False), nn.BatchNorm2d(16),
                                                 nn.Hardswish())]
        cin = 16
        for kernel, expansion, cout, se, hard_swish, stride in _NANOTRACK_V3_BLOCKS:
            layers.append(_InvertedResidual(cin, _divisible(cin * expansion), cout, kernel, stride, se, hard_swish))
            cin = cout
        self.features = nn.Sequential(*layers)

    def forward(self, bgr: torch.Tensor) -> torch.Tensor:
        return self.features(bgr)



def _frozen_prefix(trunk: MobileNetV3Trunk, trainable_from: int, tracking_pretrained: bool) -> list[nn.Module]:
    """Started from a tracking checkpoint: its blocks before `trainable_from` stay as they are. A random trunk
    trains whole."""
    return list(trunk.features[:trainable_from]) if tracking_pretrained else []


# No input normalisation to fold: the trunk takes raw BGR.
TRUNK = TrunkHooks(
    build=lambda config, pretrained: MobileNetV3Trunk(),
    frozen_prefix=_frozen_prefix,
    fold_input_normalisation=lambda trunk: trunk,
)
