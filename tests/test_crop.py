"""Crop geometry: continuous pixel coordinates, box <-> crop mapping, and where crop_square puts the pixels."""
import numpy as np
import pytest

from tracker.crop import box_to_crop, context_side, crop_square, crop_to_box, crop_transform

GEOMETRIES = [
    # (center, side, out_size): downscale, upscale, identity scale, fractional centres, crops off the frame edge
    ((80.0, 60.0), 127.0, 127),
    ((80.25, 59.5), 300.0, 255),
    ((101.7, 43.3), 90.0, 255),
    ((12.5, 140.0), 64.0, 127),
    ((150.0, 20.0), 40.0, 64),
]


def continuous_to_crop(matrix: np.ndarray, point) -> np.ndarray:
    """Map a continuous frame point with the pixel-index affine of crop_transform (index = continuous - 0.5)."""
    x, y = point
    u, v = matrix @ np.array([x - 0.5, y - 0.5, 1.0])
    return np.array([u + 0.5, v + 0.5])


def blob_frame(point, width=200, height=160, sigma=2.5) -> np.ndarray:
    """A float32 frame, zero except a Gaussian dot centred at the continuous point (pixel i's centre is i+0.5)."""
    xs = np.arange(width) + 0.5
    ys = np.arange(height) + 0.5
    gx = np.exp(-((xs - point[0]) ** 2) / (2 * sigma**2))
    gy = np.exp(-((ys - point[1]) ** 2) / (2 * sigma**2))
    return (255 * np.outer(gy, gx)).astype(np.float32)


def centroid(image: np.ndarray) -> np.ndarray:
    """Intensity centroid in continuous coordinates."""
    image = image.astype(np.float64)
    ys, xs = np.mgrid[: image.shape[0], : image.shape[1]]
    total = image.sum()
    return np.array([((xs + 0.5) * image).sum() / total, ((ys + 0.5) * image).sum() / total])


@pytest.mark.parametrize("center,side,out_size", GEOMETRIES)
def test_box_crop_round_trip(center, side, out_size):
    rng = np.random.default_rng(0)
    for _ in range(20):
        box = tuple(rng.uniform([-50, -50, 1, 1], [250, 250, 120, 120]))
        there = box_to_crop(box, center, side, out_size)
        back = crop_to_box(there, center, side, out_size)
        np.testing.assert_allclose(back, box, rtol=0, atol=1e-9)
        # The size scales by out_size / side, the centre point maps to the crop centre.
        np.testing.assert_allclose(there[2:], np.array(box[2:]) * out_size / side, rtol=1e-12)
    centred = box_to_crop((center[0] - 5, center[1] - 3, 10, 6), center, side, out_size)
    np.testing.assert_allclose([centred[0] + centred[2] / 2, centred[1] + centred[3] / 2], [out_size / 2] * 2, atol=1e-9)


@pytest.mark.parametrize("center,side,out_size", GEOMETRIES)
def test_box_to_crop_agrees_with_crop_transform(center, side, out_size):
    """The box mapping and the pixel affine are one geometry: the box corners land where the affine puts them."""
    matrix = crop_transform(center, side, out_size)
    box = (center[0] - 17.3, center[1] + 4.1, 23.9, 11.2)
    x, y, w, h = box_to_crop(box, center, side, out_size)
    np.testing.assert_allclose(continuous_to_crop(matrix, box[:2]), [x, y], atol=1e-9)
    np.testing.assert_allclose(continuous_to_crop(matrix, (box[0] + box[2], box[1] + box[3])), [x + w, y + h], atol=1e-9)


@pytest.mark.parametrize("center,side,out_size", GEOMETRIES)
@pytest.mark.parametrize("offset", [(0.0, 0.0), (7.3, -4.6), (-11.25, 9.5)])
def test_crop_square_puts_a_dot_where_crop_transform_says(center, side, out_size, offset):
    dot = (center[0] + offset[0] * side / out_size, center[1] + offset[1] * side / out_size)
    frame = blob_frame(dot, sigma=max(2.5, 2.0 * side / out_size))  # a dot that stays well sampled in the crop
    crop = crop_square(frame, center, side, out_size, fill=(0.0,))
    expected = continuous_to_crop(crop_transform(center, side, out_size), dot)
    np.testing.assert_allclose(expected, np.array([out_size / 2, out_size / 2]) + offset, atol=1e-9)
    assert crop.shape == (out_size, out_size)
    # Measured error <= 0.04 px; dropping the half-pixel term of crop_transform errs by up to 0.9 px here.
    np.testing.assert_allclose(centroid(crop), expected, atol=0.1)


def test_crop_of_the_whole_frame_at_scale_one_is_the_frame():
    rng = np.random.default_rng(1)
    frame = rng.integers(0, 256, (96, 96, 3), dtype=np.uint8)
    crop = crop_square(frame, (48.0, 48.0), 96.0, 96, fill=(0.0, 0.0, 0.0))
    assert np.array_equal(crop, frame)
    # An integer shift at scale 1 is an exact pixel shift.
    shifted = crop_square(frame, (58.0, 45.0), 64.0, 64, fill=(0.0, 0.0, 0.0))
    assert np.array_equal(shifted, frame[13:77, 26:90])


def test_mean_colour_fill_outside_the_frame():
    frame = np.full((80, 100, 3), (10, 20, 30), np.uint8)
    fill = (100.0, 150.0, 200.0)
    # Crop centred at the top-left corner at scale 1: the top-left quadrant of the crop is off the frame.
    crop = crop_square(frame, (0.0, 0.0), 60.0, 60, fill=fill)
    assert np.all(crop[:29, :29] == (100, 150, 200))
    assert np.all(crop[31:, 31:] == (10, 20, 30))
    assert np.all(crop[:29, 31:] == (100, 150, 200))  # above the frame
    # A crop entirely off the frame is all fill.
    far = crop_square(frame, (500.0, 500.0), 50.0, 32, fill=fill)
    assert np.all(far == (100, 150, 200))


def test_crop_square_writes_into_out():
    frame = np.random.default_rng(2).integers(0, 256, (60, 70, 3), dtype=np.uint8)
    out = np.zeros((3, 32, 32, 3), np.uint8)
    result = crop_square(frame, (35.0, 30.0), 40.0, 32, fill=(0.0, 0.0, 0.0), out=out[1])
    assert np.shares_memory(result, out) and out[1].any() and not out[0].any() and not out[2].any()
    np.testing.assert_array_equal(out[1], crop_square(frame, (35.0, 30.0), 40.0, 32, fill=(0.0, 0.0, 0.0)))


@pytest.mark.parametrize("w,h,amount", [(40, 30, 0.5), (10, 100, 0.5), (50, 50, 0.0), (20, 60, 1.0)])
def test_context_side(w, h, amount):
    p = amount * (w + h)
    assert context_side(w, h, amount) == pytest.approx(np.sqrt((w + p) * (h + p)))
    if amount == 0:
        assert context_side(w, h, amount) == pytest.approx(np.sqrt(w * h))


def test_crop_square_turns_about_the_crop_centre():
    """angle: the content turns counter-clockwise (as seen) about the crop's centre, in the same one warp."""
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (200, 240, 3), dtype=np.uint8)
    upright = crop_square(frame, (120.0, 100.0), 90.0, 63, (0.0, 0.0, 0.0))
    turned = crop_square(frame, (120.0, 100.0), 90.0, 63, (0.0, 0.0, 0.0), angle=90.0)
    assert np.abs(turned.astype(int) - np.rot90(upright).astype(int)).max() <= 1
    assert np.array_equal(crop_square(frame, (120.0, 100.0), 90.0, 63, (0.0, 0.0, 0.0), angle=0.0), upright)
