"""Where the shipped weights live. Torch-free, so the ONNX runtime path can find them without PyTorch."""
from __future__ import annotations

from importlib import resources
from pathlib import Path

DEFAULT_WEIGHTS = "siamtrack_default.pt"  # the PyTorch checkpoint (training, export, the torch engine)
TEMPLATE_ONNX = "template.onnx"  # exemplar image -> template features
SEARCH_ONNX = "search.onnx"  # search crops + template features -> response maps (logits)


def weights_dir() -> Path:
    """The shipped weights: package data `tracker.weights` once installed, `weights/` in a source checkout."""
    try:
        return Path(str(resources.files("tracker.weights")))
    except ModuleNotFoundError:
        return Path(__file__).resolve().parent.parent / "weights"


def default_weights_path() -> Path:
    return weights_dir() / DEFAULT_WEIGHTS
