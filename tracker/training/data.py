"""Training pairs from the crop cache (see ../shared/data/README.md): exemplar and search crops with the target's
position in the search crop.

Geometry uses the tracker's own crop functions, so training sees exactly what tracking sees.
"""
from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.transforms import v2

from ..config import ModelConfig
from ..crop import context_side, crop_square, mean_colour
from ..errors import UserError
from .recipe import TrainConfig


@dataclass(frozen=True)
class CropFolder:
    """One sequence (or still-image set) of the crop cache."""

    path: Path
    files: tuple[str, ...]
    frames: np.ndarray  # original frame index of each crop
    boxes: np.ndarray  # (n, 4) x, y, w, h of the target in crop pixels
    is_still: bool


def load_crop_cache(root: str | Path, min_crops: int = 2) -> list[CropFolder]:
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"training data folder not found: {root}")
    folders = []
    for folder in sorted(p for p in root.iterdir() if (p / "boxes.csv").is_file()):
        with open(folder / "boxes.csv", newline="") as f:
            rows = [r for r in csv.DictReader(f) if float(r["w"]) > 1 and float(r["h"]) > 1]
        if len(rows) < min_crops:
            continue
        folders.append(
            CropFolder(
                path=folder,
                files=tuple(r["file"] for r in rows),
                frames=np.array([int(r["frame"]) for r in rows]),
                boxes=np.array([[float(r[k]) for k in ("x", "y", "w", "h")] for r in rows]),
                is_still=folder.name.startswith("stills__"),
            )
        )
    if not folders:
        raise UserError(f"no crop-cache folders (with boxes.csv) in {root}; see `siamtrack prepare-data`")
    return folders


class PairDataset(Dataset):
    """Random pairs, deterministic per (seed, epoch, index). Items: exemplar (3,127,127) uint8, search (3,255,255)
    uint8, the target's box in the search crop as (x1, y1, x2, y2) continuous pixels (4,), and a positive flag
    (1 = same object, 0 = a negative pair, whose box is that other crop's own target)."""

    def __init__(self, folders: list[CropFolder], recipe: TrainConfig, model: ModelConfig, length: int) -> None:
        self.videos = [f for f in folders if not f.is_still]
        self.stills = [f for f in folders if f.is_still]
        if not self.videos and not self.stills:
            raise UserError("the crop cache is empty")
        self.recipe, self.model, self.length = recipe, model, length
        self.epoch = 0
        # Longer sequences are drawn more often, but sub-linearly, so a few long ones do not dominate.
        weights = np.sqrt([len(f.files) for f in self.videos]) if self.videos else np.zeros(0)
        self.video_p = weights / weights.sum() if len(weights) else weights
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
        positive = rng.random() >= r.negative_prob or len(self.videos) + len(self.stills) < 2  # else no negative exists
        search_folder = folder
        if not positive:
            pool = [f for f in self.videos + self.stills if f.path != folder.path]
            search_folder = pool[rng.integers(len(pool))]
            j = int(rng.integers(len(search_folder.files)))

        exemplar = self._crop(folder, i, rng, self.model.exemplar_size, r.exemplar_scale_jitter, r.exemplar_shift)[0]
        search, center, size = self._crop(search_folder, j, rng, self.model.search_size, r.search_scale_jitter, r.max_shift)

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

    def _crop(self, folder: CropFolder, k: int, rng, out_size: int, scale_jitter: float, max_shift: float):
        """Crop around the target with random scale and shift; returns the crop, target centre and size in it."""
        image = cv2.imread(str(folder.path / folder.files[k]), cv2.IMREAD_COLOR)
        if image is None:
            raise UserError(f"cannot read {folder.path / folder.files[k]}")
        x, y, w, h = folder.boxes[k]
        m = self.model
        side = context_side(w, h, self.recipe.tracker_config.context_amount) * out_size / m.exemplar_size
        side *= math.exp(rng.uniform(-1, 1) * math.log1p(scale_jitter))
        shift = rng.uniform(-max_shift, max_shift, size=2)  # in output pixels
        per_pixel = side / out_size
        center = (x + w / 2 - shift[0] * per_pixel, y + h / 2 - shift[1] * per_pixel)
        fill = mean_colour(image)
        crop = crop_square(image, center, side, out_size, fill)
        target_center = (out_size / 2 + shift[0], out_size / 2 + shift[1])
        return crop, target_center, (w / per_pixel, h / per_pixel)
