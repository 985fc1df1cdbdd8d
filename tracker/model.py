"""Siamese network: backbone -> optional neck -> correlation head (+ optional box head), split into template(z)
and track(x)."""
from __future__ import annotations

import torch
from torch import nn

from .backbones import build_backbone
from .config import ModelConfig
from .ban_head import BoxAdaptiveHead
from .correlation import BoxHead, CorrelationHead


class SiamNet(nn.Module):
    def __init__(self, config: ModelConfig, pretrained_backbone: bool = True) -> None:
        super().__init__()
        self.config = config
        self.backbone = build_backbone(config, pretrained_backbone)
        channels = self.backbone.out_channels
        if config.neck_channels:
            self.neck: nn.Module = nn.Sequential(
                nn.Conv2d(channels, config.neck_channels, 1, bias=False), nn.BatchNorm2d(config.neck_channels)
            )
        else:
            self.neck = nn.Identity()
        out_channels = config.neck_channels or channels
        if config.head == "box_adaptive":
            with torch.no_grad():
                grid = self.eval().embed(torch.zeros(1, 3, config.exemplar_size, config.exemplar_size)).shape[-1]
            self.train()
            self.head: nn.Module = BoxAdaptiveHead(out_channels, config.template_crop or grid)
        else:
            self.head = CorrelationHead(config.head_scale, config.head_bias)
        self.box_head = BoxHead(out_channels, config.box_head_channels, config.stride) if config.box_head_channels else None
        self.template_size, self.search_feature_size, self.response_size = self._derive_sizes()

    @torch.no_grad()
    def _derive_sizes(self) -> tuple[int, int, int]:
        """Feature and response sizes come from a dry run, so no backbone needs them typed in."""
        was_training = self.training
        self.eval()
        full = self.embed(torch.zeros(1, 3, self.config.exemplar_size, self.config.exemplar_size)).shape[-1]
        k = self.config.template_crop
        if k and (k > full or (full - k) % 2):
            # An off-centre crop would shift every displacement by half a cell.
            raise ValueError(f"template_crop={k} cannot be centred in the {full}x{full} template grid: "
                             f"use 0 or a size <= {full} with the same parity as {full}")
        z = self.template(torch.zeros(1, 3, self.config.exemplar_size, self.config.exemplar_size))
        x = self.embed(torch.zeros(1, 3, self.config.search_size, self.config.search_size))
        if self.box_head is not None and z.shape[-1] < 3:
            raise ValueError(f"the box head's 3x3 adjust conv needs a template grid of at least 3x3, got "
                             f"{z.shape[-1]}x{z.shape[-1]}: raise template_crop (or use 0)")
        r = self.correlate(z, x)[0]
        self.train(was_training)
        return z.shape[-1], x.shape[-1], r.shape[-1]

    @property
    def stride(self) -> int:
        return self.config.stride

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """BGR float images in [0, 255], (N,3,H,W) -> features."""
        return self.neck(self.backbone(images))

    def template(self, exemplar: torch.Tensor) -> torch.Tensor:
        """Run once per target: exemplar crops (N,3,127,127) -> template features."""
        features = self.embed(exemplar)
        k = self.config.template_crop
        if k and k < features.shape[-1]:  # centred: SiamNet checked the parity
            start = (features.shape[-1] - k) // 2
            features = features[..., start : start + k, start : start + k]
        return features

    @property
    def has_box_head(self) -> bool:
        """The network predicts boxes (a box head, or the box-adaptive head)."""
        return self.config.predicts_boxes

    def correlate(self, template: torch.Tensor, search_features: torch.Tensor,
                  owner: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Template vs search features -> ((N,1,R,R) logits, (N,4,R,R) side distances in search pixels, or None
        without a box head). With `owner` (N,), `template` holds T targets' templates and search map k is scored
        against template owner[k]."""
        if isinstance(self.head, BoxAdaptiveHead):
            return self.head(template, search_features, owner)
        boxes = self.box_head(template, search_features, owner) if self.box_head is not None else None
        return self.head(template, search_features, owner), boxes

    def track(self, search: torch.Tensor, template: torch.Tensor,
              owner: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Every frame: N search crops (N,3,255,255) against one cached template, or against T targets' templates
        with `owner` -> correlate()'s pair."""
        return self.correlate(template, self.embed(search), owner)

    def forward(self, exemplar: torch.Tensor, search: torch.Tensor,
                box_head_trains_trunk: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Training: each of B exemplars against its own search crop -> correlate()'s pair. With
        box_head_trains_trunk=False the box loss reaches only the box head: the trunk learns from the response
        map alone, exactly as without a box head."""
        template, features = self.template(exemplar), self.embed(search)
        if box_head_trains_trunk or self.box_head is None:
            return self.correlate(template, features)
        return self.head(template, features), self.box_head(template.detach(), features.detach())
