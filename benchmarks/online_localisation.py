#!/usr/bin/env python3
"""Does the online target model find the target in the search crop better than the siamese head does?

Tracks each sequence with the online model on (the tracker's own boxes, as in `siamtrack eval`), and on every
frame where the ground-truth centre lies inside the search crop, takes the argmax of three 15x15 maps: the
siamese class probability, the online filter's response, and their fusion (the map the box rule ranks, before
its size penalty and cosine window). Prints, per sequence and pooled, the share of frames whose argmax is within
--cells response cells (16 crop pixels each) of the true centre.

    python benchmarks/online_localisation.py ../shared/data/val
    python benchmarks/online_localisation.py ../shared/data/val-hard --set lost_threshold=0.6

Not a test: it prints figures. The tracker settings are the weights' own plus --set (default: online_weight 0.5,
lost_threshold 0.6, the README's opt-in settings).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from tracker import SiamTracker
from tracker.evaluation.datasets import load_dataset
from tracker.response import fused_scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dataset")
    parser.add_argument("--weights", default=None, help="ONNX pair folder (default: the shipped one)")
    parser.add_argument("--cells", type=float, default=1.5)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    settings = {"online_weight": 0.5, "lost_threshold": 0.6}
    for item in args.set:
        key, value = item.split("=", 1)
        settings[key] = float(value) if key != "box_position" else value
    _, sequences, _ = load_dataset(Path(args.dataset))
    pooled: dict[str, list[float]] = {"siamese": [], "online": [], "fused": []}
    for seq in sequences:
        tracker = SiamTracker.from_pretrained(args.weights, engine="onnx", **settings)
        seen = {}
        move = tracker.rule.move

        def spy(state, logits, distances, features=None, move=move):
            seen["crop"] = state.center.copy(), state.search_side
            seen["maps"] = logits[0], features, state.online
            return move(state, logits, distances, features)

        tracker.rule.move = spy
        errors: dict[str, list[float]] = {k: [] for k in pooled}
        m, size = tracker.engine.config, tracker.engine.response_size
        for i, frame in seq.images():
            if i == 0:
                tracker.init(frame, tuple(seq.gt[0]))
                continue
            tracker.update(frame)
            box = seq.gt[i]
            if not np.isfinite(box).all() or "crop" not in seen:
                continue
            centre, side = seen["crop"]
            truth = (box[:2] + box[2:] / 2 - centre) * m.search_size / side / m.stride + (size - 1) / 2
            if np.any(np.abs(truth - (size - 1) / 2) > (size - 1) / 2):
                continue  # the target is outside this crop
            logits, features, online = seen["maps"]
            siamese = fused_scores(logits, None, None, 0.0)
            response = online.response(features)
            fused = fused_scores(logits, online, features, tracker.config.online_weight)
            for name, scores in (("siamese", siamese), ("online", response), ("fused", fused)):
                row, col = np.unravel_index(int(np.argmax(scores)), scores.shape)
                errors[name].append(float(np.hypot(col - truth[0], row - truth[1])))
        for name in pooled:
            pooled[name] += errors[name]
        print(f"{seq.name:14s} " + "  ".join(f"{k} {np.mean(np.array(v) <= args.cells):.3f}" for k, v in errors.items())
              + f"  ({len(errors['siamese'])} frames)")
    print(f"{'all':14s} " + "  ".join(f"{k} {np.mean(np.array(v) <= args.cells):.3f}" for k, v in pooled.items())
          + f"  ({len(pooled['siamese'])} frames)")


if __name__ == "__main__":
    main()
