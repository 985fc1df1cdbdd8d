"""Reading a response map: scores from logits, the cosine-windowed peak, and SiamRPN's size-change penalty. The
pieces every box rule (box_rules.py) and the tile search are built from; pure functions of arrays."""
from __future__ import annotations

import math

import numpy as np


def sigmoid(logit) -> float:
    logit = float(logit)
    if logit < -700:  # math.exp overflows past ~709; the score is 0 to double precision anyway
        return 0.0
    return 1.0 / (1.0 + math.exp(-logit))


def probability_map(logits: np.ndarray) -> np.ndarray:
    """The siamese probability at every response cell."""
    return 1 / (1 + np.exp(-np.clip(logits, -50, 50)))


def fused_scores(logits: np.ndarray, online, features: np.ndarray | None, online_weight: float) -> np.ndarray:
    """The score at every response cell: the siamese probability, fused with the online target model's response
    (online.py) when the target has one."""
    probability = probability_map(logits)
    if online is None:
        return probability
    return (1 - online_weight) * probability + online_weight * np.clip(online.response(features), 0, 1)


def cosine_window(size: int, normalised: bool) -> np.ndarray:
    """A size x size Hann window, float32; normalised to sum 1 for blending with a normalised response."""
    hann = np.hanning(size)
    window = np.outer(hann, hann)
    return (window / window.sum() if normalised else window).astype(np.float32)


def windowed_peak(response: np.ndarray, window: np.ndarray, window_influence: float) -> tuple[int, int]:
    """(row, col) of the peak of an upsampled response after the cosine window. The logits are shifted to start at
    0 and normalised to sum 1 first, so that the window's weight means the same whatever their range."""
    response = response - response.min()
    response /= max(float(response.sum()), 1e-12)
    response = (1 - window_influence) * response + window_influence * window
    row, col = (int(v) for v in np.unravel_index(int(np.argmax(response)), response.shape))
    return row, col


def change_penalty(width, height, size, size_penalty: float):
    """SiamRPN's penalty on a predicted box (or an array of them) of width x height against the target's size:
    exp(-(change - 1) * size_penalty), where change >= 1 multiplies the change in padded side and in aspect ratio."""
    size_change = padded_side(width, height) / padded_side(*size)
    ratio_change = (width / np.maximum(height, 1e-6)) / (size[0] / size[1])
    change = np.maximum(size_change, 1 / size_change) * np.maximum(ratio_change, 1 / ratio_change)
    return np.exp(-(change - 1) * size_penalty)


def padded_side(width, height):
    """SiamRPN's size measure: the side of the square of equal area to the box grown by (w + h) / 2."""
    pad = (width + height) / 2
    return np.sqrt((width + pad) * (height + pad))
