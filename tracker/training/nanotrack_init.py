"""Initialise a box-adaptive SiamNet from a NanoTrack v3 checkpoint (HonglinChu/SiamTrackers, Apache-2.0): its
tracking-pretrained MobileNetV3 trunk and head. Read at training time only, with weights_only=True; the weights that
ship are the project's own training run's, and the model card says where they started."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..errors import UserError
from ..model import SiamNet

# The checkpoint's own prefixes -> this project's module names. NanoTrack v3 stores an adjust layer ("neck.") that
# its forward pass never calls; it is not loaded.
_PREFIXES = {"backbone.features.": "backbone.features.", "ban_head.": "head."}
_UNUSED = ("neck.",)
# The checkpoint also stores its epoch and optimiser state, which hold numpy scalars: allow exactly those types.
_NUMPY_GLOBALS = [(np._core.multiarray.scalar, "numpy.core.multiarray.scalar"), np.dtype,
                  type(np.dtype("float64")), type(np.dtype("int64"))]


def read_nanotrack_state(path: str | Path) -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"init_weights: {path} not found (NanoTrack v3's nanotrackv3.pth; see "
                        "../shared/models/README.md)")
    try:
        with torch.serialization.safe_globals(_NUMPY_GLOBALS):
            payload = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for corrupt or foreign files
        raise UserError(f"init_weights: cannot read {path} as a NanoTrack checkpoint ({type(exc).__name__}: "
                        f"{str(exc)[:200]})") from exc
    state = payload.get("state_dict", payload) if isinstance(payload, dict) else None
    if not isinstance(state, dict):
        raise UserError(f"init_weights: {path} holds no state dict")
    return state


def load_nanotrack_weights(model: SiamNet, path: str | Path) -> None:
    """Copy every trunk and head tensor of the checkpoint into `model` (a mobilenetv3_nanotrack + box_adaptive
    SiamNet); any tensor missing on either side, or of another shape, is a UserError naming it."""
    cfg = model.config
    if cfg.backbone != "mobilenetv3_nanotrack" or cfg.head != "box_adaptive":
        raise UserError("init_weights needs model.backbone 'mobilenetv3_nanotrack' and model.head 'box_adaptive', "
                        f"got {cfg.backbone!r} / {cfg.head!r}")
    renamed = {}
    for key, tensor in read_nanotrack_state(path).items():
        if key.startswith(_UNUSED):
            continue
        prefix = next((p for p in _PREFIXES if key.startswith(p)), None)
        if prefix is None:
            raise UserError(f"init_weights: {path} has a tensor this model has no place for: {key!r}")
        renamed[_PREFIXES[prefix] + key[len(prefix):]] = tensor
    own = model.state_dict()
    missing = sorted(set(own) - set(renamed))
    extra = sorted(set(renamed) - set(own))
    wrong = sorted(k for k in set(own) & set(renamed) if own[k].shape != renamed[k].shape)
    if missing or extra or wrong:
        raise UserError(f"init_weights: {path} does not fit this model: missing {missing[:3]}, unexpected "
                        f"{extra[:3]}, wrong shape {wrong[:3]} ({len(missing)}/{len(extra)}/{len(wrong)})")
    model.load_state_dict(renamed)
