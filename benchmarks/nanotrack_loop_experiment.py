#!/usr/bin/env python3
"""Experiment for issue 10 (trunk and head by measurement): how good are NanoTrack v2 / v3's published networks on
the project's val sets when run by a plain Python loop (onnxruntime, the published NanoTracker post-processing:
softmax score, size / ratio change penalty, cosine window, box learning rate)? Not part of the tracker: it decides
whether NanoTrack v3's tracking-pretrained trunk and head are worth an initialisation.

The ONNX pairs are read from ../shared/models (never copied); their backbone input is fixed at 255 px, so a
temporary copy with free spatial dims is run (the same weights). v2 run this way is also a check of the loop
against OpenCV's own cv2.TrackerNano, which runs the same pair.

    python benchmarks/nanotrack_loop_experiment.py ../shared/data/val --out /tmp/nano --models v2,v3 \\
        --compare nano

Prints AUC and P@20px per tracker (the same scoring as `siamtrack eval`). Measured (one run per set, 2-core CPU):
val py-nano-v2 0.637, py-nano-v3 0.661, cv2.TrackerNano 0.641; val-hard 0.641, 0.641, 0.636. The v2 rows check the
loop against OpenCV's own; v3's showed its trunk and head worth the initialisation the shipped model starts from.
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import yaml

from tracker.crop import context_side, crop_square, mean_colour
from tracker.evaluation import runner
from tracker.evaluation.datasets import load_dataset
from tracker.evaluation.peers import make_peer
from tracker.result import TrackResult

MODELS = Path(__file__).resolve().parents[2] / "shared" / "models"


def free_spatial_dims(path: Path) -> bytes:
    model = onnx.load(str(path))
    for value in list(model.graph.input) + list(model.graph.output):
        dims = value.type.tensor_type.shape.dim
        dims[2].dim_param, dims[3].dim_param = "h", "w"
    return model.SerializeToString()


class PyNanoTracker:
    """NanoTrack's published tracker (BAN-style: per-cell class softmax + l, t, r, b distances) over onnxruntime."""

    def __init__(self, folder: Path, threads: int = 1):
        cfg = yaml.safe_load((folder / "config.yaml").read_text())["TRACK"]
        self.window_influence, self.penalty_k, self.lr = cfg["WINDOW_INFLUENCE"], cfg["PENALTY_K"], cfg["LR"]
        self.context = cfg["CONTEXT_AMOUNT"]
        self.exemplar, self.instance, self.stride = 127, 255, 16
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        self.backbone = ort.InferenceSession(free_spatial_dims(folder / "backbone.onnx"), opts)
        self.head = ort.InferenceSession(str(folder / "head.onnx"), opts)
        self.head_inputs = [i.name for i in self.head.get_inputs()]

    def _features(self, crop: np.ndarray) -> np.ndarray:
        blob = crop.transpose(2, 0, 1)[None].astype(np.float32)  # BGR, 0..255, as OpenCV's TrackerNano feeds it
        return self.backbone.run(None, {"input": blob})[0]

    def init(self, frame: np.ndarray, box) -> None:
        x, y, w, h = (float(v) for v in box)
        self.center = np.array([x + w / 2, y + h / 2])
        self.size = np.array([w, h])
        self.fill = mean_colour(frame)
        side = context_side(w, h, self.context)
        self.template = self._features(crop_square(frame, tuple(self.center), side, self.exemplar, self.fill))
        self.points = None

    def _grid(self, size: int):
        if self.points is None or self.points.shape[0] != size * size:
            offset = -(size // 2) * self.stride
            xs, ys = np.meshgrid(offset + self.stride * np.arange(size), offset + self.stride * np.arange(size))
            self.points = np.stack([xs.ravel(), ys.ravel()], 1).astype(np.float64)
            self.window = np.outer(np.hanning(size), np.hanning(size)).ravel()
        return self.points, self.window

    def update(self, frame: np.ndarray) -> TrackResult:
        side_z = context_side(*self.size, self.context)
        scale_z = self.exemplar / side_z
        side_x = side_z * self.instance / self.exemplar
        search = self._features(crop_square(frame, tuple(self.center), side_x, self.instance, self.fill))
        cls, loc = self.head.run(None, dict(zip(self.head_inputs, (self.template, search))))
        size = cls.shape[-1]
        points, window = self._grid(size)
        logits = cls[0].reshape(2, -1)
        score = np.exp(logits[1] - np.logaddexp(logits[0], logits[1]))
        d = loc[0].reshape(4, -1)
        x1, y1 = points[:, 0] - d[0], points[:, 1] - d[1]
        x2, y2 = points[:, 0] + d[2], points[:, 1] + d[3]
        cx, cy, bw, bh = (x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1

        def change(r):
            return np.maximum(r, 1.0 / r)

        def padded(w, h):
            pad = (w + h) * 0.5
            return np.sqrt((w + pad) * (h + pad))

        s_c = change(padded(bw, bh) / padded(*(self.size * scale_z)))
        r_c = change((self.size[0] / self.size[1]) / (bw / bh))
        penalty = np.exp(-(r_c * s_c - 1) * self.penalty_k)
        pscore = penalty * score * (1 - self.window_influence) + window * self.window_influence
        best = int(np.argmax(pscore))
        lr = penalty[best] * score[best] * self.lr
        hgt, wid = frame.shape[:2]
        self.center = np.array([np.clip(self.center[0] + cx[best] / scale_z, 0, wid),
                                np.clip(self.center[1] + cy[best] / scale_z, 0, hgt)])
        new_size = self.size * (1 - lr) + np.array([bw[best], bh[best]]) / scale_z * lr
        self.size = np.array([np.clip(new_size[0], 10, wid), np.clip(new_size[1], 10, hgt)])
        box = (self.center[0] - self.size[0] / 2, self.center[1] - self.size[1] / 2, *self.size)
        return TrackResult(box=tuple(float(v) for v in box), score=float(score[best]), lost=False)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data")
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--models", default="v2,v3", help="NanoTrack versions to run through the Python loop")
    ap.add_argument("--compare", default="", help="OpenCV peers in the same run, e.g. nano,csrt")
    ap.add_argument("--seqs", default=None, help="comma-separated sequence names (default: all)")
    args = ap.parse_args(argv)
    _, seqs, problems = load_dataset(args.data, args.seqs.split(",") if args.seqs else None)
    for name, why in problems.items():
        print(f"skipping {name}: {why}", file=sys.stderr)
    factories = {f"py-nano-{v}": (lambda v=v: PyNanoTracker(MODELS / f"nanotrack-{v}"))
                 for v in args.models.split(",") if v}
    factories.update({p: (lambda p=p: make_peer(p)) for p in args.compare.split(",") if p})
    cv2.setNumThreads(1)
    trackers = {k: f() for k, f in factories.items()}
    errors = runner.run(seqs, trackers, args.out)
    for k, e in errors.items():
        print(f"{k}: {e}", file=sys.stderr)
    summary = runner.score(args.out, seqs, list(trackers))
    for name, t in summary.items():
        o = t["overall"]
        print(f"{name:14s} AUC {o['auc']:.3f}  P@20 {o['precision']:.3f}  "
              f"ms/frame {1000 / o['fps_tracker']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
