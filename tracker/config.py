"""Immutable, validated hyperparameters: one config for the network, one for the tracking loop.

Both are stored inside every weights file, so a checkpoint describes itself. Unknown keys raise, so a typo in a
recipe or an old checkpoint is caught instead of silently ignored.
"""
from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass
from typing import Any, Mapping, TypeVar

from .backbone_specs import SPECS as BACKBONE_SPECS
from .box_rules import box_positions
from .errors import UserError

C = TypeVar("C", bound="_Config")

BACKBONES = tuple(BACKBONE_SPECS)  # each trunk's strides, stages and channels: tracker/backbone_specs.py
# "siamfc": energy-normalised cross-correlation -> one logit map (+ the optional box head); "box_adaptive": the
# NanoTrack-v3-style head (tracker/ban_head.py), which predicts the logits and the box distances together.
HEADS = ("siamfc", "box_adaptive")
MAX_CROP_SIZE = 1023  # pixels; SiamFC crops are 127 / 255
MAX_SCALES = 15
MAX_UPSAMPLE = 64


class _Config:
    def __post_init__(self) -> None:
        self._check_types()
        self.validate()

    def _check_types(self) -> None:
        """Each field holds its declared type: an int field refuses 3.0 (a count must be a count), a float field
        takes an int (stored as float) but no string, bool or non-finite number. Range checks follow in validate()."""
        for f in dataclasses.fields(self):
            value, where = getattr(self, f.name), f"{type(self).__name__}.{f.name}"
            if f.type == "int":
                _check(isinstance(value, numbers.Integral) and not isinstance(value, bool),
                       f"{where} must be an integer, got {value!r} ({type(value).__name__})")
                object.__setattr__(self, f.name, int(value))  # frozen dataclass: numpy ints become ints
            elif f.type == "float":
                _check(isinstance(value, numbers.Real) and not isinstance(value, bool),
                       f"{where} must be a number, got {value!r} ({type(value).__name__})")
                try:
                    as_float = float(value)
                except OverflowError:  # an int past 1e308
                    as_float = math.inf
                _check(math.isfinite(as_float), f"{where} must be a finite number, got {value!r:.40}")
                object.__setattr__(self, f.name, as_float)
            elif f.type == "str":
                _check(isinstance(value, str), f"{where} must be a string, got {value!r} ({type(value).__name__})")

    def validate(self) -> None:  # overridden
        pass

    @classmethod
    def from_dict(cls: type[C], values: Mapping[str, Any] | None = None) -> C:
        values = dict(values or {})
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"{cls.__name__}: unknown key(s) {unknown}; known keys are {sorted(known)}")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self: C, **changes: Any) -> C:
        return self.from_dict({**self.to_dict(), **changes})


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


@dataclass(frozen=True)
class ModelConfig(_Config):
    """The network: backbone (shared by both branches) -> optional neck -> cross-correlation head."""

    backbone: str = "efficientnet_lite0"
    # Total stride of the backbone cut (each backbone's cuts: tracker/backbone_specs.py). EfficientNet-Lite0: 8
    # (after stage 3, 40 ch) or 16 (after stage 4 or 5). AlexNet is always 8, NanoTrack's MobileNetV3 16.
    stride: int = 16
    # EfficientNet-Lite0 only: the last stage kept. 0 = the deepest of the stride (3 for 8, 5 for 16); 4 cuts
    # stride 16 after stage 4 (80 ch), which measured 18% less time per frame and a weaker untrained trunk.
    last_stage: int = 0
    # 1x1 conv + BN after the backbone; 0 means no neck (the trunk's own features are correlated).
    neck_channels: int = 0
    # Keep only the central k x k template feature cells (0 keeps all). Border cells see mean-colour padding.
    template_crop: int = 0
    exemplar_size: int = 127
    search_size: int = 255
    # The head turns the energy-normalised correlation (1.0 = as strong as the template against itself) into
    # logits: logit = head_scale * corr + head_bias. Both are learnt; these are their initial values.
    head_scale: float = 10.0
    head_bias: float = -5.0
    # Box-regression branch (SiamFC++ style): 0 = none, the SiamFC head alone (the tracker then estimates scale
    # with a pyramid of crops); > 0 = a depthwise-correlation branch of this width that predicts, at every
    # response cell, the target's distances to its four sides, so one crop per frame gives position and size.
    box_head_channels: int = 0
    head: str = "siamfc"  # one of HEADS

    @property
    def predicts_boxes(self) -> bool:
        """True when the network predicts a box at every response cell (one crop per frame, no scale pyramid)."""
        return bool(self.box_head_channels) or self.head == "box_adaptive"

    @property
    def trunk_stage(self) -> int:
        """The stage the trunk's cut ends after: last_stage, or the deepest one of the stride (0: a trunk used
        whole)."""
        return BACKBONE_SPECS[self.backbone].stage(self.stride, self.last_stage)

    def validate(self) -> None:
        _check(self.backbone in BACKBONES, f"backbone must be one of {BACKBONES}, got {self.backbone!r}")
        spec = BACKBONE_SPECS[self.backbone]
        _check(self.stride in spec.strides, f"stride for {self.backbone} must be one of {spec.strides}, got "
                                            f"{self.stride}")
        stages = spec.stages(self.stride)
        _check(self.last_stage in stages, f"last_stage for {self.backbone} at stride {self.stride} must be one of "
                                          f"{stages}, got {self.last_stage}")
        _check(0 <= self.neck_channels <= 4096, "neck_channels must be in [0, 4096]")
        _check(self.template_crop >= 0, "template_crop must be >= 0")
        _check(0 < self.exemplar_size < self.search_size, "need 0 < exemplar_size < search_size")
        _check(self.search_size <= MAX_CROP_SIZE, f"search_size must be <= {MAX_CROP_SIZE}, got {self.search_size}")
        _check(self.head_scale > 0, "head_scale must be > 0")
        _check(0 <= self.box_head_channels <= 4096, "box_head_channels must be in [0, 4096]")
        _check(self.head in HEADS, f"head must be one of {HEADS}, got {self.head!r}")
        _check(self.head == "siamfc" or not self.box_head_channels, "the box_adaptive head predicts boxes itself: "
                                                                      "set box_head_channels to 0")


@dataclass(frozen=True)
class TrackerConfig(_Config):
    """The tracking loop. With the SiamFC head alone (Bertinetto et al. 2016) it searches a small scale pyramid
    each frame; with a box-regression head (SiamFC++, Xu et al. 2020) it takes one crop, and num_scales must be 1.
    """

    context_amount: float = 0.5
    num_scales: int = 3
    scale_step: float = 1.0375
    scale_penalty: float = 0.9745
    scale_damping: float = 0.59  # learning rate of the size update
    # Box head only (SiamRPN's penalty_k): the size update's rate is scaled by exp(-(change - 1) * size_penalty),
    # where change >= 1 measures how much the predicted box would change the target's size and aspect ratio.
    size_penalty: float = 0.04
    window_influence: float = 0.176
    # Box head only: where the centre goes. "box" (the shipped model's): NanoTrack's rule, the box of the cell that
    # scores best after the size penalty and a cell-level cosine window, whose centre and size (at the damped rate)
    # are taken. "peak": the upsampled response's peak after the cosine window (the size from the box of the cell
    # under it).
    box_position: str = "box"
    response_upsample: int = 16
    min_scale_factor: float = 0.2  # search size clamped to [min, max] x its initial value
    max_scale_factor: float = 5.0
    lost_threshold: float = 0.3  # a frame scores low when the score (sigmoid of the raw peak logit) is below this
    min_box_side: float = 4.0  # pixels; keeps a shrinking box from collapsing to nothing
    # Lost and found (tracker/presence.py): "uncertain" below lost_threshold + uncertain_margin or on a low frame;
    # "lost" after lost_after low frames in a row. While lost the box is held where the target was last seen, and
    # each frame searches there plus redetect_tiles tiles of the whole frame (0: no tiles); the target is taken
    # back when a peak reaches lost_threshold + redetect_margin on redetect_confirm frames in a row at one place.
    uncertain_margin: float = 0.1
    # A score between lost_threshold and lost_threshold + uncertain_margin shows "uncertain" only from the
    # uncertain_after-th such frame in a row (1: at once; a low frame always does): one unsure frame on a target
    # tracked well is usually blur or a turn, not a wrong box.
    uncertain_after: int = 1
    lost_after: int = 20
    # "lost" sooner on frames that surely are not the target: fast_lost_after frames in a row under
    # fast_lost_threshold (at most lost_threshold; 0 = off). A target turning or blurred scores a little under
    # lost_threshold for a few frames; a cut to another scene scores far under it.
    fast_lost_threshold: float = 0.0
    fast_lost_after: int = 2
    redetect_margin: float = 0.1
    redetect_confirm: int = 2
    # While lost, also take the target back when the search that goes on from where it was lost (not a tile) has
    # scored at the tracking line (lost_threshold + uncertain_margin) on redetect_follow frames in a row: it
    # followed something steadily from the target's last place (0: off, only the re-detection line counts).
    redetect_follow: int = 0
    redetect_tiles: int = 4
    # While lost, where the search goes on: N = when the search from the target's last place has scored under
    # fast_lost_threshold on N frames in a row (it follows nothing), it moves to the best tile peak that reaches
    # lost_threshold, to track that place next frame; 0 = only to a tile peak at the re-detection line. Taking
    # the target back still needs the re-detection line on redetect_confirm frames (a tile peak scores lower than
    # the same object tracked at the centre of its search region). With fast_lost_threshold 0 it never moves.
    redetect_move: int = 0
    # With the appearance check on (verify 1, appearance_gate > 0): 1 = while lost, a place scored at the
    # re-detection line (lost_threshold + redetect_margin) is compared with the first box too, whatever
    # appearance_gate says, so that a look-alike must also look like the target to be taken back; 0 = only under
    # appearance_gate.
    redetect_look: int = 0
    # With the verifier on (verify 1): a tracked frame whose box's search features match the previous frame's under
    # this cosine (cell by cell, the central 4x4 of the 8x8 window) is a jump onto something else: it and any later
    # place that looks more like what the box jumped onto than like the target before score at most 0.05, so the
    # target is lost and not taken back there (tracker/jumps.py); 0 = off.
    jump_cosine: float = 0.0
    # With jump_cosine > 0: 0 = a box can jump on any frame; > 0 = only on a frame that starts a new shot of edited
    # video, whose colour histogram is this Bhattacharyya distance or more from the previous frame's (0 to 1,
    # tracker/cuts.py). Where one pedestrian passes another, the box's window changes as much as at a cut, and
    # what re-detection would then take is a look-alike (docs/lost-and-found.md).
    jump_at_cuts: float = 0.0
    # MultiTracker only (tracker/exclusive.py): 1 = when two targets' boxes converge, the one whose box left the
    # path of its own recent motion further is demoted first, the scores deciding only when the two drifts are
    # alike; 0 = the scores decide.
    demote_by_motion: int = 1
    # MultiTracker only (tracker/reunite.py): 1 = after two targets' boxes converged, once their objects are apart
    # again, each target's motion from before the crossing says which object is its own, and targets on each
    # other's objects trade places; 0 = off.
    reunite_by_motion: int = 1
    # The online target model (tracker/online.py; box rule only). The score, for box choice and for lost, becomes
    # (1 - online_weight) x the siamese probability + online_weight x the filter's response (clipped to [0, 1]);
    # 0 = no online model. The filter works on the search features projected to online_channels; it is refit
    # after a sample is added: every online_update_every frames tracked with confidence, and at once when a second
    # peak reaches online_distractor in the siamese probability. online_memory samples are held; they share the
    # weight as a running mean until 1 / online_learning_rate are held, then each new one gets that rate. Labels: Gaussians of online_sigma response cells; ridge weight
    # online_regularization x the mean diagonal of the normal equations.
    online_weight: float = 0.0
    # The target verifier (tracker/verifier.py): 1 = the score is its calibrated P(box on target), read from the
    # verifier.npz beside the weights; 0 = the box rule's own score.
    verify: int = 0
    # The verifier's appearance check (tracker/appearance.py; with verify=0 it does nothing): on a frame the
    # verifier scores under appearance_gate, the box is also compared with the first box by an ImageNet network,
    # and the verifier's appearance calibration gives the score. 0 = off.
    appearance_gate: float = 0.0
    # A second look (tracker/second_look.py; verify=1 only), on a frame the verifier scores under lost_threshold +
    # uncertain_margin: the same search region is scored again against a second template (second_template=1), and/or
    # a region wide_search times larger around the same centre against the first (1.0 = off); the verifier's
    # favourite move is taken. The second template is the exemplar at the box of the last frame that was
    # "tracking" with a verified score >= second_template_gate, replaced (never blended) at most once every
    # second_template_every frames.
    second_template: int = 0
    second_template_gate: float = 0.9
    second_template_every: int = 10
    wide_search: float = 1.0
    # While lost: 1 = the box is held where the target was last seen well (the default); 0 = the box is the
    # search's best guess (the shadow's), as a tracker without lost-and-found would give, still flagged lost.
    hold_lost_box: int = 1
    online_channels: int = 16
    online_memory: int = 50
    online_update_every: int = 10
    online_learning_rate: float = 0.05
    online_sigma: float = 1.0
    online_regularization: float = 0.1
    online_distractor: float = 0.5

    def validate(self) -> None:
        _check(0 <= self.context_amount <= 2, "context_amount must be in [0, 2]")
        _check(1 <= self.num_scales <= MAX_SCALES and self.num_scales % 2 == 1,
               f"num_scales must be odd, from 1 to {MAX_SCALES}, got {self.num_scales}")
        _check(1.0 <= self.scale_step <= 2.0, f"scale_step must be in [1, 2], got {self.scale_step}")
        _check(0 < self.scale_penalty <= 1, "scale_penalty must be in (0, 1]")
        _check(0 <= self.scale_damping <= 1, "scale_damping must be in [0, 1]")
        _check(self.size_penalty >= 0, "size_penalty must be >= 0")
        _check(0 <= self.window_influence <= 1, "window_influence must be in [0, 1]")
        positions = box_positions()
        _check(self.box_position in positions, f"box_position must be one of {positions}, got {self.box_position!r}")
        # The upsampled response is (upsample x response size)^2 floats per scale: 64 keeps it a few MB.
        _check(1 <= self.response_upsample <= MAX_UPSAMPLE,
               f"response_upsample must be from 1 to {MAX_UPSAMPLE}, got {self.response_upsample}")
        _check(0 < self.min_scale_factor <= 1 <= self.max_scale_factor, "need 0 < min_scale_factor <= 1 <= max_scale_factor")
        _check(self.min_scale_factor >= 0.01 and self.max_scale_factor <= 100,
               "min_scale_factor must be >= 0.01 and max_scale_factor <= 100 (the search region may shrink or grow "
               f"100x at most), got {self.min_scale_factor:g} and {self.max_scale_factor:g}")
        _check(0 <= self.lost_threshold <= 1, "lost_threshold must be in [0, 1]")
        _check(0 < self.min_box_side <= 1000, "min_box_side must be in (0, 1000] pixels")
        _check(0 <= self.uncertain_margin <= 1, "uncertain_margin must be in [0, 1]")
        _check(1 <= self.lost_after <= 1000, f"lost_after must be from 1 to 1000 frames, got {self.lost_after}")
        _check(0 <= self.fast_lost_threshold <= self.lost_threshold,
               f"fast_lost_threshold must be from 0 (off) to lost_threshold ({self.lost_threshold:g}), got "
               f"{self.fast_lost_threshold:g}: with a lower lost_threshold, set fast_lost_threshold at or under it "
               "too (0 turns it off)")
        _check(1 <= self.fast_lost_after <= 1000,
               f"fast_lost_after must be from 1 to 1000 frames, got {self.fast_lost_after}")
        _check(1 <= self.uncertain_after <= 1000,
               f"uncertain_after must be from 1 to 1000 frames, got {self.uncertain_after}")
        _check(0 <= self.redetect_margin <= 1, "redetect_margin must be in [0, 1]")
        _check(1 <= self.redetect_confirm <= 100, f"redetect_confirm must be from 1 to 100, got {self.redetect_confirm}")
        _check(0 <= self.redetect_follow <= 1000,
               f"redetect_follow must be from 0 (off) to 1000 frames, got {self.redetect_follow}")
        _check(self.demote_by_motion in (0, 1),
               f"demote_by_motion must be 0 (off) or 1 (on), got {self.demote_by_motion!r}")
        _check(self.reunite_by_motion in (0, 1),
               f"reunite_by_motion must be 0 (off) or 1 (on), got {self.reunite_by_motion!r}")
        _check(0 <= self.redetect_tiles <= 64, f"redetect_tiles must be from 0 to 64, got {self.redetect_tiles}")
        _check(0 <= self.redetect_move <= 1000,
               f"redetect_move must be from 0 (off) to 1000 frames, got {self.redetect_move}")
        _check(self.redetect_look in (0, 1), f"redetect_look must be 0 (off) or 1 (on), got {self.redetect_look!r}")
        _check(0 <= self.jump_cosine < 1, f"jump_cosine must be from 0 (off) to under 1, got {self.jump_cosine}")
        _check(0 <= self.jump_at_cuts <= 1,
               f"jump_at_cuts must be from 0 (jumps on any frame) to 1, got {self.jump_at_cuts}")
        _check(self.hold_lost_box in (0, 1), f"hold_lost_box must be 0 or 1, got {self.hold_lost_box!r}")
        _check(self.verify in (0, 1), f"verify must be 0 (off) or 1 (on), got {self.verify!r}")
        self._check_second_look()
        _check(0 <= self.online_weight <= 1, f"online_weight must be in [0, 1], got {self.online_weight}")
        _check(1 <= self.online_channels <= 256, f"online_channels must be from 1 to 256, got {self.online_channels}")
        _check(1 <= self.online_memory <= 1000, f"online_memory must be from 1 to 1000, got {self.online_memory}")
        _check(1 <= self.online_update_every <= 1000,
               f"online_update_every must be from 1 to 1000 frames, got {self.online_update_every}")
        _check(0 < self.online_learning_rate <= 1, f"online_learning_rate must be in (0, 1], got "
                                                   f"{self.online_learning_rate}")
        _check(0 < self.online_sigma <= 100, f"online_sigma must be in (0, 100] cells, got {self.online_sigma}")
        _check(0 < self.online_regularization <= 100, f"online_regularization must be in (0, 100], got "
                                                      f"{self.online_regularization}")
        _check(0 < self.online_distractor <= 1, f"online_distractor must be in (0, 1], got {self.online_distractor}")

    def _check_second_look(self) -> None:
        """The second look's keys (tracker/second_look.py): its levers need the verifier, which chooses the look."""
        _check(self.second_template in (0, 1),
               f"second_template must be 0 (off) or 1 (on), got {self.second_template!r}")
        _check(0 < self.second_template_gate <= 1,
               f"second_template_gate must be in (0, 1], got {self.second_template_gate}")
        _check(1 <= self.second_template_every <= 1000,
               f"second_template_every must be from 1 to 1000 frames, got {self.second_template_every}")
        _check(1 <= self.wide_search <= 4, f"wide_search must be from 1 (off) to 4 (a search region 4x as wide), "
                                           f"got {self.wide_search}")
        _check(0 <= self.appearance_gate <= 1,
               f"appearance_gate must be from 0 (off) to 1 (every frame), got {self.appearance_gate}")
        # appearance_gate is stored on with the shipped weights: verify=0 turns the verifier off with its check
        for key, on in (("second_template", self.second_template == 1), ("wide_search", self.wide_search > 1)):
            _check(not on or self.verify == 1, f"{key}={getattr(self, key):g} needs the target verifier, which "
                                               "picks between the looks: add verify=1 (--set verify=1)")


def parse_overrides(items: list[str], flag: str = "--set") -> dict[str, Any]:
    """KEY=VALUE items (--set) -> keyword arguments for TrackerConfig.replace, which validates the keys and their
    types. A value is an int or a float when it reads as one, else a string (box_position=box)."""
    overrides: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise UserError(f"{flag} {item!r}: use KEY=VALUE, e.g. {flag} window_influence=0.3")
        value = value.strip()
        try:
            overrides[key.strip()] = int(value) if value.lstrip("-").isdigit() else float(value)
        except ValueError:
            overrides[key.strip()] = value
    return overrides
