"""Self-describing checkpoints: weights plus both configs, loaded with weights_only=True (no unpickling)."""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import torch

from .config import ModelConfig, TrackerConfig
from .errors import UserError
from .model import SiamNet
# weights_dir() lives in the torch-free tracker.paths (the ONNX engine needs it without PyTorch); re-exported here.
from .paths import DEFAULT_WEIGHTS, default_weights_path, weights_dir  # noqa: F401

FORMAT = "siamtrack-checkpoint/1"


def save_checkpoint(path: str | Path, model: SiamNet, tracker_config: TrackerConfig, meta: dict[str, Any] | None = None) -> None:
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    torch.save(
        {
            "format": FORMAT,
            "model_config": model.config.to_dict(),
            "tracker_config": tracker_config.to_dict(),
            "meta": dict(meta or {}),
            "state_dict": state,
        },
        str(path),
    )


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"weights file not found: {path} (omit --weights to use the shipped default model)")
    try:
        payload = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for corrupt or foreign files
        raise UserError(f"cannot read weights file {path}: not a siamtrack checkpoint ({type(exc).__name__})") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise UserError(f"{path} is not a siamtrack checkpoint (expected format {FORMAT!r})")
    return payload


def load_model(path: str | Path | None = None) -> tuple[SiamNet, TrackerConfig, dict[str, Any]]:
    """Build the network a checkpoint describes and load its weights (on the CPU, in eval mode)."""
    path = Path(path or default_weights_path())
    payload = load_checkpoint(path)
    state = payload.get("state_dict")
    if isinstance(state, dict):
        bad = [name for name, tensor in state.items()
               if isinstance(tensor, torch.Tensor) and tensor.is_floating_point() and not torch.isfinite(tensor).all()]
        if bad:
            raise UserError(f"{path} holds NaN or infinite weights in {len(bad)} tensor(s), e.g. {bad[0]!r}: it is "
                            "corrupt or from a training run that diverged; use another checkpoint or the shipped one")
    try:
        model = SiamNet(ModelConfig.from_dict(payload["model_config"]), pretrained_backbone=False)
        model.load_state_dict(payload["state_dict"])
        tracker_config = TrackerConfig.from_dict(payload["tracker_config"])
    except (KeyError, ValueError, TypeError, RuntimeError) as exc:
        # Tagged as ours but written by another version, or edited: say which file, not a traceback.
        raise UserError(f"{path} does not match this siamtrack version: {type(exc).__name__}: "
                        f"{str(exc).splitlines()[0][:200]}") from None
    model.eval()
    return model, tracker_config, payload.get("meta", {})


def weights_fingerprint(model: torch.nn.Module) -> str:
    """sha256 over the state dict (names, shapes, float32 bytes): the same weights give the same fingerprint."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        digest.update(name.encode())
        digest.update(str(tuple(t.shape)).encode())
        digest.update(t.numpy().tobytes())
    return digest.hexdigest()
