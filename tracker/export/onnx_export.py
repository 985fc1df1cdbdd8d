"""Export a SiamNet to two self-describing ONNX graphs, checked against PyTorch (parity.py) before they are written.

* ``template.onnx``: the exemplar crop (1 image) -> template features. Run once per target.
* ``search.onnx``: N search crops + T targets' template features (a graph input, the weight of the correlation
  Conv) + ``owner`` (N int64: which template each crop is scored against; all 0 for one target) -> N response
  maps as logits (the tracker localises on logits; sigmoid of the peak is the score), and for a model with a box
  head a second output, ``boxes``: (N,4,R,R) distances from each cell to the target's sides,
  in search-crop pixels; last, ``features``: the crops' backbone features (N,C,H,W), which the online target
  model (tracker/online.py) learns on. N and T are dynamic. Pairs exported before ``features`` still load and
  track; only the online model needs it.

Images enter the graphs as the tracker crops them: uint8 BGR, NHWC (``layout="uint8_nhwc"``, the default: the
engine passes its crop buffer as is, and a GPU gets 4x fewer bytes), or float32 BGR in [0, 255], NCHW
(``layout="float_nchw"``, the classic layout). The network normalises inside either way (see backbones.py);
export folds that normalisation into the first conv where the trunk allows (its module's TRUNK hooks).

Both files carry the model config, the tracker config, the siamtrack version and a fingerprint of the weights in
their ``metadata_props`` (JSON values), so a pair is self-describing and a mixed pair is refused at load time.
"""
from __future__ import annotations

import contextlib
import copy
import hashlib
import io
import json
import os
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .. import __version__
from ..backbones import trunk_hooks
from ..checkpoint import load_model, weights_fingerprint
from ..config import TrackerConfig
from ..errors import UserError
from ..model import SiamNet
from ..paths import SEARCH_ONNX, TEMPLATE_ONNX, default_weights_path
from .loop_correlation import loop_shifted_products
from .parity import PARITY_RTOL, check_parity

FORMAT = "siamtrack-onnx/2"  # /2: several targets per search run (the owner input); see onnx_engine.FORMATS
OPSET = 18
LAYOUTS = ("uint8_nhwc", "float_nchw")
DEFAULT_LAYOUT = "uint8_nhwc"


def _to_network_input(images: torch.Tensor, layout: str) -> torch.Tensor:
    """What the graph receives -> what SiamNet takes (float BGR in [0, 255], NCHW)."""
    if layout == "uint8_nhwc":
        return images.permute(0, 3, 1, 2).to(torch.float32)
    return images


def fold_input_normalisation(model: SiamNet) -> SiamNet:
    """A copy of `model` whose first conv absorbs the input normalisation, so the exported graphs do not spend
    elementwise passes over every input pixel on it (a Slice for the channel flip, a Div). The parity check
    compares the export against the original model, so a change in a backbone module cannot slip through."""
    folded = copy.copy(model)  # shallow: shares every submodule except the backbone replaced below
    folded._modules = dict(model._modules)
    folded._modules["backbone"] = trunk_hooks(model.config.backbone).fold_input_normalisation(model.backbone)
    return folded


class TemplateGraph(nn.Module):
    def __init__(self, model: SiamNet, layout: str) -> None:
        super().__init__()
        self.model, self.layout = model, layout

    def forward(self, exemplar: torch.Tensor) -> torch.Tensor:
        return self.model.template(_to_network_input(exemplar, self.layout))


class SearchGraph(nn.Module):
    def __init__(self, model: SiamNet, layout: str) -> None:
        super().__init__()
        self.model, self.layout = model, layout

    def forward(self, search: torch.Tensor, template: torch.Tensor, owner: torch.Tensor):
        # The search features are an output too: the online target model (tracker/online.py) learns on them.
        features = self.model.embed(_to_network_input(search, self.layout))
        logits, distances = self.model.correlate(template, features, owner)
        return (logits[:, 0], features) if distances is None else (logits[:, 0], distances, features)


@dataclass
class ExportReport:
    template_path: Path
    search_path: Path
    exporter: str
    layout: str
    sizes: dict[str, int]
    ops: dict[str, dict[str, int]]
    parity: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        lines = []
        for name, path in (("template", self.template_path), ("search", self.search_path)):
            ops = self.ops[name]
            top = ", ".join(f"{k} {v}" for k, v in sorted(ops.items(), key=lambda kv: (-kv[1], kv[0])))
            lines.append(f"wrote {path} ({self.sizes[name] / 1e6:.2f} MB; {sum(ops.values())} nodes: {top})")
        lines.append(f"exporter: {self.exporter}, input layout: {self.layout}, opset {OPSET}")
        if self.parity:
            p = self.parity
            lines.append(
                f"parity torch vs onnxruntime: template max rel diff {p['template_max_rel']:.2e}; responses max rel "
                f"diff {p['response_max_rel']:.2e} (max abs {p['response_max_abs']:.2e})"
                + (f"; boxes max rel diff {p['boxes_max_rel']:.2e}" if "boxes_max_rel" in p else "")
                + f" over batches {p['batches']}; "
                f"argmax equal {p['argmax_equal']}/{p['argmax_total']} (tolerance {PARITY_RTOL:g} rel)"
            )
        return "\n".join(lines)


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _siamtrack_version() -> str:
    return __version__


def _export_one(module: nn.Module, args: tuple, input_names: list[str], output_names: list[str],
                dynamic_batch: dict[str, str]) -> tuple["onnx.ModelProto", str]:  # noqa: F821
    """torch.onnx.export with the dynamo exporter (clean static-padding graph, BN folded), falling back to the
    TorchScript exporter if dynamo cannot export this model. dynamic_batch: input name -> the name of its dynamic
    first dimension (inputs sharing a name share the size)."""
    import onnx

    module = module.eval()
    dims = {name: torch.export.Dim(name, min=1, max=1024) for name in set(dynamic_batch.values())}
    shapes = {name: ({0: dims[dynamic_batch[name]]} if name in dynamic_batch else None) for name in input_names}
    errors = []
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            program = torch.onnx.export(module, args, dynamo=True, input_names=input_names, output_names=output_names,
                                        dynamic_shapes=shapes, opset_version=OPSET, optimize=True, verbose=False)
        return program.model_proto, "dynamo"
    except Exception as exc:  # the dynamo exporter raises many types; report it if the fallback fails too
        errors.append(f"dynamo: {type(exc).__name__}: {exc}")
    buffer = io.BytesIO()
    axes = {name: {0: dim} for name, dim in dynamic_batch.items()}
    axes.update({name: {0: "n"} for name in output_names if dynamic_batch})
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(module, args, buffer, dynamo=False, input_names=input_names, output_names=output_names,
                              dynamic_axes=axes, opset_version=OPSET, do_constant_folding=True)
    except Exception as exc:
        errors.append(f"torchscript: {type(exc).__name__}: {exc}")
        raise RuntimeError("ONNX export failed with both exporters:\n" + "\n".join(errors)) from exc
    return onnx.load_from_string(buffer.getvalue()), "torchscript"


def _set_metadata(proto, values: dict[str, Any], doc: str) -> None:
    del proto.metadata_props[:]
    for key, value in values.items():
        entry = proto.metadata_props.add()
        entry.key = key
        entry.value = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    proto.producer_name = "siamtrack"
    proto.producer_version = _siamtrack_version()
    proto.doc_string = doc


def export_onnx(model: SiamNet, tracker_config: TrackerConfig, out_dir: str | Path, *, layout: str = DEFAULT_LAYOUT,
                source: dict[str, Any] | None = None, parity: bool = True) -> ExportReport:
    """Write template.onnx + search.onnx for `model` into out_dir. The files are first written under temporary
    names and only moved into place once onnx.checker and (unless parity=False) the parity check pass."""
    if layout not in LAYOUTS:
        raise UserError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    if model.config.predicts_boxes and tracker_config.num_scales != 1:
        raise UserError(f"this model predicts boxes and tracks with one crop per frame: num_scales must be 1, got "
                        f"{tracker_config.num_scales} (the pair would refuse to track)")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model = model.cpu().eval()
    metadata = _graph_metadata(model, tracker_config, layout, source)
    protos, exporter, template_shape = _export_graphs(model, layout)
    for name, proto in protos.items():
        _set_metadata(proto, {**metadata, "graph": name, "exporter": exporter},
                      _graph_doc(name, model, layout, template_shape))
    return _write_checked(protos, model, out_dir, exporter, layout, parity)


def _graph_metadata(model: SiamNet, tracker_config: TrackerConfig, layout: str,
                    source: dict[str, Any] | None) -> dict[str, Any]:
    """What both graphs carry (metadata_props), so that a pair describes itself and a mixed pair is refused."""
    return {
        "siamtrack_format": FORMAT,
        "siamtrack_version": _siamtrack_version(),
        "model_config": model.config.to_dict(),
        "tracker_config": tracker_config.to_dict(),
        "input_layout": layout,
        "response_size": int(model.response_size),
        "weights_sha256": weights_fingerprint(model),
        "source": dict(source or {}),
    }


def _example_images(model: SiamNet, layout: str) -> tuple[torch.Tensor, torch.Tensor]:
    """An exemplar and three search crops in the graphs' input layout (zeros: only their shapes matter)."""
    cfg = model.config
    if layout == "uint8_nhwc":
        return (torch.zeros(1, cfg.exemplar_size, cfg.exemplar_size, 3, dtype=torch.uint8),
                torch.zeros(3, cfg.search_size, cfg.search_size, 3, dtype=torch.uint8))
    return torch.zeros(1, 3, cfg.exemplar_size, cfg.exemplar_size), torch.zeros(3, 3, cfg.search_size, cfg.search_size)


def _export_graphs(model: SiamNet, layout: str) -> tuple[dict[str, Any], str, tuple[int, ...]]:
    """Both graphs as onnx ModelProtos, the exporter(s) used ("dynamo", "torchscript" or both, joined by /) and
    the template features' shape."""
    exemplar, search = _example_images(model, layout)
    graph_model = fold_input_normalisation(model)
    with torch.no_grad():
        template = TemplateGraph(graph_model, layout)(exemplar)
    protos, exporter = {}, set()
    protos["template"], how = _export_one(TemplateGraph(graph_model, layout), (exemplar,), ["exemplar"],
                                          ["template"], {})
    exporter.add(how)
    search_outputs = (["response", "boxes"] if model.has_box_head else ["response"]) + ["features"]
    # Two targets' templates and three crops in the example, so that no size is taken for a constant 1.
    templates, owner = torch.cat([template, template.flip(-1)]), torch.tensor([0, 1, 1])
    protos["search"], how = _export_one(SearchGraph(graph_model, layout), (search, templates, owner),
                                        ["search", "template", "owner"], search_outputs,
                                        {"search": "n", "owner": "n", "template": "t"})
    exporter.add(how)
    loop_shifted_products(protos["search"])  # dynamo's graph only: see loop_correlation.py
    return protos, "/".join(sorted(exporter)), tuple(template.shape)


def _graph_doc(name: str, model: SiamNet, layout: str, template_shape: tuple[int, ...]) -> str:
    """The doc_string of graph `name`: its inputs and outputs, with their shapes."""
    cfg, r = model.config, model.response_size
    image_doc = "uint8 BGR images, NHWC" if layout == "uint8_nhwc" else "float32 BGR images in [0, 255], NCHW"
    if name == "template":
        return (f"siamtrack template graph: exemplar (1,{cfg.exemplar_size},{cfg.exemplar_size}) {image_doc} -> "
                f"template features {template_shape} float32.")
    return (f"siamtrack search graph: search (N,{cfg.search_size},{cfg.search_size}) {image_doc} + template "
            f"features (T,{','.join(map(str, template_shape[1:]))}) + owner (N,) int64 (the template each crop "
            "is scored against) -> response (N,{model.response_size},{model.response_size}) "
            "float32 logits (score = sigmoid of the peak)" +
            (f" + boxes (N,4,{r},{r}) float32: distances from each cell "
             "to the target's left, top, right and bottom, in search-crop pixels" if model.has_box_head else "")
            + " + features (N,C,H,W) float32: the search crops' backbone features, for the online target model.")


def _write_checked(protos: dict[str, Any], model: SiamNet, out_dir: Path, exporter: str, layout: str,
                   parity: bool) -> ExportReport:
    """Check both graphs (onnx.checker, BatchNorm folded, parity with `model` unless parity=False) under temporary
    names, then move them into place; nothing is left behind when a check fails."""
    import onnx

    final = {"template": out_dir / TEMPLATE_ONNX, "search": out_dir / SEARCH_ONNX}
    staged = {name: path.with_name(f".{path.name}.tmp{os.getpid()}") for name, path in final.items()}
    ops = {}
    try:
        for name, proto in protos.items():
            onnx.checker.check_model(proto, full_check=True)
            ops[name] = dict(Counter(node.op_type for node in proto.graph.node))
            if "BatchNormalization" in ops[name]:
                raise RuntimeError(f"{name}.onnx still has BatchNormalization nodes: BN was not folded")
            onnx.save(proto, str(staged[name]))
        report = ExportReport(final["template"], final["search"], exporter, layout,
                              {n: p.stat().st_size for n, p in staged.items()}, ops)
        if parity:
            report.parity = check_parity(model, staged["template"], staged["search"])
            if not report.parity["ok"]:
                raise RuntimeError("exported graphs differ from PyTorch beyond tolerance; nothing written.\n"
                                   + report.describe())
        for name in final:
            os.replace(staged[name], final[name])
    finally:
        for path in staged.values():
            path.unlink(missing_ok=True)
    return report


def with_search_size(model: SiamNet, search_size: int) -> SiamNet:
    """The same network (same weights: every layer is convolutional) built for another search-crop size. A smaller
    crop costs fewer multiply-adds per frame but lets the target move less far between frames."""
    if search_size == model.config.search_size:
        return model
    try:
        resized = SiamNet(model.config.replace(search_size=search_size), pretrained_backbone=False)
    except ValueError as exc:
        raise UserError(f"search size {search_size}: {exc}") from None
    resized.load_state_dict(model.state_dict())
    return resized.eval()


def export_checkpoint(weights: str | Path | None, out_dir: str | Path, *, search_size: int | None = None,
                      tracker_overrides: dict[str, Any] | None = None, **kwargs) -> ExportReport:
    """Export a checkpoint file (default: the shipped model) with its tracker config; `search_size` and
    `tracker_overrides` change what the graphs' metadata tells the tracking loop (the checkpoint stays as it is)."""
    path = Path(weights) if weights else default_weights_path()
    model, tracker_config, meta = load_model(path)
    if search_size is not None:
        model = with_search_size(model, search_size)
    try:
        tracker_config = tracker_config.replace(**(tracker_overrides or {}))
    except ValueError as exc:
        raise UserError(str(exc)) from None
    source = {"checkpoint": path.name, "checkpoint_sha256": file_sha256(path), "checkpoint_meta": meta}
    return export_onnx(model, tracker_config, out_dir, source=source, **kwargs)


def export_appearance(out_dir: str | Path) -> tuple[Path, float]:
    """appearance.onnx (tracker/appearance.py): EfficientNet-Lite0 with its ImageNet weights, up to stage 5, on
    one float32 BGR NCHW 127 px crop. Returns (its path, the largest difference from PyTorch on a random crop,
    relative to the features' largest magnitude)."""
    import onnx
    import onnxruntime as ort

    from ..appearance import APPEARANCE_FILE, CROP_SIZE
    from ..backbone_efficientnet_lite0 import EfficientNetLite0Trunk

    trunk = EfficientNetLite0Trunk(5, pretrained=True).eval()
    crop = torch.rand(1, 3, CROP_SIZE, CROP_SIZE, generator=torch.Generator().manual_seed(0)) * 255
    proto, _ = _export_one(trunk, (crop,), ["crop"], ["features"], {})
    _set_metadata(proto, {"siamtrack_appearance": "efficientnet_lite0 stage 5, ImageNet"},
                  "siamtrack appearance check: ImageNet features of a box's exemplar crop")
    out = Path(out_dir) / APPEARANCE_FILE
    out.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(proto, str(out))
    with torch.no_grad():
        expected = trunk(crop).numpy()
    got = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"]).run(None, {"crop": crop.numpy()})[0]
    return out, float(np.abs(got - expected).max() / max(np.abs(expected).max(), 1e-9))
