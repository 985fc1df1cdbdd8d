"""Losses: SiamFC's balanced logistic loss on the response map, and a GIoU loss for the box head."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torchvision.ops import generalized_box_iou_loss

from ..crop import response_cell_positions


def _cell_positions(response_size: int, stride: int, search_size: int, like: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(response_cell_positions(response_size, stride, search_size), device=like.device, dtype=like.dtype)


def response_labels(centers: torch.Tensor, positive: torch.Tensor, response_size: int, stride: int, search_size: int,
                    radius: float) -> torch.Tensor:
    """(B,1,R,R) labels: 1 where a response cell lies within `radius` search pixels of the target centre.

    Cell k looks at search position search_size/2 + (k - (R-1)/2) * stride, as the tracking loop assumes.
    Negative pairs (positive == 0) get no positive cell.
    """
    cells = _cell_positions(response_size, stride, search_size, like=centers)
    dx = cells.view(1, 1, -1) - centers[:, 0].view(-1, 1, 1)
    dy = cells.view(1, -1, 1) - centers[:, 1].view(-1, 1, 1)
    inside = (dx.square() + dy.square()) <= radius**2
    return (inside & (positive.view(-1, 1, 1) > 0)).unsqueeze(1).to(centers.dtype)


def ellipse_labels(boxes: torch.Tensor, positive: torch.Tensor, response_size: int, stride: int,
                   search_size: int) -> torch.Tensor:
    """(B,1,R,R) labels in SiamBAN's shape (the one NanoTrack was trained with): 1 inside the ellipse of half the
    target's width and height, 0 outside the ellipse of its full width and height, -1 (ignored) between.
    boxes: (B,4) x1, y1, x2, y2 in search pixels. Negative pairs are 0 everywhere."""
    cells = _cell_positions(response_size, stride, search_size, like=boxes)
    centre, size = (boxes[:, :2] + boxes[:, 2:]) / 2, (boxes[:, 2:] - boxes[:, :2]).clamp_min(1e-3)
    dx = (cells.view(1, 1, -1) - centre[:, 0].view(-1, 1, 1)) / size[:, 0].view(-1, 1, 1)
    dy = (cells.view(1, -1, 1) - centre[:, 1].view(-1, 1, 1)) / size[:, 1].view(-1, 1, 1)
    distance = dx.square() + dy.square()  # 0.25 on the ellipse through the box's sides
    labels = torch.where(distance <= 0.0625, 1.0, torch.where(distance <= 0.25, -1.0, 0.0)).to(boxes.dtype)
    return torch.where(positive.view(-1, 1, 1) > 0, labels, torch.zeros_like(labels)).unsqueeze(1)


def balanced_logistic_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy where positives and negatives each weigh half (per batch), as in SiamFC. Cells
    labelled -1 are ignored."""
    positives = (labels > 0).sum()
    negatives = (labels == 0).sum()
    weights = torch.where(labels > 0, 0.5 / positives.clamp_min(1), 0.5 / negatives.clamp_min(1))
    weights = torch.where(labels < 0, torch.zeros_like(weights), weights)
    if positives == 0:  # a batch of negative pairs only: negatives take the whole weight
        weights = weights * 2
    return F.binary_cross_entropy_with_logits(logits, labels.clamp_min(0), weight=weights, reduction="sum")


def cell_boxes(distances: torch.Tensor, cells: torch.Tensor) -> torch.Tensor:
    """(B,4,R,R) side distances (left, top, right, bottom) from each cell's position -> (B,R,R,4) boxes x1,y1,x2,y2."""
    cx, cy = cells.view(1, 1, -1), cells.view(1, -1, 1)
    left, top, right, bottom = distances.unbind(1)
    return torch.stack([cx - left, cy - top, cx + right, cy + bottom], dim=-1)


def box_regression_loss(distances: torch.Tensor, boxes: torch.Tensor, positive: torch.Tensor, stride: int,
                        search_size: int) -> torch.Tensor:
    """GIoU loss (torchvision.ops) between the target box (B,4) and the box predicted by every cell that lies inside
    it, as SiamFC++ trains its regression; negative pairs have no target and add nothing."""
    size = distances.shape[-1]
    cells = _cell_positions(size, stride, search_size, like=distances)
    cx, cy = cells.view(1, 1, -1), cells.view(1, -1, 1)
    b = boxes.view(-1, 4, 1, 1)
    inside = (cx > b[:, 0]) & (cx < b[:, 2]) & (cy > b[:, 1]) & (cy < b[:, 3]) & (positive.view(-1, 1, 1) > 0)
    if not bool(inside.any()):
        return distances.sum() * 0.0  # a zero that still backpropagates
    predicted = cell_boxes(distances, cells)[inside]
    target = boxes.view(-1, 1, 1, 4).expand(-1, size, size, 4)[inside]
    return generalized_box_iou_loss(predicted, target, reduction="mean")
