"""A training recipe: one JSON file, validated like every other config (unknown keys raise)."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..backbone_specs import SPECS as BACKBONE_SPECS
from ..config import ModelConfig, TrackerConfig, _check, _Config


@dataclass(frozen=True)
class TrainConfig(_Config):
    model: dict[str, Any] = field(default_factory=dict)  # ModelConfig keys
    tracker: dict[str, Any] = field(default_factory=dict)  # TrackerConfig keys, saved with the weights
    seed: int = 0
    epochs: int = 6
    iterations_per_epoch: int = 150
    batch_size: int = 32
    lr: float = 1e-3
    min_lr: float = 1e-5
    backbone_lr_factor: float = 0.1  # trainable pretrained blocks learn at lr * this
    weight_decay: float = 1e-4
    # Backbone blocks before this index stay frozen (ImageNet weights); the rest, the neck and head train.
    # EfficientNet-Lite0 stride-16 cut has blocks 0..10: 5 trains stages 4-5.
    trainable_from_block: int = 5
    # Pair sampling
    max_frame_gap: int = 100  # in original-sequence frames
    negative_prob: float = 0.15  # exemplar and search from different folders: all-negative labels
    still_prob: float = 0.15  # share of pairs drawn from the still-image folders
    max_shift: float = 64.0  # search-crop pixels; uniform, so the target is not always centred
    search_scale_jitter: float = 0.2  # log-uniform search scale in [1/(1+j), 1+j]
    exemplar_scale_jitter: float = 0.05
    exemplar_shift: float = 4.0
    flip_prob: float = 0.5
    gray_prob: float = 0.1
    blur_prob: float = 0.15
    color_jitter: float = 0.3  # brightness / contrast / saturation amount
    # The search crop turns by up to +-max_rotation degrees about its centre on this share of pairs (the exemplar
    # stays upright, as in tracking): a target that rotates between frames.
    rotate_prob: float = 0.0
    max_rotation: float = 10.0
    # > 0: every search crop is stretched by a log-uniform factor in [1/(1+j), 1+j] of its aspect ratio (wider and
    # flatter, or narrower and taller, same area) and its box label with it: targets that deform or turn thin
    # between frames, so the box head learns to follow an aspect ratio the exemplar did not have.
    aspect_jitter: float = 0.0
    # This share of the still-image pairs whose image holds several labelled objects takes its search crop around
    # *another object of the same image*, at the exemplar target's scale: a same-scene distractor. The pair is a
    # positive when the exemplar's object falls inside that crop (off-centre, beside the distractor), else a
    # negative.
    same_image_prob: float = 0.0
    # This share of the negative pairs takes its search crop from the exemplar's mined look-alikes: the
    # mined_neighbours crops of other folders whose template features are closest to the exemplar's (cosine of the
    # pooled features of the starting network, mined once per run; tracker/training/data.py, mine_look_alikes).
    mined_negative_prob: float = 0.0
    mined_neighbours: int = 20
    # Loss
    positive_radius: float = 16.0  # search-crop pixels from the target centre
    # "radius": cells within positive_radius of the centre are positive (SiamFC); "ellipse": SiamBAN's labels,
    # positive inside the ellipse of half the target's size, ignored up to its full size (NanoTrack's training).
    labels: str = "radius"
    box_loss_weight: float = 1.0  # the box head's GIoU loss is added with this weight (models with a box head)
    # False: the box loss trains the box head only, so the trunk and response head learn as they would without
    # one. The response head overfits these 65 sequences after about one epoch while the box head keeps
    # improving for several, which the next key handles.
    box_head_trains_trunk: bool = False
    # > 0: after this epoch only the box head trains; the trunk and the response head keep that epoch's weights.
    freeze_after_epoch: int = 0
    # A NanoTrack v3 checkpoint (nanotrackv3.pth) to start from: needs model.backbone "mobilenetv3_nanotrack" and
    # model.head "box_adaptive". Relative paths are taken from the working folder. Empty: ImageNet trunk.
    init_weights: str = ""
    # True: every BatchNorm keeps the statistics it started with (fine-tuning a tracking-pretrained network on
    # this small cache); False: only an ImageNet trunk's do.
    frozen_batchnorm: bool = False
    num_workers: int = 1
    val_sequences: tuple[str, ...] = ()  # empty: every sequence of the val folder

    def validate(self) -> None:
        ModelConfig.from_dict(self.model)
        TrackerConfig.from_dict(self.tracker)
        _check(self.epochs >= 0 and self.iterations_per_epoch > 0, "epochs >= 0 and iterations_per_epoch > 0")
        _check(self.batch_size >= 2, "batch_size must be >= 2")
        _check(0 < self.min_lr <= self.lr, "need 0 < min_lr <= lr")
        _check(self.trainable_from_block >= 0, "trainable_from_block must be >= 0")
        for name in ("negative_prob", "still_prob", "flip_prob", "gray_prob", "blur_prob", "rotate_prob",
                     "same_image_prob", "mined_negative_prob"):
            _check(0 <= getattr(self, name) <= 1, f"{name} must be in [0, 1]")
        _check(self.max_shift >= 0 and self.positive_radius > 0, "max_shift >= 0 and positive_radius > 0")
        _check(self.box_loss_weight >= 0, "box_loss_weight must be >= 0")
        # The label keeps the target's upright size: right for small turns, wrong (w and h swapped) at 90.
        _check(0 <= self.aspect_jitter <= 1, f"aspect_jitter must be in [0, 1], got {self.aspect_jitter}")
        _check(0 <= self.max_rotation <= 30, f"max_rotation must be in [0, 30] degrees, got {self.max_rotation}")
        _check(1 <= self.mined_neighbours <= 1000, f"mined_neighbours must be from 1 to 1000, got {self.mined_neighbours}")
        _check(self.labels in ("radius", "ellipse"), f"labels must be 'radius' or 'ellipse', got {self.labels!r}")
        _check(self.freeze_after_epoch >= 0, "freeze_after_epoch must be >= 0")
        _check(not self.freeze_after_epoch or self.model_config.box_head_channels, "freeze_after_epoch needs a model "
               "with a box head (model.box_head_channels > 0): without one nothing would be left to train")
        _check(not self.init_weights or (self.model_config.backbone == "mobilenetv3_nanotrack"
                                         and self.model_config.head == "box_adaptive"),
               "init_weights (a NanoTrack v3 checkpoint) needs model.backbone 'mobilenetv3_nanotrack' and "
               "model.head 'box_adaptive'")
        backbone = self.model_config.backbone
        _check(self.init_weights or BACKBONE_SPECS[backbone].initial_weights != "checkpoint",
               f"the {backbone} trunk has no ImageNet weights here: set init_weights to NanoTrack v3's checkpoint")
        if self.model_config.predicts_boxes:
            _check(self.tracker_config.num_scales == 1, "a model with a box head tracks with one crop: set "
                                                       "tracker.num_scales to 1 in the recipe")

    @property
    def model_config(self) -> ModelConfig:
        return ModelConfig.from_dict(self.model)

    @property
    def tracker_config(self) -> TrackerConfig:
        return TrackerConfig.from_dict(self.tracker)

    @classmethod
    def load(cls, path: str | Path) -> "TrainConfig":
        values = json.loads(Path(path).read_text())
        if "val_sequences" in values:
            values["val_sequences"] = tuple(values["val_sequences"])
        return cls.from_dict(values)
