"""The network behind the tracking loop, run with onnxruntime: no PyTorch needed.

Runs the exported pair (``siamtrack export``): template.onnx once per target, search.onnx every frame. It implements
tracker.engines.Engine, as TorchEngine does, so the tracking loop takes either.
This module must never import torch, directly or through another siamtrack module.
"""
from __future__ import annotations

import json
import time
import warnings
from importlib import metadata as _dist_metadata
from pathlib import Path

import numpy as np
import onnxruntime as ort

from .config import ModelConfig, TrackerConfig
from .engines import physical_cores
from .errors import UserError
from .onnx_external import check_external_data
from .paths import SEARCH_ONNX, TEMPLATE_ONNX, weights_dir

FORMAT = "siamtrack-onnx/2"  # /2: the search graph takes several targets' templates and an `owner` per crop
FORMATS = ("siamtrack-onnx/1", FORMAT)  # /1 pairs (one template per search call) still load and run
_PAIR_KEYS = ("siamtrack_format", "model_config", "input_layout", "response_size", "weights_sha256")


def _check_one_onnxruntime() -> None:
    """onnxruntime and onnxruntime-gpu install the same `onnxruntime` module over each other: with both present,
    whichever came last wins, and uninstalling either breaks the other. Say so, with the fix."""
    installed = []
    for dist in ("onnxruntime", "onnxruntime-gpu"):
        try:
            installed.append(f"{dist} {_dist_metadata.version(dist)}")
        except _dist_metadata.PackageNotFoundError:
            pass
    if len(installed) > 1:
        warnings.warn(f"both {' and '.join(installed)} are installed and overwrite each other; keep one: "
                      "pip uninstall -y onnxruntime onnxruntime-gpu && pip install onnxruntime-gpu (CUDA) "
                      "or ... && pip install onnxruntime (CPU)", RuntimeWarning, stacklevel=3)


def pick_providers(device: str) -> list:
    """onnxruntime execution providers for 'auto' (CUDA when this onnxruntime build has it), 'cpu' or 'cuda'."""
    available = ort.get_available_providers()
    if device not in ("auto", "cpu", "cuda") and not device.startswith("cuda:"):
        raise UserError(f"unknown device {device!r}: use 'auto', 'cpu' or 'cuda'")
    if device == "cpu":
        return ["CPUExecutionProvider"]
    if "CUDAExecutionProvider" not in available:
        if device == "auto":
            return ["CPUExecutionProvider"]
        raise UserError("device 'cuda' asked for but this onnxruntime has no CUDAExecutionProvider: install "
                        "onnxruntime-gpu instead of onnxruntime (docs/deployment.md), or use device='cpu'")
    return [("CUDAExecutionProvider", {"device_id": _device_id(device)}), "CPUExecutionProvider"]


def _device_id(device: str) -> int:
    try:
        return int(device.split(":")[1]) if device.startswith("cuda:") else 0
    except ValueError:
        raise UserError(f"unknown device {device!r}: use 'auto', 'cpu', 'cuda' or 'cuda:N'") from None


def _session_options(threads: int | None, spin: bool) -> ort.SessionOptions:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.intra_op_num_threads = threads or physical_cores()
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    options.log_severity_level = 3  # onnxruntime's own warnings (e.g. a CUDA fallback) only when they matter
    return options


def open_graph(path: Path, options: ort.SessionOptions, providers: list, remedy: str = "") -> ort.InferenceSession:
    """An onnxruntime session of the graph at `path`, its external data checked first; a missing or corrupt file
    is a UserError (ending with `remedy` when given)."""
    check_external_data(path)
    try:
        return ort.InferenceSession(str(path), options, providers=providers)
    except Exception as exc:  # onnxruntime raises its own types for missing / corrupt files
        raise UserError(f"cannot load ONNX graph {path}: {type(exc).__name__}: {exc}{remedy}") from None


def _open_session(path: Path, options: ort.SessionOptions, providers: list) -> tuple[ort.InferenceSession, dict]:
    """A graph's session and its siamtrack metadata."""
    session = open_graph(path, options, providers)
    return session, read_metadata(session, path)


def read_metadata(session: ort.InferenceSession, path: Path) -> dict:
    raw = session.get_modelmeta().custom_metadata_map
    if raw.get("siamtrack_format") not in FORMATS:
        raise UserError(f"{path} is not a siamtrack ONNX graph (format {raw.get('siamtrack_format')!r}, expected "
                        f"one of {', '.join(FORMATS)}): export one with `siamtrack export`")
    meta = {}
    for key, value in raw.items():
        try:
            meta[key] = json.loads(value)
        except json.JSONDecodeError:
            meta[key] = value
    return meta


def resolve_pair(weights: str | Path | None) -> tuple[Path, Path]:
    """A folder holding template.onnx + search.onnx (default: the shipped weights), or one of the two files."""
    path = Path(weights) if weights is not None else weights_dir()
    if path.is_file() and path.suffix == ".onnx":
        path = path.parent
    if not path.is_dir():
        raise UserError(f"ONNX weights not found: {path} is not a folder holding {TEMPLATE_ONNX} + {SEARCH_ONNX}")
    pair = path / TEMPLATE_ONNX, path / SEARCH_ONNX
    missing = [p.name for p in pair if not p.is_file()]
    if missing:
        raise UserError(f"{path} lacks {' and '.join(missing)}: write them with `siamtrack export --out {path}`")
    return pair


class OnnxEngine:
    name = "onnx"

    def __init__(self, template_path: str | Path, search_path: str | Path, device: str = "auto",
                 threads: int | None = None, spin: bool = False) -> None:
        """threads: intra-op threads (default: the physical cores). spin=False lets onnxruntime's worker threads
        sleep between runs instead of busy-waiting: between two frames the CPU decodes and crops, and on a small
        shared CPU spinning workers only steal it (measured about 10% slower per frame on a loaded 2-core box)."""
        options = _session_options(threads, spin)
        _check_one_onnxruntime()
        providers = pick_providers(device)
        (self._template_session, template_meta), (self._search_session, search_meta) = (
            _open_session(Path(path), options, providers) for path in (template_path, search_path))
        self._read_metadata(template_meta, search_meta, template_path, search_path)
        self.providers = self._search_session.get_providers()
        if device.startswith("cuda") and "CUDAExecutionProvider" not in self.providers:
            raise UserError("device 'cuda' asked for but onnxruntime could not start CUDA (check the CUDA and "
                            "cuDNN libraries onnxruntime-gpu needs), or use device='cpu'")
        self.on_gpu = "CUDAExecutionProvider" in self.providers
        self._device_id = _device_id(device) if self.on_gpu else 0
        self._template_in = self._template_session.get_inputs()[0].name
        self._template_out = self._template_session.get_outputs()[0].name
        search_inputs = [i.name for i in self._search_session.get_inputs()]
        self._search_in, self._search_template_in = search_inputs[:2]
        # A /2 graph scores each crop against its owner's template in one run; a /1 graph takes one template.
        self._search_owner_in = search_inputs[2] if len(search_inputs) > 2 else None
        outputs = [o.name for o in self._search_session.get_outputs()]
        # Pairs exported before the `features` output (the online target model's input) still track without it.
        self.has_features = outputs[-1:] == ["features"]
        self._search_outs = outputs[:-1] if self.has_features else outputs
        self._search_outs_with_features = [*self._search_outs, "features"]
        if len(self._search_outs) != (2 if self.config.predicts_boxes else 1):
            raise UserError(f"{search_path}: {len(outputs)} outputs do not fit its model config; re-export "
                            "with `siamtrack export`")
        self._float_buffers: dict[int, np.ndarray] = {}
        self.last_split: dict[str, float] = {}
        self._check_finite(search_path)

    def _read_metadata(self, template_meta: dict, search_meta: dict, template_path, search_path) -> None:
        """The model config, stored tracker config, response size and input layout of a matching pair."""
        if template_meta.get("graph") != "template" or search_meta.get("graph") != "search":
            raise UserError(f"{template_path} / {search_path}: expected a template graph and a search graph, got "
                            f"{template_meta.get('graph')!r} / {search_meta.get('graph')!r}")
        if any(template_meta.get(k) != search_meta.get(k) for k in _PAIR_KEYS):
            raise UserError(f"{template_path} and {search_path} come from different exports: re-export both with "
                            "`siamtrack export`")
        self.metadata = search_meta
        try:
            self.config = ModelConfig.from_dict(search_meta["model_config"])
            self.tracker_config = TrackerConfig.from_dict(search_meta["tracker_config"])
            self.response_size = int(search_meta["response_size"])
            self.weights_sha256 = str(search_meta.get("weights_sha256", ""))  # what a verifier.npz was made for
            self.layout = search_meta["input_layout"]
        except (KeyError, TypeError, ValueError) as exc:
            raise UserError(f"{search_path}: metadata this siamtrack cannot use ({type(exc).__name__}: {exc}); "
                            "re-export with this version: `siamtrack export`") from None
        if self.layout not in ("uint8_nhwc", "float_nchw"):
            raise UserError(f"{search_path}: unknown input layout {self.layout!r}; re-export with `siamtrack export`")

    def _check_finite(self, search_path) -> None:
        """Run both graphs once on a fixed random image: a pair whose weights hold NaN/Inf (a diverged or damaged
        export) would otherwise load and 'track' with NaN scores. About one frame's work, once per load."""
        m = self.config
        rng = np.random.default_rng(0)
        exemplar = rng.integers(0, 256, (1, m.exemplar_size, m.exemplar_size, 3), dtype=np.uint8)
        crop = rng.integers(0, 256, (1, m.search_size, m.search_size, 3), dtype=np.uint8)
        template = self.template(exemplar)
        outputs = [self.template_to_numpy(template), *(o for o in self.search(crop, template) if o is not None)]
        if not all(np.isfinite(o).all() for o in outputs):
            raise UserError(f"{search_path} (or its template graph) computes NaN or infinite values: the weights "
                            "are damaged or from a training run that diverged; re-export them with `siamtrack export`")
        self.last_split = {}

    @classmethod
    def from_dir(cls, weights: str | Path | None = None, device: str = "auto", threads: int | None = None,
                 spin: bool = False) -> "OnnxEngine":
        return cls(*resolve_pair(weights), device=device, threads=threads, spin=spin)

    def _images(self, images: np.ndarray) -> np.ndarray:
        """uint8 (N,H,W,3) BGR -> what the graphs take. The default uint8 NHWC graphs take the crops as they are;
        float NCHW graphs get them converted into a buffer kept per batch size."""
        if self.layout == "uint8_nhwc":
            return np.ascontiguousarray(images)  # a no-op for the tracker's own crop buffer
        buffer = self._float_buffers.get(images.shape[0])
        if buffer is None or buffer.shape[2:] != images.shape[1:3]:
            buffer = np.empty((images.shape[0], 3, *images.shape[1:3]), np.float32)
            self._float_buffers[images.shape[0]] = buffer
        np.copyto(buffer, images.transpose(0, 3, 1, 2), casting="unsafe")
        return buffer

    def template(self, exemplar: np.ndarray):
        """(1,127,127,3) uint8 -> template features: a numpy array on the CPU, an OrtValue kept on the GPU."""
        images = self._images(exemplar)
        if not self.on_gpu:
            return self._template_session.run([self._template_out], {self._template_in: images})[0]
        binding = self._template_session.io_binding()
        binding.bind_cpu_input(self._template_in, images)
        binding.bind_output(self._template_out, "cuda", self._device_id)
        self._template_session.run_with_iobinding(binding)
        return binding.get_outputs()[0]

    def stack_templates(self, templates: list):
        """Several targets' templates -> one (T,...) batch for search(..., owner); on the GPU it stays there."""
        stacked = np.concatenate([self.template_to_numpy(t) for t in templates])
        if not self.on_gpu:
            return stacked
        return ort.OrtValue.ortvalue_from_numpy(stacked, "cuda", self._device_id)

    def search(self, crops: np.ndarray, template, owner: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        """(N,255,255,3) uint8 -> (N,R,R) float32 logits, and (N,4,R,R) side distances with a box head (else None).
        `template`: one target's, or stack_templates() of several with `owner` (N,) saying whose each crop is."""
        return self._search(crops, template, owner, self._search_outs)

    def search_with_features(self, crops: np.ndarray, template, owner: np.ndarray | None = None):
        """search()'s pair and the crops' backbone features (N,C,H,W) float32, for the online target model."""
        if not self.has_features:
            raise UserError("these ONNX weights were exported without the search features the online target model "
                            "learns on: re-export them with `siamtrack export`, or set online_weight=0")
        return self._search(crops, template, owner, self._search_outs_with_features)

    def _search(self, crops: np.ndarray, template, owner: np.ndarray | None, names: list[str]):
        start = time.perf_counter()
        images = self._images(crops)
        middle = time.perf_counter()
        if owner is None:
            owner = np.zeros(len(crops), np.int64)
        owner = np.asarray(owner, np.int64)
        if self._search_owner_in is None and len(owner) and owner.max() > 0:
            outputs = self._search_per_owner(images, template, owner, names)
        else:
            outputs = self._run_search(images, template, owner, names)
        end = time.perf_counter()
        # One graph does backbone and correlation: the tracking loop books it all as "backbone".
        self.last_split = {"backbone": end - start, "convert": middle - start, "run": end - middle}
        if not self.config.predicts_boxes:  # no box output: keep the (logits, distances[, features]) shape
            outputs.insert(1, None)
        return tuple(outputs)

    def _run_search(self, images: np.ndarray, template, owner: np.ndarray, names: list[str]) -> list[np.ndarray]:
        if not self.on_gpu:
            feeds = {self._search_in: images, self._search_template_in: template}
            if self._search_owner_in is not None:
                feeds[self._search_owner_in] = owner
            return self._search_session.run(names, feeds)
        binding = self._search_session.io_binding()
        binding.bind_cpu_input(self._search_in, images)
        binding.bind_ortvalue_input(self._search_template_in, template)
        if self._search_owner_in is not None:
            binding.bind_cpu_input(self._search_owner_in, owner)
        for name in names:
            binding.bind_output(name, "cpu")
        self._search_session.run_with_iobinding(binding)
        return binding.copy_outputs_to_cpu()

    def _search_per_owner(self, images: np.ndarray, template, owner: np.ndarray, names: list[str]) -> list[np.ndarray]:
        """A /1 graph takes one template per run: one run per target, put back in the crops' order."""
        stacked = self.template_to_numpy(template)
        outputs = None
        for k in np.unique(owner):
            rows = np.flatnonzero(owner == k)
            one = stacked[k : k + 1]
            if self.on_gpu:
                one = ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(one), "cuda", self._device_id)
            part = self._run_search(np.ascontiguousarray(images[rows]), one, np.zeros(len(rows), np.int64), names)
            if outputs is None:
                outputs = [np.empty((len(owner), *p.shape[1:]), p.dtype) for p in part]
            for out, p in zip(outputs, part):
                out[rows] = p
        return outputs

    @staticmethod
    def template_to_numpy(template) -> np.ndarray:
        return template if isinstance(template, np.ndarray) else template.numpy()


def load(weights: str | Path | None, device: str = "auto", threads: int | None = None) -> OnnxEngine:
    """The engine registry's loader (tracker/engines.py): an exported pair's folder, default the shipped one."""
    engine = OnnxEngine.from_dir(weights, device, threads=threads)
    engine.weights_folder = resolve_pair(weights)[0].parent  # where its verifier.npz is looked for
    return engine
