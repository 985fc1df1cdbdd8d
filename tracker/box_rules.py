"""Box rules: how a target's search crops are cut and how the network's response moves its box.

A rule is chosen once per tracker (`make_box_rule`): a network without a box head tracks with the SiamFC scale
pyramid (Bertinetto et al. 2016); a network that predicts a box at every response cell takes one crop per frame and
the rule its TrackerConfig.box_position names. A new rule is one module with a class that has the `BoxRule`
members, plus one `register_box_rule` line at the end of this file (its name then becomes a valid box_position).
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Protocol

import cv2
import numpy as np

from .crop import context_side, crop_square, response_cell_positions
from .errors import UserError
from .response import change_penalty, cosine_window, fused_scores, sigmoid, windowed_peak

if TYPE_CHECKING:
    from .config import ModelConfig, TrackerConfig


class BoxRule(Protocol):
    """Built as Rule(model_config, tracker_config, response_size)."""

    name: str
    needs_box_head: bool  # it reads the box head's side distances
    fuses_online: bool  # it takes the online target model's response into its scores
    crops_per_target: int

    def crop(self, frame: np.ndarray, state, out: np.ndarray) -> None:
        """The target's search crops (crops_per_target of them) into `out`, around `state` (tracking.TargetState)."""

    def move(self, state, logits: np.ndarray, distances: np.ndarray | None, features: np.ndarray | None) -> float:
        """Move `state` by this frame's response to its crops: logits (crops,R,R), side distances (crops,4,R,R) of
        a box head, the first crop's backbone features (with the online model). Returns the frame's score."""


BOX_RULES: dict[str, type] = {}


def register_box_rule(rule: type) -> type:
    BOX_RULES[rule.name] = rule
    return rule


def box_positions() -> tuple[str, ...]:
    """The values TrackerConfig.box_position takes: the rules for networks with a box head."""
    return tuple(name for name, rule in BOX_RULES.items() if rule.needs_box_head)


def make_box_rule(model: ModelConfig, config: TrackerConfig, response_size: int) -> BoxRule:
    if not model.predicts_boxes:
        return BOX_RULES["pyramid"](model, config, response_size)
    if config.num_scales != 1:
        raise UserError(f"this model has a box head and tracks with one crop per frame: num_scales must be 1, "
                        f"got {config.num_scales}")
    return BOX_RULES[config.box_position](model, config, response_size)


def resize_target(state, width, height, rate: float, model: ModelConfig, config: TrackerConfig) -> None:
    """Move the target's size towards (width, height) at `rate`, and the search region with it."""
    state.size = (1 - rate) * state.size + rate * np.array([width, height])
    new_side = context_side(*state.size, config.context_amount) * model.search_size / model.exemplar_size
    state.search_side = float(np.clip(new_side, state.min_side, state.max_side))


def keep_in_frame(frame: np.ndarray, state, before: tuple, score: float, config: TrackerConfig) -> float:
    """After a move: keep `state` inside the frame. A NaN/Inf from the network (weights that went bad, a numerical
    edge) must neither move the box nor pass as confident: the state goes back to `before` (center, size,
    search_side) and the frame scores 0. Returns the score."""
    frame_h, frame_w = frame.shape[:2]
    state.center = np.clip(state.center, 0, [frame_w, frame_h])
    side = config.min_box_side
    state.size = np.clip(state.size, side, [max(frame_w, side), max(frame_h, side)])
    finite = math.isfinite(score) and np.isfinite(state.center).all() and np.isfinite(state.size).all() \
        and math.isfinite(state.search_side)
    if not finite:
        state.center, state.size, state.search_side = before
        score = 0.0
    return score


class _UpsampledPeak:
    """What the pyramid and peak rules share: the response upsampled response_upsample times, and the offset of its
    cosine-windowed peak from the crop centre in frame pixels."""

    def __init__(self, model: ModelConfig, config: TrackerConfig, response_size: int) -> None:
        self.model, self.config = model, config
        self.upsampled_size = config.response_upsample * response_size
        self.window = cosine_window(self.upsampled_size, normalised=True)
        # Frame pixels per upsampled-response cell, divided by the search side: the displacement factor.
        self.cell = model.stride / config.response_upsample / model.search_size

    def upsample(self, logits: np.ndarray) -> np.ndarray:
        up = self.upsampled_size
        return cv2.resize(logits, (up, up), interpolation=cv2.INTER_CUBIC)

    def peak(self, response: np.ndarray, side: float) -> tuple[np.ndarray, tuple[int, int]]:
        """The windowed peak's offset from the crop centre (for a crop of `side` frame pixels) and its (row, col)."""
        row, col = windowed_peak(response, self.window, self.config.window_influence)
        displacement = (np.array([col, row]) - (self.upsampled_size - 1) / 2) * self.cell * side
        return displacement, (row, col)


class ScalePyramid(_UpsampledPeak):
    """SiamFC: num_scales crops at scale_step apart; of their responses, the best peak (after the scale penalty)
    moves the centre, its scale the size."""

    name, needs_box_head, fuses_online = "pyramid", False, False

    def __init__(self, model: ModelConfig, config: TrackerConfig, response_size: int) -> None:
        super().__init__(model, config, response_size)
        self.crops_per_target = config.num_scales
        self.scale_factors = config.scale_step ** (np.arange(config.num_scales) - (config.num_scales - 1) / 2)

    def crop(self, frame: np.ndarray, state, out: np.ndarray) -> None:
        for i, side in enumerate(state.search_side * self.scale_factors):
            crop_square(frame, (state.center[0], state.center[1]), side, self.model.search_size, state.fill,
                        out=out[i])

    def move(self, state, logits: np.ndarray, distances=None, features=None) -> float:
        c = self.config
        sides = state.search_side * self.scale_factors
        responses = np.stack([self.upsample(r) for r in logits])
        # Penalise scale changes, then pick the scale with the highest peak. Logits can be negative: shift them to
        # start at 0 so that the multiplicative SiamFC penalty means the same whatever the logit range.
        centre_scale = c.num_scales // 2
        penalised = responses.reshape(c.num_scales, -1).max(axis=1) - responses.min()
        penalised[np.arange(c.num_scales) != centre_scale] *= c.scale_penalty
        best = int(np.argmax(penalised))
        displacement, _ = self.peak(responses[best], sides[best])
        state.center = state.center + displacement
        damped = (1 - c.scale_damping) + c.scale_damping * self.scale_factors[best]
        new_side = float(np.clip(state.search_side * damped, state.min_side, state.max_side))
        state.size = state.size * (new_side / state.search_side)
        state.search_side = new_side
        return sigmoid(logits[best].max())


def _crop_one(frame: np.ndarray, state, search_size: int, out: np.ndarray) -> None:
    crop_square(frame, (state.center[0], state.center[1]), state.search_side, search_size, state.fill, out=out[0])


class PeakAndBoxSize(_UpsampledPeak):
    """box_position "peak": one crop. The position comes from the upsampled response peak, as in the pyramid; the
    size from the box the cell under that peak predicts, at a rate lowered when that box would change the target's
    size or aspect ratio much (SiamRPN's penalty) or when the cell is unsure."""

    name, needs_box_head, fuses_online, crops_per_target = "peak", True, False, 1

    def crop(self, frame: np.ndarray, state, out: np.ndarray) -> None:
        _crop_one(frame, state, self.model.search_size, out)

    def move(self, state, logits: np.ndarray, distances: np.ndarray, features=None) -> float:
        c, m = self.config, self.model
        logits, (left, top, right, bottom) = logits[0], distances[0]
        side = state.search_side
        displacement, (row, col) = self.peak(self.upsample(logits), side)
        state.center = state.center + displacement
        # The response cell under the peak, and the box it predicts (frame pixels).
        cells, up = logits.shape[0], self.upsampled_size
        r, k = (min(int(v * cells / up), cells - 1) for v in (row, col))
        to_frame = side / m.search_size
        width, height = (left[r, k] + right[r, k]) * to_frame, (top[r, k] + bottom[r, k]) * to_frame
        penalty = change_penalty(width, height, state.size, c.size_penalty)
        resize_target(state, width, height, c.scale_damping * penalty * sigmoid(logits[r, k]), m, c)
        return sigmoid(logits.max())


class BestBox:
    """box_position "box", NanoTrack's (and SiamRPN++'s) rule: every cell's box is scored by its probability times
    the size / aspect change penalty, blended with a cosine window over the cells; the best box's centre is taken,
    and its size at scale_damping x penalty x probability. With the online model, "probability" is the fused score.
    """

    name, needs_box_head, fuses_online, crops_per_target = "box", True, True, 1

    def __init__(self, model: ModelConfig, config: TrackerConfig, response_size: int) -> None:
        self.model, self.config = model, config
        self.cell_window = cosine_window(response_size, normalised=False)
        # Each cell's offset from the crop centre, in crop pixels.
        self.cell_offsets = response_cell_positions(response_size, model.stride, model.search_size) - model.search_size / 2

    def crop(self, frame: np.ndarray, state, out: np.ndarray) -> None:
        _crop_one(frame, state, self.model.search_size, out)

    def move(self, state, logits: np.ndarray, distances: np.ndarray, features: np.ndarray | None = None) -> float:
        c = self.config
        to_frame = state.search_side / self.model.search_size
        left, top, right, bottom = distances[0] * to_frame
        width, height = left + right, top + bottom
        penalty = change_penalty(width, height, state.size, c.size_penalty)
        probability = fused_scores(logits[0], state.online, features, c.online_weight)
        ranked = (1 - c.window_influence) * penalty * probability + c.window_influence * self.cell_window
        r, k = (int(v) for v in np.unravel_index(int(np.argmax(ranked)), ranked.shape))
        # The chosen box's centre: its cell's position plus half the difference of its opposite sides.
        state.center = state.center + np.array([self.cell_offsets[k] * to_frame + (right[r, k] - left[r, k]) / 2,
                                                self.cell_offsets[r] * to_frame + (bottom[r, k] - top[r, k]) / 2])
        resize_target(state, width[r, k], height[r, k], c.scale_damping * penalty[r, k] * probability[r, k],
                      self.model, c)
        return float(probability[r, k])


register_box_rule(ScalePyramid)
register_box_rule(PeakAndBoxSize)
register_box_rule(BestBox)
