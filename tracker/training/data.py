"""Training pairs from the crop cache (see ../shared/data/README.md): exemplar and search crops with the target's
position in the search crop.

Geometry uses the tracker's own crop functions, so training sees exactly what tracking sees.
"""
from __future__ import annotations

import math

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.transforms import v2

from ..config import ModelConfig
from ..crop import context_side, crop_square, mean_colour, rotation_about_centre
# load_crop_cache is re-exported: training code and its tests read the cache through this module.
from ..crop_cache import CACHE_SIDE, CropFolder, load_crop_cache  # noqa: F401
from ..errors import UserError
from ..progress import progress as make_progress
from .recipe import TrainConfig


EXEMPLAR_IN_CACHE = slice((CACHE_SIDE - 127) // 2, (CACHE_SIDE + 127) // 2)  # its 127 px exemplar region


def mine_look_alikes(folders: list[CropFolder], embed, neighbours: int, batch: int = 64) -> list[np.ndarray]:
    """For every crop of every folder: the `neighbours` crops of *other* folders that look most like it, by the
    cosine similarity of embed(exemplars) (uint8 (B,127,127,3) BGR -> (B,D) features). These are the look-alikes a
    tracker of that target is likeliest to jump to; never crops of the same video (CropFolder.video). Returns one
    (n_crops, neighbours, 2) int array per folder:
    (folder index, crop index) pairs."""
    owners = np.concatenate([np.full(len(f.files), k) for k, f in enumerate(folders)])
    videos = np.unique([f.video for f in folders], return_inverse=True)[1]
    video_of_crop = videos[owners]  # crops of one video (its sub-sequences included) never look-alike each other
    eligible = len(owners) - np.bincount(video_of_crop).max()  # the fewest crops any crop may pick from
    if eligible < 1:
        raise UserError("mining look-alikes needs crops of at least two videos in the crop cache")
    k = min(neighbours, int(eligible))
    crops = np.concatenate([np.arange(len(f.files)) for f in folders])
    features = []
    bar = make_progress(len(crops), "mining look-alikes", "crop")
    for start in range(0, len(crops), batch):
        images = np.stack([PairDataset._read(folders[f], int(c))[EXEMPLAR_IN_CACHE, EXEMPLAR_IN_CACHE]
                           for f, c in zip(owners[start:start + batch], crops[start:start + batch])])
        features.append(np.asarray(embed(images), np.float32))
        bar.update(len(images))
    bar.close()
    features = np.concatenate(features)
    features /= np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)
    nearest = np.empty((len(crops), k), np.int64)
    for start in range(0, len(crops), 1024):
        similarity = features[start:start + 1024] @ features.T
        similarity[video_of_crop[start:start + 1024, None] == video_of_crop[None, :]] = -np.inf  # other videos only
        best = np.argpartition(-similarity, k - 1, axis=1)[:, :k]
        nearest[start:start + 1024] = best
    pairs = np.stack([owners[nearest], crops[nearest]], axis=-1)
    ends = np.cumsum([len(f.files) for f in folders])
    return np.split(pairs, ends[:-1])


class PairDataset(Dataset):
    """Random pairs, deterministic per (seed, epoch, index). Items: exemplar (3,127,127) uint8, search (3,255,255)
    uint8, the target's box in the search crop as (x1, y1, x2, y2) continuous pixels (4,), and a positive flag
    (1 = same object, 0 = a negative pair, whose box is that other crop's own target)."""

    def __init__(self, folders: list[CropFolder], recipe: TrainConfig, model: ModelConfig, length: int,
                 look_alikes: list[np.ndarray] | None = None) -> None:
        """look_alikes: mine_look_alikes(folders, ...), for recipe.mined_negative_prob."""
        self.videos = [f for f in folders if not f.is_still]
        self.stills = [f for f in folders if f.is_still]
        self.folders = list(folders)
        self.n_videos = len({f.video for f in folders})  # negatives need a second video
        self.look_alikes = {f.path: pairs for f, pairs in zip(folders, look_alikes)} if look_alikes else {}
        if recipe.mined_negative_prob and not self.look_alikes:
            raise UserError("mined_negative_prob > 0 needs the mined look-alikes (mine_look_alikes)")
        if not self.videos and not self.stills:
            raise UserError("the crop cache is empty")
        self.recipe, self.model, self.length = recipe, model, length
        self.epoch = 0
        # Longer sequences are drawn more often, but sub-linearly, so a few long ones do not dominate.
        weights = np.sqrt([len(f.files) for f in self.videos]) if self.videos else np.zeros(0)
        self.video_p = weights / weights.sum() if len(weights) else weights
        self.same_image = {f.path: f.same_image() for f in self.stills}
        self.flip = v2.RandomHorizontalFlip(p=recipe.flip_prob)
        j = recipe.color_jitter
        self.photometric = v2.Compose([
            v2.ColorJitter(brightness=j, contrast=j, saturation=j),
            v2.RandomApply([v2.GaussianBlur(5, sigma=(0.2, 2.0))], p=recipe.blur_prob),
        ])

    def __len__(self) -> int:
        return self.length

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __getitem__(self, index: int):
        r = self.recipe
        rng = np.random.default_rng([r.seed, self.epoch, index])
        torch.manual_seed(int(rng.integers(2**31)))  # for the torchvision transforms (per worker process)
        use_still = self.stills and (not self.videos or rng.random() < r.still_prob)
        if use_still:
            folder = self.stills[rng.integers(len(self.stills))]
            i = j = int(rng.integers(len(folder.files)))
        else:
            folder = self.videos[rng.choice(len(self.videos), p=self.video_p)]
            i = int(rng.integers(len(folder.files)))
            near = np.flatnonzero(np.abs(folder.frames - folder.frames[i]) <= r.max_frame_gap)
            j = int(rng.choice(near))
        positive = rng.random() >= r.negative_prob or self.n_videos < 2  # else no negative exists
        search_folder, beside = folder, None
        others = self.same_image.get(folder.path, {}).get(i) if use_still else None
        if others is not None and rng.random() < r.same_image_prob:
            beside = int(rng.choice(others))  # positive or not, as where the target falls decides
        elif not positive and folder.path in self.look_alikes and rng.random() < r.mined_negative_prob:
            mined = self.look_alikes[folder.path][i]
            owner, j = (int(v) for v in mined[rng.integers(len(mined))])
            search_folder = self.folders[owner]
        elif not positive:
            pool = [f for f in self.videos + self.stills if f.video != folder.video]
            search_folder = pool[rng.integers(len(pool))]
            j = int(rng.integers(len(search_folder.files)))

        exemplar = self._crop(folder, i, rng, self.model.exemplar_size, r.exemplar_scale_jitter, r.exemplar_shift)[0]
        angle = rng.uniform(-r.max_rotation, r.max_rotation) if rng.random() < r.rotate_prob else 0.0
        # Drawn only when on, so that recipes without it keep their random stream (and their results).
        stretch = math.exp(rng.uniform(-1, 1) * math.log1p(r.aspect_jitter)) if r.aspect_jitter else 1.0
        if beside is not None:
            search, center, size, positive = self._crop_beside(folder, i, beside, rng, angle, stretch)
        else:
            search, center, size = self._crop(search_folder, j, rng, self.model.search_size, r.search_scale_jitter,
                                              r.max_shift, angle, stretch)

        # tv_tensors.Image for both: v2 would treat a second plain tensor as pass-through data and not flip it.
        z = tv_tensors.Image(torch.from_numpy(exemplar).permute(2, 0, 1))
        x = tv_tensors.Image(torch.from_numpy(search).permute(2, 0, 1))
        box = tv_tensors.BoundingBoxes([[center[0] - size[0] / 2, center[1] - size[1] / 2, size[0], size[1]]],
                                       format="XYWH", canvas_size=x.shape[-2:])
        z, x, box = self.flip(z, x, box)  # one decision for the whole pair
        if rng.random() < r.gray_prob:  # grayscale footage: both images
            # The crops are BGR: flip to RGB so the luma weights fall on the right channels.
            z, x = v2.functional.rgb_to_grayscale(z.flip(-3), 3), v2.functional.rgb_to_grayscale(x.flip(-3), 3)
        z, x = self.photometric(z), self.photometric(x)
        x1, y1, w, h = (float(v) for v in box[0])
        return (z.as_subclass(torch.Tensor).contiguous(), x.as_subclass(torch.Tensor).contiguous(),
                torch.tensor([x1, y1, x1 + w, y1 + h], dtype=torch.float32), torch.tensor(float(positive)))

    def _crop(self, folder: CropFolder, k: int, rng, out_size: int, scale_jitter: float, max_shift: float,
              angle: float = 0.0, stretch: float = 1.0):
        """Crop around the target with random scale and shift, turned by `angle` degrees and stretched by
        `stretch` (crop_square's); returns the crop, target centre and size in it."""
        x, y, w, h = folder.boxes[k]
        return self._crop_at(self._read(folder, k), (x + w / 2, y + h / 2), (w, h), rng, out_size, scale_jitter,
                             max_shift, angle, stretch)[:3]

    def _crop_beside(self, folder: CropFolder, k: int, other: int, rng, angle: float, stretch: float = 1.0):
        """A search crop around still crop `other`'s object, at the scale tracking crop k's object would get: the
        object of crop k is in it (a positive pair, beside a distractor) or not (a same-scene negative). Returns
        the crop, crop k's object's centre and size in it, and whether it is in it (same_image() offers only
        crops that show it whole)."""
        image = self._read(folder, other)
        placed, size = folder.placed_in(k, other)
        other_center = folder.boxes[other][:2] + folder.boxes[other][2:] / 2
        offset = placed - other_center
        r, m = self.recipe, self.model
        # The crop is centred on the other object (plus the usual shift), sized for crop k's object.
        crop, center, _, per_pixel = self._crop_at(image, tuple(other_center), tuple(size), rng, m.search_size,
                                                   r.search_scale_jitter, r.max_shift, angle, stretch)
        axes = self._axes(stretch)
        target = np.array(center) + axes * self._turn(offset / per_pixel, angle)
        inside = bool(np.all((target >= 0) & (target <= m.search_size)))
        return crop, (float(target[0]), float(target[1])), tuple(axes * np.asarray(size) / per_pixel), inside

    @staticmethod
    def _read(folder: CropFolder, k: int) -> np.ndarray:
        image = cv2.imread(str(folder.path / folder.files[k]), cv2.IMREAD_COLOR)
        if image is None:
            raise UserError(f"cannot read {folder.path / folder.files[k]}")
        return image

    @staticmethod
    def _turn(vector: np.ndarray, angle: float) -> np.ndarray:
        """A displacement in crop pixels, turned as rotation_about_centre turns the crop's content."""
        return rotation_about_centre(1, angle)[:, :2] @ np.asarray(vector, float)

    @staticmethod
    def _axes(stretch: float) -> np.ndarray:
        """How crop_square's `stretch` scales x and y."""
        return np.array([math.sqrt(stretch), 1 / math.sqrt(stretch)])

    def _crop_at(self, image: np.ndarray, target: tuple[float, float], size: tuple[float, float], rng, out_size: int,
                 scale_jitter: float, max_shift: float, angle: float, stretch: float = 1.0):
        w, h = size
        side = context_side(w, h, self.recipe.tracker_config.context_amount) * out_size / self.model.exemplar_size
        side *= math.exp(rng.uniform(-1, 1) * math.log1p(scale_jitter))
        shift = rng.uniform(-max_shift, max_shift, size=2)  # in output pixels
        per_pixel = side / out_size
        center = (target[0] - shift[0] * per_pixel, target[1] - shift[1] * per_pixel)
        crop = crop_square(image, center, side, out_size, mean_colour(image), angle=angle, stretch=stretch)
        # The crop turns about its centre; the target, `shift` from it, turns with it (its box keeps its size),
        # then the stretch scales the target's offset and its box along x and y.
        axes = self._axes(stretch)
        target_center = out_size / 2 + axes * self._turn(shift, angle)
        return (crop, (float(target_center[0]), float(target_center[1])),
                (w / per_pixel * axes[0], h / per_pixel * axes[1]), per_pixel)
