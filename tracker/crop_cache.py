"""Reading the training crop cache (its format: ../shared/data/README.md, written by `siamtrack prepare-data`):
one folder per sequence or still-image set, 447x447 crops with the target's box in boxes.csv.

Torch-free: training samples pairs from it and `siamtrack quantize` calibrates on it.
"""
from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import UserError

CACHE_SIDE = 447  # the side of every crop in the cache (../shared/data/README.md)


@dataclass(frozen=True)
class CropFolder:
    """One sequence (or still-image set) of the crop cache."""

    path: Path
    files: tuple[str, ...]
    frames: np.ndarray  # original frame index of each crop
    boxes: np.ndarray  # (n, 4) x, y, w, h of the target in crop pixels
    is_still: bool
    sources: np.ndarray  # (n, 4) x, y, w, h of the target in its source image's pixels
    images: tuple[str, ...] = ()  # stills: each crop's source image (several crops may share one)

    @property
    def video(self) -> str:
        """The source video: UAV123 splits long videos into sub-sequences of the same target (car16_1, car16_2
        share frames and target), which must never pair as negatives of each other. Other benchmarks' folders
        are videos of their own (a trailing number there is part of the name, as in VOT's fish1 and fish2)."""
        if self.path.name.startswith("uav123"):
            return re.sub(r"_\d+$", "", self.path.name)
        return self.path.name

    def same_image(self) -> dict[int, np.ndarray]:
        """Still crops -> the other crops of their source image that show the crop's object whole (only crops
        that have any)."""
        groups: dict[str, list[int]] = {}
        for k, image in enumerate(self.images):
            if image and np.isfinite(self.sources[k]).all():  # a crop without its source cannot be placed
                groups.setdefault(image, []).append(k)
        found = {}
        for group in groups.values():
            for k in group:
                shown = [o for o in group if o != k and self.shows_whole(k, o)]
                if shown:
                    found[k] = np.array(shown)
        return found

    def placed_in(self, k: int, other: int) -> tuple[np.ndarray, np.ndarray]:
        """Crop k's object in crop `other`'s pixels, by way of the source image both came from: (centre, size)."""
        per_source = self.boxes[other][2] / self.sources[other][2]
        here, there = self.sources[k], self.sources[other]
        other_center = self.boxes[other][:2] + self.boxes[other][2:] / 2
        offset = (here[:2] + here[2:] / 2 - there[:2] - there[2:] / 2) * per_source
        return other_center + offset, here[2:] * per_source

    def shows_whole(self, k: int, other: int) -> bool:
        """Crop `other` holds all of crop k's object (outside the source frame, a cache crop is mean colour)."""
        centre, size = self.placed_in(k, other)
        return bool(np.all(centre - size / 2 >= 0) and np.all(centre + size / 2 <= CACHE_SIDE))


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
                sources=np.array([[float(r.get(k) or "nan") for k in ("src_x", "src_y", "src_w", "src_h")]
                                  for r in rows]),
                images=tuple(r.get("image") or "" for r in rows) if folder.name.startswith("stills__") else (),
            )
        )
    if not folders:
        raise UserError(f"no crop-cache folders (with boxes.csv) in {root}; see `siamtrack prepare-data`")
    return folders
