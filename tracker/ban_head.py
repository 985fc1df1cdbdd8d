"""A box-adaptive head in the style of NanoTrack v3 (SiamBAN / LightTrack family): the template is matched against
the search features two ways, depthwise over its central 4x4 cells and pixel-wise (every template cell against
every search cell), the two are fused, and two towers of depthwise-separable convs predict at every response cell
a class score and the distances to the target's four sides.

Returns the same pair as SiamNet's SiamFC head + box head, so the tracking loop, the export and the training loss
need no second code path: logits (N,1,R,R), the log-odds of the target class, and distances (N,4,R,R) in
search-crop pixels. The submodules are laid out as NanoTrack v3's, so its tracking-pretrained weights load by name.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .correlation import ShiftedProducts, xcorr_depthwise

TOWER_DEPTH = 6
DEPTHWISE_CELLS = 4  # the central template cells the depthwise branch correlates


def _per_crop(template: torch.Tensor, n: int, owner: torch.Tensor | None) -> torch.Tensor:
    """One template per search map: the owner's, the single shared one, or the template already paired."""
    if owner is not None:
        return template.index_select(0, owner)
    return template.expand(n, -1, -1, -1) if template.shape[0] == 1 else template


def xcorr_pixelwise(search: torch.Tensor, templates: torch.Tensor) -> torch.Tensor:
    """Every template cell against every search cell: search (N,C,H,W), templates (N,C,h,w) -> (N,h*w,H,W), one
    batched matmul (dynamic N in ONNX)."""
    n, c, hgt, wid = search.shape
    kernel = templates.reshape(n, c, -1).transpose(1, 2)
    return torch.matmul(kernel, search.reshape(n, c, -1)).reshape(n, -1, hgt, wid)


def _pointwise_bn(channels: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(channels, channels, 1), nn.BatchNorm2d(channels))


class _ChannelAttention(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(channels, channels, 1)
        self.fc2 = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(self.fc2(F.relu(self.fc1(x.mean(dim=(2, 3), keepdim=True)))))


class _DepthwiseMatch(nn.Module):
    """1x1 adjust of both maps, then depthwise correlation with one cell of padding (16x16 search, 4x4 template
    -> 15x15)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv_kernel = _pointwise_bn(channels)
        self.conv_search = _pointwise_bn(channels)
        self.correlate = ShiftedProducts()

    def forward(self, templates: torch.Tensor, search: torch.Tensor, owner: torch.Tensor | None) -> torch.Tensor:
        kernel = self.conv_kernel(templates)
        padded = F.pad(self.conv_search(search), (1, 1, 1, 1))
        if owner is None and kernel.shape[0] == 1:
            # One target: the same arithmetic as several targets in one batch, so a target tracked alone and
            # in company gets the same numbers. (A grouped conv over all templates was 0.1 to 0.6 ms faster per
            # frame, but its kernel changes with the template count: batched and separate tracks then parted by up
            # to 135 px on `bench --targets 16`, against 0.000 px this way. The exported graph runs a grouped conv
            # per crop instead, in a loop: faster than these shifted products, and the same numbers alone or in
            # company; see tracker/export/loop_correlation.py.)
            owner = torch.zeros(search.shape[0], dtype=torch.int64, device=search.device)
        if owner is not None:
            return self.correlate(padded, kernel.index_select(0, owner))
        return xcorr_depthwise(padded, kernel)


class _PixelwiseMatch(nn.Module):
    """1x1 adjust of both maps, pixel-wise correlation, channel attention, then a 2x2 depthwise + 1x1 conv (which
    also brings 16x16 to the depthwise branch's 15x15)."""

    def __init__(self, channels: int, template_cells: int) -> None:
        super().__init__()
        self.conv_kernel = _pointwise_bn(channels)
        self.conv_search = _pointwise_bn(channels)
        self.CA_layer = _ChannelAttention(template_cells)
        self.conv = nn.Sequential(
            nn.Conv2d(template_cells, template_cells, 2, groups=template_cells, bias=False),
            nn.BatchNorm2d(template_cells), nn.ReLU6(inplace=True),
            nn.Conv2d(template_cells, template_cells, 1), nn.BatchNorm2d(template_cells),
        )

    def forward(self, templates: torch.Tensor, search: torch.Tensor, owner: torch.Tensor | None) -> torch.Tensor:
        kernel = _per_crop(self.conv_kernel(templates), search.shape[0], owner)
        return self.conv(self.CA_layer(xcorr_pixelwise(self.conv_search(search), kernel)))


def _tower(channels: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for _ in range(TOWER_DEPTH):
        layers += [nn.Conv2d(channels, channels, 3, padding=1, groups=channels, bias=False), nn.BatchNorm2d(channels),
                   nn.ReLU6(inplace=True), nn.Conv2d(channels, channels, 1, bias=False), nn.BatchNorm2d(channels)]
    return nn.Sequential(*layers)


class BoxAdaptiveHead(nn.Module):
    """See the module docstring. `template_size` is the template grid's side (8 for 127 px at stride 16)."""

    def __init__(self, channels: int, template_size: int) -> None:
        super().__init__()
        if template_size < DEPTHWISE_CELLS:
            raise ValueError(f"the box-adaptive head needs a template grid of at least {DEPTHWISE_CELLS}x"
                             f"{DEPTHWISE_CELLS} cells, got {template_size}x{template_size}: raise exemplar_size")
        cells = template_size * template_size
        self.corr_dw_cls, self.corr_dw_reg = _DepthwiseMatch(channels), _DepthwiseMatch(channels)
        self.corr_pw_cls, self.corr_pw_reg = _PixelwiseMatch(channels, cells), _PixelwiseMatch(channels, cells)
        self.down_cls = nn.Sequential(nn.Conv2d(channels + cells, channels, 1))
        self.down_reg = nn.Sequential(nn.Conv2d(channels + cells, channels, 1))
        self.cls_tower, self.bbox_tower = _tower(channels), _tower(channels)
        self.cls_logits = nn.Sequential(nn.Conv2d(channels, 2, 1))
        self.bbox_pred = nn.Sequential(nn.Conv2d(channels, 4, 1))

    def forward(self, template: torch.Tensor, search: torch.Tensor,
                owner: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """template: (1,C,h,w) shared, (N,C,h,w) one per search map, or (T,C,h,w) with `owner` (N,) -> (logits
        (N,1,R,R), distances (N,4,R,R))."""
        start = (template.shape[-1] - DEPTHWISE_CELLS) // 2
        centre = template[..., start:start + DEPTHWISE_CELLS, start:start + DEPTHWISE_CELLS]
        cls = self.down_cls(torch.cat((self.corr_pw_cls(template, search, owner),
                                       self.corr_dw_cls(centre, search, owner)), 1))
        reg = self.down_reg(torch.cat((self.corr_pw_reg(template, search, owner),
                                       self.corr_dw_reg(centre, search, owner)), 1))
        two_class = self.cls_logits(self.cls_tower(cls))
        # Two-class softmax = sigmoid of the logit difference: one logit map, like the SiamFC head's.
        logits = two_class[:, 1:2] - two_class[:, 0:1]
        # The clamp bounds a diverging training step (e^8 px is far beyond any crop), not a trained output.
        distances = torch.exp(self.bbox_pred(self.bbox_tower(reg)).clamp(max=8.0))
        return logits, distances
