"""Where the shipped weights live. Torch-free, so the ONNX runtime path can find them without PyTorch."""
from __future__ import annotations

import errno
import os
from importlib import resources
from pathlib import Path

from .errors import UserError

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


def shown_path(path) -> str:
    """A path as a message can print it: bytes that are not UTF-8 (kept by Python as surrogates) become U+FFFD."""
    return str(path).encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def is_utf8(path) -> bool:
    """False for a name holding bytes that are not UTF-8 (Python keeps them as lone surrogates, as does a JSON
    \\udcxx): OpenCV converts names to UTF-8 and crashes the process on such a one."""
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_usable_path(path, what: str) -> None:
    """A UserError for a path OpenCV or the OS cannot use, before it gets there: a name that is not UTF-8 (see
    is_utf8) and a symbolic link loop."""
    if not is_utf8(path):
        raise UserError(f"{what} {shown_path(path)}: the name is not valid UTF-8, which OpenCV cannot open; "
                        "use a UTF-8 name (rename a file with e.g. convmv -f latin1 -t utf8)") from None
    try:
        os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UserError(f"{what} {path} is a symbolic link loop (it points back to itself): fix or remove the "
                            "link") from None
