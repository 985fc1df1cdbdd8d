#!/usr/bin/env python3
"""Experiment for issue 27, item 1: why are TrackerNano's box centres more precise? Runs NanoTrack-layout ONNX
networks (backbone.onnx + head.onnx, as cv2.TrackerNano loads them) through a Python copy of OpenCV's TrackerNano
loop (modules/video/src/tracking/tracker_nano.cpp, OpenCV 4.x) whose every difference from siamtrack's loop
(tracker/box_rules.py BestBox, tracker/crop.py, the shipped model's stored TrackerConfig) is one switch, so each
difference can be turned on alone. Not part of the tracker; nothing here changes its defaults.

Networks (--models): v2 / v3 = NanoTrack's published pairs in ../shared/models/nanotrack-vN (never copied; their
backbone input is fixed at 255 px, so a temporary copy with free spatial dims is run), or NAME=FOLDER for any
TrackerNano pair, e.g. ours=DIR from `siamtrack export --format opencv --out DIR` (the shipped model: its backbone
graph swaps RGB back to BGR and its head pads the 15x15 maps to TrackerNano's 16x16 grid).

Loops (--loops): a preset, `opencv` (TrackerNano's loop, line by line) or `ours` (siamtrack's BestBox rule with the
shipped model's values, without lost-and-found; `siamtrack eval --set lost_after=1000` is the real loop without
it), optionally followed by +KEY=VALUE switches (the LoopRules fields), e.g. `ours+window=sqrt_hann`. Each network x loop is a
tracker named py-NETWORK-LOOP; --compare adds OpenCV peers (nano, nano-ours) in the same run, on the same frames.

    siamtrack export --format opencv --out /tmp/ours-cv
    SIAMTRACK_NANO_OURS_DIR=/tmp/ours-cv python benchmarks/nanotrack_loop_experiment.py ../shared/data/val \\
        --out /tmp/loops --models v2,ours=/tmp/ours-cv --loops opencv,ours --compare nano,nano-ours

Prints AUC and P@20px per tracker (the scoring of `siamtrack eval`) and each tracker's centre error: the mean
signed (dx, dy) of box centre minus ground-truth centre over frames within 20 px (a systematic offset, such as half
a response cell, shows there as a constant bias), the median error, the share of frames in each error band, and
the sequences where P@20 differs from the first tracker's by 0.05 or more. --paired A,B compares two trackers'
errors on the frames where both hold the target; --rescore scores result files already in --out (a `siamtrack
eval --out` run in the same folder included) without tracking. Measured figures and what they explain:
docs/results.md, "Why TrackerNano's centres are more precise".
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime as ort

from tracker.crop import context_side, crop_square, mean_colour
from tracker.evaluation import runner
from tracker.evaluation.datasets import load_dataset
from tracker.evaluation.metrics import center_error
from tracker.evaluation.peers import int_box, make_peer
from tracker.response import padded_side
from tracker.result import TrackResult

MODELS = Path(__file__).resolve().parents[2] / "shared" / "models"
EXEMPLAR, INSTANCE, STRIDE = 127, 255, 16


@dataclass(frozen=True)
class LoopRules:
    """One value per difference between the two loops (docs/results.md lists them with the C++ lines)."""

    colour: str  # "rgb": blobFromImage(..., swapRB=true), as TrackerNano feeds every network; "trained": the
    #              channel order the network was trained on
    crop: str  # "integer": TrackerNano's getSubwindow (centre and side truncated to whole pixels, search side
    #            2 x exemplar side by integer division 255/127, the current frame's mean colour, cv::resize);
    #            "subpixel": siamtrack's crop_square (one warpAffine at the exact centre and side, first frame's mean)
    grid: str  # "trained": cell i at (i - n//2) x 16 px from the crop centre, as NanoTrack (and siamtrack's 15x15
    #            head, where both formulas agree) was trained; "centred": (i - (n-1)/2) x 16 (siamtrack's formula,
    #            half a cell off on a 16x16 map)
    size_reference: str  # "position": TrackerNano's sizeCal(targetPos[0], targetPos[1]), the change penalty measured
    #                      against the target's centre coordinates; "size": against its size (SiamRPN's penalty)
    penalty_k: float
    window: str  # "sqrt_hann": cv2.createHanningWindow (the square root of the Hann outer product); "hann": np.outer
    window_centre: str  # "index": the window over the map's cells as given, centred at cell (n - 1) / 2 (TrackerNano:
    #                     half a cell up-left of the crop centre on a 16x16 map); "crop": centred on the crop centre,
    #                     zero at the network's outermost own cells (siamtrack's window over its 15x15 map)
    window_influence: float
    lr: float
    min_size: float  # the box's smallest side, px (TrackerNano 10, siamtrack min_box_side 4)
    search_clamp: bool  # siamtrack's search side kept within [0.2, 5] x its first value
    output: str  # "int": TrackerNano's cv::Rect (the first box rounded in, each box truncated out); "float"


PRESETS = {
    "opencv": LoopRules("rgb", "integer", "trained", "position", 0.055, "sqrt_hann", "index", 0.455, 0.37, 10, False,
                        "int"),
    "ours": LoopRules("trained", "subpixel", "trained", "size", 0.138, "hann", "crop", 0.455, 0.348, 4, True, "float"),
}


def parse_loop(spec: str) -> LoopRules:
    """'ours+window=sqrt_hann+lr=0.37' -> the preset with those fields replaced."""
    name, *switches = spec.split("+")
    if name not in PRESETS:
        raise SystemExit(f"loop {spec!r}: start with one of {sorted(PRESETS)}")
    changes = {}
    for item in switches:
        key, _, value = item.partition("=")
        field = {f.name: f for f in dataclasses.fields(LoopRules)}.get(key)
        if field is None:
            raise SystemExit(f"loop {spec!r}: unknown switch {key!r}")
        changes[key] = {"float": float, "bool": lambda v: v not in ("0", "false"), "str": str}[field.type](value)
    return dataclasses.replace(PRESETS[name], **changes)


def free_spatial_dims(path: Path) -> bytes:
    model = onnx.load(str(path))
    for value in list(model.graph.input) + list(model.graph.output):
        dims = value.type.tensor_type.shape.dim
        dims[2].dim_param, dims[3].dim_param = "h", "w"
    return model.SerializeToString()


class NanoNetwork:
    """A TrackerNano pair over onnxruntime: backbone (input) and head (input1, input2 -> output1 2-class logits,
    output2 l, t, r, b distances in search-crop pixels)."""

    def __init__(self, folder: Path, trained_order: str, own_cells: int, threads: int = 1):
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.log_severity_level = 3  # the free-dims copy keeps stale output shapes: onnxruntime warns every run
        self.backbone = ort.InferenceSession(free_spatial_dims(folder / "backbone.onnx"), opts)
        self.head = ort.InferenceSession(free_spatial_dims(folder / "head.onnx"), opts)
        self.trained_order, self.own_cells = trained_order, own_cells  # own_cells: its head's map before padding

    def features(self, crop: np.ndarray, colour: str) -> np.ndarray:
        rgb = colour == "rgb" or self.trained_order == "rgb"
        blob = (crop[..., ::-1] if rgb else crop).transpose(2, 0, 1)[None].astype(np.float32)
        return self.backbone.run(None, {"input": np.ascontiguousarray(blob)})[0]

    def response(self, template: np.ndarray, search: np.ndarray):
        cls, loc = self.head.run(None, {"input1": template, "input2": search})
        logits = cls[0].reshape(2, -1)
        return np.exp(logits[1] - np.logaddexp(logits[0], logits[1])), loc[0].reshape(4, -1)


def opencv_subwindow(frame: np.ndarray, center, original_side: int, out_size: int) -> np.ndarray:
    """TrackerNano::getSubwindow: a whole-pixel square from int(centre) - (side + 1) / 2, padded with the frame's
    mean colour, resized with cv::resize's default (bilinear)."""
    c = (original_side + 1) // 2
    x0, y0 = int(center[0]) - c, int(center[1]) - c
    x1, y1 = x0 + original_side - 1, y0 + original_side - 1
    hgt, wid = frame.shape[:2]
    pads = [max(0, -y0), max(0, y1 - hgt + 1), max(0, -x0), max(0, x1 - wid + 1)]  # top, bottom, left, right
    if any(pads):
        frame = cv2.copyMakeBorder(frame, *pads, cv2.BORDER_CONSTANT, value=cv2.mean(frame))
        x0, y0 = x0 + pads[2], y0 + pads[0]
    return cv2.resize(frame[y0:y0 + original_side, x0:x0 + original_side], (out_size, out_size))


def hann_window(size: int, rules: LoopRules, offsets, own_cells: int) -> np.ndarray:
    """The cosine window over a size x size map whose cells sit at `offsets` (x, y) from the crop centre."""
    if rules.window_centre == "index":
        if rules.window == "sqrt_hann":
            return cv2.createHanningWindow((size, size), cv2.CV_32F).astype(np.float64).ravel()
        return np.outer(np.hanning(size), np.hanning(size)).ravel()
    half = (own_cells - 1) / 2 * STRIDE  # np.hanning(own_cells) at the network's own cells

    def hann(v):
        return np.where(np.abs(v) < half, 0.5 + 0.5 * np.cos(np.pi * v / half), 0.0)

    window = hann(offsets[0]) * hann(offsets[1])
    return np.sqrt(window) if rules.window == "sqrt_hann" else window


def cell_offsets(size: int, grid: str) -> tuple[np.ndarray, np.ndarray]:
    """Each cell's (x, y) offset from the search crop's centre, crop pixels, row-major."""
    first = size // 2 if grid == "trained" else (size - 1) / 2
    xs, ys = np.meshgrid(STRIDE * (np.arange(size) - first), STRIDE * (np.arange(size) - first))
    return xs.ravel().astype(np.float64), ys.ravel().astype(np.float64)


def _change(ratio):
    return np.maximum(ratio, 1.0 / ratio)


class PyNanoTracker:
    """TrackerNano's loop (rules = PRESETS["opencv"]) or siamtrack's BestBox (PRESETS["ours"]) or anything between,
    over one NanoNetwork."""

    def __init__(self, network: NanoNetwork, rules: LoopRules):
        self.net, self.rules = network, rules

    def _crop(self, frame, side: float, out_size: int) -> np.ndarray:
        if self.rules.crop == "integer":
            return opencv_subwindow(frame, self.center, int(side), out_size)
        return crop_square(frame, tuple(self.center), side, out_size, self.fill)

    def _exemplar_side(self) -> float:
        w, h = self.size
        if self.rules.crop == "integer":  # TrackerNano truncates w + h (update) and the side (init) to ints
            total = int(w + h)
            return math.sqrt((w + 0.5 * total) * (h + 0.5 * total))
        return context_side(w, h, 0.5)

    def init(self, frame: np.ndarray, box) -> None:
        x, y, w, h = int_box(box, frame.shape) if self.rules.output == "int" else (float(v) for v in box)
        self.center, self.size = np.array([x + w / 2, y + h / 2]), np.array([w, h], dtype=np.float64)
        self.fill = mean_colour(frame)
        side = context_side(w, h, 0.5)
        self.template = self.net.features(self._crop(frame, int(side) if self.rules.crop == "integer" else side,
                                                     EXEMPLAR), self.rules.colour)
        self.search_range = (0.2 * side * INSTANCE / EXEMPLAR, 5.0 * side * INSTANCE / EXEMPLAR)

    def _search_side(self, exemplar_side: float) -> float:
        if self.rules.crop == "integer":
            return exemplar_side * (INSTANCE // EXEMPLAR)  # C++ integer division: 2, not 255 / 127
        side = exemplar_side * INSTANCE / EXEMPLAR
        return float(np.clip(side, *self.search_range)) if self.rules.search_clamp else side

    def _penalty(self, bw, bh, target_crop):
        rules = self.rules
        reference = padded_side(*self.center) if rules.size_reference == "position" else padded_side(*target_crop)
        change = _change((target_crop[0] / target_crop[1]) / (bw / bh)) * _change(padded_side(bw, bh) / reference)
        return np.exp(-(change - 1) * rules.penalty_k)

    def update(self, frame: np.ndarray) -> TrackResult:
        rules, exemplar_side = self.rules, self._exemplar_side()
        search_side = self._search_side(exemplar_side)
        # TrackerNano converts with 127 / exemplar side whatever the search crop's real scale; siamtrack with it.
        scale = EXEMPLAR / exemplar_side if rules.crop == "integer" else INSTANCE / search_side
        score, d = self.net.response(self.template, self.net.features(self._crop(frame, search_side, INSTANCE),
                                                                      rules.colour))
        size = int(round(math.sqrt(score.size)))
        px, py = cell_offsets(size, rules.grid)
        x1, y1, x2, y2 = px - d[0], py - d[1], px + d[2], py + d[3]
        penalty = self._penalty(x2 - x1, y2 - y1, self.size * scale)
        window = hann_window(size, rules, (px, py), self.net.own_cells)
        ranked = penalty * score * (1 - rules.window_influence) + window * rules.window_influence
        best = int(np.argmax(ranked))
        rate = penalty[best] * score[best] * rules.lr
        hgt, wid = frame.shape[:2]
        moved = self.center + np.array([x1[best] + x2[best], y1[best] + y2[best]]) / 2 / scale
        self.center = np.clip(moved, 0, [wid, hgt])
        new_size = self.size * (1 - rate) + np.array([x2[best] - x1[best], y2[best] - y1[best]]) / scale * rate
        self.size = np.clip(new_size, rules.min_size, [max(wid, rules.min_size), max(hgt, rules.min_size)])
        box = np.concatenate([self.center - self.size / 2, self.size])
        if rules.output == "int":
            box = np.trunc(box)
        return TrackResult(box=tuple(float(v) for v in box), score=float(score[best]), lost=False)


def network_folders(models: str) -> dict[str, tuple[Path, str, int]]:
    """--models 'v2,ours=DIR' -> name -> (folder, channel order it was trained on, its head's own map size).
    NanoTrack was trained on BGR (pysot reads with cv2.imread), v2's head gives 16x16 cells, v3's 15x15; a
    `siamtrack export --format opencv` pair takes RGB (its graph swaps) and pads its 15x15 map to 16x16."""
    folders = {}
    for item in filter(None, models.split(",")):
        name, sep, folder = item.partition("=")
        folders[name] = (Path(folder), "rgb", 15) if sep else (MODELS / f"nanotrack-{name}", "bgr",
                                                                16 if name == "v2" else 15)
    return folders


def centre_bias(out: Path, seqs, names: list[str], near: float = 20.0) -> dict[str, dict]:
    """Per tracker: mean signed centre error (dx, dy) over frames within `near` px of the ground truth, the
    median error over all scored frames, the share of frames in each error band, and each sequence's P@20."""
    table = {}
    for name in names:
        signed, errors, per_seq = [], [], {}
        for seq in seqs:
            boxes = runner.read_result(out, name, seq.name)[0]
            valid = seq.valid.copy()
            valid[0] = False  # the first frame is the given box
            pred, gt = np.nan_to_num(boxes[valid], nan=-1e6), seq.gt[valid]
            err = center_error(pred, gt)
            delta = (pred[:, :2] + pred[:, 2:] / 2) - (gt[:, :2] + gt[:, 2:] / 2)
            signed.append(delta[err <= near])
            errors.append(err)
            per_seq[seq.name] = float(np.mean(err <= 20))
        signed_all, errors_all = np.concatenate(signed), np.concatenate(errors)
        bands = np.histogram(errors_all, [0, 5, 10, 20, 50, np.inf])[0] / len(errors_all)
        table[name] = {"dx": float(signed_all[:, 0].mean()), "dy": float(signed_all[:, 1].mean()),
                       "median": float(np.median(errors_all)), "bands": bands.tolist(), "per_seq": per_seq}
    return table


def paired_errors(out: Path, seqs, first: str, second: str, within: float = 50.0) -> str:
    """Centre precision where both trackers hold the target: over the frames where both are within `within` px
    of the ground truth, each one's mean and median error and share within 20 px."""
    errors = {first: [], second: []}
    for seq in seqs:
        valid = seq.valid.copy()
        valid[0] = False
        for name in errors:
            boxes = runner.read_result(out, name, seq.name)[0]
            errors[name].append(center_error(np.nan_to_num(boxes[valid], nan=-1e6), seq.gt[valid]))
    a, b = (np.concatenate(errors[n]) for n in (first, second))
    both = (a <= within) & (b <= within)
    a, b = a[both], b[both]
    return (f"{first} vs {second} on the {100 * both.mean():.0f}% of frames where both are within {within:g} px: "
            f"mean error {a.mean():.2f} / {b.mean():.2f} px, median {np.median(a):.2f} / {np.median(b):.2f} px, "
            f"within 20 px {100 * np.mean(a <= 20):.1f}% / {100 * np.mean(b <= 20):.1f}%")


def print_report(summary: dict, bias: dict) -> None:
    first = next(iter(bias.values()))["per_seq"]
    for name, t in summary.items():
        o, b = t["overall"], bias[name]
        moved = [f"{s} {p:.2f}" for s, p in b["per_seq"].items() if abs(p - first[s]) >= 0.05]
        print(f"{name:44s} AUC {o['auc']:.3f}  P@20 {o['precision']:.3f}  bias within 20 px "
              f"({b['dx']:+.2f}, {b['dy']:+.2f}) px  median error {b['median']:.1f} px  frames in error bands "
              f"0-5/5-10/10-20/20-50/50+ px {'/'.join(f'{100 * v:.0f}' for v in b['bands'])}%  "
              f"ms/frame {1000 / o['fps_tracker']:.1f}" + (f"  | P@20 differs: {', '.join(moved)}" if moved else ""))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data")
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--models", default="v2", help="networks: v2, v3 (published) or NAME=FOLDER (a TrackerNano pair)")
    ap.add_argument("--loops", default="opencv,ours", help="loop presets with +KEY=VALUE switches, comma-separated")
    ap.add_argument("--compare", default="", help="OpenCV peers in the same run, e.g. nano,nano-ours")
    ap.add_argument("--seqs", default=None, help="comma-separated sequence names (default: all)")
    ap.add_argument("--rescore", default=None, metavar="NAMES",
                    help="track nothing: score these trackers' result files in --out (comma-separated; 'all': every "
                         "tracker there, `siamtrack eval --out` runs included)")
    ap.add_argument("--paired", default=None, metavar="A,B", help="also compare two trackers' centre errors on the "
                                                                    "frames where both hold the target")
    ap.add_argument("--plots", type=Path, default=None, help="write success / precision plots into this folder")
    args = ap.parse_args(argv)
    _, seqs, problems = load_dataset(args.data, args.seqs.split(",") if args.seqs else None)
    for name, why in problems.items():
        print(f"skipping {name}: {why}", file=sys.stderr)
    networks = {name: NanoNetwork(*spec) for name, spec in network_folders(args.models).items()}
    factories = {f"py-{n}-{loop}": (lambda n=n, loop=loop: PyNanoTracker(networks[n], parse_loop(loop)))
                 for n in networks for loop in args.loops.split(",") if loop}
    factories.update({p: (lambda p=p: make_peer(p)) for p in args.compare.split(",") if p})
    cv2.setNumThreads(1)
    if args.rescore:
        names = runner.find_trackers(args.out, [s.name for s in seqs]) if args.rescore == "all" \
            else args.rescore.split(",")
    else:
        names = list(factories)
        errors = runner.run(seqs, {k: f() for k, f in factories.items()}, args.out)
        for k, e in errors.items():
            print(f"{k}: {e}", file=sys.stderr)
    summary = runner.score(args.out, seqs, names)
    print_report(summary, centre_bias(args.out, seqs, names))
    if args.paired:
        print(paired_errors(args.out, seqs, *args.paired.split(",")))
    if args.plots:
        from tracker.evaluation.plots import plot_curves  # matplotlib: only when asked
        args.plots.mkdir(parents=True, exist_ok=True)
        print("wrote", *plot_curves({"trackers": summary, "sequences": [s.name for s in seqs]}, args.plots))
    return 0


if __name__ == "__main__":
    sys.exit(main())
