#!/usr/bin/env python3
"""Experiment for issue 10 (re-detection that takes a look-alike): could the template features tell the target
from other objects, as a check before a lost target is taken back? For each sequence, the cosine similarity of
its first frame's template with templates cut at its own ground-truth boxes later on (the same target), and with
templates cut at the other sequences' ground-truth boxes (other objects). Not part of the tracker.

    python benchmarks/template_similarity.py ../shared/data/val

Prints percentiles of both distributions. Measured with the shipped pair (one run each): val, same target 1st / 5th
/ 50th percentile 0.406 / 0.458 / 0.658, other objects 50th / 95th / 99th 0.366 / 0.503 / 0.541; val-hard 0.426 /
0.482 / 0.681 and 0.368 / 0.522 / 0.619. The two overlap, so no threshold separates them.
"""
from __future__ import annotations

import argparse
import sys

import numpy as np

from tracker import SiamTracker, UserError
from tracker.crop import context_side, crop_square, mean_colour
from tracker.evaluation.datasets import load_dataset


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dataset", help="OTB, GOT-10k or video folder (e.g. ../shared/data/val)")
    parser.add_argument("--weights", help="an ONNX pair's folder (default: the shipped pair)")
    parser.add_argument("--samples", type=int, default=40, help="frames sampled per sequence (default 40)")
    args = parser.parse_args(argv)
    try:
        engine = SiamTracker.from_pretrained(args.weights, engine="onnx", device="cpu").engine
        context = engine.tracker_config.context_amount
        _, sequences, _ = load_dataset(args.dataset)
    except (UserError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    def template(frame, box) -> np.ndarray:
        x, y, w, h = box
        crop = crop_square(frame, (x + w / 2, y + h / 2), context_side(w, h, context), engine.config.exemplar_size,
                           mean_colour(frame))
        features = np.asarray(engine.template(crop[None])).ravel()
        return features / np.linalg.norm(features)

    first, later = {}, {}
    for seq in sequences:
        lines = list(range(0, len(seq), max(1, len(seq) // args.samples)))
        found = [template(frame, seq.gt[i]) for i, frame in seq.images(lines) if seq.valid[i]]
        if len(found) > 1:
            first[seq.name], later[seq.name] = found[0], found[1:]
    same = [float(first[n] @ z) for n in later for z in later[n]]
    other = [float(first[n] @ z) for n in later for m in later if m != n for z in later[m][::4]]
    if not same or not other:
        print("error: need at least two sequences with two scored frames each", file=sys.stderr)
        return 2
    print(f"same target (n={len(same)}): percentiles 1/5/50 = "
          f"{' / '.join(f'{v:.3f}' for v in np.percentile(same, [1, 5, 50]))}")
    print(f"other objects (n={len(other)}): percentiles 50/95/99 = "
          f"{' / '.join(f'{v:.3f}' for v in np.percentile(other, [50, 95, 99]))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
