"""Parity of an exported pair with PyTorch: the same crops through the model and through the ONNX engine.

`siamtrack export` runs it before it moves the graphs into place (onnx_export.export_onnx); the tests use it too.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from ..crop import crop_square
from ..model import SiamNet
from ..onnx_engine import OnnxEngine

# Parity: responses equal within this relative tolerance, and the same peak, torch vs onnxruntime.
PARITY_RTOL = 1e-3


def parity_inputs(model: SiamNet, batch: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A deterministic textured scene: an exemplar crop and `batch` search crops around it at shifted centres and
    scales, as the tracker crops them (uint8 BGR NHWC), so every response has a real, unambiguous peak."""
    rng = np.random.default_rng(seed)
    cfg = model.config
    scene = cv2.resize(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8), (640, 480), interpolation=cv2.INTER_CUBIC)
    scene = cv2.add(scene, rng.integers(0, 40, scene.shape, dtype=np.uint8))  # fine texture on the blobs
    center = np.array([320.0, 240.0])
    exemplar_side = 120.0
    exemplar = crop_square(scene, tuple(center), exemplar_side, cfg.exemplar_size, (128.0, 128.0, 128.0))[None]
    search_side = exemplar_side * cfg.search_size / cfg.exemplar_size
    crops = np.empty((batch, cfg.search_size, cfg.search_size, 3), np.uint8)
    for i in range(batch):
        shift = rng.uniform(-25, 25, 2)
        scale = 1.0375 ** (i - batch // 2)
        crop_square(scene, tuple(center + shift), search_side * scale, cfg.search_size, (128.0, 128.0, 128.0), out=crops[i])
    return exemplar, crops


def _torch_reference(model: SiamNet, exemplar: np.ndarray, crops: np.ndarray, owner: np.ndarray):
    """exemplar: (T,...) crops, one per target; owner (N,): whose each crop is."""
    with torch.inference_mode():
        z = model.template(torch.from_numpy(exemplar).permute(0, 3, 1, 2).float())
        logits, distances = model.track(torch.from_numpy(crops).permute(0, 3, 1, 2).float(), z,
                                        torch.from_numpy(owner))
    return z.numpy(), logits[:, 0].numpy(), (distances.numpy() if distances is not None else None)


def check_parity(model: SiamNet, template_path: str | Path, search_path: str | Path,
                 batches: tuple[int, ...] = (1, 3, 4), seed: int = 0) -> dict[str, Any]:
    """Run the same crops through PyTorch and through the exported pair with the ONNX engine (onnxruntime, CPU,
    full graph optimisation, as users run it). Diffs are relative to the largest magnitude of the torch output
    (responses are logits, which cross zero, so a per-element ratio would be meaningless there). A batch of 4 is
    scored as two targets' (two exemplars, crops owned alternately), the others against one template."""
    engine = OnnxEngine(template_path, search_path, device="cpu")
    result = {"batches": list(batches), "template_max_rel": 0.0, "response_max_rel": 0.0, "response_max_abs": 0.0,
              "argmax_equal": 0, "argmax_total": 0}
    if model.has_box_head:
        result["boxes_max_rel"] = 0.0
    model = model.eval()
    for batch in batches:
        exemplar, crops = parity_inputs(model, batch, seed + batch)
        owner = np.zeros(batch, np.int64)
        if batch >= 4:  # a second target: the first exemplar mirrored, owning every other crop
            exemplar = np.concatenate([exemplar, exemplar[:, :, ::-1]])
            owner[1::2] = 1
        z_ref, p_ref, d_ref = _torch_reference(model, exemplar, crops, owner)
        zs = [engine.template(np.ascontiguousarray(e[None])) for e in exemplar]
        p, d = engine.search(crops, zs[0] if len(zs) == 1 else engine.stack_templates(zs), owner)
        z = np.concatenate([engine.template_to_numpy(t) for t in zs])
        if (d is None) != (d_ref is None) or (d is not None and d.shape != d_ref.shape):
            raise RuntimeError("the ONNX search graph's box output does not match the model's box head")
        if d is not None:  # distances are positive, so a plain relative difference is meaningful
            result["boxes_max_rel"] = max(result["boxes_max_rel"], float(np.max(np.abs(d - d_ref) / np.abs(d_ref))))
        if p.shape != p_ref.shape or z.shape != z_ref.shape:
            raise RuntimeError(f"shape mismatch: onnx {z.shape}, {p.shape} vs torch {z_ref.shape}, {p_ref.shape}")
        rel_z = float(np.max(np.abs(z - z_ref)) / max(float(np.max(np.abs(z_ref))), 1e-12))
        rel_p = float(np.max(np.abs(p - p_ref)) / max(float(np.max(np.abs(p_ref))), 1e-12))
        result["template_max_rel"] = max(result["template_max_rel"], rel_z)
        result["response_max_rel"] = max(result["response_max_rel"], rel_p)
        result["response_max_abs"] = max(result["response_max_abs"], float(np.max(np.abs(p - p_ref))))
        same = [int(np.argmax(a)) == int(np.argmax(b)) for a, b in zip(p, p_ref)]
        result["argmax_equal"] += sum(same)
        result["argmax_total"] += len(same)
    result["ok"] = (result["template_max_rel"] <= PARITY_RTOL and result["response_max_rel"] <= PARITY_RTOL
                    and result.get("boxes_max_rel", 0.0) <= PARITY_RTOL
                    and result["argmax_equal"] == result["argmax_total"])
    return result
