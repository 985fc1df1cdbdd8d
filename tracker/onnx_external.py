"""Where an ONNX graph's external data lives, read from the file itself, before onnxruntime opens it.

A tensor of an ONNX graph may keep its bytes in another file, named by the graph ("external data"). Older
onnxruntime releases (1.20, which pyproject allows) open whatever that name points at: an absolute path, a path
up out of the model's folder, or a symbolic link to anywhere, so a downloaded search.onnx could read
/etc/passwd into a tensor. `check_external_data` refuses any such name whatever the onnxruntime version.

It parses the protobuf wire format directly (the `onnx` package is an optional dependency of export only),
walking every place a tensor can be: initializers, sparse initializers, node attributes (Constant's value,
subgraphs of If / Loop / Scan), functions and training graphs.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

from .errors import UserError

# Field numbers of onnx.proto: message -> {field: the message it holds}. "tensor" is TensorProto, whose field 13
# (external_data) holds key/value entries.
_MESSAGES = {
    "model": {7: "graph", 20: "training", 25: "function"},
    "training": {1: "graph", 2: "graph"},
    "graph": {1: "node", 5: "tensor", 15: "sparse"},
    "function": {7: "node"},
    "node": {5: "attribute"},
    "attribute": {5: "tensor", 6: "graph", 10: "tensor", 11: "graph", 22: "sparse", 23: "sparse"},
    "sparse": {1: "tensor", 2: "tensor"},
    "tensor": {},
}
_TENSOR_EXTERNAL_DATA = 13
_ENTRY_KEY, _ENTRY_VALUE = 1, 2


def _varint(data: memoryview, at: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        if at >= len(data) or shift > 63:
            raise ValueError("truncated varint")
        byte = data[at]
        value |= (byte & 0x7F) << shift
        at += 1
        shift += 7
        if not byte & 0x80:
            return value, at


def _fields(data: memoryview) -> Iterator[tuple[int, memoryview | None]]:
    """(field number, bytes) of each length-delimited field of one message; other wire types give None."""
    at = 0
    while at < len(data):
        key, at = _varint(data, at)
        number, wire = key >> 3, key & 7
        if wire == 0:
            _, at = _varint(data, at)
        elif wire in (1, 5):
            at += 8 if wire == 1 else 4
        elif wire == 2:
            length, at = _varint(data, at)
            if at + length > len(data):
                raise ValueError("truncated field")
            yield number, data[at:at + length]
            at += length
            continue
        else:
            raise ValueError(f"wire type {wire}")
        yield number, None


def _locations(data: memoryview, kind: str) -> Iterator[str]:
    for number, value in _fields(data):
        if value is None:
            continue
        if kind == "tensor" and number == _TENSOR_EXTERNAL_DATA:
            entry = {n: bytes(v) for n, v in _fields(value) if v is not None}
            if entry.get(_ENTRY_KEY) == b"location":
                yield entry.get(_ENTRY_VALUE, b"").decode("utf-8", "replace")
        elif number in _MESSAGES[kind]:
            yield from _locations(value, _MESSAGES[kind][number])


def external_data_locations(path: str | Path) -> list[str]:
    """The external data file names an ONNX model names (empty for a self-contained one)."""
    try:
        return list(_locations(memoryview(Path(path).read_bytes()), "model"))
    except ValueError:
        return []  # not a protobuf we can read: onnxruntime will refuse it with its own message


def check_external_data(path: str | Path) -> None:
    """A UserError when a graph keeps tensor data outside its own folder (absolute, ../ or a symbolic link out)."""
    folder = Path(os.path.realpath(Path(path).parent))
    for location in external_data_locations(path):
        target = Path(os.path.realpath(folder / location))
        if Path(location).is_absolute() or ".." in Path(location).parts or folder not in target.parents:
            raise UserError(f"{path} keeps tensor data in {location!r}, outside its folder {folder}: refused "
                            "(a graph may only read data files beside it); re-export it with `siamtrack export`")
