"""Backbones shared by the exemplar and search branches: the backbone registry's torch half.

Every backbone takes BGR images as float tensors in [0, 255] (what OpenCV gives, so an exported graph needs no
preprocessing outside it) and normalises them itself. Each one lives in its own module, named by its spec in
tracker/backbone_specs.py (which says how to add one), and is found through `trunk_hooks`.
"""
from __future__ import annotations

import importlib

from torch import nn

from .backbone_specs import SPECS, TrunkHooks
from .config import ModelConfig


def trunk_hooks(name: str) -> TrunkHooks:
    """The TRUNK of backbone `name`'s module. The modules are imported by name, on first use, so that registering
    a backbone takes one spec line and no import list to keep in step."""
    return importlib.import_module(f".{SPECS[name].module}", __package__).TRUNK


def build_backbone(config: ModelConfig, pretrained: bool) -> nn.Module:
    """pretrained=True loads the ImageNet trunk weights (for a fresh model); False when a checkpoint follows.
    A trunk without ImageNet weights ignores it (random, or a tracking checkpoint follows: init_weights)."""
    return trunk_hooks(config.backbone).build(config, pretrained)
