"""Boxes and the per-frame answer every tracker in this project gives (ours and the OpenCV peers).

Boxes are read and checked here and nowhere else: `parse_box` for text (--box), `check_box` for a box against
the frame it belongs to. `track`, `bench`, `eval` and the Python API all go through them, so they accept and
refuse the same boxes with the same messages. A box given as corners (xyxy) or as a centre and size (cxcywh, as
many detectors give it) becomes x, y, w, h in `to_xywh`, the one place boxes change convention: everything after
it (the tracker, the box files) works in x, y, w, h.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from .errors import UserError

Box = tuple[float, float, float, float]  # x, y, w, h in 0-based pixels

MIN_BOX_SIDE = 1.0  # pixels: below one pixel there is nothing to make a template of
MAX_BOX_FACTOR = 100  # a box may be at most this many times the frame's width / height
# Of a box, at least this share must lie inside the frame (or this share of the frame inside the box, for a box
# larger than the frame): a template made of a pixel or two of the target and padding tracks the padding.
MIN_INSIDE_SHARE = 0.25


@dataclass(frozen=True)
class TrackResult:
    """box: (x, y, w, h) floats; score: 0..1, the network's confidence in the box (the box rule's: with the shipped
    "box" rule the probability of the cell whose box was taken, fused with the online model's response when that
    is on; with the "peak" rule and the scale pyramid the sigmoid of the response peak; while lost, the score of
    the search's box, or of the re-detection peak the search moved to); lost: the target is lost (lost_after
    frames in a row scored under the lost threshold, or fast_lost_after under fast_lost_threshold); state adds
    "uncertain" between the two. True when not lost, so
    `if tracker.update(frame):` reads as OpenCV's ok flag does."""

    box: Box
    score: float
    lost: bool
    state: str = "tracking"  # "tracking", "uncertain" or "lost" (tracker/presence.py); lost is state == "lost"
    # The box rule's own score (the network's confidence) when `score` is the verifier's; else equal to score.
    response: float = float("nan")

    def __bool__(self) -> bool:
        return not self.lost

    def __iter__(self):
        # `ok, box = tracker.update(frame)` is OpenCV's idiom; without this it fails with a puzzling message.
        raise TypeError("a TrackResult is not a tuple: use result.box, result.score and result.lost, or "
                        "tracker.as_opencv() for an OpenCV-style update() that returns (ok, (x, y, w, h))")


def box_iou(a, b) -> float:
    """IoU of two x, y, w, h boxes."""
    x1, y1 = max(a[0], b[0]), max(a[1], b[1])
    x2, y2 = min(a[0] + a[2], b[0] + b[2]), min(a[1] + a[3], b[1] + b[3])
    inter = max(x2 - x1, 0.0) * max(y2 - y1, 0.0)
    union = a[2] * a[3] + b[2] * b[3] - inter
    return float(inter / union) if union > 0 else 0.0


# The ways a box can be given (--box-format, box_format=): what the four numbers are, and an example of each for
# the same box.
BOX_INPUT_FORMATS = {
    "xywh": ("x,y,w,h", "120,80,60,40"),  # top-left corner, width, height (OpenCV's, and this project's files')
    "xyxy": ("x1,y1,x2,y2", "120,80,180,120"),  # top-left and bottom-right corners (most detectors')
    "cxcywh": ("cx,cy,w,h", "150,100,60,40"),  # centre, width, height (YOLO's, in pixels)
}


def input_format(box_format: str) -> tuple[str, str]:
    """(what the four numbers are, an example) for a box input format, or a UserError naming the known ones."""
    if box_format not in BOX_INPUT_FORMATS:
        raise UserError(f"unknown box format {box_format!r}: use one of {', '.join(BOX_INPUT_FORMATS)}")
    return BOX_INPUT_FORMATS[box_format]


def to_xywh(box, box_format: str = "xywh") -> Box:
    """The box (four numbers in `box_format`: xywh, xyxy or cxcywh) as x, y, w, h floats; a UserError when it is
    not four numbers, or (xyxy) its second corner is not below and right of the first."""
    names, _ = input_format(box_format)
    if isinstance(box, (str, bytes)):
        raise UserError(f"box must be four numbers {names} (parse text with tracker.result.parse_box); got {box!r}")
    try:
        a, b, c, d = (float(v) for v in box)
    except (TypeError, ValueError, OverflowError):
        raise UserError(f"box must be four numbers {names}; got {box!r}") from None
    if box_format == "xyxy":
        if not (c > a and d > b):
            raise UserError(f"box {a:g},{b:g},{c:g},{d:g} is x1,y1,x2,y2 (box format xyxy): x2 must be greater "
                            "than x1 and y2 than y1")
        return a, b, c - a, d - b
    if box_format == "cxcywh":
        return a - c / 2, b - d / 2, c, d
    return a, b, c, d


def parse_box(text: str, flag: str = "--box", box_format: str = "xywh") -> Box:
    """x,y,w,h from the command line (four numbers in `box_format`, converted), or a UserError with an example.
    Range checks need the frame: check_box."""
    names, example = input_format(box_format)
    parts = text.replace(" ", "").split(",")
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        raise UserError(f"{flag} must be {names} numbers, e.g. {flag} {example}; got {text!r}") from None
    if len(values) != 4:
        raise UserError(f"{flag} needs four numbers {names}; got {len(values)} in {text!r}")
    return to_xywh(values, box_format)


def check_box(box, frame_shape: tuple[int, ...], box_format: str = "xywh") -> Box:
    """A usable (x, y, w, h) for a frame of this shape, as floats, or a UserError saying what is wrong with it:
    not four finite numbers, empty, under a pixel, absurdly large, wholly outside the frame, or with less than a
    quarter of it inside the frame (unless it covers a quarter of the frame). box_format: what the four numbers are
    (see BOX_INPUT_FORMATS); the answer is always x, y, w, h."""
    x, y, w, h = to_xywh(box, box_format)
    if not all(math.isfinite(v) for v in (x, y, w, h)):
        raise UserError(f"box must be finite numbers, got {box!r}")
    if w <= 0 or h <= 0:
        raise UserError(f"box is empty (w={w:g}, h={h:g}): give a width and height > 0")
    if w < MIN_BOX_SIDE or h < MIN_BOX_SIDE:
        raise UserError(f"box is too small (w={w:g}, h={h:g}): width and height must be at least "
                        f"{MIN_BOX_SIDE:g} pixel")
    height, width = frame_shape[:2]
    if w > MAX_BOX_FACTOR * width or h > MAX_BOX_FACTOR * height:
        raise UserError(f"box is too large (w={w:g}, h={h:g}) for the {width}x{height} frame: width and height "
                        f"may be at most {MAX_BOX_FACTOR}x the frame's")
    if x >= width or y >= height or x + w <= 0 or y + h <= 0:
        raise UserError(f"box {x:g},{y:g},{w:g},{h:g} lies outside the {width}x{height} frame")
    inside = (min(x + w, width) - max(x, 0.0)) * (min(y + h, height) - max(y, 0.0))
    if inside < MIN_INSIDE_SHARE * min(w * h, width * height):
        raise UserError(f"box {x:g},{y:g},{w:g},{h:g} lies mostly outside the {width}x{height} frame: "
                        f"{100 * inside / (w * h):.2g}% of it is inside, at least {100 * MIN_INSIDE_SHARE:g}% must "
                        "be (the target is tracked from what the first frame shows of it)")
    return x, y, w, h
