"""CLI for making models: `siamtrack train`, `siamtrack init-weights` (the untrained ImageNet-trunk model)."""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

from ..backbone_specs import SPECS as BACKBONE_SPECS
from ..config import ModelConfig, TrackerConfig, parse_overrides
from ..errors import UserError
from .prepare import prepare_data
from .recipe import TrainConfig

# init-weights builds the trunks that need no tracking checkpoint, the ImageNet-pretrained first.
_FRESH_TRUNKS = sorted((name for name, spec in BACKBONE_SPECS.items() if spec.initial_weights != "checkpoint"),
                       key=lambda name: BACKBONE_SPECS[name].initial_weights != "imagenet")


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
    from ..checkpoint import save_checkpoint
    from ..model import SiamNet

    try:
        if args.nanotrack:
            model_config = ModelConfig(backbone="mobilenetv3_nanotrack", head="box_adaptive")
        else:
            model_config = ModelConfig(backbone=args.backbone, stride=args.stride, neck_channels=args.neck_channels,
                                       template_crop=args.template_crop, last_stage=args.last_stage)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    spec = BACKBONE_SPECS[args.backbone]
    if spec.initial_weights == "random":
        print(f"note: {spec.title} has no pretrained weights here: this model is random until trained", file=sys.stderr)
    model = SiamNet(model_config, pretrained_backbone=True).eval()
    tracker_config = TrackerConfig()
    description = "untrained: ImageNet EfficientNet-Lite0 trunk, correlation head at its initial values"
    if args.nanotrack:
        from .nanotrack_init import load_nanotrack_weights

        load_nanotrack_weights(model, args.nanotrack)
        # NanoTrack's published tracking settings, as the packaged recipe holds them.
        tracker_config = TrainConfig.load(RECIPES / f"{SHIPPED_RECIPE}.json").tracker_config
        description = f"NanoTrack v3's trunk and head as published ({args.nanotrack}), not trained here"
    meta = {
        "description": description,
        "command": "siamtrack " + " ".join(sys.argv[1:]),
        "commit": current_commit(),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(args.out, model, tracker_config, meta)
    print(f"wrote {args.out} ({Path(args.out).stat().st_size / 1e6:.1f} MB)")
    return 0


# The package holds the shipped model's recipe only; recipes that did not ship are in benchmarks/recipes/.
RECIPES = Path(__file__).resolve().parent / "recipes"
SHIPPED_RECIPE = "nanotrack_v3"
DATA = Path("..") / "shared" / "data"


def resolve_recipe(name: str) -> Path:
    """A recipe file path, or the name of a packaged recipe (e.g. 'nanotrack_v3')."""
    path = Path(name)
    if path.is_file():
        return path
    packaged = RECIPES / f"{name}.json"
    if packaged.is_file():
        return packaged
    known = ", ".join(sorted(p.stem for p in RECIPES.glob("*.json")))
    raise UserError(f"--config {name}: no such file, and no packaged recipe of that name (packaged: {known})")


def cmd_train(args: argparse.Namespace) -> int:
    import torch

    from ..checkpoint import load_checkpoint
    from .loop import train

    recipe_path = resolve_recipe(args.config)
    try:
        recipe = TrainConfig.load(recipe_path)
    except (ValueError, TypeError) as exc:
        raise UserError(f"recipe {recipe_path}: {exc}") from None
    val_root = None if args.no_val else Path(args.val)
    if val_root is not None and not val_root.is_dir():
        raise UserError(f"--val {val_root}: folder not found (or pass --no-val)")
    run_dir = Path(args.run_dir or f"runs/{recipe_path.stem}")
    started = time.time()
    meta = {"command": "siamtrack " + " ".join(sys.argv[1:]), "commit": current_commit(),
            "recipe_file": recipe_path.name, "data": str(args.data)}
    best = train(recipe, Path(args.data), val_root, run_dir, resume=args.resume, device=args.device, meta=meta)
    wall = time.time() - started
    print(f"training finished in {wall / 60:.1f} min; best checkpoint {best}", file=sys.stderr)
    if args.install_to:
        payload = load_checkpoint(best)
        payload["meta"]["train_wall_seconds"] = round(wall, 1)
        Path(args.install_to).parent.mkdir(parents=True, exist_ok=True)
        torch.save(payload, str(args.install_to))
        print(f"installed {best} as {args.install_to}", file=sys.stderr)
    else:
        shutil.copyfile(run_dir / "log.csv", run_dir / "log.final.csv")
    return 0


def cmd_prepare_data(args: argparse.Namespace) -> int:
    names = [n.strip() for n in args.sequences.split(",") if n.strip()] if args.sequences else None
    summary = prepare_data(args.src, args.dst, step=args.step, sequences=names, quality=args.quality,
                           overwrite=args.overwrite, name=args.name, benchmark=args.benchmark,
                           progress=not args.quiet)
    kept = f", kept {len(summary.kept)} existing" if summary.kept else ""
    print(f"wrote {summary.crops} crops in {len(summary.folders)} folder(s){kept} to {args.dst}; "
          f"skipped {summary.skipped_rows} sampled line(s) without a usable box", file=sys.stderr)
    return 0


def cmd_configure(args: argparse.Namespace) -> int:
    import torch

    from ..checkpoint import load_checkpoint

    payload = load_checkpoint(args.weights)
    try:
        config = TrackerConfig.from_dict(payload["tracker_config"]).replace(**parse_overrides(args.set))
    except (KeyError, ValueError) as exc:
        raise UserError(f"{args.weights}: {exc}") from None
    payload["tracker_config"] = config.to_dict()
    out = Path(args.out or args.weights)
    torch.save(payload, str(out))
    print(f"wrote {out}: " + ", ".join(f"{k}={v}" for k, v in config.to_dict().items()))
    print("if this checkpoint is the shipped one, rebuild the shipped ONNX pair from it: siamtrack export --out weights/ (weights/MODEL_CARD.md)")
    return 0


def add_subcommands(sub: argparse._SubParsersAction) -> None:
    conf = sub.add_parser("configure", help="change the tracking hyperparameters stored in a checkpoint",
                          description="Rewrite the TrackerConfig inside a checkpoint (validated; unknown keys raise), "
                                      "e.g. the lost_threshold measured by `siamtrack calibrate-lost`.")
    conf.add_argument("weights", metavar="WEIGHTS", help="a .pt checkpoint")
    conf.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", required=True,
                      help="TrackerConfig key and value; repeatable")
    conf.add_argument("--out", help="write here instead of overwriting WEIGHTS")
    conf.set_defaults(func=cmd_configure)

    tr = sub.add_parser("train", help="train a model from the crop cache",
                        description="Train the siamese tracking network on the crop cache; validate each epoch on val.")
    tr.add_argument("--config", default=SHIPPED_RECIPE,
                    help=f"recipe JSON file or packaged recipe name (default: {SHIPPED_RECIPE}, the shipped model's "
                         "recipe; others: benchmarks/recipes/)")
    tr.add_argument("--data", default=str(DATA / "train"), help="crop-cache folder (default: ../shared/data/train)")
    tr.add_argument("--val", default=str(DATA / "val"), help="validation sequences, GOT-10k or OTB layout")
    tr.add_argument("--no-val", action="store_true", help="skip validation (keeps the last epoch)")
    tr.add_argument("--run-dir", help="where logs and checkpoints go (default: runs/<recipe name>)")
    tr.add_argument("--resume", action="store_true", help="continue the run in --run-dir from its last epoch")
    tr.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda")
    tr.add_argument("--install-to", help="copy the best checkpoint here when done (e.g. weights/siamtrack_default.pt)")
    tr.set_defaults(func=cmd_train)

    init = sub.add_parser("init-weights", help="write an untrained model (ImageNet trunk + initial head)",
                          description="Write an untrained checkpoint: the starting point of training and the "
                                      "baseline it is measured against.")
    init.add_argument("--out", required=True, help="checkpoint path to write")
    init.add_argument("--backbone", default="efficientnet_lite0", choices=_FRESH_TRUNKS)
    init.add_argument("--stride", type=int, default=16, help="backbone cut: 8 or 16 (EfficientNet)")
    init.add_argument("--neck-channels", type=int, default=0, help="1x1 neck width, 0 for none")
    init.add_argument("--last-stage", type=int, default=0,
                      help="EfficientNet: cut after this stage (4 = stride 16 with 80 ch; 0: the deepest of the stride)")
    init.add_argument("--template-crop", type=int, default=0, help="keep the central k x k template cells (0: all)")
    init.add_argument("--nanotrack", metavar="PTH",
                      help="instead: NanoTrack v3's trunk and box-adaptive head, from its nanotrackv3.pth (e.g. "
                           "../shared/models/nanotrack-v3/nanotrackv3.pth)")
    init.set_defaults(func=cmd_init_weights)

    prep = sub.add_parser("prepare-data", help="turn GOT-10k / OTB-layout sequences into a training crop cache",
                          description="Crop full-frame sequences (GOT-10k or OTB layout) into the crop-cache format "
                                      "`siamtrack train --data` reads: 447x447 WebP crops around every --step-th "
                                      "ground-truth box, boxes.csv per sequence, index.csv.")
    prep.add_argument("src", metavar="SRC", help="dataset folder (GOT-10k, OTB or video layout, or one sequence folder)")
    prep.add_argument("dst", metavar="DST", help="crop-cache folder to write (new, empty, or an existing crop cache)")
    prep.add_argument("--step", type=int, default=2, help="crop every STEP-th ground-truth line (default: 2)")
    prep.add_argument("--sequences", help="comma-separated sequence names (default: all)")
    prep.add_argument("--quality", type=int, default=80, help="WebP quality 0..100 (default: 80)")
    prep.add_argument("--name", help="folder prefix: folders are <name>__<sequence> (default: SRC folder name)")
    prep.add_argument("--benchmark", help="benchmark column of index.csv (default: from meta.json, else the layout)")
    prep.add_argument("--overwrite", action="store_true",
                      help="redo sequence folders already in DST; allow a DST that is not a crop cache")
    prep.add_argument("--quiet", action="store_true", help="no progress bar")
    prep.set_defaults(func=cmd_prepare_data)
