"""Cross-correlation of template features with search features: tiny pure functions plus the learnt head.

Runs on whatever device the tensors are on; exports to ONNX as a plain Conv whose weight is a graph input.
"""
from __future__ import annotations

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


class CorrelationHead(nn.Module):
    """Energy-normalised correlation -> logits.

    Dividing by the template's own energy makes 1.0 mean "as strong a match as the template against itself", so the
    untrained ImageNet trunk already gives probabilities on a sensible scale and training starts from there.
    """

    def __init__(self, scale: float, bias: float) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(float(scale)))
        self.bias = nn.Parameter(torch.tensor(float(bias)))

    def forward(self, template: torch.Tensor, search: torch.Tensor) -> torch.Tensor:
        energy = template.square().sum(dim=(1, 2, 3)).clamp_min(1e-6)
        if template.shape[0] == 1:
            corr = xcorr_shared_template(search, template) / energy
        else:
            corr = xcorr_pairwise(search, template) / energy.view(-1, 1, 1, 1)
        return corr * self.scale + self.bias
