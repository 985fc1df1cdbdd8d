"""The network behind the tracking loop, run with PyTorch (CPU or CUDA).

An engine turns uint8 BGR crops into response maps; the tracking loop never touches torch itself, so other
engines (onnxruntime) can take this one's place.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from .checkpoint import load_model, weights_dir, weights_fingerprint
from .config import TrackerConfig
from .errors import UserError
from .model import SiamNet


def pick_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        chosen = torch.device(device)
    except RuntimeError:
        raise UserError(f"unknown device {device!r}: use 'auto', 'cpu' or 'cuda'") from None
    if chosen.type == "cuda" and not torch.cuda.is_available():
        raise UserError("device 'cuda' asked for but no CUDA GPU is available: use device='auto' or 'cpu'")
    return chosen


def _full_float32():
    """cuDNN runs float32 convolutions in TF32 by default (10-bit mantissa). Tracking feeds each frame's result into
    the next crop, so those ~1e-3 differences grew into a different trajectory than the CPU's on a crowded clip;
    full float32 keeps CUDA and CPU (and the ONNX engine) on the same boxes."""
    return torch.backends.cudnn.flags(enabled=True, benchmark=False, deterministic=False, allow_tf32=False)


# On the CPU, eager PyTorch's cost per crop grows with the batch (255 px crops through the trunk, 2-core CPU:
# 18-21 ms a crop for batches of 1 to 4, 30 ms at 6, 53 ms at 48: the feature maps outgrow the caches), so many
# targets' crops go through the trunk in chunks of this many. A GPU takes the whole batch at once.
CPU_CHUNK = 4


class TorchEngine:
    name = "torch"

    def __init__(self, model: SiamNet, device: str = "auto", tracker_config: TrackerConfig | None = None) -> None:
        """tracker_config: the tracking hyperparameters to run this network with (a checkpoint's stored ones; load()
        passes them); default TrackerConfig() with one crop per frame for a network that predicts boxes."""
        self.device = pick_device(device)
        self.model = model.to(self.device).eval()
        self.config = model.config
        self.weights_sha256 = weights_fingerprint(model)  # what a verifier.npz was made for, as in an exported pair
        if tracker_config is None:
            tracker_config = TrackerConfig(num_scales=1) if model.config.predicts_boxes else TrackerConfig()
        self.tracker_config = tracker_config
        self.response_size = model.response_size
        self.last_split: dict[str, float] = {}

    def template(self, exemplar: np.ndarray) -> torch.Tensor:
        """(1,127,127,3) uint8 -> template features, kept on the device between frames."""
        with torch.inference_mode(), _full_float32():
            return self.model.template(self._to_tensor(exemplar))

    def stack_templates(self, templates: list[torch.Tensor]) -> torch.Tensor:
        """Several targets' templates -> one (T,...) batch for search(..., owner)."""
        return torch.cat(templates)

    has_features = True  # search_with_features() works for every model

    def search(self, crops: np.ndarray, template: torch.Tensor,
               owner: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        """(N,255,255,3) uint8 -> (N,R,R) float32 logits, and (N,4,R,R) side distances with a box head (else None).
        `template`: one target's, or stack_templates() of several with `owner` (N,) saying whose each crop is."""
        return self._search(crops, template, owner)[:2]

    def search_with_features(self, crops: np.ndarray, template: torch.Tensor, owner: np.ndarray | None = None):
        """search()'s pair and the crops' backbone features (N,C,H,W) float32, for the online target model."""
        return self._search(crops, template, owner, with_features=True)

    def _search(self, crops: np.ndarray, template: torch.Tensor, owner: np.ndarray | None,
                with_features: bool = False) -> tuple:
        with torch.inference_mode(), _full_float32():
            start = time.perf_counter()
            images = self._to_tensor(crops)
            if self.device.type == "cpu" and len(images) > CPU_CHUNK:
                features = torch.cat([self.model.embed(chunk) for chunk in images.split(CPU_CHUNK)])
            else:
                features = self.model.embed(images)
            if self.device.type == "cuda":
                torch.cuda.synchronize()
            middle = time.perf_counter()
            owner_t = None if owner is None else torch.as_tensor(np.asarray(owner, np.int64), device=self.device)
            logits, distances = self.model.correlate(template, features, owner_t)
            logits = logits[:, 0].cpu().numpy()
            distances = distances.cpu().numpy() if distances is not None else None
            features = features.float().cpu().numpy() if with_features else None
        self.last_split = {"backbone": middle - start, "correlation": time.perf_counter() - middle}
        return logits, distances, features

    @staticmethod
    def template_to_numpy(template: torch.Tensor) -> np.ndarray:
        return template.detach().float().cpu().numpy()

    def _to_tensor(self, images: np.ndarray) -> torch.Tensor:
        # Move the uint8 batch first: 4x less to copy to a GPU, and the float conversion runs there.
        return torch.from_numpy(images).to(self.device).permute(0, 3, 1, 2).float()


def load(weights, device: str = "auto", threads: int | None = None) -> TorchEngine:
    """The engine registry's loader (tracker/engines.py): a .pt checkpoint, default the shipped one, run with its
    stored tracker config. threads: torch's intra-op threads (default: torch's own choice)."""
    if threads is not None:
        torch.set_num_threads(threads)
    model, tracker_config, _ = load_model(weights)
    engine = TorchEngine(model, device, tracker_config)
    engine.weights_folder = Path(weights).parent if weights is not None else weights_dir()
    return engine
