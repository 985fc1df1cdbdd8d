"""Training the target verifier (tracker/verifier.py) on the crop cache.

Samples: a template from one crop of a video and, from another crop of the same video up to `max_gap` crops
later, a search crop as tracking cuts it (shifted up to `max_shift` px, scaled by up to `scale_jitter`); the
window of its trunk features at the target is a positive, windows elsewhere in the same crop (the scene's own
background and distractors, IoU < 0.1 with the target) and windows of other videos' targets are negatives: one
drawn at random and, with `look_alikes` (training/data.py's mine_look_alikes), one of the template's mined
look-alikes, the other video's target it looks most like (another face for a face, another walker for a walker).
Features come from the same engine that tracks, so the head learns on exactly what it sees when tracking.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import torch
from torch import nn

from ..crop import crop_square, mean_colour
from ..crop_cache import CACHE_SIDE, CropFolder
from ..errors import UserError
from ..result import box_iou
from ..progress import progress as make_progress
from ..verifier import WINDOW, Verifier, feature_window, window_origin
from .data import EXEMPLAR_IN_CACHE, PairDataset



@dataclass
class VerifierSamples:
    templates: np.ndarray  # (P, C, 8, 8) float16, one per pair
    windows: np.ndarray  # (S, C, 8, 8) float16
    owner: np.ndarray  # (S,) index of each window's template
    iou: np.ndarray  # (S,) IoU of the window's box with the target (0 for other videos)
    folder: np.ndarray  # (S,) index of the template's folder (for splits by video)
    look_alike: np.ndarray  # (S,) True for the windows on a mined look-alike

    @property
    def labels(self) -> np.ndarray:
        return (self.iou >= 0.5).astype(np.float32)


def _iou(a_center, b_center, size) -> float:
    """IoU of two boxes of one size at these centres."""
    return box_iou((*(np.asarray(a_center) - size / 2), *size), (*(np.asarray(b_center) - size / 2), *size))


def _search_crop(image: np.ndarray, box: np.ndarray, rng, max_shift: float, scale_jitter: float):
    """A 255 px search crop of a cache crop as tracking would cut it, and the target's (offset from the crop's
    centre, size) in its pixels."""
    shift = rng.uniform(-max_shift, max_shift, 2)
    scale = math.exp(rng.uniform(-math.log(1 + scale_jitter), math.log(1 + scale_jitter)))
    centre = np.array([CACHE_SIDE / 2, CACHE_SIDE / 2]) + shift
    crop = crop_square(image, (centre[0], centre[1]), 255 * scale, 255, mean_colour(image))
    if rng.random() < 0.5:  # light changes over a video (a stage's spotlights): the target stays the target
        gain, bias = rng.uniform(0.6, 1.4), rng.uniform(-30, 30)
        crop = cv2.convertScaleAbs(crop, alpha=gain, beta=bias)
    target = box[:2] + box[2:] / 2
    return crop, (target - centre) / scale, box[2:] / scale


def _candidates(offset: np.ndarray, size: np.ndarray, rng, negatives: int) -> list[tuple[np.ndarray, float]]:
    """Window centres (offsets from the crop centre) with their IoU: one on the target (a little jitter), one
    near it, and `negatives` off it (IoU < 0.1) within the windows the crop has."""
    reach = (16 - WINDOW) / 2 * 16  # a window centre can be this far from the crop's centre
    chosen = [offset + rng.normal(0, 0.06, 2) * size, offset + rng.uniform(-0.6, 0.6, 2) * size]
    for _ in range(50):
        if len(chosen) >= 2 + negatives:
            break
        place = rng.uniform(-reach, reach, 2)
        if _iou(place, offset, size) < 0.1:
            chosen.append(place)
    return [(c, _iou(c, offset, size)) for c in chosen]


def sample_verifier_data(engine, folders: list[CropFolder], pairs_per_folder: int, seed: int = 0,
                         max_gap: int = 0, max_shift: float = 48, scale_jitter: float = 0.15,
                         negatives: int = 2, batch: int = 32, look_alikes: list[np.ndarray] | None = None
                         ) -> VerifierSamples:
    """look_alikes: mine_look_alikes(folders, ...): each pair adds a window of one of its template's look-alikes."""
    rng = np.random.default_rng(seed)
    videos = [k for k, f in enumerate(folders) if not f.is_still and len(f.files) >= 2]
    if not videos:
        raise UserError("the verifier learns on video folders of the crop cache, and none has 2 or more crops: "
                        "point --data at a crop cache with videos (../shared/data/train)")
    # The template is the first crop half the time (tracking keeps the first frame's), else any crop; the search
    # crop comes up to max_gap crops later (0: anywhere later in the video), so the head sees the target change.
    plan = []
    for k in videos:
        n = len(folders[k].files)
        for i in rng.integers(0, n - 1, pairs_per_folder):
            i = 0 if rng.random() < 0.5 else int(i)
            reach = n - 1 - i if max_gap == 0 else min(max_gap, n - 1 - i)
            plan.append((k, i, i + int(rng.integers(1, reach + 1))))
    rng.shuffle(plan)
    templates, windows, owner, ious, folder_of, mined = [], [], [], [], [], []

    def add(window, of_pair, iou, folder, look_alike=False):
        windows.append(window.astype(np.float16)), owner.append(of_pair), ious.append(iou)
        folder_of.append(folder), mined.append(look_alike)

    bar = make_progress(len(plan), "verifier samples", "pair")
    dummy, made = None, 0
    for start in range(0, len(plan), batch):
        chunk = plan[start:start + batch]
        exemplars = np.stack([PairDataset._read(folders[k], i)[EXEMPLAR_IN_CACHE, EXEMPLAR_IN_CACHE]
                              for k, i, _ in chunk])
        cut = [_search_crop(PairDataset._read(folders[k], j), folders[k].boxes[j], rng, max_shift, scale_jitter)
               for k, _, j in chunk]
        t = np.concatenate([engine.template(e[None]) for e in exemplars])
        dummy = t[:1] if dummy is None else dummy
        features = engine.search_with_features(np.stack([c[0] for c in cut]), dummy)[2]
        base, made = made, made + len(t)
        templates.append(t.astype(np.float16))
        for n, ((k, _, _), (_, offset, size)) in enumerate(zip(chunk, cut)):
            for centre, iou in _candidates(offset, size, rng, negatives):
                add(feature_window(features[n], window_origin(centre, 16, 16)), base + n, iou, k)
            # another video's target, against this pair's template: the look-alike from elsewhere
            other = (n + 1 + rng.integers(len(chunk) - 1)) % len(chunk) if len(chunk) > 1 else None
            if other is not None and folders[chunk[other][0]].video != folders[k].video:
                add(feature_window(features[other], window_origin(cut[other][1], 16, 16)), base + n, 0.0, k)
        if look_alikes:
            for n, window in enumerate(_look_alike_windows(engine, folders, look_alikes, chunk, rng, dummy,
                                                           max_shift, scale_jitter)):
                add(window, base + n, 0.0, chunk[n][0], look_alike=True)
        bar.update(len(chunk))
    bar.close()
    return VerifierSamples(np.concatenate(templates), np.stack(windows), np.array(owner), np.array(ious),
                           np.array(folder_of), np.array(mined, bool))


def _look_alike_windows(engine, folders, look_alikes, chunk, rng, dummy, max_shift, scale_jitter) -> list:
    """For each (folder, template crop, search crop) of `chunk`: the feature window on one of the template crop's
    mined look-alikes (another video's target), cut as a search crop like the pair's own."""
    picks = [look_alikes[k][i][rng.integers(len(look_alikes[k][i]))] for k, i, _ in chunk]
    cut = [_search_crop(PairDataset._read(folders[f], c), folders[f].boxes[c], rng, max_shift, scale_jitter)
           for f, c in picks]
    features = engine.search_with_features(np.stack([c[0] for c in cut]), dummy)[2]
    return [feature_window(features[n], window_origin(offset, 16, 16)) for n, (_, offset, _) in enumerate(cut)]


class VerifierNet(nn.Module):
    """Torch twin of tracker.verifier.Verifier's head, for training."""

    def __init__(self, channels: int = 96, projected: int = 32, hidden: int = 32) -> None:
        super().__init__()
        self.projection = nn.Linear(channels, projected, bias=False)
        self.hidden = nn.Linear(WINDOW * WINDOW + 1, hidden)
        self.out = nn.Linear(hidden, 1)

    def forward(self, template: torch.Tensor, window: torch.Tensor) -> torch.Tensor:
        t = self.projection(template.flatten(2).transpose(1, 2))  # (B, 64, D)
        w = self.projection(window.flatten(2).transpose(1, 2))
        cells = nn.functional.cosine_similarity(t, w, dim=2, eps=1e-6)
        pooled = nn.functional.cosine_similarity(t.mean(1), w.mean(1), dim=1, eps=1e-6)
        x = torch.cat([cells, pooled[:, None]], dim=1)
        return self.out(torch.relu(self.hidden(x)))[:, 0]

    def to_verifier(self, weights_sha256: str) -> Verifier:
        return Verifier(
            projection=self.projection.weight.detach().numpy().astype(np.float32),
            hidden_weight=self.hidden.weight.detach().numpy().astype(np.float32),
            hidden_bias=self.hidden.bias.detach().numpy().astype(np.float32),
            out_weight=self.out.weight.detach().numpy()[0].astype(np.float32),
            out_bias=np.asarray(float(self.out.bias.detach()[0]), np.float32),
            calibration=np.array([1.0, 0.0, 0.0]), weights_sha256=weights_sha256)


def train_head(samples: VerifierSamples, rows: np.ndarray, epochs: int = 8, seed: int = 0,
               batch: int = 256, lr: float = 2e-3) -> VerifierNet:
    """Fit the head on the samples' `rows` (windows whose IoU is in (0.1, 0.5) are ambiguous and left out)."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    rows = rows[(samples.iou[rows] >= 0.5) | (samples.iou[rows] < 0.1)]
    net = VerifierNet(samples.windows.shape[1])
    optimiser = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    steps = epochs * math.ceil(len(rows) / batch)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, lr, total_steps=steps)
    labels = torch.from_numpy(samples.labels)
    bar = make_progress(steps, "training the verifier", "step")
    for _ in range(epochs):
        order = rng.permutation(rows)
        for start in range(0, len(order), batch):
            pick = order[start:start + batch]
            t = torch.from_numpy(samples.templates[samples.owner[pick]].astype(np.float32))
            w = torch.from_numpy(samples.windows[pick].astype(np.float32))
            loss = nn.functional.binary_cross_entropy_with_logits(net(t, w), labels[pick])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.3f}")
    bar.close()
    return net.eval()


def head_logits(verifier: Verifier, samples: VerifierSamples, rows: np.ndarray) -> np.ndarray:
    return np.array([verifier.logit(samples.templates[samples.owner[r]].astype(np.float32),
                                    samples.windows[r].astype(np.float32)) for r in rows])
