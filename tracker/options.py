"""The model options, declared once for every command that tracks (track, webcam, batch, eval, bench,
calibrate-lost, absence): --weights, --engine, --device, --threads and --set KEY=VALUE, and the one way they
become a tracker (`load_tracker`, through from_pretrained).

eval and bench compare models: there --weights and --engine take comma lists, each entry its own tracker
(`lists=True`); calibrate-lost and absence accept the same lists and use the first engine.
"""
from __future__ import annotations

import argparse

from .config import parse_overrides
from .engines import engine_names
from .errors import UserError

WEIGHTS_HELP = ("a .pt checkpoint or a folder with the ONNX pair (template.onnx + search.onnx) instead of the shipped "
                "default model")
ENGINE_HELP = ("network runner: onnx (onnxruntime, no PyTorch; --weights is then a folder with template.onnx + "
               "search.onnx), torch (--weights a .pt file), or auto (onnx when onnxruntime is installed and --weights "
               "is not a .pt file)")
LIST_HELP = "; a comma list runs each as its own tracker, siamtrack-<{}>"
THREADS_HELP = "the network's threads (default: the physical cores)"
SET_HELP = ("override a tracking hyperparameter (TrackerConfig key), e.g. --set window_influence=0.3; repeatable")


def add_model_options(parser: argparse.ArgumentParser, lists: bool = False, threads_help: str = THREADS_HELP) -> None:
    """The model options on `parser`; lists: --weights and --engine take comma lists (eval, bench)."""
    parser.add_argument("--weights", help=WEIGHTS_HELP + (LIST_HELP.format("name") if lists else ""))
    if lists:
        parser.add_argument("--engine", default="auto", help=f"{ENGINE_HELP}{LIST_HELP.format('engine')}")
    else:
        parser.add_argument("--engine", choices=engine_names(), default="auto", help=ENGINE_HELP)
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda")
    parser.add_argument("--threads", type=int, help=threads_help)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help=SET_HELP)


def split_list(text: str | None) -> list[str] | None:
    """`a, b` -> ["a", "b"]; None for nothing given."""
    return [s.strip() for s in text.split(",") if s.strip()] if text else None


def check_model_options(args: argparse.Namespace) -> dict:
    """The options checked before anything loads; returns the --set overrides as keyword arguments."""
    if args.threads is not None and args.threads < 1:
        raise UserError(f"--threads must be >= 1, got {args.threads}")
    return parse_overrides(args.set)


def load_tracker(cls, args: argparse.Namespace, weights: str | None = None, engine: str | None = None):
    """cls.from_pretrained (SiamTracker or MultiTracker) with the command's model options; weights and engine
    replace the options' (one entry of eval's lists)."""
    overrides = check_model_options(args)
    return cls.from_pretrained(args.weights if weights is None else weights, device=args.device,
                               engine=args.engine if engine is None else engine, threads=args.threads, **overrides)


def first_engine(args: argparse.Namespace) -> str:
    """The engine of a command that runs one model (the first of a comma list)."""
    return (split_list(args.engine) or ["auto"])[0]
