"""Which network runner SiamTracker.from_pretrained uses. Torch-free and onnxruntime-free: it only asks what is
installed."""
from __future__ import annotations

import importlib.util
from pathlib import Path

from .errors import UserError

ENGINES = ("auto", "onnx", "torch")


def pick_engine(engine: str, weights) -> str:
    """'onnx' or 'torch' for from_pretrained (see there); a UserError says what to install or pass instead."""
    if engine not in ENGINES:
        raise UserError(f"unknown engine {engine!r}: use one of {', '.join(ENGINES)}")
    # Say a path is wrong before saying what to install: a typo is likelier than a missing package.
    if weights is not None and not Path(weights).exists():
        raise UserError(f"weights file not found: {weights} (give a .pt checkpoint or a folder holding template.onnx "
                        "+ search.onnx, or omit --weights to use the shipped default model)")
    is_checkpoint = weights is not None and Path(weights).suffix == ".pt"
    has_onnxruntime = importlib.util.find_spec("onnxruntime") is not None
    has_torch = importlib.util.find_spec("torch") is not None
    if engine == "auto":
        if has_onnxruntime and not is_checkpoint:
            return "onnx"
        if not has_torch:
            if is_checkpoint:
                raise UserError(f"{weights} is a PyTorch checkpoint and PyTorch is not installed: pip install "
                                "'siamtrack[train]', or export it on a machine with PyTorch (`siamtrack export`) and "
                                "pass that folder")
            raise UserError("no inference runtime: install onnxruntime (pip install onnxruntime, or onnxruntime-gpu "
                            "for CUDA)")
        return "torch"
    if engine == "onnx":
        if not has_onnxruntime:
            raise UserError("engine 'onnx' needs onnxruntime: pip install onnxruntime (or onnxruntime-gpu for CUDA)")
        if is_checkpoint:
            raise UserError(f"{weights} is a PyTorch checkpoint: export it with `siamtrack export --weights {weights} "
                            "--out DIR` and pass that folder, or use engine 'torch'")
        return "onnx"
    return "torch"
