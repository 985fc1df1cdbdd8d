"""Boxes and labels drawn on frames: one colour per target, another for uncertain and lost, labels kept inside
the picture. The recording, the live window and the box selection all draw through here."""
from __future__ import annotations

import cv2
import numpy as np


FONT = cv2.FONT_HERSHEY_SIMPLEX


MIN_LABEL_SCALE = 0.3  # below this the text is unreadable anyway: a label that still does not fit is cut


def fitted_scale(text: str, scale: float, width: int) -> float:
    """The largest font scale up to `scale` at which `text` and its band fit in `width` pixels (a status line
    written for a 640 px frame shrinks on a 480 px one instead of running off its edge)."""
    while scale > MIN_LABEL_SCALE and cv2.getTextSize(text, FONT, scale, 1)[0][0] + 5 > width:
        scale = round(scale - 0.025, 3)
    return max(scale, MIN_LABEL_SCALE)


def put_label(image: np.ndarray, text: str, anchor: tuple[int, int], color, scale: float = 0.5,
              background=(0, 0, 0)) -> int:
    """Text on a filled band with its bottom-left corner at `anchor`, moved inside the image wherever the anchor is
    (a label for a box at the right or top edge would otherwise be cut off), and scaled down to the image's width
    when wider. The band reaches below the baseline far enough for descenders (g, p, y). Returns the band's top
    row, so a label can be put above another (put_label_above) without covering it."""
    height, width = image.shape[:2]
    scale = fitted_scale(text, scale, width)
    (tw, th), base = cv2.getTextSize(text, FONT, scale, 1)
    x = int(min(max(anchor[0], 0), max(width - tw - 5, 0)))
    y = int(min(max(anchor[1], th + 4), height - base - 2))
    cv2.rectangle(image, (x, y - th - 4), (x + tw + 4, y + base + 2), background, cv2.FILLED)
    cv2.putText(image, text, (x + 2, y), FONT, scale, color, 1, cv2.LINE_AA)
    return y - th - 4


def put_label_above(image: np.ndarray, text: str, band_top: int, color, scale: float = 0.5) -> int:
    """A label at the left edge whose band ends just above row `band_top` (another label's top): stacked, neither
    covers the other's descenders. Returns its own band's top row."""
    base = cv2.getTextSize(text, FONT, fitted_scale(text, scale, image.shape[1]), 1)[1]
    return put_label(image, text, (0, band_top - 1 - (base + 2)), color, scale)


STATE_COLOURS = {"tracking": (0, 255, 0), "uncertain": (0, 220, 255), "lost": (0, 0, 255)}  # BGR
# One colour per target while it is tracked, in target order (BGR): green, azure, magenta, cyan, violet, olive.
# None is close to the uncertain yellow or the lost red, so a target's state reads the same whatever its number.
TARGET_COLOURS = [(0, 255, 0), (255, 128, 0), (255, 0, 255), (255, 255, 0), (255, 100, 140), (0, 160, 110)]


def target_colour(target: int):
    return TARGET_COLOURS[target % len(TARGET_COLOURS)]


def draw_targets(frame: np.ndarray, shown) -> np.ndarray:
    """The frame (copied once) with every target's box: `shown` maps target numbers to TrackResults. One target is
    drawn as draw_box draws it (green), whatever its number; several each get their own colour (target_colour)
    and a "#n" label."""
    out = frame.copy()
    for target, result in shown.items():
        name, colour = (f"#{target}", target_colour(target)) if len(shown) > 1 else ("", None)
        _draw_box_on(out, result.box, result.score, result.lost, colour, name, result.state)
    return out


def draw_box(frame: np.ndarray, box, score: float, lost: bool, color=None, name: str = "",
             state: str | None = None) -> np.ndarray:
    """The frame (copied) with the box and a label (score, and UNCERTAIN or LOST) that stays readable. The colour
    is `color` (default green) while tracking, yellow when uncertain, red when lost."""
    out = frame.copy()
    _draw_box_on(out, box, score, lost, color, name, state)
    return out


def _draw_box_on(out: np.ndarray, box, score: float, lost: bool, color, name: str, state: str | None) -> None:
    """draw_box's drawing, in place."""
    x, y, w, h = (int(round(v)) for v in box)
    state = "lost" if lost else (state or "tracking")
    colour = STATE_COLOURS[state] if state != "tracking" else (color or STATE_COLOURS["tracking"])
    cv2.rectangle(out, (x, y), (x + w, y + h), colour, 2)
    label = f"{name}{' ' if name else ''}{score:.2f}" + ("" if state == "tracking" else f" {state.upper()}")
    (_, text_height), baseline = cv2.getTextSize(label, FONT, 0.5, 1)
    above = y - baseline - 5  # the band's bottom edge then clears the box's top line
    put_label(out, label, (x, above if above > text_height + 4 else y + h + text_height + 6), colour)
