"""Network runners: what every engine offers the tracking loop (`Engine`), which ones exist (`ENGINES`) and
`load_engine`, the one place that picks and loads one for the API, `batch` and `eval`.

Torch-free and onnxruntime-free: an engine's module is imported only when that engine is loaded, so the ONNX path
never pulls in PyTorch. A new engine is one module with a `load(weights, device, threads) -> Engine` function plus
one `register_engine` line below.
"""
from __future__ import annotations

import importlib
import importlib.util
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from .config import ModelConfig, TrackerConfig
from .errors import UserError, pip_install
from .paths import check_usable_path


def physical_cores() -> int:
    """Physical cores this process may run on (hyper-threads share a core's FPU, so ORT gains nothing from them),
    capped by a cgroup CPU quota when there is one."""
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = list(range(os.cpu_count() or 1))
    cores = set()
    try:
        for cpu in cpus:
            topology = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology")
            cores.add(((topology / "physical_package_id").read_text().strip(), (topology / "core_id").read_text().strip()))
    except OSError:
        cores = set(cpus)
    count = len(cores) or 1
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            count = min(count, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return count


@runtime_checkable
class Engine(Protocol):
    """Turns uint8 BGR crops into response maps. The tracking loop touches nothing but these members."""

    name: str
    config: ModelConfig  # the network's own config
    tracker_config: TrackerConfig  # the tracking hyperparameters stored with the weights
    response_size: int  # cells per side of a response map
    has_features: bool  # search_with_features() works (the online target model needs it)
    last_split: dict[str, float]  # seconds of the last search() by part ("backbone", ...), for stage timing

    def template(self, exemplar: np.ndarray) -> Any:
        """(1,E,E,3) uint8 -> one target's template features, in whatever form search() takes."""

    def stack_templates(self, templates: list) -> Any:
        """Several targets' templates -> one batch for search(..., owner)."""

    def template_to_numpy(self, template: Any) -> np.ndarray:
        """A template (or a stack) as a float32 numpy array on the CPU."""

    def search(self, crops: np.ndarray, template: Any,
               owner: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        """(N,S,S,3) uint8 -> (N,R,R) logits and, with a box head, (N,4,R,R) side distances (else None). With
        stacked templates, owner (N,) says whose template each crop is scored against."""

    def search_with_features(self, crops: np.ndarray, template: Any,
                             owner: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
        """search()'s pair and the crops' backbone features (N,C,H,W) float32."""


@dataclass(frozen=True)
class EngineEntry:
    """An engine as the registry knows it before importing it."""

    name: str
    module: str  # the module whose load(weights, device, threads) builds it; imported only when chosen
    package: str  # the import name of the runtime it needs
    missing: str  # the error when that runtime is not installed: what to install
    loads_checkpoints: bool  # it runs a PyTorch .pt checkpoint (else an exported folder)

    def is_installed(self) -> bool:
        return importlib.util.find_spec(self.package) is not None


ENGINES: dict[str, EngineEntry] = {}


def register_engine(entry: EngineEntry) -> None:
    ENGINES[entry.name] = entry


# Registration order is the "auto" preference: onnxruntime first (2-7x faster than eager torch on a CPU).
register_engine(EngineEntry(
    "onnx", "tracker.onnx_engine", "onnxruntime",
    "engine 'onnx' needs onnxruntime: pip install onnxruntime (or onnxruntime-gpu for CUDA)", loads_checkpoints=False))
register_engine(EngineEntry(
    "torch", "tracker.torch_engine", "torch",
    f"the torch engine needs PyTorch: {pip_install('train')}; or use engine='onnx' (onnxruntime) with "
    "the exported weights", loads_checkpoints=True))


def engine_names() -> tuple[str, ...]:
    """What --engine and engine= accept."""
    return ("auto", *ENGINES)


def pick_engine(engine: str, weights) -> str:
    """The registered engine `load_engine` would use for these weights; a UserError says what to install or pass
    instead. "auto": the first installed engine that loads this kind of weights."""
    if engine != "auto" and engine not in ENGINES:
        raise UserError(f"unknown engine {engine!r}: use one of {', '.join(engine_names())}")
    # Say a path is wrong before saying what to install: a typo is likelier than a missing package.
    if weights is not None:
        check_usable_path(weights, "--weights")
    if weights is not None and not Path(weights).exists():
        raise UserError(f"weights file not found: {weights} (give a .pt checkpoint or a folder holding template.onnx "
                        "+ search.onnx, or omit --weights to use the shipped default model)")
    is_checkpoint = weights is not None and Path(weights).suffix == ".pt"
    if engine == "auto":
        return _auto_engine(weights, is_checkpoint)
    entry = ENGINES[engine]
    if not entry.is_installed():
        raise UserError(entry.missing)
    if is_checkpoint and not entry.loads_checkpoints:
        raise UserError(f"{weights} is a PyTorch checkpoint: export it with `siamtrack export --weights {weights} "
                        f"--out DIR` and pass that folder, or use engine 'torch'")
    return engine


def _auto_engine(weights, is_checkpoint: bool) -> str:
    for entry in ENGINES.values():
        if (entry.loads_checkpoints or not is_checkpoint) and entry.is_installed():
            return entry.name
    if is_checkpoint:
        raise UserError(f"{weights} is a PyTorch checkpoint and PyTorch is not installed: {pip_install('train')}; "
                        "or export it on a machine with PyTorch (`siamtrack export`) and pass that folder")
    raise UserError("no inference runtime: install onnxruntime (pip install onnxruntime, or onnxruntime-gpu "
                    "for CUDA)")


def load_engine(weights: str | Path | None = None, engine: str = "auto", device: str = "auto",
                threads: int | None = None) -> Engine:
    """The network runner for `weights` (default: the shipped model), with its stored tracker config.

    engine: "onnx" runs onnxruntime on an exported pair (`weights`: a folder holding template.onnx and search.onnx;
    no PyTorch needed); "torch" runs PyTorch on a .pt checkpoint; "auto" picks onnx when onnxruntime is installed
    and `weights` is not a .pt checkpoint, else torch. threads: the runtime's intra-op threads (default: the
    physical cores); several trackers in separate processes on one machine should split the cores between them.
    """
    entry = ENGINES[pick_engine(engine, weights)]
    try:
        module = importlib.import_module(entry.module)
    except ImportError as exc:
        if exc.name != entry.package and not (exc.name or "").startswith(entry.package + "."):
            raise
        raise UserError(entry.missing) from None
    return module.load(weights, device, threads)
