"""`siamtrack export`: the shipped (or a given) checkpoint -> template.onnx + search.onnx for onnxruntime."""
from __future__ import annotations

import argparse
import sys

from ..errors import UserError


def cmd_export(args: argparse.Namespace) -> int:
    try:
        from .onnx_export import export_checkpoint
    except ModuleNotFoundError as exc:
        raise UserError(f"export needs PyTorch, onnx and onnxscript ({exc.name} is missing): "
                        "pip install 'siamtrack[export]'") from None
    try:
        import onnx  # noqa: F401
        import onnxscript  # noqa: F401
    except ModuleNotFoundError as exc:
        raise UserError(f"export needs onnx and onnxscript ({exc.name} is missing): pip install 'siamtrack[export]'") from None
    print(f"exporting {args.weights or 'the shipped default model'} -> {args.out} ...", file=sys.stderr)
    report = export_checkpoint(args.weights, args.out, layout=args.layout, parity=not args.no_parity)
    print(report.describe())
    return 0


def add_subcommands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export", help="export a model to ONNX (template.onnx + search.onnx) for the onnxruntime engine",
        description="Write template.onnx (exemplar -> template features) and search.onnx (N search crops + "
                    "template features -> N response maps, logits) with the model and tracker configs in "
                    "their metadata, then check them against PyTorch (same responses within 1e-3 relative, same "
                    "peak). Re-run `siamtrack export --out weights/` after retraining the shipped model.")
    p.add_argument("--out", required=True, metavar="DIR", help="folder to write template.onnx and search.onnx to")
    p.add_argument("--weights", help="checkpoint to export (default: the shipped default model)")
    p.add_argument("--layout", choices=("uint8_nhwc", "float_nchw"), default="uint8_nhwc",
                   help="image input of the graphs: uint8 BGR NHWC as cropped (default), or float32 BGR NCHW in [0,255]")
    p.add_argument("--no-parity", action="store_true", help="skip the torch-vs-onnxruntime parity check")
    p.set_defaults(func=cmd_export)
