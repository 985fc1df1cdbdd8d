"""Cross-correlation of template features with search features: tiny pure functions plus the learnt head.

Runs on whatever device the tensors are on; exports to ONNX as a plain Conv whose weight is a graph input.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def xcorr_shared_template(search: torch.Tensor, template: torch.Tensor) -> torch.Tensor:
    """Score N search maps (N,C,H,W) against ONE template (1,C,h,w) -> (N,1,H-h+1,W-w+1)."""
    return F.conv2d(search, template)


def xcorr_pairwise(search: torch.Tensor, template: torch.Tensor) -> torch.Tensor:
    """Score each search map (B,C,H,W) against its own template (B,C,h,w) -> (B,1,...), one grouped conv."""
    b, c, h, w = search.shape
    out = F.conv2d(search.reshape(1, b * c, h, w), template, groups=b)
    return out.reshape(b, 1, out.shape[-2], out.shape[-1])


def xcorr_owned(search: torch.Tensor, templates: torch.Tensor, owner: torch.Tensor) -> torch.Tensor:
    """Score each search map (N,C,H,W) against the template it belongs to: templates (T,C,h,w), owner (N,) int64
    indices into them -> (N,1,H-h+1,W-w+1). One plain conv scores all N x T pairs and each crop keeps its owner's
    column: a grouped conv would do less work, but its group count is a constant in ONNX, and this way T and N stay
    dynamic in the exported graph. The extra pairs cost little: at 16 targets the correlation is still ~2% of the
    backbone's work."""
    out = F.conv2d(search, templates)
    index = owner.reshape(-1, 1, 1, 1).expand(-1, 1, out.shape[-2], out.shape[-1])
    return out.gather(1, index)


def xcorr_depthwise(search: torch.Tensor, template: torch.Tensor) -> torch.Tensor:
    """Channel by channel: N search maps (N,C,H,W) against one template (1,C,h,w) or one each (N,C,h,w)
    -> (N,C,H-h+1,W-w+1), one grouped conv (SiamRPN++'s depthwise correlation)."""
    n, c, h, w = search.shape
    if template.shape[0] == 1:
        return F.conv2d(search, template.reshape(c, 1, *template.shape[-2:]), groups=c)
    out = F.conv2d(search.reshape(1, n * c, h, w), template.reshape(n * c, 1, *template.shape[-2:]), groups=n * c)
    return out.reshape(n, c, out.shape[-2], out.shape[-1])


def xcorr_shifted_products(search: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """Depthwise correlation of each search map (N,C,H,W) with its own kernel (N,C,h,w) -> (N,C,H-h+1,W-w+1),
    written as a sum of shifted products over the kernel's h*w cells: only Slice, Mul and Add in a graph, which
    every runtime runs (OpenCV's DNN wants constant conv weights) and which fixes no group count."""
    h, w = kernels.shape[-2:]
    rows, cols = search.shape[-2] - h + 1, search.shape[-1] - w + 1
    out = search[:, :, :rows, :cols] * kernels[:, :, :1, :1]
    for u in range(h):
        for v in range(w):
            if u or v:
                out = out + search[:, :, u : u + rows, v : v + cols] * kernels[:, :, u : u + 1, v : v + 1]
    return out


class ShiftedProducts(nn.Module):
    """xcorr_shifted_products as a module without parameters (nothing in the state dict): each search map
    (N,C,H,W) against its own kernel (N,C,h,w), channel by channel. `siamtrack export` finds the graph nodes of
    each instance by this class and runs them as a loop of one grouped conv per crop, which onnxruntime runs
    faster (tracker/export/loop_correlation.py)."""

    def forward(self, search: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
        return xcorr_shifted_products(search, kernels)


class CorrelationHead(nn.Module):
    """Energy-normalised correlation -> logits.

    Dividing by the template's own energy makes 1.0 mean "as strong a match as the template against itself", so the
    untrained ImageNet trunk already gives probabilities on a sensible scale and training starts from there.
    """

    def __init__(self, scale: float, bias: float) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(float(scale)))
        self.bias = nn.Parameter(torch.tensor(float(bias)))

    def forward(self, template: torch.Tensor, search: torch.Tensor, owner: torch.Tensor | None = None) -> torch.Tensor:
        """template: (1,C,h,w) shared by every search map, (N,C,h,w) one each (training), or (T,C,h,w) with
        `owner` (N,) saying whose each search map is (several targets in one batch)."""
        energy = template.square().sum(dim=(1, 2, 3)).clamp_min(1e-6)
        if owner is not None:
            corr = xcorr_owned(search, template, owner) / energy.index_select(0, owner).view(-1, 1, 1, 1)
        elif template.shape[0] == 1:
            corr = xcorr_shared_template(search, template) / energy
        else:
            corr = xcorr_pairwise(search, template) / energy.view(-1, 1, 1, 1)
        return corr * self.scale + self.bias


def _conv_bn_relu(cin: int, cout: int, padding: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=padding, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class BoxHead(nn.Module):
    """Box regression in the style of SiamFC++: adjust both feature maps (3x3, unpadded, so their centres stay
    aligned), correlate them depthwise, and predict at each response cell the distances (left, top, right,
    bottom) from the cell's position in the search crop to the target's sides, in search-crop pixels.

    The template's adjust conv runs every frame on a ~6x6 map, which costs next to nothing and keeps the template
    features one tensor for both heads (one cached template per target, one graph input)."""

    def __init__(self, in_channels: int, channels: int, stride: int) -> None:
        super().__init__()
        self.adjust_template = _conv_bn_relu(in_channels, channels, padding=0)
        self.adjust_search = _conv_bn_relu(in_channels, channels, padding=0)
        self.tower = nn.Sequential(_conv_bn_relu(channels, channels, 1), _conv_bn_relu(channels, channels, 1))
        self.predict = nn.Conv2d(channels, 4, 1)
        self.correlate = ShiftedProducts()
        self.stride = stride
        # exp() keeps distances positive; start every side at two strides (a typical target half-size).
        nn.init.normal_(self.predict.weight, std=1e-3)
        nn.init.constant_(self.predict.bias, math.log(2.0))

    def forward(self, template: torch.Tensor, search: torch.Tensor, owner: torch.Tensor | None = None) -> torch.Tensor:
        """template and owner as in CorrelationHead.forward."""
        if owner is None:
            corr = xcorr_depthwise(self.adjust_search(search), self.adjust_template(template))
        else:
            corr = self.correlate(self.adjust_search(search), self.adjust_template(template).index_select(0, owner))
        # The clamp bounds a diverging early step (e^8 strides is far beyond any crop), not a trained output.
        return torch.exp(self.predict(self.tower(corr)).clamp(max=8.0)) * self.stride
