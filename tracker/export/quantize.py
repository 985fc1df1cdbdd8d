"""int8 search graph: onnxruntime static quantisation (QDQ, per-channel weights), calibrated on real crops.

Only search.onnx runs every frame, so only it is quantised; the template graph stays float. The correlation
conv, whose "weights" are the template features, stays float too: quantising it moved the response peak.
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import cv2
import numpy as np

from ..crop import context_side, crop_square, mean_colour
from ..crop_cache import load_crop_cache
from ..errors import UserError
from ..onnx_engine import OnnxEngine, resolve_pair
from ..paths import SEARCH_ONNX, TEMPLATE_ONNX


def calibration_inputs(engine: OnnxEngine, cache_dir: Path, count: int, seed: int = 0) -> list[dict]:
    """Search batches shaped like tracking's (all scales of one frame) from crop-cache images."""
    folders = load_crop_cache(cache_dir, min_crops=1)
    rng = np.random.default_rng(seed)
    m, scales = engine.config, engine.tracker_config
    factors = scales.scale_step ** (np.arange(scales.num_scales) - (scales.num_scales - 1) / 2)
    batches = []
    for _ in range(count):
        folder = folders[rng.integers(len(folders))]
        k = int(rng.integers(len(folder.files)))
        image = cv2.imread(str(folder.path / folder.files[k]), cv2.IMREAD_COLOR)
        if image is None:
            raise UserError(f"cannot read calibration image {folder.path / folder.files[k]}")
        x, y, w, h = folder.boxes[k]
        center = (x + w / 2, y + h / 2)
        fill = mean_colour(image)
        side = context_side(w, h, scales.context_amount)
        exemplar = crop_square(image, center, side, m.exemplar_size, fill)[None]
        shift = rng.uniform(-32, 32, 2) * side / m.exemplar_size
        search = np.stack([crop_square(image, (center[0] + shift[0], center[1] + shift[1]),
                                       side * m.search_size / m.exemplar_size * f, m.search_size, fill)
                           for f in factors])
        batches.append({"exemplar": exemplar, "search": search})
    return batches


def quantize_search_graph(search_path: str | Path, feeds: list[dict]):
    """The float search graph -> (its int8 QDQ version as an onnx ModelProto, metadata as onnxruntime leaves it;
    the names of the nodes left float: the correlation conv), calibrated on `feeds` (search graph inputs)."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._feeds = iter(feeds)

        def get_next(self):
            return next(self._feeds, None)

    graph = onnx.load(str(search_path)).graph
    correlation = [n.name for n in graph.node if n.op_type == "Conv" and "template" in n.input]
    # the depthwise correlations' convs inside their loops (export/loop_correlation.py): a template is no weight
    correlation += [inner.name for n in graph.node if n.op_type == "Loop" for a in n.attribute if a.HasField("g")
                    for inner in a.g.node if inner.op_type == "Conv"]
    with tempfile.TemporaryDirectory() as tmp:
        prepared, quantized = Path(tmp) / "pre.onnx", Path(tmp) / "int8.onnx"
        # auto_merge: a Loop's output count (export/loop_correlation.py) is the crop count under another name
        quant_pre_process(str(search_path), str(prepared), auto_merge=True)
        quantize_static(str(prepared), str(quantized), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, nodes_to_exclude=correlation)
        return onnx.load(str(quantized)), correlation


def quantize_pair(weights: str | Path, out_dir: str | Path, cache_dir: str | Path, count: int = 64) -> dict:
    """Write template.onnx (copied) + an int8 search.onnx to out_dir; returns how far int8 is from float."""
    import onnx

    template_path, search_path = resolve_pair(weights)
    engine = OnnxEngine(template_path, search_path, device="cpu")
    if engine.layout != "uint8_nhwc":
        raise UserError("quantize takes the default uint8_nhwc export")
    if "quantized" in engine.metadata:
        raise UserError(f"{search_path} is already quantised: pass a float pair written by `siamtrack export`")
    batches = calibration_inputs(engine, Path(cache_dir), count)
    feeds = [{"search": b["search"], "template": engine.template(b["exemplar"]),
              "owner": np.zeros(len(b["search"]), np.int64)} for b in batches]
    if engine.metadata.get("siamtrack_format") == "siamtrack-onnx/1":  # no owner input
        for feed in feeds:
            del feed["owner"]

    result, excluded = quantize_search_graph(search_path, feeds)
    pixels_direct = _dequantize_pixels_directly(result)
    float_metadata = onnx.load(str(search_path)).metadata_props
    del result.metadata_props[:]
    for prop in float_metadata:  # same pair fingerprint: the engine accepts it with the float template
        result.metadata_props.append(prop)
    result.metadata_props.add(key="quantized", value="int8 (search graph; correlation conv kept float)")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    onnx.save(result, str(out_dir / SEARCH_ONNX))
    if template_path.resolve() != (out_dir / TEMPLATE_ONNX).resolve():
        shutil.copyfile(template_path, out_dir / TEMPLATE_ONNX)

    int8 = OnnxEngine(out_dir / TEMPLATE_ONNX, out_dir / SEARCH_ONNX, device="cpu")
    return {"batches": len(feeds), **_int8_vs_float(engine, int8, feeds), "excluded": excluded,
            "pixels_dequantized_directly": pixels_direct, "size_mb": round((out_dir / SEARCH_ONNX).stat().st_size / 1e6, 2)}


def _int8_vs_float(engine: OnnxEngine, int8: OnnxEngine, feeds: list[dict]) -> dict:
    """How far the int8 graph's responses (and side distances, for a box model) are from the float graph's, and
    on how many batches the best cell is the same."""
    diffs, box_diffs, same = [], [], 0
    for feed in feeds:
        a, a_boxes = engine.search(feed["search"], feed["template"])[:2]
        b, b_boxes = int8.search(feed["search"], feed["template"])[:2]
        diffs.append(float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(a))), 1e-12)))
        if a_boxes is not None:
            box_diffs.append(float(np.median(np.abs(a_boxes - b_boxes) / np.maximum(np.abs(a_boxes), 1e-6))))
        same += int(np.argmax(a.max(axis=(1, 2))) == np.argmax(b.max(axis=(1, 2))) and
                    np.argmax(a[np.argmax(a.max(axis=(1, 2)))]) == np.argmax(b[np.argmax(b.max(axis=(1, 2)))]))
    figures = {"max_rel_diff": max(diffs), "median_rel_diff": float(np.median(diffs)), "same_peak": same}
    if box_diffs:
        figures["boxes_median_rel_diff"] = float(np.median(box_diffs))
    return figures


def _dequantize_pixels_directly(model) -> bool:
    """The float graph turns its uint8 pixels into x - 127 (Cast, Sub) and the quantiser then re-quantises that
    (QuantizeLinear) before the stem conv: three passes over every input pixel that give back the pixels
    themselves. Pixel values are integers, so uint8 with scale 1 and zero point 127 holds x - 127 exactly; the
    stem's DequantizeLinear then reads the (transposed) uint8 pixels as they come, and onnxruntime fuses it into the
    stem's QLinearConv, whose padding with the zero point pads with 0 = 127 - 127, as the float graph does.
    Returns False (graph unchanged) when the graph does not start with that chain."""
    import onnx
    from onnx import numpy_helper

    graph = model.graph
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    constants = {init.name: numpy_helper.to_array(init) for init in graph.initializer}

    def only_consumer(name: str, op_type: str):
        nodes = consumers.get(name, [])
        return nodes[0] if len(nodes) == 1 and nodes[0].op_type == op_type else None

    pixels = graph.input[0].name
    transpose = only_consumer(pixels, "Transpose")
    cast = transpose and only_consumer(transpose.output[0], "Cast")
    sub = cast and only_consumer(cast.output[0], "Sub")
    quantize = sub and only_consumer(sub.output[0], "QuantizeLinear")
    dequantize = quantize and only_consumer(quantize.output[0], "DequantizeLinear")
    if dequantize is None or sub.input[0] != cast.output[0] or float(constants.get(sub.input[1], np.nan)) != 127.0:
        return False
    scale = numpy_helper.from_array(np.array(1.0, np.float32), "pixels_minus_127_scale")
    zero_point = numpy_helper.from_array(np.array(127, np.uint8), "pixels_minus_127_zero_point")
    graph.initializer.extend([scale, zero_point])
    dequantize.input[:] = [transpose.output[0], scale.name, zero_point.name]
    for node in (cast, sub, quantize):
        graph.node.remove(node)
    used = {name for node in graph.node for name in node.input}
    for init in [init for init in graph.initializer if init.name not in used]:
        graph.initializer.remove(init)
    onnx.checker.check_model(model)
    return True
