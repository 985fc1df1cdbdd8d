"""Crop geometry: square regions around a centre, resampled to a fixed size by ONE cv2.warpAffine.

Coordinates are continuous pixels (the image's left edge is x = 0, the first pixel's centre is x = 0.5), the
convention of the project's data and of the boxes users pass.
"""
from __future__ import annotations

import math

import cv2
import numpy as np


def context_side(width: float, height: float, context_amount: float) -> float:
    """SiamFC exemplar side: the box grown by context_amount * (w + h) / 2 each way, as a square of equal area."""
    margin = context_amount * (width + height)
    return math.sqrt((width + margin) * (height + margin))


def mean_colour(image: np.ndarray) -> tuple[float, ...]:
    """Per-channel mean: the border colour for crops that reach outside the image (SiamFC's padding)."""
    return tuple(float(v) for v in cv2.mean(image)[:3])


def crop_transform(center: tuple[float, float], side: float, out_size: int) -> np.ndarray:
    """2x3 affine taking frame pixel indices to crop pixel indices: a square of `side` frame pixels centred at
    `center` becomes out_size x out_size."""
    scale = out_size / side
    # Continuous: u = scale * (x - cx) + out/2. In pixel-index terms (index = continuous - 0.5) that adds
    # 0.5 * (scale - 1) to the offset, so crops of the same region agree at any scale.
    offset_x = out_size / 2 - scale * center[0] + 0.5 * (scale - 1)
    offset_y = out_size / 2 - scale * center[1] + 0.5 * (scale - 1)
    return np.array([[scale, 0.0, offset_x], [0.0, scale, offset_y]], dtype=np.float64)


def rotation_about_centre(out_size: int, angle: float) -> np.ndarray:
    """2x3 affine turning an out_size crop's pixel indices `angle` degrees counter-clockwise about its centre."""
    return cv2.getRotationMatrix2D(((out_size - 1) / 2, (out_size - 1) / 2), angle, 1.0)


def stretch_about_centre(out_size: int, stretch: float) -> np.ndarray:
    """2x3 affine scaling an out_size crop's x by sqrt(stretch) and y by 1 / sqrt(stretch) about its centre: the
    aspect ratio changes by `stretch`, the area does not."""
    sx, sy = math.sqrt(stretch), 1 / math.sqrt(stretch)
    c = (out_size - 1) / 2
    return np.array([[sx, 0.0, c * (1 - sx)], [0.0, sy, c * (1 - sy)]])


def crop_square(
    frame: np.ndarray, center: tuple[float, float], side: float, out_size: int, fill: tuple[float, ...],
    out: np.ndarray | None = None, angle: float = 0.0, stretch: float = 1.0,
) -> np.ndarray:
    """The square region, resampled to out_size; outside the frame is filled with `fill` (the mean colour).
    angle: degrees (counter-clockwise) the content turns about the crop's centre, in the same one warp (training's
    rotation augmentation). stretch: the content is widened by sqrt(stretch) and flattened by as much about the
    crop's centre after the turn (training's aspect-ratio augmentation; 1: none)."""
    matrix = crop_transform(center, side, out_size)
    if angle:
        turn = np.vstack([rotation_about_centre(out_size, angle), [0.0, 0.0, 1.0]])
        matrix = (turn @ np.vstack([matrix, [0.0, 0.0, 1.0]]))[:2]
    if stretch != 1.0:
        matrix = (np.vstack([stretch_about_centre(out_size, stretch), [0.0, 0.0, 1.0]])
                  @ np.vstack([matrix, [0.0, 0.0, 1.0]]))[:2]
    return cv2.warpAffine(
        frame, matrix, (out_size, out_size), dst=out, flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT, borderValue=fill,
    )


def box_to_crop(box: tuple[float, float, float, float], center: tuple[float, float], side: float, out_size: int):
    """A frame box (x, y, w, h) in the coordinates of the crop taken at (center, side)."""
    scale = out_size / side
    x, y, w, h = box
    return ((x - center[0]) * scale + out_size / 2, (y - center[1]) * scale + out_size / 2, w * scale, h * scale)


def crop_to_box(box: tuple[float, float, float, float], center: tuple[float, float], side: float, out_size: int):
    """Inverse of box_to_crop."""
    scale = side / out_size
    x, y, w, h = box
    return ((x - out_size / 2) * scale + center[0], (y - out_size / 2) * scale + center[1], w * scale, h * scale)


def response_cell_positions(response_size: int, stride: int, search_size: int) -> np.ndarray:
    """Where each response cell looks, in search-crop pixels along one axis: the centre cell at the crop's centre,
    neighbours `stride` apart. The training labels, the box head's targets and the tracking loop share this."""
    return search_size / 2 + (np.arange(response_size) - (response_size - 1) / 2) * stride
