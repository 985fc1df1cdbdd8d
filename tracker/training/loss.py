"""SiamFC's balanced logistic loss on the response map."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def response_labels(centers: torch.Tensor, positive: torch.Tensor, response_size: int, stride: int, search_size: int,
                    radius: float) -> torch.Tensor:
    """(B,1,R,R) labels: 1 where a response cell lies within `radius` search pixels of the target centre.

    Cell k looks at search position search_size/2 + (k - (R-1)/2) * stride, as the tracking loop assumes.
    Negative pairs (positive == 0) get no positive cell.
    """
    offsets = (torch.arange(response_size, device=centers.device, dtype=centers.dtype) - (response_size - 1) / 2) * stride
    cells = search_size / 2 + offsets
    dx = cells.view(1, 1, -1) - centers[:, 0].view(-1, 1, 1)
    dy = cells.view(1, -1, 1) - centers[:, 1].view(-1, 1, 1)
    inside = (dx.square() + dy.square()) <= radius**2
    return (inside & (positive.view(-1, 1, 1) > 0)).unsqueeze(1).to(centers.dtype)


def balanced_logistic_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy where positives and negatives each weigh half (per batch), as in SiamFC."""
    positives = labels.sum()
    negatives = labels.numel() - positives
    weights = torch.where(labels > 0, 0.5 / positives.clamp_min(1), 0.5 / negatives.clamp_min(1))
    if positives == 0:  # a batch of negative pairs only: negatives take the whole weight
        weights = weights * 2
    return F.binary_cross_entropy_with_logits(logits, labels, weight=weights, reduction="sum")
