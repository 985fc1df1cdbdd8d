"""A box-adaptive siamtrack model as the two ONNX files OpenCV's ``cv2.TrackerNano`` loads (NanoTrack v2's layout).

What TrackerNano does with them (OpenCV's modules/video/src/tracking/tracker_nano.cpp, read for this file):

* ``backbone.onnx``: input ``input``, one float32 RGB crop in [0, 255], NCHW (``blobFromImage(..., swapRB=true)``,
  no mean or scale); run on the 127 px exemplar once (its output becomes the head's ``input1``) and on the 255 px
  search crop every frame (``input2``). So one graph must run at both sizes: no size may be baked into it.
* ``head.onnx`` ("neckhead"): ``input1`` (1,C,8,8) template features + ``input2`` (1,C,16,16) search features ->
  ``output1`` (1,2,16,16), of which it takes softmax over the 2 channels, channel 1, as the score, and ``output2``
  (1,4,16,16): distances from each cell to the target's left, top, right and bottom, in search-crop pixels. Cell
  (i, j) sits at ((j - 8) * 16, (i - 8) * 16) px from the crop centre (its score grid is 16 x 16 for 127/255 px at
  stride 16).

Our network takes BGR and its head gives a 15 x 15 grid whose cell k sits at (k - 7) * 16 px: so the backbone graph
starts with a fixed 1x1 conv that swaps R and B, and the head graph pads its maps by one cell on the top and left
(cell k -> TrackerNano's k + 1; the padded cells score 0 and TrackerNano's Hanning window is 0 there too). Our
one logit map l becomes [-l/2, l/2], whose two-class softmax is sigmoid(l), our score. Every size in the head is a
Python constant, so the graphs hold no Shape-dependent Reshape (NanoTrack v3's own head fails on one in OpenCV), and
the depthwise correlation is written as 16 shifted products (OpenCV's DNN wants constant conv weights).
"""
from __future__ import annotations

import contextlib
import io
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..ban_head import DEPTHWISE_CELLS, BoxAdaptiveHead
from ..checkpoint import load_model
from ..correlation import xcorr_shifted_products
from ..errors import UserError
from ..model import SiamNet
from ..paths import default_weights_path

OPENCV_FILES = ("backbone.onnx", "head.onnx")
OPENCV_OPSET = 13  # what OpenCV's ONNX importer reads best (NanoTrack v2's pair is opset 14)
NANO_EXEMPLAR, NANO_SEARCH, NANO_STRIDE = 127, 255, 16  # TrackerNano's constants
NANO_GRID = (NANO_SEARCH - NANO_EXEMPLAR) // NANO_STRIDE + 8  # 16, as tracker_nano.cpp computes it
PADDED_LOGIT = -30.0  # the padded cells' logit: softmax gives them a score of 1e-13
PADDED_DISTANCE = 16.0  # any positive side distance keeps TrackerNano's size penalty finite there


class RgbBackbone(nn.Module):
    """float32 RGB in [0, 255], NCHW, any size -> our embed() features (which takes BGR)."""

    def __init__(self, model: SiamNet) -> None:
        super().__init__()
        self.model = model
        swap = torch.zeros(3, 3, 1, 1)
        swap[0, 2] = swap[1, 1] = swap[2, 0] = 1.0
        self.register_buffer("swap", swap)

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:
        return self.model.embed(F.conv2d(rgb, self.swap))


class NanoHead(nn.Module):
    """input1 (1,C,t,t) + input2 (1,C,S,S) -> output1 (1,2,S,S), output2 (1,4,S,S) for TrackerNano, with our
    BoxAdaptiveHead's weights and every size fixed at export."""

    def __init__(self, model: SiamNet) -> None:
        super().__init__()
        self.head: BoxAdaptiveHead = model.head
        self.template_crop = model.config.template_crop
        self.template_grid = model.template_size
        self.search_grid = model.search_feature_size
        self.response = model.response_size

    def _pixelwise(self, match, template: torch.Tensor, search: torch.Tensor) -> torch.Tensor:
        channels, cells, side = template.shape[1], self.template_grid ** 2, self.search_grid
        kernel = match.conv_kernel(template).reshape(1, channels, cells).transpose(1, 2)
        correlated = torch.matmul(kernel, match.conv_search(search).reshape(1, channels, side * side))
        return match.conv(match.CA_layer(correlated.reshape(1, cells, side, side)))

    def _depthwise(self, match, centre: torch.Tensor, search: torch.Tensor) -> torch.Tensor:
        padded = F.pad(match.conv_search(search), (1, 1, 1, 1))
        return xcorr_shifted_products(padded, match.conv_kernel(centre))

    def _fused(self, pixelwise, depthwise, down, template, centre, search) -> torch.Tensor:
        return down(torch.cat((self._pixelwise(pixelwise, template, search),
                               self._depthwise(depthwise, centre, search)), 1))

    def forward(self, template: torch.Tensor, search: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h, full = self.head, template.shape[-1]
        if self.template_crop and self.template_crop < full:
            start = (full - self.template_crop) // 2
            template = template[..., start:start + self.template_crop, start:start + self.template_crop]
        start = (self.template_grid - DEPTHWISE_CELLS) // 2
        centre = template[..., start:start + DEPTHWISE_CELLS, start:start + DEPTHWISE_CELLS]
        cls = self._fused(h.corr_pw_cls, h.corr_dw_cls, h.down_cls, template, centre, search)
        reg = self._fused(h.corr_pw_reg, h.corr_dw_reg, h.down_reg, template, centre, search)
        two_class = h.cls_logits(h.cls_tower(cls))
        logit = two_class[:, 1:2] - two_class[:, 0:1]
        distances = torch.exp(torch.minimum(h.bbox_pred(h.bbox_tower(reg)), torch.tensor(8.0)))
        grow = NANO_GRID - self.response  # one cell on the top and left: cell k -> TrackerNano's k + 1
        logit = F.pad(logit, (grow, 0, grow, 0), value=PADDED_LOGIT)
        distances = F.pad(distances, (grow, 0, grow, 0), value=PADDED_DISTANCE)
        return torch.cat((-0.5 * logit, 0.5 * logit), 1), distances


def check_nano_compatible(model: SiamNet) -> None:
    """TrackerNano's loop is fixed: 127/255 px crops, stride 16, a 16 x 16 grid, a box at every cell."""
    cfg = model.config
    if cfg.head != "box_adaptive":
        raise UserError(f"--format opencv needs a box-adaptive model (head box_adaptive, like the shipped one); this "
                        f"checkpoint has head {cfg.head!r}: export it with --format onnx")
    sizes = (cfg.exemplar_size, cfg.search_size, cfg.stride)
    if sizes != (NANO_EXEMPLAR, NANO_SEARCH, NANO_STRIDE) or model.response_size + 1 != NANO_GRID:
        raise UserError(f"--format opencv: cv2.TrackerNano crops {NANO_EXEMPLAR}/{NANO_SEARCH} px at stride "
                        f"{NANO_STRIDE} into a {NANO_GRID}x{NANO_GRID} grid; this model has exemplar/search/stride "
                        f"{sizes} and a {model.response_size}x{model.response_size} grid: use --format onnx")


def _export_static(module: nn.Module, args: tuple, input_names: list[str], output_names: list[str]):
    """TorchScript exporter, static shapes, opset 13, constants folded (BatchNorm into the convs)."""
    import onnx

    buffer = io.BytesIO()
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(module.eval(), args, buffer, dynamo=False, input_names=input_names,
                          output_names=output_names, opset_version=OPENCV_OPSET, do_constant_folding=True)
    proto = onnx.load_from_string(buffer.getvalue())
    with torch.no_grad():
        outputs = module(*args)
    outputs = outputs if isinstance(outputs, tuple) else (outputs,)
    # The exporter leaves symbolic output dims (after Pad); write the static ones, where a reader looks.
    for value, tensor in zip(proto.graph.output, outputs):
        for dim, size in zip(value.type.tensor_type.shape.dim, tensor.shape):
            dim.dim_value = int(size)
    onnx.checker.check_model(proto)
    return proto


@dataclass
class OpenCVExportReport:
    backbone_path: Path
    head_path: Path
    max_score_diff: float  # |OpenCV DNN's softmax score - our sigmoid(logit)| over the sample crops
    max_distance_rel_diff: float

    def describe(self) -> str:
        return (f"wrote {self.backbone_path} and {self.head_path} for cv2.TrackerNano "
                f"(params.backbone / params.neckhead)\nparity torch vs OpenCV DNN: score max abs diff "
                f"{self.max_score_diff:.2e}, side distances max rel diff {self.max_distance_rel_diff:.2e}")


def _parity_with_opencv(model: SiamNet, backbone_path: Path, head_path: Path) -> tuple[float, float]:
    """Run both files in OpenCV's DNN exactly as TrackerNano does (backbone at 127 and 255 px, the head on the two
    outputs) and compare with our model on the same BGR crops."""
    rng = np.random.default_rng(0)
    backbone, head = cv2.dnn.readNet(str(backbone_path)), cv2.dnn.readNet(str(head_path))
    exemplar = rng.integers(0, 256, (NANO_EXEMPLAR, NANO_EXEMPLAR, 3), dtype=np.uint8)
    search = rng.integers(0, 256, (NANO_SEARCH, NANO_SEARCH, 3), dtype=np.uint8)
    features = []
    for crop in (exemplar, search):
        backbone.setInput(cv2.dnn.blobFromImage(crop, 1.0, swapRB=True))
        features.append(backbone.forward().copy())
    head.setInput(features[0], "input1")
    head.setInput(features[1], "input2")
    cls, loc = head.forward(["output1", "output2"])
    score = np.exp(cls[0, 1]) / (np.exp(cls[0, 0]) + np.exp(cls[0, 1]))
    with torch.no_grad():
        as_tensor = [torch.from_numpy(c).permute(2, 0, 1)[None].float() for c in (exemplar, search)]
        logits, distances = model.track(as_tensor[1], model.template(as_tensor[0]))
    grow = NANO_GRID - model.response_size
    ours = torch.sigmoid(logits[0, 0]).numpy()
    score_diff = float(np.max(np.abs(score[grow:, grow:] - ours)))
    dist = distances[0].numpy()
    dist_diff = float(np.max(np.abs(loc[0][:, grow:, grow:] - dist)) / max(float(np.max(np.abs(dist))), 1e-6))
    return score_diff, dist_diff


SCORE_TOLERANCE, DISTANCE_RTOL = 1e-3, 1e-3


def export_opencv(model: SiamNet, out_dir: str | Path, *, parity: bool = True) -> OpenCVExportReport:
    """Write backbone.onnx + head.onnx for cv2.TrackerNano into out_dir (staged, moved into place once OpenCV's DNN
    has loaded them and, unless parity=False, matched our model)."""
    check_nano_compatible(model)
    model = model.cpu().eval()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        template = model.template(torch.zeros(1, 3, NANO_EXEMPLAR, NANO_EXEMPLAR))
        search = model.embed(torch.zeros(1, 3, NANO_SEARCH, NANO_SEARCH))
    protos = {"backbone.onnx": _export_static(RgbBackbone(model), (torch.zeros(1, 3, NANO_SEARCH, NANO_SEARCH),),
                                              ["input"], ["output"]),
              "head.onnx": _export_static(NanoHead(model), (template, search), ["input1", "input2"],
                                          ["output1", "output2"])}
    import onnx

    final = {name: out_dir / name for name in OPENCV_FILES}
    staged = {name: path.with_name(f".tmp{os.getpid()}.{path.name}") for name, path in final.items()}  # readNet goes by the suffix
    try:
        for name, proto in protos.items():
            proto.producer_name, proto.doc_string = "siamtrack", f"siamtrack {name} for cv2.TrackerNano"
            onnx.save(proto, str(staged[name]))
        score_diff, dist_diff = _parity_with_opencv(model, staged["backbone.onnx"], staged["head.onnx"])
        if parity and (score_diff > SCORE_TOLERANCE or dist_diff > DISTANCE_RTOL):
            raise RuntimeError(f"OpenCV DNN's outputs differ from PyTorch (score {score_diff:.2e}, distances "
                               f"{dist_diff:.2e} rel); nothing written")
        for name in final:
            os.replace(staged[name], final[name])
    finally:
        for path in staged.values():
            path.unlink(missing_ok=True)
    return OpenCVExportReport(final["backbone.onnx"], final["head.onnx"], score_diff, dist_diff)


def export_opencv_checkpoint(weights: str | Path | None, out_dir: str | Path, *, parity: bool = True) -> OpenCVExportReport:
    """`siamtrack export --format opencv`: a checkpoint file (default: the shipped model) -> the TrackerNano pair."""
    model, _, _ = load_model(Path(weights) if weights else default_weights_path())
    return export_opencv(model, out_dir, parity=parity)
