#!/usr/bin/env python3
"""Experiment for issue 10 (an online target model): two cheap ways of learning the target while tracking, on an
ONNX pair (--weights, default the shipped one), scored one-pass on an OTB / GOT-10k / video folder. Not part of the tracker: it subclasses
SiamTracker to try ideas before they earn a place in the package. Each row of --configs is one tracker:

* ``{"name": ["template", rate, min_score, anchor]}``: linear template update. After each frame tracked with a
  score >= min_score, the template of a fresh exemplar crop at the new box is blended into a running template at
  `rate`; the template used is anchor * first + (1 - anchor) * running.
* ``{"name": ["dcf", weight, rate, lam, sigma, min_score]}``: a linear multi-channel correlation filter (MOSSE /
  linear-kernel KCF) on the search features the backbone already computes (the int8 graph's last trunk output,
  exposed as an extra graph output in a temporary copy; only the EfficientNet int8 pair shipped before NanoTrack
  v3 has that tensor: rebuild it with the README's older commands and pass it with --weights): learnt on a search crop centred on the target in the first
  frame, then on the centre-scale crop of each frame tracked with a score >= min_score (Gaussian label of `sigma`
  cells at the found position, running average at `rate`, ridge `lam` times the mean power). Its response, sampled
  at the siamese response cells, is added to the siamese logits with `weight`.

    python benchmarks/online_model_experiment.py ../shared/data/val --out /tmp/online \\
        --configs '{"base": ["dcf", 0, 0.02, 0.1, 1.0, 0.8], "dcf1": ["dcf", 1.0, 0.02, 0.1, 1.0, 0.8]}'

Prints the AUC and P@20px of every row (the same scoring as `siamtrack eval`).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

from tracker import SiamTracker, UserError
from tracker.crop import context_side, crop_square
from tracker.evaluation import runner
from tracker.evaluation.datasets import load_dataset
from tracker.paths import weights_dir

FEATURES = "add_558_DequantizeLinear_Output"  # the EfficientNet int8 search graph's trunk output (N,112,12,12)


class TemplateUpdate(SiamTracker):
    def __init__(self, engine, config, rate: float, min_score: float, anchor: float) -> None:
        super().__init__(engine, config)
        self.rate, self.min_score, self.anchor = rate, min_score, anchor

    def init(self, frame, box) -> None:
        super().init(frame, box)
        self.first = self._target.state.template.copy()
        self.running = self.first.copy()

    def update(self, frame):
        result = super().update(frame)
        state = self._target.state
        if self.rate and result.state == "tracking" and result.score >= self.min_score:
            side = context_side(*state.size, self.config.context_amount)
            exemplar = crop_square(frame, tuple(state.center), side, self.engine.config.exemplar_size, state.fill)
            self.running = (1 - self.rate) * self.running + self.rate * self.engine.template(exemplar[None])
            state.template = (self.anchor * self.first + (1 - self.anchor) * self.running).astype(np.float32)
        return result


class OnlineFilter(SiamTracker):
    """The engine's search() must return (logits, features): see expose_features()."""

    def __init__(self, engine, config, weight: float, rate: float, lam: float, sigma: float, min_score: float):
        super().__init__(engine, config)
        self.weight, self.rate, self.lam, self.sigma, self.min_score = weight, rate, lam, sigma, min_score
        self.cells = None
        self.numerator = self.denominator = self.features = None

    def _hann(self, cells: int) -> np.ndarray:
        hann = np.hanning(cells + 2)[1:-1]
        return np.outer(hann, hann).astype(np.float32)

    def _label(self, row: float, col: float) -> np.ndarray:
        rows, cols = np.mgrid[0:self.cells, 0:self.cells]
        half = self.cells / 2  # circular distances: the filter's correlation wraps around
        dr, dc = (rows - row + half) % self.cells - half, (cols - col + half) % self.cells - half
        return np.exp(-(dr ** 2 + dc ** 2) / (2 * self.sigma ** 2))

    def _learn(self, features: np.ndarray, row: float, col: float, rate: float) -> None:
        spectrum = np.fft.fft2(features * self._hann(self.cells), axes=(-2, -1))
        numerator = np.conj(np.fft.fft2(self._label(row, col)))[None] * spectrum
        denominator = (np.conj(spectrum) * spectrum).real.sum(0)
        if self.numerator is None or rate >= 1:
            self.numerator, self.denominator = numerator, denominator
        else:
            self.numerator = (1 - rate) * self.numerator + rate * numerator
            self.denominator = (1 - rate) * self.denominator + rate * denominator

    def _response(self, features: np.ndarray, size: int) -> np.ndarray:
        """The filter's response at the siamese response cells: cell k sits at feature position k + offset."""
        spectrum = np.fft.fft2(features * self._hann(self.cells), axes=(-2, -1))
        filt = self.numerator / (self.denominator + self.lam * self.denominator.mean())[None]
        full = np.fft.ifft2((np.conj(filt)[None] * spectrum).sum(1), axes=(-2, -1)).real
        start = (self.cells - size) / 2  # e.g. 12 cells, 7 responses: positions 2.5 .. 8.5
        lo = int(np.floor(start))
        if start == lo:
            return full[:, lo:lo + size, lo:lo + size]
        return 0.25 * (full[:, lo:lo + size, lo:lo + size] + full[:, lo + 1:lo + 1 + size, lo:lo + size] +
                       full[:, lo:lo + size, lo + 1:lo + 1 + size] + full[:, lo + 1:lo + 1 + size, lo + 1:lo + 1 + size])

    def init(self, frame, box) -> None:
        super().init(frame, box)
        state, m = self._target.state, self.engine.config
        crops = np.empty((1, m.search_size, m.search_size, 3), np.uint8)
        crop_square(frame, tuple(state.center), state.search_side, m.search_size, state.fill, out=crops[0])
        _, features = self.engine.search(crops, state.template)
        self.cells = features.shape[-1]
        self.numerator = None
        self._learn(features[0], (self.cells - 1) / 2, (self.cells - 1) / 2, 1.0)

    def _track_steps(self, frame, states, times):
        self._stepping = True  # features from the step's crops only, not from a lost target's tile search
        try:
            return super()._track_steps(frame, states, times)
        finally:
            self._stepping = False

    def _search(self, crops, templates, crops_each):
        logits, features = super()._search(crops, templates, crops_each)
        if getattr(self, "_stepping", False):
            self.features = features
        return logits, None

    def _move_pyramid(self, state, logits):
        if self.weight:
            logits = logits + self.weight * self._response(self.features, logits.shape[-1])
        return super()._move_pyramid(state, logits)

    def update(self, frame):
        state = self._target.state
        before, side = state.center.copy(), state.search_side
        was_lost = self._target.presence.state == "lost"  # then the step's crops were the shadow's, elsewhere
        result = super().update(frame)
        if not was_lost and result.state == "tracking" and result.score >= self.min_score:
            cell = side / self.engine.config.search_size * self.engine.config.stride
            dx, dy = (state.center - before) / cell
            centre = (self.cells - 1) / 2
            self._learn(self.features[len(self.features) // 2], centre + dy, centre + dx, self.rate)
        return result


def expose_features(engine, folder: Path, weights: str | None) -> None:
    """Rebuild the engine's search session on a copy of its graph that also outputs the trunk features."""
    import onnx
    import onnxruntime as ort

    model = onnx.load(str(Path(weights or weights_dir()) / "search.onnx"))
    if FEATURES not in {o for node in model.graph.node for o in node.output}:
        raise UserError(f"{FEATURES} is not in this search graph: the dcf rows are tied to the int8 EfficientNet "
                        "pair shipped before NanoTrack v3 (pass its folder with --weights)")
    model.graph.output.append(onnx.helper.make_tensor_value_info(FEATURES, onnx.TensorProto.FLOAT, None))
    path = folder / "search_with_features.onnx"
    onnx.save(model, str(path))
    options = ort.SessionOptions()
    options.intra_op_num_threads = engine._search_session.get_session_options().intra_op_num_threads
    engine._search_session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    engine._search_outs = [engine._search_outs[0], FEATURES]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dataset", help="OTB, GOT-10k or video folder (e.g. ../shared/data/val-hard)")
    parser.add_argument("--out", required=True, help="folder for the result files")
    parser.add_argument("--configs", required=True, help="JSON: name -> [method, parameters...] (see above)")
    parser.add_argument("--sequences", help="comma-separated subset")
    parser.add_argument("--weights", help="an exported ONNX pair's folder (default: the shipped pair; template rows only)")
    args = parser.parse_args(argv)
    try:
        configs = json.loads(args.configs)
        _, sequences, _ = load_dataset(Path(args.dataset), args.sequences.split(",") if args.sequences else None)
        shipped = SiamTracker.from_pretrained(args.weights, engine="onnx", device="cpu")
        trackers = {}
        with tempfile.TemporaryDirectory() as folder:
            if any(spec[0] == "dcf" for spec in configs.values()):
                expose_features(shipped.engine, Path(folder), args.weights)
                with_features = True
            else:
                with_features = False
            for name, (method, *params) in configs.items():
                if method == "template":
                    if with_features:
                        raise UserError("run template and dcf rows separately (the dcf rows change the engine)")
                    trackers[name] = TemplateUpdate(shipped.engine, shipped.config, *params)
                elif method == "dcf":
                    trackers[name] = OnlineFilter(shipped.engine, shipped.config, *params)
                else:
                    raise UserError(f"unknown method {method!r}: template or dcf")
            runner.run(sequences, trackers, Path(args.out), progress=False)
        scores = runner.score(Path(args.out), sequences, list(trackers))
    except (UserError, ValueError, json.JSONDecodeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    status = 0
    for name in trackers:
        overall = scores[name].get("overall") or {}
        if "auc" not in overall:
            print(f"{name}: no sequence could be scored (see the failures above)", file=sys.stderr)
            status = 1
            continue
        print(f"{name}: AUC {overall['auc']:.3f}, P@20px {overall['precision']:.3f} ({len(sequences)} sequences)")
    return status


if __name__ == "__main__":
    sys.exit(main())
