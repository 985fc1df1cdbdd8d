"""CLI for making models: `siamtrack init-weights` (the untrained ImageNet-trunk model)."""
from __future__ import annotations

import argparse
import subprocess
from pathlib import Path

from ..errors import UserError


def current_commit() -> str:
    """The git commit the weights were made from ('unknown' outside a checkout), recorded in the checkpoint."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True,
                             cwd=Path(__file__).resolve().parent)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, cwd=Path(__file__).resolve().parent).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def cmd_init_weights(args: argparse.Namespace) -> int:
    import sys

    from ..config import ModelConfig, TrackerConfig
    from ..model import SiamNet
    from ..checkpoint import save_checkpoint

    try:
        model_config = ModelConfig(backbone=args.backbone, stride=args.stride, neck_channels=args.neck_channels,
                                   template_crop=args.template_crop)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    if args.backbone == "alexnet":
        print("note: AlexNet has no pretrained weights here: this model is random until trained", file=sys.stderr)
    model = SiamNet(model_config, pretrained_backbone=True).eval()
    meta = {
        "description": "untrained: ImageNet EfficientNet-Lite0 trunk, correlation head at its initial values",
        "command": "siamtrack " + " ".join(sys.argv[1:]),
        "commit": current_commit(),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(args.out, model, TrackerConfig(), meta)
    print(f"wrote {args.out} ({Path(args.out).stat().st_size / 1e6:.1f} MB)")
    return 0


def add_subcommands(sub: argparse._SubParsersAction) -> None:
    init = sub.add_parser("init-weights", help="write an untrained model (ImageNet trunk + initial head)",
                          description="Write an untrained checkpoint: the starting point of training and the "
                                      "baseline it is measured against.")
    init.add_argument("--out", required=True, help="checkpoint path to write")
    init.add_argument("--backbone", default="efficientnet_lite0", choices=["efficientnet_lite0", "alexnet"])
    init.add_argument("--stride", type=int, default=16, help="backbone cut: 8 or 16 (EfficientNet)")
    init.add_argument("--neck-channels", type=int, default=0, help="1x1 neck width, 0 for none")
    init.add_argument("--template-crop", type=int, default=0, help="keep the central k x k template cells (0: all)")
    init.set_defaults(func=cmd_init_weights)
